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


def export_graphs(config: dict, out: Path) -> list[Path]:
    """Write <out>/<graph id>.analysis.onnx and .synthesis.onnx for a VQ-VAE architecture, and
    their SHA256SUMS lines."""
    vqvae = VQVAE(VQVAEConfig(**config)).eval()
    parts = {"analysis": (vqvae.encoder, (torch.zeros(1, 3, 64, 64),)),
             "synthesis": (vqvae.decoder, (torch.zeros(1, config["latent_dim"], 8, 8),))}
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
