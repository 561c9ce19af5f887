"""The transforms' ONNX graphs: the architecture the codec's run time executes with ONNX Runtime.

A graph holds the operations only. Its weights are declared as external data named by the
VQ-VAE's state-dict keys, and the run time feeds them from a codec weights file
(`vqpress.codec.transforms.OnnxTransforms`), so one graph serves every model of an
architecture and the weights ship once, in the model's own file.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from vqpress import weights
from vqpress.codec.postfilter import BIAS_INPUT, postfilter_graph
from vqpress.codec.transforms import GRAPH_INPUT, GRAPH_OUTPUT, graph_id
from vqpress.nets.postfilter import PostFilter, PostFilterConfig
from vqpress.nets.vqvae import VQVAE, VQVAEConfig


def graph_bytes(module: torch.nn.Module, example: tuple, inputs: list[str] = (GRAPH_INPUT,),
                unused: set[str] = frozenset()) -> bytes:
    """An ONNX graph of `module` whose state-dict tensors are external data (no bytes stored).
    The graph's inputs are `inputs` (the first one's last two axes dynamic), with `example`
    values; `unused` names the state tensors its forward does not read."""
    import onnx

    with torch.no_grad():  # distinct values, or the exporter merges equal tensors (fresh GDNs)
        generator = torch.Generator().manual_seed(0)
        for value in module.state_dict().values():
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    buf = io.BytesIO()
    torch.onnx.export(module, example, buf, input_names=list(inputs), output_names=[GRAPH_OUTPUT],
                      dynamic_axes={inputs[0]: {2: "height", 3: "width"},
                                    GRAPH_OUTPUT: {2: "height", 3: "width"}},
                      opset_version=17, do_constant_folding=False, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    state = module.state_dict()
    for tensor in model.graph.initializer:
        if tensor.name in state:  # tracing's own small constants stay in the graph
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", "codec-weights-file"
    missing = set(state) - unused - {t.name for t in model.graph.initializer}
    if missing:
        raise RuntimeError(f"the graph lost tensors of the state dict: {sorted(missing)[:5]}")
    return model.SerializeToString()


class SubPixelDeconv(torch.nn.Module):
    """A `nets.layers.deconv` (5x5, stride 2) computed as one 3x3 convolution with four times
    the outputs, one per output pixel's phase, then a depth-to-space; the 3x3 kernels are taken
    from the transposed convolution's own weight inside the graph, so the graph reads the same
    state tensors. ONNX Runtime's transposed convolution goes through a column buffer (236 MB
    for a 768x512 image's largest layer): this form peaks 330 MB lower and runs a fresh
    process's first synthesis about 45 ms sooner, for about 7 ms more on later runs."""

    # Output pixel 2m + p of a stride-2 transposed convolution with padding 2 reads input m + d
    # through kernel tap p + 2 - 2d; tap 5 does not exist (the padded zero row).
    TAPS = ((4, 2, 0), (5, 3, 1))  # (phase, d + 1) -> tap

    def __init__(self, deconv: torch.nn.ConvTranspose2d):
        super().__init__()
        check_deconv(deconv)
        self.weight, self.bias = deconv.weight, deconv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs, outputs = self.weight.shape[:2]
        taps = torch.tensor(self.TAPS)
        kernel = torch.nn.functional.pad(self.weight, (0, 1, 0, 1))[:, :, taps][:, :, :, :, taps]  # (in, out, py, dy, px, dx)
        kernel = kernel.permute(1, 2, 4, 0, 3, 5).reshape(outputs * 4, inputs, 3, 3)
        y = torch.nn.functional.conv2d(x, kernel, self.bias.repeat_interleave(4), padding=1)
        return torch.nn.functional.pixel_shuffle(y, 2)


