"""The detail layer: transforms, quantiser, contexts, tables and its range coding."""

import numpy as np
import pytest

from vqpress.codec import detail
from vqpress.codec.entropy import CATEGORICAL, CorruptStream, PayloadDecoder, new_encoder


def test_transforms_are_orthonormal_and_invert_on_any_size():
    rng = np.random.default_rng(0)
    residual = rng.normal(0, 20, (37, 45, 3)).astype(np.float32)
    coefficients = detail.to_coefficients(residual)
    assert coefficients.shape == (5, 6, 3, 64)
    assert np.allclose(detail.to_pixels(coefficients, 37, 45), residual, atol=1e-3)
    # squared error is kept: one step size for every coefficient is the MSE-optimal choice
    whole = residual[:32, :40]
    assert np.isclose((detail.to_coefficients(whole)**2).sum(), (whole**2).sum(), rtol=1e-5)
    # partial blocks repeat the edge, so one pixel is one DC coefficient, not 64 small ones
    single = detail.to_coefficients(np.full((1, 1, 3), 2.0, dtype=np.float32))[0, 0]
    assert np.isclose(single[0, 0], 2 * 8 * np.sqrt(3)) and np.abs(single).sum() - abs(single[0, 0]) < 1e-4
    flat = np.full((8, 8, 3), 2.0, dtype=np.float32)  # a flat grey block is one luma DC value
    c = detail.to_coefficients(flat)[0, 0]
    assert np.isclose(c[0, 0], 2 * 8 * np.sqrt(3)) and np.abs(c).sum() - abs(c[0, 0]) < 1e-4


def test_quantiser_rounds_with_a_dead_zone():
    edge = 10 * (0.5 + detail.DEADZONE)  # where level 1 starts: half a step plus the dead zone
    c = np.array([edge - 0.1, edge + 0.1, -edge - 5, -edge - 10.1, 0.0, 250.0], dtype=np.float32)
    assert detail.quantise(c, 10.0).tolist() == [0, 1, -1, -2, 0, 25]


def _order():
    """(diagonal, channel) groups in decoding order, for a 4 x 5 block grid."""
    return [(rows, cols, ch) for rows, cols in detail.diagonals(4, 5) for ch in range(3)]


def test_contexts_read_only_what_is_decoded_before():
    rng = np.random.default_rng(1)
    levels = rng.integers(-3, 4, (4, 5, 3, 64))

    def all_contexts(lv):
        mags = detail.padded_magnitudes(lv)
        return [detail.contexts(mags, rows, cols)[:, ch] for rows, cols, ch in _order()]

    levels[:, :, :, 5] = 0
    base = all_contexts(levels)
    order = _order()
    for i, j, ch in [(0, 0, 0), (1, 2, 1), (2, 0, 0), (3, 4, 2)]:
        changed = levels.copy()
        changed[i, j, ch, 5] = 14
        new = all_contexts(changed)
        at = next(k for k, (rows, cols, c) in enumerate(order) if c == ch and i in rows[cols == j])
        for k in range(at + 1):  # every group up to and including the changed one: same contexts
            assert np.array_equal(base[k], new[k])
        if (i, j, ch) != (3, 4, 2):  # the last block's last channel is read by nothing
            assert any(not np.array_equal(b, n) for b, n in zip(base[at + 1:], new[at + 1:]))
    assert all(c.min() >= 0 and c.max() < detail.CONTEXTS for c in base)


def _weights(levels):
    counts = np.zeros((3, detail.GROUPS, detail.CONTEXTS, detail.SYMBOLS))
    detail.count(levels, counts)
    return detail.table_from_counts(counts)


def _table(levels):
    return detail.Table(_weights(levels).reshape(-1, detail.SYMBOLS))


def test_tables_are_positive_integers_that_follow_the_counts():
    levels = np.zeros((6, 6, 3, 64), dtype=np.int32)
    levels[..., 0] = 1  # every DC level is 1, everything else 0
    table = _weights(levels)
    assert table.dtype == np.int32 and table.min() >= 1
    dc_group = detail.BAND_GROUP[0]
    rows = table[:, dc_group].reshape(-1, detail.SYMBOLS)
    assert (rows.argmax(1) == detail.LIMIT + 1).all()  # pooled shrinkage keeps even unseen contexts sensible


