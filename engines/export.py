"""``python -m engines.export``: a registered config + checkpoint -> ONNX for every backend.

The exported graph takes person crops exactly as OpenCV produces them (uint8,
NHWC, BGR) and folds the released normalisation (RGB, /255, -0.5) into the
graph, so a runtime feeds ``cv2.warpAffine`` output directly.  The model's
config, joint set, flip index and sizes travel in ``metadata_props``.

The CRF attention is exported either decomposed into standard ONNX ops (runs
everywhere) or as one ``mca.pose::CRFAttention`` node per attention module, for
the TensorRT plugin.  The custom-op model also carries an ONNX *function* with
the decomposed body, so ONNX Runtime (and any ONNX checker) runs it too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.base import ModelError
from engines.detector_meta import add_detector_metadata, set_metadata  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

__all__ = ["ExportOptions", "export_pose", "export_yolo", "add_detector_metadata", "verify_onnx",
           "CUSTOM_DOMAIN", "main"]

CUSTOM_DOMAIN = "mca.pose"
OPSET = 17
EXPORT_TOLERANCE = 1e-4  # max |PyTorch - ONNX Runtime| on the heatmaps, FP32
FP16_TOLERANCE = 2e-2  # the same for an FP16 export (float16 keeps ~3 significant digits)


@dataclass(frozen=True)
class ExportOptions:
    attention_outputs: bool = False  # also output the last stack's holistic / part attention maps
    custom_op: bool = False  # CRFAttention as one custom node (TensorRT plugin) instead of decomposed
    opset: int = OPSET
    source: str = "random-init"
    precision: str = "fp32"  # fp16: the graph converted to float16 (engines.fp16), I/O unchanged
    deploy: bool = True  # fused part attention + flip folded into the stem; False: the module graph as it is


def _pose_wrapper(model: "torch.nn.Module", attention_outputs: bool, deploy: bool = False,
                  fuse_parts: bool = True) -> "torch.nn.Module":
    """uint8 NHWC BGR crops -> the network's float input -> heatmaps (and attention maps).

    ``deploy`` (what the export writes) computes the same function faster, on a copy:
    part attention fused (:meth:`mca.blocks.PartAttention.forward_fused`; not with
    ``fuse_parts=False``, the TensorRT plugin's per-module export) and the BGR->RGB
    flip folded into the stem convolution's input channels (a negative-step Slice on the
    input costs more than the first convolution in INT8).  ``verify_onnx`` checks the
    exported graph against the plain model, so the rewrites are checked too.
    """
    import copy

    import torch

    from mca.blocks import PartAttention
    from mca.model import Stack

    flip_in_graph = True
    if deploy:
        model = copy.deepcopy(model)
        for m in model.modules():
            if isinstance(m, PartAttention):
                m.fused = fuse_parts
            if isinstance(m, Stack):
                m.fused_head = fuse_parts
        stem_conv = model.stem[0] if hasattr(model, "stem") else None
        if isinstance(stem_conv, torch.nn.Conv2d) and stem_conv.in_channels == 3:
            with torch.no_grad():
                stem_conv.weight.copy_(stem_conv.weight.flip(1))
            flip_in_graph = False

    class PoseGraph(torch.nn.Module):
        """uint8 NHWC BGR crops -> last stack's heatmaps (and attention maps)."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, crops: torch.Tensor) -> Any:
            x = crops.to(torch.float32)
            if flip_in_graph:
                x = x.flip(-1)
            x = x.permute(0, 3, 1, 2) * (1.0 / 255.0) - 0.5
            out = self.net.forward_all(x)
            if not attention_outputs:
                return out.heatmaps[-1]
            res = [out.heatmaps[-1], out.holistic[-1]]
            if out.parts[-1] is not None:
                res.append(out.parts[-1])
            return tuple(res)

    return PoseGraph(model).eval()


