"""TensorRT: build engines from ONNX (:class:`EngineBuilder`) and run them (:class:`TrtBackend`).

Written against TensorRT 10.3 (JetPack 6) through 11.x (see
``../shared/design/tensorrt-notes.md`` in the project's design notes):

- Precision comes from the ONNX: an FP16 (mixed-precision) ONNX or a Q/DQ INT8
  ONNX from :mod:`calibration` builds the same on 10 and 11.  On TensorRT 10 the
  FP16/INT8 builder flags are also set (they exist there); on 11 they are gone
  and networks are strongly typed.  The legacy entropy calibrator is used only
  when asked for on a TensorRT that still has it (older JetPack).
- Every file is linted first (:mod:`engines.lint`): what TensorRT would refuse is a
  one-line :class:`ModelError` before anything is built.
- Engines are cached by ONNX hash + GPU name + compute capability + TensorRT
  version + the precision actually built + batch range (+ calibration file,
  plugin kernel source and Triton version, FP16 rewrite, workspace): an engine
  from another GPU or version is rebuilt, never loaded blindly.  One timing
  cache per GPU and TensorRT version.
- Execution (:mod:`engines.trt_backend`) uses the tensor-address API
  (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) on an owned
  stream with pinned host buffers (:mod:`engines.cuda`).

Imported lazily: nothing here runs without TensorRT and an NVIDIA GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import ModelError

log = logging.getLogger(__name__)

__all__ = ["EngineKey", "PrecisionPlan", "plan_precision", "check_engine_compatible", "engine_cache_dir",
           "EngineBuilder", "TrtBackend", "prepare_onnx_for_plugin", "tensorrt_version", "sidecar_path",
           "read_sidecar", "write_sidecar", "default_precision", "timing_cache_path", "machine_tag"]

PRECISIONS = ("fp32", "fp16", "int8")


def tensorrt_version() -> str:
    import tensorrt as trt

    return str(trt.__version__)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; its digest names the cached engine file.

    ``precision`` is the precision actually built (an int8 request without Q/DQ or calibrator builds fp16);
    ``calibration_sha256`` the legacy calibrator's file, ``plugin_kernel`` the fused kernel's source + Triton
    version (its PTX is baked in), ``rewrite`` the in-process FP16 conversion's source.
    """

    onnx_sha256: str
    gpu_name: str
    compute_capability: str
    trt_version: str
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    plugin: bool = False
    calibration_sha256: str = ""
    plugin_kernel: str = ""
    rewrite: str = ""
    workspace: int = 0

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:24]

    def filename(self) -> str:
        return f"{machine_tag(self.gpu_name, self.compute_capability, self.trt_version)}_{self.precision}_" \
               f"b{self.min_batch}-{self.max_batch}_{self.digest()}.engine"


def machine_tag(gpu_name: str, compute_capability: str, trt_version: str) -> str:
    """``NVIDIA-H100_sm90_trt10.13.0``: what engines and timing caches are only valid for."""
    gpu = "".join(ch if ch.isalnum() else "-" for ch in gpu_name)[:32]
    return f"{gpu}_sm{compute_capability.replace('.', '')}_trt{trt_version}"