def test_coder_round_trip_with_escapes_is_exact_and_near_the_cross_entropy():
    rng = np.random.default_rng(2)
    levels = (np.round(rng.laplace(0, 1.5, (7, 9, 3, 64))) * (rng.random((7, 9, 3, 64)) < 0.4)).astype(np.int32)
    levels[0, 0, 0, 0], levels[3, 4, 2, 7], levels[6, 8, 1, 63] = 4000, -detail.LIMIT, detail.LIMIT + 1
    table = _table(levels)
    encoder = new_encoder()
    encoder.encode(np.array([5], dtype=np.int32), CATEGORICAL, np.ones((1, 8)))  # something before
    bits = detail.encode(encoder, levels, table)
    payload = encoder.get_compressed().tobytes()
    decoder = PayloadDecoder(payload)
    assert decoder.categorical(np.ones((1, 8)))[0] == 5
    assert np.array_equal(detail.decode(decoder, table, 7, 9), levels)
    assert len(payload) * 8 <= (bits + 3) * 1.01 + 64


def test_coded_bytes_are_stable():
    """The format depends on constriction turning these integer weights into the same
    fixed-point probabilities; a different constriction that did it otherwise would change
    these bytes (and break old files), so it must fail here first."""
    import hashlib

    levels = (np.arange(2 * 3 * 3 * 64).reshape(2, 3, 3, 64) % 7 - 3).astype(np.int32)
    levels[1, 2, 0, 0] = 99
    table = _table(levels)
    encoder = new_encoder()
    detail.encode(encoder, levels, table)
    digest = hashlib.sha256(encoder.get_compressed().tobytes()).hexdigest()
    assert digest == "5f5d50cc1730d5aec35c999a8f6b2d16669a54e253b3e80a4d205c5da67c4861"


def _layout_table(levels, modes, layout=detail.MODES_PASSES):
    counts = np.zeros((layout.rows, detail.SYMBOLS))
    detail.count(levels, counts, layout, modes)
    return detail.Table.from_codes(detail.codes_from_counts(counts, layout), layout)


def test_layouts_give_every_coefficient_one_row_of_its_own():
    """Each (channel, position's band group, context, mode, own class) has a row of its own,
    and a later pass's class is read from the earlier passes only."""
    layout = detail.MODES_PASSES
    seen = set()
    for channel in range(3):
        for position in range(64):
            passed = [k for k, p in enumerate(layout.passes) if position in p][0]
            classes = layout.classes if passed else 1
            for context in range(detail.CONTEXTS):
                for mode in range(3):
                    for own in range(classes):
                        row = int(layout.table_rows(channel, np.array([[context]]), np.array([[mode]]), own)[0, position])
                        seen.add((row, channel, detail.BAND_GROUP[position], context, mode, own))
    rows = {r for r, *_ in seen}
    assert rows == set(range(layout.rows)) and len(seen) == layout.rows
    magnitudes = np.zeros(64, np.int64)
    magnitudes[detail.ZIGZAG[:3]] = 1  # in the first pass (sum 3: class 2 for every later pass)
    assert [int(layout.own_classes(magnitudes, k)) for k in (1, 2, 3)] == [2, 2, 2]
    magnitudes[detail.ZIGZAG[7]] = 12  # in the second: read by the third and fourth (sum 15: class 4)
    assert [int(layout.own_classes(magnitudes, k)) for k in (1, 2, 3)] == [2, 4, 4]
    assert layout.own_rows(magnitudes)[detail.ZIGZAG[:6]].tolist() == [0] * 6
    assert layout.own_rows(magnitudes)[detail.ZIGZAG[[6, 20, 40]]].tolist() == [2, 4, 4]
    assert detail.NEIGHBOURS.rows == 3 * detail.GROUPS * detail.CONTEXTS
    for bad in ({"modes": 0}, {"modes": 4}, {"classes": 0}, {"classes": detail.MAX_CLASSES + 1},
                {"modes": True}, {"classes": 2.0}, {"splits": (5,)}, {"splits": (15, 6)}, {"splits": (6, 6)}):
        with pytest.raises(ValueError):
            detail.Layout(**bad)


