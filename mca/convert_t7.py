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

Two forms of the authors' file are read as well: a model saved inside ``nn.DataParallelTable``
(the authors trained on 4 GPUs; cunn's version-3 serialisation writes the GPU assignments before
the fields, which a plain reader takes for the whole object), whose one wrapped module is
converted; and the 17-map variant (``-trainBg``: the 16 joints plus a background map, 1181
modules), detected from its module count and built with ``background_map=True``.
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

__all__ = ["T7Error", "T7Module", "read_t7_modules", "released_order", "load_into", "convert", "main", "LUA_UNWRAP"]

KINDS = {"SpatialConvolution": "conv", "SpatialConvolutionMM": "conv", "SpatialFullConvolution": "deconv",
         "SpatialBatchNormalization": "bn"}
CONTAINERS = ("modules",)
DPT = "nn.DataParallelTable"
# what the authors' test/main.lua does with a DataParallelTable, as one command (deserializeNGPUs = 1: a file
# saved from 4 GPUs loads on a machine with one)
LUA_UNWRAP = ("th -e \"require 'cunn'; require 'cudnn'; require 'nngraph'; nn.DataParallelTable.deserializeNGPUs = 1; "
              "m = torch.load('model.t7'); torch.save('model_single.t7', m:get(1):clearState())\"")


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


def _is_object(obj: Any) -> bool:
    """A Torch class instance; not a plain Lua table (torchfile's dict answers every attribute, with None)."""
    return not isinstance(obj, dict) and hasattr(obj, "_typename")


def _table_order(key: Any) -> tuple[bool, Any]:
    """A Lua table's keys in order: the numbers (its array part) first, then the other keys by name."""
    number = isinstance(key, (int, float)) and not isinstance(key, bool)
    return (not number, key if number else str(key))


def _walk(obj: Any, seen: set[int]) -> Iterator[Any]:
    """Modules in depth-first container order; each Torch object once."""
    if id(obj) in seen or not _is_object(obj):
        return
    seen.add(id(obj))
    if _typename(obj).split(".")[-1] in KINDS:
        yield obj
        return
    children = _field(obj, "modules")
    if children is None and _field(obj, "forwardnodes") is not None:  # a gModule without its modules list
        children = [_field(_field(n, "data"), "module") for n in _field(obj, "forwardnodes")]
    if isinstance(children, dict):
        children = [children[k] for k in sorted(children, key=_table_order)]
    for child in children or []:
        if child is not None:
            yield from _walk(child, seen)


def _read_data_parallel_table(reader: Any, version: bytes) -> Any:
    """torchfile handler for cunn's ``nn.DataParallelTable``: from version 2 on, its ``__write`` writes
    ``gpuAssignments`` first and then the field table (``modules[1]`` is the wrapped model)."""
    import torchfile

    number = int(float(version.partition(b" ")[2])) if version.startswith(b"V ") else 0
    gpus = reader.read_obj() if number >= 2 else None
    fields = reader.read_obj()
    if not isinstance(fields, dict):
        raise T7Error(f"a {DPT} without its field table")
    if gpus is not None:
        fields = torchfile.hashable_uniq_dict(fields)
        fields.setdefault("gpuAssignments", gpus)
    return torchfile.TorchObject(DPT, fields, version_number=number)


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
    torchfile.type_handlers.setdefault(DPT.encode(), _read_data_parallel_table)  # torchfile's extension point
    try:
        root = _load_deep(lambda: torchfile.load(str(p), utf8_decode_strings=True))
    except T7Error as e:  # from the DataParallelTable reader
        raise T7Error(f"{p}: {e}; unwrap it in Lua first: {LUA_UNWRAP}") from None
    except Exception as e:  # noqa: BLE001 - torchfile raises struct/Unicode/Value errors on garbage
        raise T7Error(f"{p} is not a readable Torch7 file ({type(e).__name__}: {str(e)[:120]})") from None
    if isinstance(root, dict):
        keys = ", ".join(sorted(map(str, root))[:8]) or "none"
        raise T7Error(f"{p} holds a plain Lua table (keys: {keys}), not a Torch7 model object; "
                      "save the model itself (torch.save(path, model))")
    if not _is_object(root):
        raise T7Error(f"{p} holds a {type(root).__name__}, not a Torch7 model object")
    wrapped = _typename(root) == DPT
    if wrapped:
        inner = _field(root, "modules")
        gpus = _field(root, "gpuAssignments")
        log.info("%s: a model saved inside %s (%s GPUs): converting the wrapped module", p.name, DPT,
                 len(gpus) if isinstance(gpus, list) else "?")
        if not isinstance(inner, list) or len(inner) != 1:
            raise T7Error(f"{p} is a {DPT} with {len(inner) if isinstance(inner, list) else 'no'} wrapped modules "
                          f"(expected 1); unwrap it in Lua first: {LUA_UNWRAP}")
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
        if wrapped:
            raise T7Error(f"{p} is a {DPT} whose wrapped module has no convolution or batch-norm modules; "
                          f"unwrap it in Lua first: {LUA_UNWRAP}")
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
        cfg = model.cfg
        other = "without" if cfg.background_map else "with"
        n_other = len(targets) + (-1 if cfg.background_map else 1) * _background_modules(cfg)
        raise T7Error(f"the file has {len(modules)} convolution/batch-norm modules, config {cfg.name} has "
                      f"{len(targets)} ({n_other} {other} the background map of the 17-map -trainBg variant): "
                      f"not this model (try another --config or overrides)")

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


def _background_modules(cfg: Any) -> int:
    """Parametrised modules the background map adds: one part (U conv, CRF kernel, head) per part-attention stack."""
    return 3 * sum(1 for i in range(cfg.num_stacks) if i >= cfg.part_attention_from)


def convert(t7_path: str | Path, out: str | Path, config: str = "mca_paper", background_map: bool | None = None,
            **overrides: Any) -> Path:
    """Read, check and map a Torch7 model; write an mca checkpoint (loadable with ``weights_only=True``).

    ``background_map=None`` detects the 17-map (-trainBg) variant from the file's module count.
    """
    from mca.checkpoint import save_checkpoint
    from mca.registry import create_model

    modules = read_t7_modules(t7_path)
    model = create_model(config, **overrides, background_map=bool(background_map)).eval()
    if background_map is None:
        n_plain = len(released_order(model))
        if len(modules) != n_plain and len(modules) == n_plain + _background_modules(model.cfg):
            log.info("%s has the 17-map variant's %d modules (-trainBg: the joints + a background map)",
                     Path(t7_path).name, len(modules))
            background_map = True
            model = create_model(config, **overrides, background_map=True).eval()
    n = load_into(model, modules)
    log.info("mapped %d modules of %s onto %s%s", n, t7_path, config, " with the background map" * bool(background_map))
    return save_checkpoint(out, model, extra={"source": f"converted from {Path(t7_path).name}"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mca.convert_t7", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("t7", type=Path, help="the authors' Torch7 model file (model.t7)")
    p.add_argument("out", type=Path, help="checkpoint to write (.pt)")
    p.add_argument("--config", default="mca_paper", help="registered config the file was trained as")
    bg = p.add_mutually_exclusive_group()
    bg.add_argument("--background-map", dest="background_map", action="store_true", default=None,
                    help="the file is the 17-map variant (Lua -trainBg: 16 joints + a background map); "
                         "default: detected from the module count")
    bg.add_argument("--no-background-map", dest="background_map", action="store_false",
                    help="the file has only the joint maps (do not detect)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = convert(args.t7, args.out, args.config, background_map=args.background_map)
    except (T7Error, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
