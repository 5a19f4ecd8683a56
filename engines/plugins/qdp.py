"""``mca_pose::CRFAttention`` as a TensorRT Quick Deployable Plugin with an ahead-of-time implementation.

``@trtp.aot_impl`` hands TensorRT the PTX of the fused kernel
(:mod:`engines.plugins.crf_attention`) at build time; the engine embeds it and
runs without Python (and without this registration: an AOT engine deserializes
on its own).  ``aot_impl`` and ``PREFER_AOT_PYTHON_PLUGINS`` first appear in
TensorRT 10.9; older TensorRT (JetPack 6 ships 10.3) builds the decomposed graph.

No ``from __future__ import annotations`` here: QDP validates the decorated
functions with ``inspect.signature`` and ``issubclass`` on the annotation objects,
so they must be real classes, concrete ``Tuple[...]`` (no ``...``) and, for
``aot_impl``'s return, ``Tuple[Union[str, bytes], Union[str, bytes], KernelLaunchParams, SymExprs]``.
The two integer attributes are declared as one-element ``NDArray[int32]``: with an ``int``
annotation TensorRT 10.9-10.13's ``create_plugin`` calls ``int()`` on a one-element array, which
NumPy >= 2.4 refuses (fixed in 11.x).  Checked against NVIDIA's own ``tensorrt.plugin`` from the PyPI
bindings wheels (tests/engines/plugins/test_qdp_contract.py).
"""


import logging
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from engines.plugins.crf_attention import compile_kernel, ptx_version_for_driver

log = logging.getLogger(__name__)

# The attribute annotation (module level, so register and aot_impl use the very same object).
Int32Attr = npt.NDArray[np.int32]

__all__ = ["PLUGIN_NAMESPACE", "PLUGIN_NAME", "PLUGIN_ID", "MIN_TRT", "min_tensorrt_version", "plugin_support",
           "register_plugin", "set_build_target", "is_registered"]

PLUGIN_NAMESPACE = "mca_pose"
PLUGIN_NAME = "CRFAttention"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MIN_TRT = (10, 9)  # first TensorRT with tensorrt.plugin.aot_impl / KernelLaunchParams / PREFER_AOT_PYTHON_PLUGINS

# The GPU the PTX is compiled for: set by the engine builder (or a test) before building.
_TARGET: Dict[str, Optional[int]] = {"arch": None, "ptx_version": None}


def min_tensorrt_version() -> Tuple[int, int]:
    """The oldest TensorRT whose ``tensorrt.plugin`` has ``aot_impl``."""
    return MIN_TRT


def plugin_support(trt_version: str) -> Optional[str]:
    """None where this TensorRT (and Python environment) can build the plugin, else the reason why not."""
    import importlib.util

    try:
        version = tuple(int(v) for v in trt_version.split(".")[:2])
    except ValueError:
        return f"cannot read TensorRT version {trt_version!r}"
    if version < MIN_TRT:
        return f"TensorRT {trt_version} < {MIN_TRT[0]}.{MIN_TRT[1]} has no AOT Python plugins (tensorrt.plugin.aot_impl)"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (the plugin's kernel is compiled with Triton: pip install the 'triton' extra)"
    return None


def set_build_target(arch: Optional[int] = None, ptx_version: Optional[int] = None) -> None:
    """Compile the plugin's PTX for ``arch`` (e.g. 87) and PTX ISA ``ptx_version``; None: the visible GPU/driver."""
    _TARGET["arch"], _TARGET["ptx_version"] = arch, ptx_version


def _target() -> Tuple[int, int]:
    arch, ptx = _TARGET["arch"], _TARGET["ptx_version"]
    if arch is None or ptx is None:
        from engines import cuda
        from engines.plugins.crf_attention import arch_of

        info = cuda.device_info(0)
        arch = arch if arch is not None else arch_of(info["compute_capability"])
        ptx = ptx if ptx is not None else ptx_version_for_driver(int(info["driver"]))
    return int(arch), int(ptx)


def is_registered() -> bool:
    """True when ``mca_pose::CRFAttention`` is in this process's QDP registry."""
    import sys

    lib = sys.modules.get("tensorrt.plugin._lib")
    return bool(lib is not None and PLUGIN_ID in getattr(lib, "QDP_REGISTRY", {}))


def register_plugin(arch: Optional[int] = None, ptx_version: Optional[int] = None) -> bool:
    """Register ``mca_pose::CRFAttention`` (idempotent); False where this TensorRT cannot (said in the log).

    ``arch``/``ptx_version``: see :func:`set_build_target`.  A signature that QDP
    rejects raises (it is a bug here, never "already registered").
    """
    import tensorrt as trt

    set_build_target(arch, ptx_version)
    why = plugin_support(str(trt.__version__))
    if why:
        log.info("%s: the decomposed attention graph is used", why)
        return False
    import tensorrt.plugin as trtp

    if is_registered():
        return True
    _define(trt, trtp)
    return True


def _define(trt: Any, trtp: Any) -> None:
    """The two decorated functions; their annotations are evaluated here, where ``trtp`` exists."""

    @trtp.register(PLUGIN_ID)
    def crf_attention_desc(x: trtp.TensorDesc, uw: trtp.TensorDesc, ub: trtp.TensorDesc, kw: trtp.TensorDesc,
                           kb: trtp.TensorDesc, iterations: Int32Attr,
                           kernel_size: Int32Attr) -> Tuple[trtp.TensorDesc, trtp.TensorDesc]:
        y = x.like()
        q = x.like()
        q.shape_expr[1] = 1
        return y, q

    @trtp.aot_impl(PLUGIN_ID)
    def crf_attention_aot(x: trtp.TensorDesc, uw: trtp.TensorDesc, ub: trtp.TensorDesc, kw: trtp.TensorDesc,
                          kb: trtp.TensorDesc, iterations: Int32Attr, kernel_size: Int32Attr,
                          outputs: Tuple[trtp.TensorDesc, trtp.TensorDesc], tactic: int
                          ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        dims = [x.shape_expr[i] for i in (1, 2, 3)]
        if not all(d.is_constant for d in dims):
            raise ValueError("CRFAttention needs static C, H, W (only the batch may be dynamic)")
        c, h, w = (int(d.constant_value()) for d in dims)  # compiled into the kernel as constexprs
        if x.dtype == trt.float16:
            dtype = "fp16"
        elif x.dtype == trt.float32:
            dtype = "fp32"
        else:
            raise ValueError(f"CRFAttention runs in fp32 or fp16, not {x.dtype}")
        arch, ptx = _target()
        k = compile_kernel(c, h, w, int(np.ravel(kernel_size)[0]), int(np.ravel(iterations)[0]), dtype, arch, ptx)
        params = trtp.KernelLaunchParams()
        params.grid_x = x.shape_expr[0]  # batch x spatial tiles
        params.grid_y = k.plan.tiles
        params.block_x = k.block_x
        params.shared_mem = k.shared_mem
        # Kernel arguments: inputs, (no) extra scalars, outputs - the kernel's parameter order.
        return k.name.encode(), k.ptx.encode(), params, trtp.SymIntExprs(0)

    log.info("registered %s (AOT, Triton PTX)", PLUGIN_ID)
