"""``python -m calibration.sensitivity``: which layers hurt most when quantized to INT8?

Groups the pose graph's compute nodes by module (stem, each stack's hourglass,
residual "lin" layers, attention, heads, merges), quantizes ONE group at a time
(everything else stays float) with the same calibration set and settings as
``calibration.quantize``, and measures each variant against FP32 on held-out
synthetic crops: mean keypoint disagreement in heatmap pixels and PCK@0.2 drop.
The groups at the top of the table are the ones to keep in float
(``calibration.quantize --keep-float PATTERN ...``); the command prints that line.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calibration.dataset import CalibrationError, CalibrationSet, iter_batches

log = logging.getLogger(__name__)

__all__ = ["node_groups", "GroupSensitivity", "layer_sensitivity", "main"]

_COMPUTE = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
_SKIP = {"Constant", "Identity", "Shape"}


def node_groups(onnx_path: str | Path) -> dict[str, list[str]]:
    """Module-level groups of the graph's nodes: ``/stacks.1/head``, ``/stacks.0/hourglass``, ``/stem`` ...

    Node names follow the PyTorch module paths (``/stacks.1/head/parts.15/u_conv/Conv``);
    a group is the first two path levels (``/stem`` alone), so each stack's parts count as
    one.  Every node is in a group (additions, pooling and attention arithmetic get Q/DQ
    too); nodes outside any module (the input normalisation) form ``/input``.  Groups
    without a convolution are folded into ``/input`` as well: alone they change nothing.
    """
    import onnx

    groups: dict[str, list[str]] = {}
    for n in onnx.load(str(onnx_path)).graph.node:
        if n.op_type in _SKIP or not n.name:
            continue
        parts = n.name.split("/")
        if len(parts) < 3:
            key = "/input"
        elif parts[1] == "stem":
            key = "/stem"
        else:
            key = "/".join(parts[:3])
            key = key if re.search(r"stacks\.\d+$", key) else re.sub(r"\.\d+$", "", key)
        groups.setdefault(key, []).append(n.name)
    with_conv = {n.name.split("/Conv")[0] for n in onnx.load(str(onnx_path)).graph.node if n.op_type in _COMPUTE}
    for g in [g for g in groups if g != "/input" and not any(c.startswith(g) for c in with_conv)]:
        groups.setdefault("/input", []).extend(groups.pop(g))
    return groups


@dataclass(frozen=True)
class GroupSensitivity:
    """One group quantized alone: its error against FP32."""

    group: str
    nodes: int
    keypoint_error_px: float  # mean |int8 - fp32| keypoint, heatmap pixels
    heatmap_rmse: float
    pck_drop_points: float


def _all_nodes(onnx_path: Path) -> list[str]:
    return [n for g in node_groups(onnx_path).values() for n in g]


def layer_sensitivity(fp32_onnx: str | Path, calib: CalibrationSet, num: int = 200, method: str = "minmax",
                      groups: list[str] | None = None, progress: bool = True) -> list[GroupSensitivity]:
    """Quantize each group alone and measure it against FP32; worst first."""
    from engines.ort import OrtBackend
    from mca import heatmaps as H
    from mca.evaluate import _heldout, evaluate_synthetic

    from calibration.quantize import quantize_qdq

    fp32_onnx = Path(fp32_onnx)
    all_groups = node_groups(fp32_onnx)
    if not all_groups:
        raise CalibrationError(f"{fp32_onnx} has no named convolution nodes to group")
    chosen = groups or list(all_groups)
    unknown = [g for g in chosen if g not in all_groups]
    if unknown:
        raise CalibrationError(f"unknown groups {unknown}; this model has: {', '.join(all_groups)}")
    ref = OrtBackend(fp32_onnx)
    meta = ref.metadata
    js, s, hs = meta["mca.joint_set"], int(meta["mca.input_size"]), int(meta["mca.heatmap_size"])
    flip = tuple(json.loads(meta["mca.flip_index"]))
    crops = _heldout(js, s, hs, num, 2000)[0]

    def run(backend: OrtBackend) -> tuple[np.ndarray, np.ndarray, float]:
        heat = np.concatenate([backend.run(c)[0] for c in iter_batches(crops, 32)])
        acc = evaluate_synthetic(lambda x: backend.run(x)[0], js, s, hs, flip, num)["pck@0.2"]
        return heat, H.decode_heatmaps(heat)[0], acc

    ref_heat, ref_kp, ref_pck = run(ref)
    everything = _all_nodes(fp32_onnx)
    rows: list[GroupSensitivity] = []
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        for g in tqdm(chosen, desc="groups", unit="group", disable=not progress or None):
            keep = set(all_groups[g])
            out = quantize_qdq(fp32_onnx, calib, Path(tmp) / "g.onnx", method,
                               exclude=[n for n in everything if n not in keep], exact=True)
            heat, kp, acc = run(OrtBackend(out))
            rows.append(GroupSensitivity(g, len(keep), float(np.linalg.norm(kp - ref_kp, axis=-1).mean()),
                                         float(np.sqrt(np.mean((heat - ref_heat) ** 2))), 100 * (ref_pck - acc)))
    return sorted(rows, key=lambda r: -r.keypoint_error_px)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m calibration.sensitivity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", type=Path, help="FP32 pose ONNX from engines.export")
    p.add_argument("calibration", type=Path, help="calibration .npz from calibration.build")
    p.add_argument("--num", type=int, default=200, help="held-out synthetic people to measure on")
    p.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))
    p.add_argument("--groups", nargs="*", help="only these groups (default: all; --list shows them)")
    p.add_argument("--list", action="store_true", help="list the model's groups and exit")
    p.add_argument("--top", type=int, default=2, help="groups to suggest keeping in float")
    p.add_argument("--json", type=Path, help="also write the table as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if not args.onnx.is_file():
            raise CalibrationError(f"no such model: {args.onnx}")
        if args.list:
            for g, nodes in node_groups(args.onnx).items():
                print(f"{g}  ({len(nodes)} nodes)")
            return 0
        rows = layer_sensitivity(args.onnx, CalibrationSet.load(args.calibration), args.num, args.method,
                                 args.groups)
    except CalibrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("| group (quantized alone) | nodes | keypoint error vs FP32 (heatmap px) | heatmap RMSE | PCK@0.2 drop "
          "(points) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r.group}` | {r.nodes} | {r.keypoint_error_px:.3f} | {r.heatmap_rmse:.5f} | "
              f"{r.pck_drop_points:+.2f} |")
    top = [r.group + "/" for r in rows[: args.top]]
    print(f"\nworst first; to keep the top {args.top} in float:\n  python -m calibration.quantize {args.onnx} "
          f"{args.calibration} -o out.int8.onnx --keep-float {' '.join(top)} --compare")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