def test_codes_are_symmetric_weights_that_follow_the_counts():
    codes = np.array([[0, 8, 16] + [255] * (detail.LIMIT - 2)], dtype=np.uint8)
    layout = detail.Layout()
    weights = detail.Table.from_codes(np.repeat(codes, layout.rows, 0), layout).weights[0]
    assert weights[detail.LIMIT] == 2**20 and weights[detail.LIMIT + 1] == weights[detail.LIMIT - 1] == 2**19
    assert weights[detail.LIMIT + 2] == 2**18 and weights.min() == 1 and (weights == weights[::-1]).all()
    rng = np.random.default_rng(7)
    levels = (np.round(rng.laplace(0, 0.8, (8, 8, 3, 64)))).astype(np.int32)
    modes = rng.integers(0, 3, (8, 8)).astype(np.uint8)
    table = _layout_table(levels, modes)
    dc = table.layout.first_row[0, 0]  # a row that saw many levels: 0 is the likeliest, signs alike
    row = table.weights[dc: dc + 3 * detail.CONTEXTS].sum(0)
    assert row.argmax() == detail.LIMIT and abs(row[detail.LIMIT + 1] / row[detail.LIMIT - 1] - 1) < 1e-9


def test_layout_with_modes_and_passes_round_trips_exactly():
    rng = np.random.default_rng(8)
    levels = (np.round(rng.laplace(0, 1.5, (7, 9, 3, 64))) * (rng.random((7, 9, 3, 64)) < 0.4)).astype(np.int32)
    levels[0, 0, 0, 0], levels[3, 4, 2, 7], levels[6, 8, 1, 63] = 4000, -detail.LIMIT, detail.LIMIT + 1
    modes = rng.integers(0, 3, (7, 9)).astype(np.uint8)
    table = _layout_table(levels, modes)
    for adaptive in (False, True):
        encoder = new_encoder()
        bits = detail.encode(encoder, levels, table, modes, adaptive=adaptive)
        payload = encoder.get_compressed().tobytes()
        assert np.array_equal(detail.decode(PayloadDecoder(payload), table, 7, 9, modes, adaptive=adaptive), levels)
        assert len(payload) * 8 <= (bits + 3) * 1.01 + 64
        try:  # the modes pick the rows: other modes, other levels (or a stream that runs out)
            other = detail.decode(PayloadDecoder(payload), table, 7, 9, (modes + 1) % 3, adaptive=adaptive)
        except (CorruptStream, AssertionError, ValueError):  # as constriction reports a bad stream
            other = None
        assert other is None or not np.array_equal(other, levels)


