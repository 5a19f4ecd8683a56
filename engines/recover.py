"""Trainable weights back out of an exported pose model (the inverse of :func:`engines.export.export_pose`).

Why: a bundled model ships as ONNX only, and training further from it needs the PyTorch weights.  The export is a
deterministic rewrite of the weights (batch norms folded into the convolutions before them, part attention's K
convolutions concatenated, the stem's input channels reversed), so it can be undone element by element:

1. build the config named in the file's metadata and give every convolution / linear weight element a distinct
   integer value, with every batch norm an identity (so folding leaves those integers as they are);
2. export that marker model with the same options; each initializer of the marker export now says, element by
   element, which model parameter it came from;
3. pair the marker export's initializers with the real file's by graph position and copy the real values back.

A batch norm the exporter folded comes back as an identity; :func:`calibrate` then gives it the statistics of its
input (``weight = sqrt(var + eps)``, ``bias = mean``): still the identity in eval mode, and training-mode batch
statistics stay close to what the folded weights expect.  Works for deploy graphs and module graphs alike.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["RecoveryError", "recover", "calibrate", "max_difference", "TOLERANCE"]

TOLERANCE = 1e-3  # max |recovered PyTorch - ONNX Runtime| on the heatmaps (peaks ~1), FP32
FIRST_MARK = 16  # marker integers start here: small constants of the graph (0.5, 1/255, 2) are never mistaken


class RecoveryError(RuntimeError):
    """The ONNX file cannot be mapped back onto its config's parameters."""


def _is_bn(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.modules.batchnorm._BatchNorm)


def _marker_model(cfg: Any) -> tuple[Any, dict[int, tuple[str, int]]]:
    """A model whose non-batch-norm parameters hold distinct integers, and the integer -> (name, index) table."""
    import torch

    from mca.model import MCANet

    model = MCANet(cfg).eval()
    bn_params = set()
    for name, m in model.named_modules():
        if _is_bn(m):
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)  # var + eps == 1: folding divides by exactly ~1
            bn_params |= {f"{name}.weight", f"{name}.bias"}
    table: dict[int, tuple[str, int]] = {}
    nxt = FIRST_MARK
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in bn_params:
                continue
            n = p.numel()
            if nxt + n >= 2 ** 24:
                raise RecoveryError("model too large for float32 markers")
            p.copy_(torch.arange(nxt, nxt + n, dtype=torch.float32).view_as(p))
            table.update({nxt + i: (name, i) for i in range(n)})
            nxt += n
    return model, table


def _compute_nodes(proto: Any) -> list:
    """The graph's nodes without ``Identity`` (the exporter and later clean-ups add or drop those freely)."""
    return [n for n in proto.graph.node if n.op_type != "Identity"]


def _sources(proto: Any) -> Any:
    """name -> the tensor behind it, seen through Identity nodes (built once per graph)."""
    alias = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Identity"}

    def source(name: str) -> str:
        seen = 0
        while name in alias and seen < 1000:
            name, seen = alias[name], seen + 1
        return name

    return source


def _positional_initializers(proto: Any) -> list[tuple[tuple[int, int], str]]:
    """(compute-node index, input index) -> initializer name, in graph order, seen through Identity nodes."""
    inits = {i.name for i in proto.graph.initializer}
    source_of = _sources(proto)
    out = []
    for k, node in enumerate(_compute_nodes(proto)):
        for j, name in enumerate(node.input):
            src = source_of(name)
            if src in inits:
                out.append(((k, j), src))
    return out