class _CRFAttentionOp:
    """Exports one AttentionIter as a single ``mca.pose::CRFAttention`` node."""

    @staticmethod
    def make_function() -> Any:
        import torch

        class CRFAttentionFn(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, x: torch.Tensor, uw: torch.Tensor, ub: torch.Tensor, kw: torch.Tensor,
                        kb: torch.Tensor, iterations: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
                import torch.nn.functional as F

                u = F.conv2d(x, uw, ub, padding=1)
                q = u
                for _ in range(iterations):
                    q = torch.sigmoid(u + F.conv2d(q, kw, kb, padding=kernel_size // 2))
                return x * q, q

            @staticmethod
            def symbolic(g: Any, x: Any, uw: Any, ub: Any, kw: Any, kb: Any, iterations: int,
                         kernel_size: int) -> Any:
                y, q = g.op(f"{CUSTOM_DOMAIN}::CRFAttention", x, uw, ub, kw, kb,
                            iterations_i=iterations, kernel_size_i=kernel_size, outputs=2)
                # Types and shapes for the exporter's shape inference: Y like X, Q with one channel.
                y.setType(x.type())
                sizes = x.type().varyingSizes()
                if sizes is not None and len(sizes) == 4:
                    q.setType(x.type().with_sizes([sizes[0], 1, sizes[2], sizes[3]]))
                return y, q

        return CRFAttentionFn


def _patch_attention_as_custom_op(model: "torch.nn.Module") -> int:
    from mca.blocks import AttentionIter

    fn = _CRFAttentionOp.make_function()
    n = 0
    for m in model.modules():
        if isinstance(m, AttentionIter):
            def forward(self: AttentionIter, x: Any) -> Any:
                return fn.apply(x, self.u_conv.weight, self.u_conv.bias, self.crf_kernel.weight,
                                self.crf_kernel.bias, self.iterations, self.crf_kernel.kernel_size[0])

            def attention_map(self: AttentionIter, x: Any) -> Any:
                return forward(self, x)[1]

            m.forward = types.MethodType(forward, m)  # type: ignore[method-assign]
            m.attention_map = types.MethodType(attention_map, m)  # type: ignore[method-assign]
            n += 1
    return n


def crf_attention_function(iterations: int, kernel_size: int, opset: int = OPSET) -> Any:
    """The decomposed body of ``CRFAttention`` as an ONNX FunctionProto (for ONNX Runtime)."""
    from onnx import helper

    pad = kernel_size // 2
    nodes = [helper.make_node("Conv", ["X", "UW", "UB"], ["U"], pads=[1, 1, 1, 1])]
    q = "U"
    for t in range(iterations):
        nodes += [
            helper.make_node("Conv", [q, "KW", "KB"], [f"C{t}"], pads=[pad] * 4),
            helper.make_node("Add", ["U", f"C{t}"], [f"S{t}"]),
            helper.make_node("Sigmoid", [f"S{t}"], [f"Q{t}" if t < iterations - 1 else "Q"]),
        ]
        q = f"Q{t}"
    nodes.append(helper.make_node("Mul", ["X", "Q"], ["Y"]))
    return helper.make_function(CUSTOM_DOMAIN, "CRFAttention", ["X", "UW", "UB", "KW", "KB"], ["Y", "Q"], nodes,
                                [helper.make_opsetid("", opset)], attributes=["iterations", "kernel_size"])


def _metadata(cfg: Any, opts: ExportOptions) -> dict[str, str]:
    from mca.joints import get_joint_set

    js = get_joint_set(cfg.joint_set)
    return {
        "mca.kind": "pose",
        "mca.config": cfg.name,
        "mca.config_json": json.dumps(cfg.to_dict()),
        "mca.joint_set": js.name,
        "mca.joint_names": json.dumps(list(js.names)),
        "mca.flip_index": json.dumps(list(js.flip_index)),
        "mca.skeleton": json.dumps([list(e) for e in js.skeleton]),
        "mca.input_size": str(cfg.input_size),
        "mca.heatmap_size": str(cfg.heatmap_size),
        "mca.input_layout": "NHWC",
        "mca.input_dtype": "uint8",
        "mca.input_channels": "BGR",
        "mca.attention": "custom_op" if opts.custom_op else "decomposed",
        # deploy: part attention fused into K-channel layers, BGR->RGB folded into the stem (same function)
        "mca.graph": ("deploy" if not opts.custom_op else "deploy-unfused-parts") if opts.deploy else "module",
        "mca.precision": "fp32",
        "mca.source": opts.source,
    }


def export_yolo(weights: str | Path, out: str | Path, imgsz: int = 640, person_class: int = 0) -> Path:
    """An Ultralytics YOLO ``.pt`` -> ONNX (no NMS in the graph) with detector metadata (the ``yolo`` extra)."""
    import os
    import shutil

    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        raise ModelError("exporting a YOLO .pt needs the 'yolo' extra (ultralytics, with torch 2.14.1 + "
                         "torchvision 0.29.1); see the README") from None
    yolo = YOLO(str(weights))
    names = getattr(yolo, "names", None) or {}
    class_names = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    if class_names and "person" in class_names:
        person_class = class_names.index("person")
    tmp = yolo.export(format="onnx", imgsz=imgsz, dynamic=False, simplify=False, opset=OPSET)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp, out)
    return add_detector_metadata(out, "yolo", imgsz, person_class, source=str(weights),
                                 class_names=class_names or None)


def export_pose(model: "torch.nn.Module", out: str | Path, opts: ExportOptions = ExportOptions()) -> Path:
    """Export an :class:`mca.model.MCANet` (eval mode, CPU) to ONNX with metadata."""
    import copy

    import onnx
    import torch

    cfg = model.cfg  # type: ignore[attr-defined]
    net = copy.deepcopy(model).eval().cpu()
    n_custom = _patch_attention_as_custom_op(net) if opts.custom_op else 0
    # The TensorRT plugin replaces each AttentionIter, so part attention stays unfused for it.
    graph = _pose_wrapper(net, opts.attention_outputs, deploy=opts.deploy, fuse_parts=not opts.custom_op)
    s = cfg.input_size
    dummy = torch.zeros(2, s, s, 3, dtype=torch.uint8)
    names = ["heatmaps"]
    if opts.attention_outputs:
        names.append("holistic_attention")
        if cfg.part_attention_from < cfg.num_stacks:
            names.append("part_attention")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is the stable path here
        torch.onnx.export(
            graph, (dummy,), str(out), input_names=["crops"], output_names=names,
            dynamic_axes={"crops": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            opset_version=opts.opset, do_constant_folding=True, dynamo=False,
            custom_opsets={CUSTOM_DOMAIN: 1} if opts.custom_op else None,
        )
    proto = onnx.load(str(out))
    if opts.custom_op:
        proto.functions.append(crf_attention_function(cfg.crf_iterations, cfg.attention_kernel, opts.opset))
        log.info("exported %d attention modules as %s::CRFAttention", n_custom, CUSTOM_DOMAIN)
    set_metadata(proto, _metadata(cfg, opts))
    proto.doc_string = f"MCA pose model {cfg.name} ({cfg.joint_set}); input uint8 NHWC BGR crops"
    onnx.checker.check_model(proto)
    if opts.precision == "fp16":
        from engines.fp16 import convert_to_fp16

        proto = convert_to_fp16(proto)
    elif opts.precision != "fp32":
        raise ValueError(f"export precision must be fp32 or fp16 (INT8 comes from python -m calibration.quantize), "
                         f"got {opts.precision!r}")
    onnx.save(proto, str(out))
    return out


def verify_onnx(model: "torch.nn.Module", onnx_path: str | Path, batch: int = 2, seed: int = 0) -> float:
    """Max |PyTorch - ONNX Runtime| over every output on random crops."""
    import torch

    from engines.ort import OrtBackend

    cfg = model.cfg  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, size=(batch, cfg.input_size, cfg.input_size, 3), dtype=np.uint8)
    be = OrtBackend(onnx_path, device="cpu")
    got = be.run(crops)
    wants_att = len(be.outputs) > 1
    with torch.no_grad():
        ref = _pose_wrapper(model.eval(), wants_att)(torch.from_numpy(crops))
    ref_list = [ref] if not isinstance(ref, tuple) else list(ref)
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref_list))