def _regional_dc(rng, shape=(9, 11)):
    """Levels whose DC signs hold over regions (left half positive, right half negative), as
    the VQ base's colour errors do, with zeros, escapes and sparse AC levels."""
    levels = (np.round(rng.laplace(0, 1.2, (*shape, 3, 64))) * (rng.random((*shape, 3, 64)) < 0.3)).astype(np.int32)
    dc = rng.integers(0, 4, (*shape, 3)) * (rng.random((*shape, 3)) < 0.8)
    side = np.where(np.arange(shape[1]) < shape[1] // 2, 1, -1)[None, :, None]
    levels[..., 0] = dc * side
    levels[2, 3, 1, 0], levels[5, 9, 0, 0], levels[0, 0, 2, 0] = 40, -detail.LIMIT, detail.LIMIT + 2
    return levels


def test_dc_signs_in_context_round_trip_exactly_and_cost_less_where_they_hold_over_regions():
    rng = np.random.default_rng(12)
    levels = _regional_dc(rng)
    modes = rng.integers(0, 3, levels.shape[:2]).astype(np.uint8)
    plain = _layout_table(levels, modes)
    signed = _layout_table(levels, modes, detail.MODES_PASSES_SIGNS)  # the same rows, so the same codes
    assert detail.Layout(**signed.layout.spec()).dc_signs and "dc_signs" not in plain.layout.spec()
    for adaptive in (False, True):
        sizes = {}
        for table in (plain, signed):
            encoder = new_encoder()
            bits = detail.encode(encoder, levels, table, modes, adaptive=adaptive)
            payload = encoder.get_compressed().tobytes()
            assert np.array_equal(detail.decode(PayloadDecoder(payload), table, *levels.shape[:2], modes,
                                                adaptive=adaptive), levels)
            assert len(payload) * 8 <= (bits + 3) * 1.01 + 64
            sizes[table.layout.dc_signs] = bits
        nonzero_dc = np.count_nonzero(levels[..., 0])
        assert sizes[True] < sizes[False] - 0.3 * nonzero_dc  # most of a bit per sign saved
        encoder = new_encoder()  # the same payload read without signs in context: other levels
        detail.encode(encoder, levels, signed, modes, adaptive=adaptive)
        try:
            other = detail.decode(PayloadDecoder(encoder.get_compressed().tobytes()), plain, *levels.shape[:2],
                                  modes, adaptive=adaptive)
        except (CorruptStream, AssertionError, ValueError):
            other = None
        assert other is None or not np.array_equal(other, levels)


def test_dc_signs_fold_only_the_dc_rows_and_leave_the_estimates_alone():
    """The coder's DC rows weigh each magnitude as both signs together (negative symbols are
    never coded); every other row, and the encoder's estimates (`bits`), are the table's own."""
    rng = np.random.default_rng(13)
    levels = _regional_dc(rng)
    plain = _layout_table(levels, None)
    signed = _layout_table(levels, None, detail.MODES_PASSES_SIGNS)
    dc = signed.layout.dc_rows
    assert dc.sum() == 3 * detail.CONTEXTS * detail.MODES_PASSES.modes
    assert np.array_equal(plain.bits, signed.bits)
    assert np.array_equal(plain.coding_weights[~dc], signed.coding_weights[~dc])
    folded, whole = signed.coding_weights[dc], plain.float_weights[dc]
    L = detail.LIMIT
    assert (folded[:, :L] == 1).all() and np.array_equal(folded[:, L], whole[:, L])
    assert np.array_equal(folded[:, L + 1:], 2 * whole[:, L + 1:])


def test_table_costs_are_distortion_plus_the_tables_bits():
    """A block's cost against a predictor is its quantisation error plus lambda step^2 times
    the bits of its levels in their rows (the mode's own rows); a perfect predictor costs
    least."""
    from vqpress.codec import modes

    rng = np.random.default_rng(9)
    step, offset = 10.0, 0.15
    rough = (rng.laplace(0, 15, (4, 5, 3, 64)) * (rng.random((4, 5, 3, 64)) < 0.5)).astype(np.float32)
    residuals = [rough, np.zeros_like(rough), rough * 0.5]
    first = detail.quantise(rough, step)
    table = _layout_table(first, np.zeros((4, 5), np.uint8))
    magnitudes = detail.padded_magnitudes(first)
    distortion = modes.table_costs(residuals, magnitudes, 0, step, offset, table, lam=0.0)
    for mode, c in enumerate(residuals):
        error = np.square(c - detail.dequantise(detail.quantise(c, step), step, offset)).sum((2, 3))
        assert np.allclose(distortion[mode], error, rtol=1e-5)
    costs = modes.table_costs(residuals, magnitudes, 0, step, offset, table, lam=0.5)
    assert (costs > distortion).all() and (costs.argmin(0) == 1).all()
    rows, cols = (a.ravel() for a in np.indices((4, 5)))
    levels = detail.quantise(rough, step)
    own = detail.padded_magnitudes(levels)[1:, 1:].reshape(-1, 3, 64)  # the block's own levels...
    spatial = detail.spatial_contexts(magnitudes, rows, cols)  # ...in the first choice's neighbours
    table_rows = detail.rows_of(table.layout, spatial, own, np.zeros(20, np.int64))
    bits = table.bits[table_rows, np.clip(levels.reshape(-1, 3, 64), -15, 15) + 15].sum((1, 2))
    assert np.allclose(costs[0] - distortion[0], 0.5 * step**2 * bits.reshape(4, 5), rtol=1e-4)
    # the bottom block row alone, read at its place in the image: the same costs
    part = modes.table_costs([r[3:] for r in residuals], magnitudes, 3, step, offset, table, lam=0.5)
    assert np.allclose(part, costs[:, 3:])
    # weights scale each coefficient's error: the DC's alone, tripled
    dc_weighted = np.ones(64, np.float32)
    dc_weighted[0] = 3
    weighted = modes.table_costs(residuals, magnitudes, 0, step, offset, table, lam=0.0, weights=dc_weighted)
    for mode, c in enumerate(residuals):
        error = np.square(c - detail.dequantise(detail.quantise(c, step), step, offset))
        assert np.allclose(weighted[mode] - distortion[mode], 2 * error[..., 0].sum(-1), rtol=1e-4, atol=1e-3)


def test_rd_optimisation_only_lowers_levels_where_the_table_says_it_pays():
    """Each level moves at most one step towards zero, never changes sign, and moves only
    where the bits the table saves outweigh the error added; lambda 0 changes nothing."""
    rng = np.random.default_rng(5)
    coefficients = (rng.laplace(0, 12, (6, 7, 3, 64)) * (rng.random((6, 7, 3, 64)) < 0.5)).astype(np.float32)
    step, offset = 10.0, 0.15
    levels = detail.quantise(coefficients, step)
    table = _table(levels)
    assert np.array_equal(detail.rd_optimise(levels, coefficients, step, offset, table, 0.0), levels)
    lowered = detail.rd_optimise(levels, coefficients, step, offset, table, 0.3, chunk=4)
    moved = lowered != levels
    assert moved.any() and not moved.all()
    assert (np.abs(levels - lowered) <= 1).all() and (np.abs(lowered) <= np.abs(levels)).all()
    assert (np.sign(lowered) * np.sign(levels) >= 0).all()
    error = lambda q: np.square(coefficients - detail.dequantise(q, step, offset))  # noqa: E731
    assert (error(lowered)[moved] > error(levels)[moved]).all()  # what it gives up is error...
    assert np.abs(lowered[moved]).max() < detail.LIMIT  # ...for bits, which escapes would not save
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # chunks of block rows on two threads: the same choice
        pooled = detail.rd_optimise(levels, coefficients, step, offset, table, 0.3, chunk=2, map=pool.map)
    assert np.array_equal(pooled, lowered)


def test_tilted_weights_lower_more_high_frequency_levels_than_low_ones():
    """The tilt weighs the DC's error by 1 + tilt and the highest frequency's by 1 / (1 + tilt):
    with it, more high-frequency levels and fewer low-frequency ones are lowered."""
    weights = detail.tilted_weights(1.0)
    assert weights.shape == (64,) and np.isclose(weights[0], 2) and np.isclose(weights[63], 0.5)
    assert np.isclose(weights[7], 1) and np.isclose(weights[56], 1)  # the anti-diagonal between
    assert np.array_equal(detail.tilted_weights(0.0), np.ones(64, np.float32))
    rng = np.random.default_rng(6)
    coefficients = (rng.laplace(0, 12, (8, 8, 3, 64)) * (rng.random((8, 8, 3, 64)) < 0.5)).astype(np.float32)
    step, offset = 10.0, 0.15
    levels = detail.quantise(coefficients, step)
    table = _table(levels)
    flat = detail.rd_optimise(levels, coefficients, step, offset, table, 0.3) != levels
    tilted = detail.rd_optimise(levels, coefficients, step, offset, table, 0.3, weights=weights) != levels
    u, v = np.divmod(np.arange(64), 8)
    low, high = u + v < 4, u + v > 10
    assert tilted[..., low].sum() < flat[..., low].sum()
    assert tilted[..., high].sum() > flat[..., high].sum()


def test_levels_are_reconstructed_with_the_rung_offset():
    levels = np.array([-2, -1, 0, 1, 3], dtype=np.int32)
    assert detail.dequantise(levels, 10.0).tolist() == [-20, -10, 0, 10, 30]
    assert np.allclose(detail.dequantise(levels, 10.0, 0.15), [-21.5, -11.5, 0, 11.5, 31.5])


def test_rungs_read_and_write_their_spec():
    from vqpress.codec.ladder import Rung

    for text, rung in [("1", Rung(1)), ("2+60", Rung(2, 60.0)), ("1+85@0.15", Rung(1, 85.0, 0.15))]:
        assert Rung.parse(text) == rung and rung.spec() == text
    assert Rung(*[2, 60.0]) == Rung(2, 60.0, 0.0)  # ladders of the first models: no offset


def test_block_modes_round_trip_and_flatten_only_where_asked():
    from vqpress.codec import modes

    rng = np.random.default_rng(3)
    chosen = (rng.random((9, 13)) < 0.3).astype(np.uint8)
    encoder = new_encoder()
    bits = modes.encode(encoder, chosen)
    payload = encoder.get_compressed().tobytes()
    assert np.array_equal(modes.decode(PayloadDecoder(payload), 9, 13), chosen)
    assert bits < chosen.size  # adaptive counts: less than a bit a block at 30% ones
    base = rng.integers(0, 256, (70, 100, 3)).astype(np.uint8)
    flat = modes.predictor(base, chosen)
    assert np.array_equal(flat[:8, 8:16], np.broadcast_to(base[:8, 8:16].mean((0, 1)), (8, 8, 3))) == bool(chosen[0, 1])
    keep = np.repeat(np.repeat(chosen == 0, 8, 0), 8, 1)[:70, :100]
    assert np.array_equal(flat[keep], base[keep].astype(np.float32))
    # a partial edge block is averaged as the transforms fill it: its last row and column repeated
    chosen[-1, -1] = 1
    edge = np.pad(base[64:, 96:].astype(np.float64), ((0, 2), (0, 4), (0, 0)), mode="edge").mean((0, 1))
    assert np.allclose(modes.predictor(base, chosen)[64:, 96:], edge, atol=1e-3)


def test_coefficients_against_block_means_are_the_flattened_residuals():
    from vqpress.codec import modes

    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (37, 51, 3)).astype(np.uint8)
    base = np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)  # a good base...
    base[:, 24:] = rng.integers(0, 256, (37, 27, 3))  # ...then one that the block means beat
    chosen, coefficients = modes.choose(photo, base, 10.0, 0.15)
    flat = detail.to_coefficients(photo - modes.predictor(base, np.ones_like(chosen)))
    on_base = detail.to_coefficients(photo.astype(np.float32) - base)
    expected = np.where(chosen[..., None, None] == 1, flat, on_base)
    assert 0 < chosen.mean() < 1 and np.allclose(coefficients, expected, atol=1e-2)


