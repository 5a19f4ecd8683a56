"""``python -m mca.convert_t7 model.t7 out.pt``: the authors' released Torch7 model onto ``mca_paper``.

The released MPII model is a Torch7 ``nn.gModule`` (nngraph) saved with ``torch.save``.
It is read here in pure Python with the ``torchfile`` package (no Lua, no Torch7): the
graph's parametrised modules (``nn``/``cudnn`` ``SpatialConvolution``,
``SpatialFullConvolution``, ``SpatialBatchNormalization``) are collected in the
graph's module order (``gModule.modules``, which nngraph fills in forward order;
nested containers are walked depth first), clones that share their weights (the CRF
kernel shared by the mean-field iterations) count once, and they are mapped in order
onto the PyTorch model's convolutions and batch norms in the released graph's order
(:func:`released_order`: registration order except the part attention, which Lua builds
attention-then-head per part).  Every tensor's shape is checked; a file that does not
match the config is refused with the first mismatch named, before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["T7Error", "T7Module", "read_t7_modules", "released_order", "load_into", "convert", "main"]

KINDS = {"SpatialConvolution": "conv", "SpatialConvolutionMM": "conv", "SpatialFullConvolution": "deconv",
         "SpatialBatchNormalization": "bn"}
CONTAINERS = ("modules",)


class T7Error(ValueError):
    """A Torch7 file that cannot be read or does not match the model (one line for the CLI)."""


@dataclass
class T7Module:
    """One parametrised Torch7 module, as numpy arrays."""

    index: int  # position among the file's parametrised modules (after shared clones are dropped)
    typename: str  # e.g. cudnn.SpatialConvolution
    kind: str  # conv, deconv or bn
    weight: np.ndarray | None
    bias: np.ndarray | None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    eps: float = 1e-5


def _typename(obj: Any) -> str:
    name = getattr(obj, "_typename", b"")
    return name.decode("utf8", "replace") if isinstance(name, bytes) else str(name)


def _field(obj: Any, key: str) -> Any:
    try:
        return obj[key]
    except (KeyError, TypeError, AttributeError, IndexError):  # torchfile gives a field-less object a list
        return None


def _walk(obj: Any, seen: set[int]) -> Iterator[Any]:
    """Modules in depth-first container order; each Torch object once."""
    if id(obj) in seen or not hasattr(obj, "_typename"):
        return
    seen.add(id(obj))
    if _typename(obj).split(".")[-1] in KINDS:
        yield obj
        return
    children = _field(obj, "modules")
    if children is None and _field(obj, "forwardnodes") is not None:  # a gModule without its modules list
        children = [_field(_field(n, "data"), "module") for n in _field(obj, "forwardnodes")]
    if isinstance(children, dict):
        children = [children[k] for k in sorted(children)]
    for child in children or []:
        if child is not None:
            yield from _walk(child, seen)


def _array(x: Any) -> np.ndarray | None:
    return None if x is None or (isinstance(x, np.ndarray) and x.size == 0) else np.asarray(x, np.float32)


def _load_deep(load: Any) -> Any:
    """torchfile recurses once per nesting level, and an 8-stack nngraph nests thousands of levels deep
    (each node holds its children): read in a thread with a large stack and a raised recursion limit."""
    import threading

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = load()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = e

    old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(old_limit, 200_000))
    try:
        threading.stack_size(256 * 1024 * 1024)
        t = threading.Thread(target=run, name="t7-read")
        t.start()
        t.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if "error" in result:
        raise result["error"]
    return result["value"]


def read_t7_modules(path: str | Path) -> list[T7Module]:
    """The parametrised modules of a Torch7 model file, in graph order, shared clones once."""
    try:
        import torchfile
    except ImportError:
        raise T7Error("reading .t7 files needs the torchfile package (pip install torchfile)") from None
    p = Path(path)
    if not p.is_file():
        raise T7Error(f"no such file: {p}")
    try:
        root = _load_deep(lambda: torchfile.load(str(p), utf8_decode_strings=True))
    except Exception as e:  # noqa: BLE001 - torchfile raises struct/Unicode/Value errors on garbage
        raise T7Error(f"{p} is not a readable Torch7 file ({type(e).__name__}: {str(e)[:120]})") from None
    if not hasattr(root, "_typename"):
        raise T7Error(f"{p} holds a {type(root).__name__}, not a Torch7 model object")
    out: list[T7Module] = []
    seen_weights: set[tuple] = set()
    for m in _walk(root, set()):
        w = _field(m, "weight")
        if isinstance(w, np.ndarray) and w.size:
            # a clone sharing its weights (the CRF kernel of each mean-field iteration) points at the same
            # storage bytes; a flattened parameter storage (getParameters) puts others at other offsets
            key = (w.__array_interface__["data"][0], w.shape, w.strides)
            if key in seen_weights:
                continue
            seen_weights.add(key)
        name = _typename(m)
        kind = KINDS[name.split(".")[-1]]
        mod = T7Module(len(out), name, kind, _array(w), _array(_field(m, "bias")))
        if kind == "bn":
            eps = float(_field(m, "eps") or 1e-5)
            mean, var, std = _field(m, "running_mean"), _field(m, "running_var"), _field(m, "running_std")
            if var is None and std is not None:  # older nn stored 1/sqrt(var + eps)
                var = 1.0 / np.square(np.asarray(std, np.float64)) - eps
            mod.running_mean, mod.running_var, mod.eps = _array(mean), _array(var), eps
        out.append(mod)
    if not out:
        raise T7Error(f"{p} has no convolution or batch-norm modules (is it a model?)")
    return out


def released_order(model: Any) -> list[tuple[str, Any, str]]:
    """The model's convolutions and batch norms in the Lua graph's order: registration order, except that
    AttentionPartsCRF builds each part's attention and then its 1x1 head, part after part (the PyTorch
    module registers all attention blocks, then all heads)."""
    import torch.nn as nn

    from mca.blocks import PartAttention

    kinds = {nn.Conv2d: "conv", nn.ConvTranspose2d: "deconv", nn.BatchNorm2d: "bn"}
    out: list[tuple[str, Any, str]] = []

    def visit(prefix: str, m: Any) -> None:
        kind = next((k for t, k in kinds.items() if isinstance(m, t)), None)  # subclasses too (GatedHead)
        if kind is not None:
            out.append((prefix, m, kind))
        elif isinstance(m, PartAttention):
            for i, (att, head) in enumerate(zip(m.parts, m.heads)):
                visit(f"{prefix}.parts.{i}", att)
                visit(f"{prefix}.heads.{i}", head)
        else:
            for name, child in m.named_children():
                visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", model)
    return out


def load_into(model: Any, modules: list[T7Module]) -> int:
    """Copy ``modules`` onto ``model`` in order; raises :class:`T7Error` at the first mismatch."""
    import torch

    targets = released_order(model)
    if len(targets) != len(modules):
        raise T7Error(f"the file has {len(modules)} convolution/batch-norm modules, config {model.cfg.name} has "
                      f"{len(targets)}: not this model (try another --config or overrides)")

    def put(dst: torch.Tensor, src: np.ndarray | None, what: str, i: int, name: str) -> None:
        if src is None:
            raise T7Error(f"module {i} ({modules[i].typename} -> {name}) has no {what}")
        if src.size == dst.numel() and src.shape != tuple(dst.shape) and src.ndim == 2 and dst.ndim == 4:
            src = src.reshape(tuple(dst.shape))  # old nn kept convolution weights as (out, in * kH * kW)
        if src.shape != tuple(dst.shape):
            raise T7Error(f"module {i} ({modules[i].typename} -> {name}): {what} is {list(src.shape)}, "
                          f"the model wants {list(dst.shape)}")
        with torch.no_grad():
            dst.copy_(torch.from_numpy(np.ascontiguousarray(src)))

    for i, (mod, (name, target, kind)) in enumerate(zip(modules, targets)):
        if mod.kind != kind:
            raise T7Error(f"module {i}: the file has a {mod.typename} where the model has a {kind} ({name})")
        put(target.weight, mod.weight, "weight", i, name)
        if target.bias is not None:
            put(target.bias, mod.bias, "bias", i, name)
        elif mod.bias is not None and np.any(mod.bias != 0):
            raise T7Error(f"module {i} ({name}): the file has a bias the model does not")
        if kind == "bn":
            put(target.running_mean, mod.running_mean, "running_mean", i, name)
            put(target.running_var, mod.running_var, "running_var", i, name)
            target.eps = mod.eps
    return len(modules)


def convert(t7_path: str | Path, out: str | Path, config: str = "mca_paper", **overrides: Any) -> Path:
    """Read, check and map a Torch7 model; write an mca checkpoint (loadable with ``weights_only=True``)."""
    from mca.checkpoint import save_checkpoint
    from mca.registry import create_model

    modules = read_t7_modules(t7_path)
    model = create_model(config, **overrides).eval()
    n = load_into(model, modules)
    log.info("mapped %d modules of %s onto %s", n, t7_path, config)
    return save_checkpoint(out, model, extra={"source": f"converted from {Path(t7_path).name}"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mca.convert_t7", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("t7", type=Path, help="the authors' Torch7 model file (model.t7)")
    p.add_argument("out", type=Path, help="checkpoint to write (.pt)")
    p.add_argument("--config", default="mca_paper", help="registered config the file was trained as")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = convert(args.t7, args.out, args.config)
    except (T7Error, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
