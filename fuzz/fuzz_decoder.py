"""A mutation fuzzer for the .vqp decoder: damaged, truncated and forged files.

    python fuzz/fuzz_decoder.py --cases 10000             # the long run (numbers in the README)
    python fuzz/fuzz_decoder.py --cases 1000 --seed 1     # a bounded run, as CI's smoke test (tests/test_fuzz.py)

Seeds are real files: small generated images (1x1 to 96x80, RGB and gray, photo-like and flat)
at every quality of every shipped codec model. Each case applies one mutator to a seed. Most
mutators reseal the file (payload length and CRC32 recomputed), so the case gets past the
container's checks into the model lookup, the range decoder and the reconstruction: forged
sizes, qualities, modes and model ids, bit flips, truncations, random and spliced payloads.

A case passes when decoding returns an image or raises `codec.VQPressError`, within
--time-limit seconds. Anything else (another exception, a timeout) is a failure, saved to --out
with its traceback. The report gives the outcomes, the slowest decodes of files under 1 KB and
the process's peak memory (max RSS), and the exit status is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import signal
import struct
import sys
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from vqpress import codec, weights
from vqpress.codec import container, limits
from vqpress.codec.ladder import DEFAULT_MODEL

BOUNDARY = [0, 1, 2, 7, 8, 9, 15, 16, 17, 255, 256, 4095, 16383, 16384, 16385, 65535, 2**24,
            2**31 - 1, 2**31, 2**32 - 1]


class Timeout(Exception):
    pass


def seeds(rng: np.random.Generator) -> list[bytes]:
    """Real files: a few small images at every quality of every shipped codec, and version 2
    files (an alpha plane, a soft one and a flat one, and an ICC profile)."""
    from PIL import Image, ImageCms
    from skimage import data

    photo = data.astronaut()
    images = [photo[:1, :1], photo[100:101, 100:148], photo[60:76, 80:88], photo[200:264, 200:296],
              np.full((23, 37, 3), (200, 30, 90), np.uint8), photo[300:380, 250:346, 1],
              rng.integers(0, 256, (9, 40, 3), np.uint8)]
    out = []
    for model_id in weights.shipped("rvq"):
        model = codec.load(model_id, device="cpu")
        for k, image in enumerate(images):
            for q in model.qualities:
                if (k + q) % 2 == 0 or model_id == DEFAULT_MODEL:
                    out.append(model.compress(image, q))
    soft = np.dstack([photo[:40, :56], np.linspace(0, 255, 56).astype(np.uint8)[None].repeat(40, 0)])
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with_icc = Image.fromarray(photo[:24, :40])
    with_icc.info["icc_profile"] = icc
    for image in (Image.fromarray(soft, "RGBA"), Image.fromarray(photo[:32, :32]).convert("RGBA"),
                  Image.fromarray(soft[..., [0, 3]], "LA"), with_icc):
        out += [codec.compress(image, q) for q in (1, 5)]
    return out


def reseal(head: bytes, payload: bytes, tail: bytes = b"") -> bytes:
    """A file with this header (up to the payload length field), payload and extensions (the
    version 2 tail), payload length and CRC recomputed."""
    body = head + struct.pack("<I", len(payload)) + payload + tail
    return body + struct.pack("<I", zlib.crc32(body))


def split(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(header without the payload length, payload, extensions) of a valid file."""
    n = data[5]
    start = 6 + n + 18
    (length,) = struct.unpack_from("<I", data, start - 4)
    return data[:start - 4], data[start:start + length], data[start + length:-4]


def set_field(head: bytes, offset_from_id_end: int, fmt: str, value) -> bytes:
    at = 6 + head[5] + offset_from_id_end
    size = struct.calcsize(fmt)
    return head[:at] + struct.pack(fmt, value) + head[at + size:]