def test_a_textured_base_under_a_flat_colour_is_flattened():
    from vqpress.codec import modes

    rng = np.random.default_rng(4)
    photo = np.full((32, 48, 3), (200, 30, 90), np.uint8)
    base = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)  # painted texture
    chosen, _ = modes.choose(photo, base, 15.0, 0.15)
    assert chosen.all()
    assert not modes.choose(base, base, 15.0, 0.15)[0].any()  # where the texture is real: the base


def test_a_flat_base_keeps_its_blocks_and_mode_costs_follow_the_quantiser():
    from vqpress.codec import modes

    rng = np.random.default_rng(6)
    flat = np.repeat(np.repeat(rng.integers(0, 256, (4, 5, 3)), 8, 0), 8, 1).astype(np.uint8)
    photo = np.clip(flat + rng.normal(0, 10, flat.shape), 0, 255).astype(np.uint8)
    assert not modes.choose(photo, flat, 15.0, 0.15)[0].any()  # equal costs: no mode bits spent on ties
    c = detail.to_coefficients(photo.astype(np.float32) - flat)
    levels = detail.quantise(c, 15.0)
    distortion = np.square(c - detail.dequantise(levels, 15.0, 0.15)).sum((2, 3))
    bits = 4.0 * (levels != 0).sum((2, 3)) + 2.0 * np.log2(1 + np.abs(levels)).sum((2, 3))
    assert np.allclose(modes.rd_cost(c, 15.0, 0.15), distortion + modes.LAMBDA * 15.0**2 * bits, rtol=1e-4)