def timing_cache_path(gpu_name: str, compute_capability: str, trt_version: str,
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """One timing cache per GPU and TensorRT version (a cache from another device is refused by TensorRT)."""
    root = Path(cache_dir) if cache_dir else engine_cache_dir()
    return root / f"timing_{machine_tag(gpu_name, compute_capability, trt_version)}.cache"


def source_sha256(module_file: str) -> str:
    return hashlib.sha256(Path(module_file).read_bytes()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class PrecisionPlan:
    """How one requested precision is built on the installed TensorRT (see :func:`plan_precision`)."""

    precision: str  # what the engine will be: fp32, fp16 or int8
    convert_fp16: bool  # parse an FP16 copy of the ONNX (engines.fp16) instead of the file itself (Q/DQ: its floats)
    flags: tuple[str, ...]  # builder flags to set (only those this TensorRT still has)
    calibrator: bool  # legacy implicit INT8 calibration from a calibration .npz
    note: str = ""


def plan_precision(precision: str, onnx_fp16: bool, onnx_qdq: bool, builder_flags: set[str] | frozenset[str],
                   has_calibrator: bool, calibration_file: bool) -> PrecisionPlan:
    """Decide how to get ``precision`` from this ONNX on this TensorRT (pure, so it is tested without a GPU).

    TensorRT 11 is strongly typed (no FP16/INT8 flags): FP16 comes from an FP16 ONNX (converted here
    when the file is FP32) and INT8 from a Q/DQ ONNX, whose float layers are converted to FP16 too
    (else they would run in FP32 there).  TensorRT 10 gets the same ONNX plus the flags it
    still has.  INT8 from a plain ONNX needs the legacy calibrator (TensorRT 10 and a calibration file);
    without one the engine falls back to FP16, said in ``note``.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    have = set(builder_flags)
    if precision == "int8" and not onnx_qdq:
        if calibration_file and has_calibrator and "INT8" in have:
            return PrecisionPlan("int8", False, tuple(f for f in ("INT8", "FP16") if f in have), True,
                                 "implicit INT8 from the legacy entropy calibrator")
        why = ("this TensorRT has no implicit INT8 calibration" if calibration_file else
               "no calibration file given")
        note = (f"int8 asked for, but the ONNX has no Q/DQ nodes and {why}: building fp16 instead "
                "(make a Q/DQ ONNX with python -m calibration.quantize)")
        return dataclasses.replace(plan_precision("fp16", onnx_fp16, False, have, has_calibrator, False), note=note)
    if onnx_qdq:
        if precision != "int8":
            raise ModelError(f"the ONNX is a Q/DQ (INT8) model; build it with precision int8, not {precision}")
        if "FP16" in have:  # TensorRT 10: the FP16 flag lets the unquantized layers run in half precision
            return PrecisionPlan("int8", False, tuple(f for f in ("INT8", "FP16") if f in have), False)
        # Strongly typed (11): the unquantized layers run in the file's float type, so give it float16 floats.
        return PrecisionPlan("int8", not onnx_fp16, tuple(f for f in ("INT8",) if f in have), False,
                             "" if onnx_fp16 else "the Q/DQ file's float layers converted to FP16 (strongly typed)")
    if precision == "fp32":
        if onnx_fp16:
            raise ModelError("the ONNX computes in float16; build it with precision fp16, not fp32")
        return PrecisionPlan("fp32", False, (), False)
    return PrecisionPlan("fp16", not onnx_fp16, ("FP16",) if "FP16" in have else (), False)


def engine_cache_dir() -> Path:
    root = os.environ.get("MCA_POSE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mca-pose")
    return Path(root) / "engines"


def prepare_onnx_for_plugin(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A copy of a ``--custom-op`` ONNX that TensorRT maps onto the CRFAttention plugin.

    The ONNX parser finds a plugin by op type plus the ``plugin_namespace`` attribute;
    ``aot=1`` picks the ahead-of-time implementation.  The ONNX function (the
    decomposed body kept for ONNX Runtime) is dropped so the parser does not inline it.
    """
    import onnx
    from onnx import helper

    from engines.export import CUSTOM_DOMAIN
    from engines.plugins.qdp import PLUGIN_NAMESPACE

    m = onnx.load(str(src))
    n = 0
    for node in m.graph.node:
        if node.domain == CUSTOM_DOMAIN and node.op_type == "CRFAttention":
            node.attribute.extend([helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE),
                                   helper.make_attribute("aot", 1)])
            n += 1
    if not n:
        raise ModelError(f"{src} has no CRFAttention nodes (export it with --custom-op)")
    del m.functions[:]
    onnx.save(m, str(dst))
    return Path(dst)


def default_precision(onnx_path: str | os.PathLike) -> str:
    """The precision an ONNX file is meant for when none is asked: int8 for Q/DQ, else fp16."""
    from engines.fp16 import has_qdq

    return "int8" if has_qdq(onnx_path) else "fp16"


def needs_plugin_preparation(onnx_path: str | os.PathLike) -> bool:
    """True for a ``--custom-op`` ONNX whose CRFAttention nodes do not name the plugin yet."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    nodes = [n for n in m.graph.node if n.op_type == "CRFAttention"]
    return bool(nodes) and not all(any(a.name == "plugin_namespace" for a in n.attribute) for n in nodes)


class EngineBuilder:
    """ONNX -> serialized engine, for one precision and batch range."""

    def __init__(self, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 4, max_batch: int = 16,
                 workspace_gb: float = 2.0, timing_cache: str | os.PathLike | None = None,
                 calibration_file: str | os.PathLike | None = None, use_plugin: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not 1 <= min_batch <= opt_batch <= max_batch:
            raise ModelError("need 1 <= min_batch <= opt_batch <= max_batch")
        self.precision, self.batch = precision, (min_batch, opt_batch, max_batch)
        self.workspace = int(workspace_gb * 2**30)
        self.timing_cache = Path(timing_cache) if timing_cache else None  # default: one per GPU + TensorRT
        self.calibration_file, self.use_plugin = calibration_file, use_plugin
        self.build_seconds = 0.0
        self.built_precision = precision

    def key(self, onnx_path: str | os.PathLike) -> EngineKey:
        from engines import cuda

        info = cuda.device_info(0)
        plan = self.plan(onnx_path)
        kernel = ""
        if self.use_plugin:
            from engines.plugins.crf_attention import kernel_source_hash

            kernel = kernel_source_hash()
        from engines import fp16

        return EngineKey(file_sha256(onnx_path), info["name"], info["compute_capability"], tensorrt_version(),
                         plan.precision, *self.batch, plugin=self.use_plugin,
                         calibration_sha256=(file_sha256(self.calibration_file)
                                             if plan.calibrator and self.calibration_file else ""),
                         plugin_kernel=kernel, rewrite=source_sha256(fp16.__file__) if plan.convert_fp16 else "",
                         workspace=self.workspace)

    def plan(self, onnx_path: str | os.PathLike) -> PrecisionPlan:
        """How this builder's precision is obtained from ``onnx_path`` on the installed TensorRT."""
        import onnx
        import tensorrt as trt

        from engines.fp16 import has_qdq, is_fp16

        try:
            m = onnx.load(str(onnx_path), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
            raise ModelError(f"{onnx_path} is not an ONNX file ({type(e).__name__})") from None
        flags = {n for n in ("FP16", "INT8") if hasattr(trt.BuilderFlag, n)}
        return plan_precision(self.precision, is_fp16(m), has_qdq(m), flags,
                              hasattr(trt, "IInt8EntropyCalibrator2"), bool(self.calibration_file))

    def _register_plugin(self) -> None:
        import tensorrt as trt

        from engines import cuda
        from engines.plugins.crf_attention import arch_of, ptx_version_for_driver
        from engines.plugins.qdp import plugin_support, register_plugin

        why = plugin_support(str(trt.__version__))
        if why:
            raise ModelError(f"the CRFAttention plugin cannot be built here: {why}; build the decomposed ONNX instead")
        info = cuda.device_info(0)
        register_plugin(arch_of(info["compute_capability"]), ptx_version_for_driver(int(info["driver"])))

    def build(self, onnx_path: str | os.PathLike) -> bytes:
        import tempfile

        import tensorrt as trt

        from engines import cuda
        from engines.lint import lint_file, profile_shapes

        errors = [f for f in lint_file(onnx_path, self.batch) if f.severity == "error"]
        if errors:
            raise ModelError(f"TensorRT cannot build {onnx_path}: {errors[0].where}: {errors[0].message} "
                             f"(python -m engines.lint {onnx_path})")
        plan = self.plan(onnx_path)
        if plan.note:
            log.warning("%s", plan.note)
        self.built_precision = plan.precision
        logger = trt.Logger(trt.Logger.WARNING)
        if self.use_plugin:
            self._register_plugin()
        builder = trt.Builder(logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and int(trt.__version__.split(".")[0]) < 10:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        if self.use_plugin and hasattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS"):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(onnx_path)
            if self.use_plugin and needs_plugin_preparation(src):  # else the parser inlines the ONNX function
                src = prepare_onnx_for_plugin(src, Path(tmp) / "plugin.onnx")
            if plan.convert_fp16:  # TensorRT 11 is strongly typed: FP16 must be in the ONNX itself
                from engines.fp16 import convert_to_fp16

                src = convert_to_fp16(src, Path(tmp) / "fp16.onnx")
            if not parser.parse_from_file(str(src)):
                errors_text = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise ModelError(f"TensorRT could not parse {onnx_path}: {errors_text}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # else the inspector shows names only
        for name in plan.flags:  # TensorRT 10 only: 11 removed them (precision comes from the ONNX)
            config.set_flag(getattr(trt.BuilderFlag, name))
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            t = network.get_input(i)
            lo, opt, hi = profile_shapes(t.name, tuple(t.shape[k] for k in range(len(t.shape))), self.batch)
            profile.set_shape(t.name, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
        config.add_optimization_profile(profile)
        if plan.calibrator:  # legacy implicit INT8 (TensorRT 10): calibrates at the calibration profile's opt
            config.int8_calibrator = EntropyCalibrator.create(self.calibration_file, batch=self.batch[1])  # type: ignore[arg-type]
            if hasattr(config, "set_calibration_profile"):
                config.set_calibration_profile(profile)
        info = cuda.device_info(0)
        cache_path = self.timing_cache or timing_cache_path(info["name"], info["compute_capability"],
                                                            str(trt.__version__))
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log.warning("timing cache %s is from another device or TensorRT; starting a fresh one", cache_path)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
        t0 = time.perf_counter()
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise ModelError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
        self.build_seconds = time.perf_counter() - t0
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(cache.serialize()))
        return bytes(blob)

    def build_cached(self, onnx_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
        """The cached engine for this ONNX on this GPU/TensorRT/precision, built if missing.

        A JSON sidecar next to the engine keeps the cache key, the precision actually built and the ONNX's
        ``mca.*`` metadata, so an engine file alone is enough for the realtime pipeline.
        """
        from engines.ort import read_onnx_metadata

        key = self.key(onnx_path)
        path = Path(cache_dir or engine_cache_dir()) / key.filename()
        self.build_seconds = 0.0
        self.built_precision = key.precision
        if path.exists() and path.with_suffix(".json").exists():
            log.info("engine cache hit: %s", path.name)
            self.cache_hit = True
            return path
        self.cache_hit = False
        log.warning("building a TensorRT %s engine for %s (first use on this GPU; minutes on a Jetson); cached as %s",
                    key.precision, Path(onnx_path).name, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = self.build(onnx_path)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        meta = read_onnx_metadata(onnx_path)
        meta["mca.precision"] = self.built_precision
        write_sidecar(path, key, self.built_precision, meta, self.build_seconds)
        return path


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    return Path(engine_path).with_suffix(".json")


def write_sidecar(engine_path: str | os.PathLike, key: EngineKey, precision: str, metadata: dict[str, str],
                  build_seconds: float = 0.0) -> Path:
    """The engine's description (cache key, built precision, model metadata) as JSON beside it."""
    side = sidecar_path(engine_path)
    side.write_text(json.dumps({"key": dataclasses.asdict(key), "precision": precision, "metadata": metadata,
                                "build_seconds": round(build_seconds, 2)}, indent=1))
    return side


def read_sidecar(engine_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of an engine, or {} where there is none; a damaged one is a :class:`ModelError`."""
    side = sidecar_path(engine_path)
    if not side.exists():
        return {}
    try:
        data = json.loads(side.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("metadata", {}), dict):
            raise ValueError("not an object")
    except (ValueError, OSError) as e:
        raise ModelError(f"{side} (the engine's description) is damaged: {e}") from None
    return data


def check_engine_compatible(recorded: dict[str, Any], gpu_name: str, compute_capability: str,
                            trt_version: str) -> None:
    """Raise a :class:`ModelError` naming what differs when an engine was built for another GPU or TensorRT.

    TensorRT engines are not portable; deserializing a foreign one fails with an opaque log line
    (or worse), so the sidecar's key is compared first.
    """
    want = {"gpu_name": gpu_name, "compute_capability": compute_capability, "trt_version": trt_version}
    diffs = [f"{k} {recorded[k]!r} (here {v!r})" for k, v in want.items() if k in recorded and recorded[k] != v]
    if diffs:
        raise ModelError("engine was built for another machine: " + ", ".join(diffs) +
                         "; rebuild it here with python -m engines.build (or load the .onnx)")


class EntropyCalibrator:
    """Legacy implicit INT8 calibration (TensorRT 10 only), fed from a calibration .npz (``crops``)."""

    @staticmethod
    def create(calibration_file: str | os.PathLike, batch: int = 4, cache: str | os.PathLike | None = None) -> Any:
        """``batch`` must be the calibration profile's opt batch (TensorRT calibrates at that shape)."""
        import tensorrt as trt

        from engines import cuda

        base = getattr(trt, "IInt8EntropyCalibrator2", None)
        if base is None:
            raise ModelError("this TensorRT has no implicit INT8 calibration; build from a Q/DQ ONNX "
                             "(python -m calibration.quantize)")
        with np.load(calibration_file) as f:
            if "crops" not in f:
                raise ModelError(f"{calibration_file} has no 'crops' array")
            data = np.ascontiguousarray(f["crops"])
        if len(data) < batch:
            raise ModelError(f"{calibration_file} has {len(data)} crops, fewer than one calibration batch ({batch})")
        cache_path = Path(cache or str(calibration_file) + ".trtcache")

        class _Calibrator(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__()
                self.i = 0
                self.buf = cuda.DeviceBuffer(data[:batch].nbytes)
                self.host = cuda.HostBuffer(data[:batch].shape, data.dtype)
                self.stream = cuda.Stream()

            def get_batch_size(self) -> int:
                return batch

            def get_batch(self, names: list[str]) -> list[int] | None:
                if self.i + batch > len(data):
                    return None
                self.host.array[...] = data[self.i:self.i + batch]
                cuda.memcpy_htod_async(self.buf, self.host, self.host.nbytes, self.stream)
                self.stream.synchronize()
                self.i += batch
                return [self.buf.ptr]

            def read_calibration_cache(self) -> bytes | None:
                return cache_path.read_bytes() if cache_path.exists() else None

            def write_calibration_cache(self, cache_bytes: bytes) -> None:
                cache_path.write_bytes(bytes(cache_bytes))

        return _Calibrator()


from engines.trt_backend import TrtBackend  # noqa: E402 - re-exported; it imports the helpers above