class PhaseDeconv(torch.nn.Module):
    """A `nets.layers.deconv` as four convolutions, one per output phase, each with only the
    taps its phase reads (3x3, 3x2, 2x3, 2x2: the 25 of the 5x5 kernel, where `SubPixelDeconv`
    multiplies 36), then a depth-to-space. Measured on the 768x512 synthesis: 23 ms faster
    than `SubPixelDeconv` on its two 96-output layers, and slower on the 3-output one (ONNX
    Runtime computes outputs in blocks of 16 channels, so each phase costs a whole block)."""

    TAPS = ((4, 2, 0), (3, 1))  # phase 0 reads inputs m-1, m, m+1; phase 1 reads m, m+1

    def __init__(self, deconv: torch.nn.ConvTranspose2d):
        super().__init__()
        check_deconv(deconv)
        self.weight, self.bias = deconv.weight, deconv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.weight.transpose(0, 1)  # (out, in, 5, 5)
        phases = [PaddedConv.apply(x, kernel[:, :, list(self.TAPS[py])][:, :, :, list(self.TAPS[px])],
                                   self.bias, (1 - py, 1 - px, 1, 1))
                  for py in (0, 1) for px in (0, 1)]
        return PhasesToSpace.apply(torch.cat(phases, 1))


class PaddedConv(torch.autograd.Function):
    """A convolution after zero padding (top, left, bottom, right), exported as one ONNX Conv
    with those pads (torch's conv2d pads only symmetrically, and a separate Pad costs a copy)."""

    @staticmethod
    def forward(ctx, x, weight, bias, pads):
        top, left, bottom, right = pads
        return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, top, bottom)), weight, bias)

    @staticmethod
    def symbolic(g, x, weight, bias, pads):
        return g.op("Conv", x, weight, bias, pads_i=list(pads))


class PhasesToSpace(torch.autograd.Function):
    """(B, 4C, H, W) holding each 2x2 output block's four phases one after the other -> (B, C,
    2H, 2W): ONNX's DepthToSpace in DCR mode (torch's pixel_shuffle is the CRD mode)."""

    @staticmethod
    def forward(ctx, x):
        b, c4, h, w = x.shape
        return x.view(b, 2, 2, c4 // 4, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c4 // 4, 2 * h, 2 * w)

    @staticmethod
    def symbolic(g, x):
        return g.op("DepthToSpace", x, blocksize_i=2, mode_s="DCR")


def check_deconv(deconv: torch.nn.ConvTranspose2d) -> None:
    if (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding) != ((5, 5), (2, 2), (2, 2), (1, 1)):
        raise ValueError("only the transforms' 5x5 stride-2 transposed convolutions have a run-time form here")


def run_time_form(module: torch.nn.Sequential) -> torch.nn.Sequential:
    """The module with its transposed convolutions in the form the run time computes fastest
    (same state dict): `PhaseDeconv` where they have 16 outputs or more, else `SubPixelDeconv`."""
    def form(m):
        if not isinstance(m, torch.nn.ConvTranspose2d):
            return m
        return PhaseDeconv(m) if m.out_channels >= 16 else SubPixelDeconv(m)

    return torch.nn.Sequential(*map(form, module))


def export_graphs(config: dict, out: Path) -> list[Path]:
    """Write <out>/<graph id>.analysis.onnx and .synthesis.onnx for a VQ-VAE architecture, and
    their SHA256SUMS lines."""
    vqvae = VQVAE(VQVAEConfig(**config)).eval()
    parts = {"analysis": (vqvae.encoder, (torch.zeros(1, 3, 64, 64),)),
             "synthesis": (run_time_form(vqvae.decoder), (torch.zeros(1, config["latent_dim"], 8, 8),))}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for part, (module, example) in parts.items():
        path = out / f"{graph_id(config)}.{part}.onnx"
        path.write_bytes(graph_bytes(module, example))
        weights.record_checksum(out / weights.CHECKSUMS, path.name, weights.sha256_file(path))
        paths.append(path)
    return paths


def export_postfilter_graph(config: dict, out: Path) -> Path:
    """Write <out>/<graph>.onnx of a reconstruction filter architecture, and its SHA256SUMS line."""
    net = PostFilter(PostFilterConfig(**config)).eval()
    example = (torch.zeros(1, 3, 64, 64), torch.zeros(1, config["channels"], 1, 1))
    path = out / postfilter_graph(config)
    out.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph_bytes(net, example, [GRAPH_INPUT, BIAS_INPUT], unused={"quality_bias"}))
    weights.record_checksum(out / weights.CHECKSUMS, path.name, weights.sha256_file(path))
    return path