def mutate(data: bytes, seeds_: list[bytes], rng: np.random.Generator) -> tuple[str, bytes]:
    head, payload, tail = split(data)
    kind = rng.choice(["flip", "flip_sealed", "truncate", "truncate_sealed", "size", "quality",
                       "mode", "model_id", "payload_random", "splice", "random_bytes", "extend",
                       "extension"])
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(len(b))] ^= 1 << rng.integers(8)
        return kind, bytes(b)
    if kind == "flip_sealed":
        b = bytearray(head + payload + tail)
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(len(b))] ^= 1 << rng.integers(8)
        return kind, reseal(bytes(b[:len(head)]), bytes(b[len(head):len(head) + len(payload)]),
                            bytes(b[len(head) + len(payload):]))
    if kind == "extension":  # a forged version 2 tail: alpha, profiles, unknown tags, bad lengths
        data_ = bytes(rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8))
        tag = [b"ALPH", b"ICCP", b"EXIF", b"ZZZZ", b"\x00\x01ab"][rng.integers(5)]
        method = bytes([int(rng.integers(0, 3))])
        length = len(data_) + 1 + int(rng.choice([0, 0, 0, 1, -1, 1000]))
        ext = struct.pack("<H", int(rng.integers(0, 3))) + tag + struct.pack("<I", max(0, length)) + method + data_
        head = head[:4] + b"\x02" + head[5:]
        mode = int(rng.choice([0, 4, 5]))
        return kind, reseal(set_field(head, 12, "<B", mode), payload, ext)
    if kind == "truncate":
        return kind, data[:rng.integers(0, len(data))]
    if kind == "truncate_sealed":
        return kind, reseal(head, payload[:rng.integers(0, len(payload) + 1)], tail)
    if kind == "size":
        w, h = (int(rng.choice(BOUNDARY)) if rng.random() < 0.5 else int(rng.integers(1, 5000))
                for _ in range(2))
        head = set_field(set_field(head, 4, "<I", min(w, 2**32 - 1)), 8, "<I", min(h, 2**32 - 1))
        return kind, reseal(head, payload, tail)
    if kind == "quality":
        return kind, reseal(set_field(head, 13, "<B", int(rng.integers(0, 256))), payload, tail)
    if kind == "mode":
        return kind, reseal(set_field(head, 12, "<B", int(rng.integers(0, 256))), payload, tail)
    if kind == "model_id":
        names = [b"vae-v3", b"rvq8-v1", b"rvq9-x", b"", b"a" * 64, b"x\ny", b"\x1b[31mred",
                 bytes(rng.integers(0, 256, rng.integers(1, 20), dtype=np.uint8))]
        name = names[rng.integers(len(names))]
        rest = head[6 + head[5]:]
        return kind, reseal(head[:5] + bytes([len(name)]) + name + rest, payload, tail)
    if kind == "payload_random":
        n = int(rng.integers(0, 64)) * 4 + int(rng.integers(0, 2)) * int(rng.integers(1, 4))
        return kind, reseal(head, bytes(rng.integers(0, 256, n, dtype=np.uint8)), tail)
    if kind == "splice":
        _, other, other_tail = split(seeds_[rng.integers(len(seeds_))])
        return kind, reseal(head, other, tail if rng.random() < 0.5 else other_tail)
    if kind == "extend":
        return kind, reseal(head, payload + bytes(rng.integers(0, 256, 4 * rng.integers(1, 64), dtype=np.uint8)), tail)
    blob = bytes(rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8))
    return kind, (container.MAGIC + bytes([1]) + blob) if rng.random() < 0.5 else blob


def decode_one(data: bytes, time_limit: float) -> str:
    """The outcome of decoding: "image", or "error: <message up to the first parenthesis>"."""
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        image = codec.decompress(data, device="cpu")
        image.load()
        return "image"
    except codec.VQPressError as e:  # one bucket per kind of message
        message = re.sub(r"model [^ ,]+", "model M", str(e).split("(")[0])
        return "error: " + re.sub(r"[0-9]+", "N", message).strip()[:70]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass
class Tally:
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    kinds: collections.Counter = field(default_factory=collections.Counter)
    failures: list = field(default_factory=list)
    small: list = field(default_factory=list)  # (seconds, kind, bytes) of files under 1 KB
    cases: int = 0

    def report(self, seconds: float, seed: int) -> None:
        self.small.sort(reverse=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n{self.cases} cases in {seconds:.0f} s (seed {seed})")
        print("mutators: " + ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items())))
        print("outcomes:")
        for outcome, n in self.outcomes.most_common():
            print(f"  {n:6d}  {outcome}")
        print(f"files under 1 KB: {len(self.small)}; slowest decodes: "
              + ", ".join(f"{s:.2f} s ({k}, {size} B)" for s, k, size in self.small[:5]))
        print(f"peak memory (max RSS): {peak:.0f} MB")
        print(f"failures: {len(self.failures)}")
        for case_no, kind, err in self.failures[:20]:
            print(f"  case {case_no} ({kind}): {err}")


def run_case(data: bytes, kind: str, tally: Tally, args) -> None:
    tally.kinds[kind] += 1
    t0 = time.perf_counter()
    try:
        outcome = decode_one(data, args.time_limit)
    except Exception as e:  # noqa: BLE001 (any other exception is what the fuzzer looks for)
        outcome = f"FAILURE {type(e).__name__}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"case{tally.cases}.vqp").write_bytes(data)
        (args.out / f"case{tally.cases}.txt").write_text(traceback.format_exc())
        tally.failures.append((tally.cases, kind, repr(e)[:200]))
    if len(data) < 1024:
        tally.small.append((time.perf_counter() - t0, kind, len(data)))
    tally.outcomes[outcome] += 1
    tally.cases += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000, help="stop after this many (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0, help="a case slower than this fails")
    parser.add_argument("--out", type=Path, default=Path("out/fuzz"), help="where failures are saved")
    args = parser.parse_args()

    def alarm(signum, frame):
        raise Timeout(f"decoding took over {args.time_limit} s")

    signal.signal(signal.SIGALRM, alarm)
    rng = np.random.default_rng(args.seed)
    pool = seeds(rng)
    print(f"{len(pool)} seed files from {', '.join(weights.shipped('rvq'))}; limits "
          f"{limits.MAX_IMAGE_PIXELS} px, {limits.MAX_SIDE} px a side", flush=True)
    tally, start = Tally(), time.perf_counter()
    while ((not args.cases or tally.cases < args.cases)
           and (not args.seconds or time.perf_counter() - start < args.seconds)):
        kind, data = mutate(pool[rng.integers(len(pool))], pool, rng)
        run_case(data, kind, tally, args)
        if tally.cases % 500 == 0:
            print(f"  {tally.cases} cases, {time.perf_counter() - start:.0f} s, "
                  f"{len(tally.failures)} failures", flush=True)
    tally.report(time.perf_counter() - start, args.seed)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