def main(argv: list[str] | None = None) -> int:
    from mca.config import list_models

    p = argparse.ArgumentParser(
        prog="python -m engines.export",
        description="Export a registered MCA config (with a checkpoint, or random weights) to ONNX: uint8 NHWC "
                    "BGR crops in, the last stack's heatmaps out, metadata inside; verified against PyTorch.")
    p.add_argument("config", nargs="?", help=f"registered config: {', '.join(list_models())} "
                   "(optional with --checkpoint, which names its config)")
    p.add_argument("-c", "--checkpoint", type=Path, help="training checkpoint (.pt) to export")
    p.add_argument("--random-init", action="store_true", help="export random weights (benchmarks, tests)")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--attention", action="store_true",
                   help="also output the last stack's holistic and part attention maps (for --show-attention)")
    p.add_argument("--custom-op", action="store_true",
                   help=f"CRF attention as {CUSTOM_DOMAIN}::CRFAttention nodes (TensorRT plugin) instead of "
                        "standard ops; ONNX Runtime still runs it through the embedded ONNX function")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (>= 17, default {OPSET})")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="fp16: convert the graph to float16 with the uint8 input and float32 outputs kept (what "
                        "TensorRT 11 needs for an FP16 engine; engines.build also converts on the fly). INT8: "
                        "python -m calibration.quantize")
    p.add_argument("--no-verify", action="store_true", help="skip the PyTorch vs ONNX Runtime check")
    p.add_argument("--yolo", type=Path, metavar="WEIGHTS.pt",
                   help="export an Ultralytics YOLO person detector instead (needs the 'yolo' extra)")
    p.add_argument("--imgsz", type=int, default=640, help="YOLO input size (with --yolo)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.yolo is not None:
        try:
            if not args.yolo.is_file():
                raise ModelError(f"no such file: {args.yolo}")
            path = export_yolo(args.yolo, args.output, args.imgsz)
        except (ModelError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {path}")
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: export needs PyTorch: pip install torch==2.13.0 (or the 'train' extra)", file=sys.stderr)
        return 2
    import mca

    try:
        if args.opset < 17:
            raise ValueError("--opset must be >= 17")
        if args.checkpoint is not None:
            from mca.checkpoint import load_checkpoint

            model, info = load_checkpoint(args.checkpoint)
            if args.config and args.config != model.cfg.name:
                raise ValueError(f"checkpoint is {model.cfg.name}, not {args.config}")
            source = str(args.checkpoint)
        elif args.random_init:
            if not args.config:
                raise ValueError("name a config to export with --random-init")
            torch.manual_seed(0)
            model = mca.create_model(args.config)
            source = "random-init"
        else:
            raise ValueError("give --checkpoint FILE, or --random-init with a config name")
    except (KeyError, ValueError, FileNotFoundError, ModelError) as e:  # mca's CheckpointError is a ValueError
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    model.eval()
    opts = ExportOptions(args.attention, args.custom_op, args.opset, source, args.precision)
    path = export_pose(model, args.output, opts)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if not args.no_verify:
        err = verify_onnx(model, path)
        tol = FP16_TOLERANCE if args.precision == "fp16" else EXPORT_TOLERANCE
        ok = err <= tol
        print(f"verify: max |PyTorch - ONNX Runtime| = {err:.2e} (tolerance {tol:g}, {args.precision}): "
              f"{'ok' if ok else 'FAILED'}")
        if not ok:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
