"""Re-export a pose ONNX written by an older exporter with the current one (no checkpoint needed).

The bundled ``pose_mca_tiny_real.onnx`` came from a fine-tuning run whose checkpoint is not in
the repository.  Its weights are all in the file: PyTorch's exporter folded each Conv-BN pair
into one convolution and kept the other parameters under their module names.  This rebuilds an
:class:`mca.model.MCANet` from the file (a convolution's weights matched to the module that ran
it, in execution order; a folded BN set to identity), checks the rebuilt model against the old
file on random crops, and exports it with the current graph (fused part attention, flip folded
into the stem)::

    python tools/reexport_pose.py realtime/models/pose_mca_tiny_real.onnx -o realtime/models/pose_mca_tiny_real.onnx
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def model_from_onnx(path: Path):  # -> mca.model.MCANet
    """Rebuild the network of an (unfused-attention) pose ONNX from its initializers."""
    import onnx
    import torch
    from onnx import numpy_helper

    import mca
    from mca.config import MCAConfig

    m = onnx.load(str(path))
    meta = {p.key: p.value for p in m.metadata_props}
    if meta.get("mca.graph", "module").startswith("deploy"):
        raise ValueError(f"{path} is already a deploy graph (fused part attention); nothing to do")
    if "mca.config_json" not in meta:
        raise ValueError(f"{path} is not a pose ONNX from engines.export (no mca.config_json metadata)")
    cfg = json.loads(meta["mca.config_json"])
    model = mca.create_model(cfg.pop("name"), **{k: v for k, v in cfg.items()
                                                   if k in MCAConfig.__dataclass_fields__}).eval()
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:  # parameters with equal values (e.g. two BNs' running stats) share one, via Identity
        if n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    order: list[str] = []
    names = {mod: n for n, mod in model.named_modules()}
    hooks = [mod.register_forward_hook(lambda mod, i, o: order.append(names[mod]))
             for mod in model.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    with torch.no_grad():
        model(torch.zeros(1, 3, model.cfg.input_size, model.cfg.input_size))
    for h in hooks:
        h.remove()
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    conv_order = [n for n in order if isinstance(model.get_submodule(n), torch.nn.Conv2d)]
    if len(convs) != len(conv_order):
        raise ValueError(f"{path}: {len(convs)} Conv nodes but the model runs {len(conv_order)} convolutions "
                         "(already re-exported, or another config)")
    state = model.state_dict()
    with torch.no_grad():
        for name, value in state.items():  # parameters kept under their names
            if "net." + name in inits:
                value.copy_(torch.from_numpy(inits["net." + name].copy()))
        for node, name in zip(convs, conv_order):
            if not node.input[1].startswith("onnx::"):
                continue  # kept under its own name (loaded above)
            conv = model.get_submodule(name)
            w = inits[node.input[1]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{path}: Conv node {node.name} has weights {w.shape}, module {name} "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w.copy()))
            conv.bias.copy_(torch.from_numpy(inits[node.input[2]].copy()))
            nxt = order[order.index(name) + 1] if order.index(name) + 1 < len(order) else None
            if nxt and isinstance(model.get_submodule(nxt),
                                                                          torch.nn.BatchNorm2d):
                bn = model.get_submodule(nxt)  # folded into this convolution: make it the identity
                bn.weight.fill_(1.0)
                bn.bias.zero_()
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
    return model, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", type=Path, help="pose ONNX from an older engines.export")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX to write (may be the input)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |old - new| on the heatmaps")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from engines.export import ExportOptions, export_pose
    from engines.ort import OrtBackend

    try:
        model, meta = model_from_onnx(args.onnx)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x = np.random.default_rng(0).integers(0, 256, (4, model.cfg.input_size, model.cfg.input_size, 3), np.uint8)
    old = OrtBackend(args.onnx, threads=1).run(x)
    with tempfile.TemporaryDirectory() as tmp:
        out = export_pose(model, Path(tmp) / "new.onnx",
                          ExportOptions(attention_outputs=len(old) > 1, source=meta.get("mca.source", str(args.onnx))))
        new = OrtBackend(out, threads=1).run(x)
        err = max(float(np.abs(a - b).max()) for a, b in zip(old, new))
        print(f"max |old - new| over {len(old)} outputs: {err:.2e} (tolerance {args.tolerance:g})")
        if err > args.tolerance:
            print("error: the re-exported model does not match the old file; nothing written", file=sys.stderr)
            return 1
        args.output.parent.mkdir(parents=True, exist_ok=True)
        Path(out).replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