def recover(onnx_path: str | Path) -> tuple[Any, list[str]]:
    """The model (eval mode) whose export is ``onnx_path``, and the names of the batch norms that were folded."""
    import onnx
    import torch
    from onnx import numpy_helper

    from engines.export import ExportOptions, export_pose
    from mca.config import MCAConfig

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RecoveryError(f"{onnx_path} not found")
    try:
        real = onnx.load(str(onnx_path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for a file that is not ONNX
        raise RecoveryError(f"{onnx_path} is not an ONNX file ({type(e).__name__})") from None
    meta = {p.key: p.value for p in real.metadata_props}
    if meta.get("mca.kind") != "pose" or "mca.config_json" not in meta:
        raise RecoveryError(f"{onnx_path} is not an mca-pose pose export (no mca.config_json metadata)")
    if meta.get("mca.precision", "fp32") != "fp32":
        raise RecoveryError(f"{onnx_path}: only FP32 files keep the weights exactly (precision "
                            f"{meta.get('mca.precision')}); recover from the FP32 file")
    try:
        cfg = MCAConfig(**json.loads(meta["mca.config_json"]))
    except (TypeError, ValueError) as e:
        raise RecoveryError(f"{onnx_path}: its mca.config_json does not build a config here ({e})") from None
    marker, table = _marker_model(cfg)
    opts = ExportOptions(attention_outputs=len(real.graph.output) > 1, source="marker",
                         deploy=meta.get("mca.graph", "module") == "deploy")
    with tempfile.TemporaryDirectory() as tmp:
        mark = onnx.load(str(export_pose(marker, Path(tmp) / "marker.onnx", opts)))
    if [n.op_type for n in _compute_nodes(mark)] != [n.op_type for n in _compute_nodes(real)]:
        raise RecoveryError(f"{onnx_path}: its graph is not what this checkout exports for {cfg.name} "
                            f"({len(_compute_nodes(real))} vs {len(_compute_nodes(mark))} nodes besides Identity)")
    real_init = {i.name: numpy_helper.to_array(i) for i in real.graph.initializer}
    mark_init = {i.name: numpy_helper.to_array(i) for i in mark.graph.initializer}
    real_pos = dict(_positional_initializers(real))
    mark_nodes = _compute_nodes(mark)
    model = copy.deepcopy(marker)  # its identity batch norms stay for the ones that were folded
    params = dict(model.named_parameters())
    filled = {n: np.zeros(p.numel(), bool) for n, p in params.items()}
    values = {n: p.detach().numpy().reshape(-1).copy() for n, p in params.items()}
    buffers = dict(model.named_buffers())
    real_nodes = _compute_nodes(real)
    kept: set[str] = set()
    fields = ("weight", "bias", "running_mean", "running_var")  # BatchNormalization's inputs 1-4
    real_source = _sources(real)
    for k, node in enumerate(real_nodes):  # a batch norm left in the graph: its four tensors, as they are
        if node.op_type != "BatchNormalization":
            continue
        # Which module: the exporter shares a tensor between nodes when the values are equal (two batch norms on
        # one input have the same running statistics), so take the first of its four names no other node took.
        names = [real_source(node.input[j]).removeprefix("net.") for j in range(1, 5)]
        owners = [n.removesuffix("." + f) for n, f in zip(names, fields) if n.endswith("." + f)]
        free = [o for o in owners if o not in kept and f"{o}.running_mean" in buffers]
        if not free:
            raise RecoveryError(f"batch norm node {node.name or k} ({', '.join(names)}): no batch norm of "
                                f"{cfg.name} left to own it")
        bn = free[0]
        for j, field in enumerate(fields, start=1):
            v = real_init[real_source(node.input[j])].reshape(-1)
            if field in ("weight", "bias"):
                values[f"{bn}.{field}"][:] = v
                filled[f"{bn}.{field}"][:] = True
            else:
                buffers[f"{bn}.{field}"].copy_(torch.from_numpy(v.astype(np.float32)))
        kept.add(bn)
    for pos, mname in _positional_initializers(mark):
        if mark_nodes[pos[0]].op_type == "BatchNormalization":
            continue  # done above
        rname = real_pos.get(pos)
        if rname is None:
            raise RecoveryError(f"initializer {mname} at node {pos[0]} has no counterpart in {onnx_path}")
        mv, rv = mark_init[mname], real_init[rname]
        if mv.shape != rv.shape:
            raise RecoveryError(f"{rname}: shape {rv.shape}, the marker export has {mv.shape}")
        ids = np.rint(mv.reshape(-1)).astype(np.int64)
        marked = (np.abs(mv.reshape(-1) - ids) < 0.25) & (ids >= FIRST_MARK)
        if not marked.all():
            raise RecoveryError(f"{mname} (node {pos[0]} {mark_nodes[pos[0]].op_type}): {int((~marked).sum())} of "
                                f"{marked.size} values are no marker values")
        for flat, i in enumerate(ids.tolist()):
            if i not in table:
                raise RecoveryError(f"{mname}[{flat}] = {i} is no marker value")
            name, idx = table[i]
            values[name][idx] = rv.reshape(-1)[flat]
            filled[name][idx] = True
    folded = []
    for name, m in model.named_modules():
        if _is_bn(m) and name not in kept:
            folded.append(name)
            filled[f"{name}.weight"][:] = filled[f"{name}.bias"][:] = True  # identity, as in the marker model
    missing = [n for n, f in filled.items() if not f.all()]
    if missing:
        raise RecoveryError(f"{len(missing)} parameters are not in {onnx_path}: {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.from_numpy(values[name]).view_as(p))
    return model.eval(), folded


def calibrate(model: Any, folded: list[str], num: int = 256, seed: int = 0) -> None:
    """Give each folded (identity) batch norm the statistics of its input, keeping it the identity in eval mode."""
    import torch

    from mca.data.datasets import SyntheticPoseDataset, to_network_input

    modules = dict(model.named_modules())
    stats: dict[str, list] = {n: [] for n in folded}
    hooks = [modules[n].register_forward_hook(
        lambda m, inp, out, n=n: stats[n].append((inp[0].mean((0, 2, 3)), inp[0].var((0, 2, 3), unbiased=False))))
        for n in folded]
    cfg = model.cfg
    ds = SyntheticPoseDataset(cfg.joint_set, cfg.input_size, cfg.heatmap_size, num, seed=seed)
    x = to_network_input(torch.stack([ds[i]["crop"] for i in range(num)]))
    with torch.no_grad():
        for b in range(0, num, 32):
            model(x[b:b + 32])
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for n in folded:
            m = modules[n]
            mean = torch.stack([s[0] for s in stats[n]]).mean(0)
            var = torch.stack([s[1] for s in stats[n]]).mean(0)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.weight.copy_(torch.sqrt(var + m.eps))
            m.bias.copy_(mean)


def max_difference(model: Any, onnx_path: str | Path, seed: int = 0) -> float:
    """Max |recovered model - ONNX Runtime| over every output, on random crops."""
    from engines.export import verify_onnx

    return verify_onnx(model, onnx_path, batch=4, seed=seed)


