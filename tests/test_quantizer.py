import torch

from vqpress.nets.quantizer import ResidualVQ, VectorQuantizer


def test_indices_are_nearest_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(32, 4)
    z = torch.randn(100, 4)
    brute = torch.cdist(z, vq.codebook).argmin(1)
    assert torch.equal(vq.indices(z), brute)


def test_ema_moves_codes_towards_their_data():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 2, decay=0.5)
    vq.train()
    data = torch.cat([torch.randn(50, 2) * 0.01 + 3, torch.randn(50, 2) * 0.01 - 3])
    for _ in range(30):
        vq(data)
    centres = sorted(vq.codebook[:, 0].tolist())
    assert abs(centres[0] + 3) < 0.1 and abs(centres[1] - 3) < 0.1


def test_dead_codes_are_restarted_on_data():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, decay=0.5, dead_threshold=0.5)
    vq.train()
    vq(torch.zeros(4, 2))  # initialise
    vq.codebook[:] = 100.0  # every code far from the data: all but one go unused
    data = torch.randn(64, 2)
    for _ in range(5):
        vq(data)
    assert vq.codebook.abs().max() < 10  # no code left stranded at 100


def test_residual_stages_reduce_error_and_straight_through_gradient():
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 64, 8)
    rvq.train()
    for _ in range(40):
        rvq(torch.randn(8, 8, 8, 8))
    rvq.eval()
    z = torch.randn(2, 8, 8, 8)
    errors = [(rvq.decode(rvq.encode(z, s)) - z).pow(2).mean().item() for s in range(1, 5)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.5 * errors[0]

    z = torch.randn(2, 8, 4, 4, requires_grad=True)
    z_q, indices, commitment = rvq(z)
    assert indices.shape == (2, 4, 4, 4)
    assert torch.allclose(z_q, rvq.decode(indices), atol=1e-5)
    z_q.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # identity gradient through the quantiser
    assert commitment.item() > 0


def test_keep_truncates_stages_per_image():
    torch.manual_seed(0)
    rvq = ResidualVQ(3, 16, 4)
    rvq.eval()
    z = torch.randn(2, 4, 3, 3)
    z_q, indices, _ = rvq(z, keep=torch.tensor([1, 3]))
    assert torch.allclose(z_q[0], rvq.decode(indices[:1, :1])[0], atol=1e-6)
    assert torch.allclose(z_q[1], rvq.decode(indices[1:])[0], atol=1e-6)