def test_a_third_predictor_softens_the_base_and_is_coded_exactly():
    """Where the photo is the base with its fine texture halved, the encoder picks the softened
    base (mode SOFT); its coefficients are exactly what the decoder adds to, partial edge blocks
    included; three-symbol modes round-trip."""
    from vqpress.codec import modes
    from vqpress.codec.blocks import low_pass

    rng = np.random.default_rng(8)
    base = rng.integers(40, 216, (70, 100, 3)).astype(np.float32)
    soft = modes.predictor(base, np.full((9, 13), modes.SOFT, np.uint8))
    block = detail.to_coefficients(soft[:8, :8])[0, 0]
    assert np.allclose(block, detail.to_coefficients(base[:8, :8])[0, 0] * modes.SOFT_GAINS, atol=1e-3)
    assert np.allclose(low_pass(base[None, :8, :8], np.ones((3, 64), bool))[0], base[:8, :8], atol=1e-3)
    photo = np.clip(np.round(soft + rng.normal(0, 1, soft.shape)), 0, 255).astype(np.uint8)
    chosen, coefficients = modes.choose(photo, base, 10.0, 0.15, predictors=3)
    assert (chosen == modes.SOFT).mean() > 0.9
    assert not (modes.choose(photo, base, 10.0, 0.15)[0] == modes.SOFT).any()  # two predictors: never
    expected = detail.to_coefficients(photo - modes.predictor(base, chosen))
    assert np.allclose(coefficients, expected, atol=1e-2)
    chosen[::2, ::3] = modes.MEAN
    chosen[1::4] = modes.BASE
    encoder = new_encoder()
    modes.encode(encoder, chosen, 3)
    assert np.array_equal(modes.decode(PayloadDecoder(encoder.get_compressed().tobytes()), 9, 13, 3), chosen)


def test_modes_are_priced_at_their_frequency_in_the_image(monkeypatch):
    """Pricing a mode at its bits moves blocks that gain little towards the image's common
    mode: fewer non-base blocks, and what remains of them is what a mode-blind choice took."""
    from vqpress.codec import modes

    rng = np.random.default_rng(9)
    base = rng.integers(40, 216, (64, 96, 3)).astype(np.float32)
    soft = modes.predictor(base, np.full((8, 12), modes.SOFT, np.uint8))
    mix = rng.random((64, 96, 1)) < 0.5  # pixels between the base and its softened self
    photo = np.clip(np.round(np.where(mix, base, soft) + rng.normal(0, 2, base.shape)), 0, 255).astype(np.uint8)
    monkeypatch.setattr(detail, "DEADZONE", 0.25)  # the dead zone this image's margins were made with
    monkeypatch.setattr(modes, "MODE_PRICE", 0.0)
    blind, _ = modes.choose(photo, base, 12.0, 0.15, predictors=3)
    monkeypatch.setattr(modes, "MODE_PRICE", 2.0)
    priced, coefficients = modes.choose(photo, base, 12.0, 0.15, predictors=3)
    assert 0 < (priced != modes.BASE).sum() < (blind != modes.BASE).sum()
    assert np.all((priced == modes.BASE) | (priced == blind))
    assert np.allclose(coefficients, detail.to_coefficients(photo - modes.predictor(base, priced)), atol=1e-2)
