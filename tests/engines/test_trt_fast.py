"""engines.trt's build path on a CPU: EngineBuilder against a recording stand-in for TensorRT's builder API.

The stand-in (``_fake_trt``) only records what the builder is asked to do (flags, workspace, optimisation
profile, timing cache, calibrator) and hands back fixed bytes, so these tests check the calls engines.trt
makes, not TensorRT.  Tiny ONNX files are written with onnx.helper; the fake CUDA runtime of
``fake_gpu.py`` supplies the device (``Fake GPU``, sm 9.0, driver 12.8).  Fast: a few seconds.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engines import cuda  # noqa: E402
from engines import trt as T  # noqa: E402
from engines.base import ModelError  # noqa: E402
from tests.engines.fake_gpu import FakeRuntime  # noqa: E402

BLOB = b"serialized engine"


# -- tiny ONNX files -------------------------------------------------------------------------------------


def _onnx(path: Path, kind: str = "plain", hw: object = 8) -> Path:
    """uint8 NHWC crops -> float32 (x * 2); ``qdq`` adds a Q/DQ pair, ``fp16`` a float16 constant,
    ``custom`` two mca.pose::CRFAttention nodes (one already naming the plugin with ``custom-half``)."""
    x = helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", hw, 8, 3])
    y = helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", hw, 8, 3])
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    nodes = [helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT)]
    last = "f"
    if kind == "qdq":
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["f", "s", "z"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])]
        last = "dq"
    if kind == "fp16":
        inits.append(numpy_helper.from_array(np.array(1.0, np.float16), "h"))
    if kind.startswith("custom"):
        for i in range(2):
            attrs = {"iterations": 1, "kernel_size": 3}
            if kind == "custom-half" and i == 0:
                attrs["plugin_namespace"] = "mca_pose"
            nodes.append(helper.make_node("CRFAttention", [last, "two", "two", "two", "two"], [f"c{i}", f"m{i}"],
                                          domain="mca.pose", **attrs))
            last = f"c{i}"
    nodes.append(helper.make_node("Mul", [last, "two"], ["heatmaps"]))
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("mca.pose", 1)] if kind.startswith("custom") else [])
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=opsets)
    m.metadata_props.add(key="mca.kind", value="pose")
    m.metadata_props.add(key="mca.precision", value="fp32")
    if kind.startswith("custom"):
        m.functions.append(helper.make_function("mca.pose", "CRFAttention", ["X", "UW", "UB", "KW", "KB"], ["Y", "Q"],
                                                [helper.make_node("Identity", ["X"], ["Y"]),
                                                 helper.make_node("Identity", ["X"], ["Q"])],
                                                [helper.make_opsetid("", 17)], attributes=["iterations", "kernel_size"]))
    onnx.save(m, str(path))
    return path


# -- a recording TensorRT ---------------------------------------------------------------------------------


class _Rec:
    """What the builder was asked: one per test."""

    def __init__(self) -> None:
        self.networks: list[int] = []  # creation flags
        self.parsed: list[onnx.ModelProto] = []
        self.configs: list["_Config"] = []
        self.builds = 0
        self.parse_errors: list[str] = []
        self.build_result: bytes | None = BLOB
        self.foreign_cache = b""


class _Config:
    def __init__(self, rec: _Rec) -> None:
        self.rec, self.pools, self.flags, self.profiles = rec, {}, [], []
        self.profiling_verbosity = None
        self.int8_calibrator = None
        self.calibration_profile = None
        self.timing_caches: list[bytes] = []
        self.created_caches: list[bytes] = []

    def set_memory_pool_limit(self, pool, n) -> None:  # noqa: ANN001
        self.pools[pool] = n

    def set_flag(self, flag) -> None:  # noqa: ANN001
        self.flags.append(flag)

    def add_optimization_profile(self, p) -> None:  # noqa: ANN001
        self.profiles.append(p)

    def set_calibration_profile(self, p) -> None:  # noqa: ANN001
        self.calibration_profile = p

    def create_timing_cache(self, data: bytes):  # noqa: ANN201
        self.created_caches.append(bytes(data))
        return types.SimpleNamespace(data=bytes(data), serialize=lambda: bytearray(b"cache<" + bytes(data) + b">"))

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:  # noqa: ANN001
        assert ignore_mismatch is False
        self.timing_caches.append(cache.data)
        return not (self.rec.foreign_cache and cache.data == self.rec.foreign_cache)


def _fake_trt(rec: _Rec, version: str = "10.13.0", flags: bool = True, calibrator: bool = True) -> types.ModuleType:
    m = types.ModuleType("tensorrt")
    m.__version__ = version
    m.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: setattr(self, "level", level)})
    m.BuilderFlag = types.SimpleNamespace(**({"FP16": "FP16", "INT8": "INT8"} if flags else {}))
    m.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, PREFER_AOT_PYTHON_PLUGINS=3)
    m.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    m.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED")
    m.Dims = lambda d: tuple(d)
    if calibrator:
        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                self.base_initialised = True

        m.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    class Network:
        def __init__(self) -> None:
            self.inputs: list = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int):  # noqa: ANN201
            return self.inputs[i]

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict = {}

        def set_shape(self, name, lo, opt, hi) -> None:  # noqa: ANN001
            self.shapes[name] = (lo, opt, hi)

    class Builder:
        def __init__(self, logger) -> None:  # noqa: ANN001
            assert logger.level == 2

        def create_network(self, flags: int) -> Network:
            rec.networks.append(flags)
            return Network()

        def create_builder_config(self) -> _Config:
            rec.configs.append(_Config(rec))
            return rec.configs[-1]

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network, config):  # noqa: ANN001, ANN201
            rec.builds += 1
            return None if rec.build_result is None else bytearray(rec.build_result)

    class OnnxParser:
        def __init__(self, network, logger) -> None:  # noqa: ANN001
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            model = onnx.load(path)
            rec.parsed.append(model)
            if rec.parse_errors:
                self.num_errors = len(rec.parse_errors)
                return False
            for i in model.graph.input:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim]
                self.network.inputs.append(types.SimpleNamespace(name=i.name, shape=tuple(dims)))
            return True

        def get_error(self, i: int) -> str:
            return rec.parse_errors[i]

    m.Builder, m.OnnxParser = Builder, OnnxParser
    return m


@pytest.fixture
def gpu(monkeypatch, tmp_path):
    """The fake CUDA runtime, a recording TensorRT 10 and an engine cache in tmp_path."""
    rt = FakeRuntime()
    rec = _Rec()
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    monkeypatch.setenv("MCA_POSE_CACHE", str(tmp_path / "cache"))

    def use(**kw) -> _Rec:
        monkeypatch.setitem(sys.modules, "tensorrt", _fake_trt(rec, **kw))
        return rec

    use()
    return types.SimpleNamespace(rt=rt, rec=rec, use=use)


# -- small pure helpers -----------------------------------------------------------------------------------


def test_file_and_source_hashes(tmp_path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 3 * 2**20 + 17, dtype=np.uint8).tobytes()  # several chunks
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert T.file_sha256(p) == hashlib.sha256(data).hexdigest()
    assert T.source_sha256(str(p)) == hashlib.sha256(data).hexdigest()[:16]
    (tmp_path / "e").write_bytes(b"")
    assert T.file_sha256(tmp_path / "e") == hashlib.sha256(b"").hexdigest()


def test_engine_cache_dir_from_the_environment_or_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MCA_POSE_CACHE", str(tmp_path / "c"))
    assert T.engine_cache_dir() == tmp_path / "c" / "engines"
    monkeypatch.setenv("MCA_POSE_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert T.engine_cache_dir() == tmp_path / "home" / ".cache" / "mca-pose" / "engines"
    monkeypatch.delenv("MCA_POSE_CACHE")
    assert T.engine_cache_dir() == tmp_path / "home" / ".cache" / "mca-pose" / "engines"
    assert T.timing_cache_path("A B", "8.7", "10.3.0") == \
        tmp_path / "home" / ".cache" / "mca-pose" / "engines" / "timing_A-B_sm87_trt10.3.0.cache"


def test_machine_tag_and_digest_exactly() -> None:
    assert T.machine_tag("NVIDIA GeForce RTX 4090 Laptop GPU (x)", "8.9", "10.3.0") == \
        "NVIDIA-GeForce-RTX-4090-Laptop-G_sm89_trt10.3.0"
    key = T.EngineKey("ab", "G", "9.0", "10.3.0", "fp16", 1, 4, 16)
    want = hashlib.sha256(json.dumps(dataclasses.asdict(key), sort_keys=True).encode()).hexdigest()[:24]
    assert key.digest() == want
    assert key.filename() == f"G_sm90_trt10.3.0_fp16_b1-16_{want}.engine"


def test_tensorrt_version_is_the_modules(gpu) -> None:
    gpu.use(version="11.1.0")
    assert T.tensorrt_version() == "11.1.0"


def test_sidecar_exact_contents_and_damage(tmp_path) -> None:
    key = T.EngineKey("ab", "G", "9.0", "10.3.0", "fp16", 1, 4, 16)
    eng = tmp_path / "m.engine"
    side = T.write_sidecar(eng, key, "int8", {"mca.kind": "pose"}, 1.23456)
    assert side == tmp_path / "m.json" == T.sidecar_path(eng)
    assert json.loads(side.read_text()) == {"key": dataclasses.asdict(key), "precision": "int8",
                                            "metadata": {"mca.kind": "pose"}, "build_seconds": 1.23}
    assert T.write_sidecar(eng, key, "fp16", {}) and T.read_sidecar(eng)["build_seconds"] == 0.0
    for text in ("[1, 2]", '{"metadata": [1]}'):
        side.write_text(text)
        with pytest.raises(ModelError, match=r"m\.json \(the engine's description\) is damaged: not an object"):
            T.read_sidecar(eng)
    side.write_text('{"metadata": {}, "precision": "fp16"}')
    assert T.read_sidecar(eng) == {"metadata": {}, "precision": "fp16"}
    side.write_text('{"precision": "fp16"}')  # no metadata at all is not damage
    assert T.read_sidecar(eng) == {"precision": "fp16"}


def test_engine_from_another_machine_names_every_difference() -> None:
    rec = {"gpu_name": "Orin", "compute_capability": "8.7", "trt_version": "10.3.0"}
    with pytest.raises(ModelError) as e:
        T.check_engine_compatible(rec, "H100", "9.0", "10.3.0")
    assert str(e.value) == ("engine was built for another machine: gpu_name 'Orin' (here 'H100'), compute_capability "
                            "'8.7' (here '9.0'); rebuild it here with python -m engines.build (or load the .onnx)")
    T.check_engine_compatible({"gpu_name": "Orin"}, "Orin", "9.0", "11.0")  # only recorded fields count


def test_precision_plans_exactly() -> None:
    P = T.PrecisionPlan
    ten, eleven = {"FP16", "INT8"}, set()
    note_nofile = ("int8 asked for, but the ONNX has no Q/DQ nodes and no calibration file given: building fp16 "
                   "instead (make a Q/DQ ONNX with python -m calibration.quantize)")
    note_noapi = note_nofile.replace("no calibration file given", "this TensorRT has no implicit INT8 calibration")
    assert T.plan_precision("int8", False, False, ten, True, True) == \
        P("int8", False, ("INT8", "FP16"), True, "implicit INT8 from the legacy entropy calibrator")
    assert T.plan_precision("int8", False, False, {"INT8"}, True, True) == \
        P("int8", False, ("INT8",), True, "implicit INT8 from the legacy entropy calibrator")
    assert T.plan_precision("int8", False, False, ten, True, False) == P("fp16", True, ("FP16",), False, note_nofile)
    assert T.plan_precision("int8", True, False, ten, False, True) == P("fp16", False, ("FP16",), False, note_noapi)
    assert T.plan_precision("int8", False, False, {"FP16"}, True, True) == P("fp16", True, ("FP16",), False, note_noapi)
    assert T.plan_precision("int8", False, True, ten, True, True) == P("int8", False, ("INT8", "FP16"), False, "")
    assert T.plan_precision("int8", False, True, {"FP16"}, False, False) == P("int8", False, ("FP16",), False, "")
    assert T.plan_precision("int8", False, True, eleven, False, False) == \
        P("int8", True, (), False, "the Q/DQ file's float layers converted to FP16 (strongly typed)")
    assert T.plan_precision("int8", True, True, {"INT8"}, False, False) == P("int8", False, ("INT8",), False, "")
    assert T.plan_precision("fp32", False, False, ten, True, True) == P("fp32", False, (), False, "")
    assert T.plan_precision("fp16", False, False, ten, True, True) == P("fp16", True, ("FP16",), False, "")
    assert T.plan_precision("fp16", True, False, eleven, False, False) == P("fp16", False, (), False, "")
    with pytest.raises(ModelError, match=r"^precision must be one of \('fp32', 'fp16', 'int8'\), got 'bf16'$"):
        T.plan_precision("bf16", False, False, ten, True, True)
    with pytest.raises(ModelError, match="^the ONNX is a Q/DQ \\(INT8\\) model; build it with precision int8, not fp16$"):
        T.plan_precision("fp16", False, True, ten, True, True)
    with pytest.raises(ModelError, match="^the ONNX computes in float16; build it with precision fp16, not fp32$"):
        T.plan_precision("fp32", True, False, ten, True, True)


def test_builder_settings_and_refusals(tmp_path) -> None:
    b = T.EngineBuilder()
    assert (b.precision, b.batch, b.workspace, b.timing_cache, b.calibration_file, b.use_plugin) == \
        ("fp16", (1, 4, 16), 2 * 2**30, None, None, False)
    assert b.build_seconds == 0.0 and b.built_precision == "fp16"
    b = T.EngineBuilder("int8", 2, 2, 2, 0.25, str(tmp_path / "t.cache"), "cal.npz", True)
    assert (b.precision, b.batch, b.workspace, b.timing_cache, b.calibration_file, b.use_plugin) == \
        ("int8", (2, 2, 2), 2**28, tmp_path / "t.cache", "cal.npz", True)
    assert isinstance(b.timing_cache, Path) and b.built_precision == "int8"
    with pytest.raises(ModelError, match=r"^precision must be one of \('fp32', 'fp16', 'int8'\), got 'fp8'$"):
        T.EngineBuilder("fp8")
    for batch in [(0, 1, 1), (2, 1, 4), (1, 5, 4)]:
        with pytest.raises(ModelError, match=r"^need 1 <= min_batch <= opt_batch <= max_batch$"):
            T.EngineBuilder("fp16", *batch)


# -- the plugin ONNX --------------------------------------------------------------------------------------


def test_plugin_preparation_on_a_tiny_custom_op_file(tmp_path) -> None:
    src = _onnx(tmp_path / "c.onnx", "custom")
    assert T.needs_plugin_preparation(src) is True
    assert T.needs_plugin_preparation(_onnx(tmp_path / "h.onnx", "custom-half")) is True
    assert T.needs_plugin_preparation(_onnx(tmp_path / "p.onnx")) is False
    out = T.prepare_onnx_for_plugin(src, tmp_path / "out.onnx")
    assert out == tmp_path / "out.onnx" and T.needs_plugin_preparation(out) is False
    m = onnx.load(str(out))
    assert len(m.functions) == 0
    crf = [n for n in m.graph.node if n.op_type == "CRFAttention"]
    assert len(crf) == 2
    for n in crf:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert attrs == {"iterations": 1, "kernel_size": 3, "plugin_namespace": b"mca_pose", "aot": 1}
    assert [n.op_type for n in m.graph.node] == [n.op_type for n in onnx.load(str(src)).graph.node]
    with pytest.raises(ModelError, match=r"p\.onnx has no CRFAttention nodes \(export it with --custom-op\)$"):
        T.prepare_onnx_for_plugin(tmp_path / "p.onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_node_of_another_domain_is_not_prepared(tmp_path) -> None:
    src = _onnx(tmp_path / "c.onnx", "custom")
    m = onnx.load(str(src))
    for n in m.graph.node:
        if n.op_type == "CRFAttention":
            n.domain = "other"
    onnx.save(m, str(src))
    with pytest.raises(ModelError, match="no CRFAttention nodes"):
        T.prepare_onnx_for_plugin(src, tmp_path / "x.onnx")


def test_default_precision_of_tiny_files(tmp_path) -> None:
    assert T.default_precision(_onnx(tmp_path / "p.onnx")) == "fp16"
    assert T.default_precision(_onnx(tmp_path / "q.onnx", "qdq")) == "int8"


# -- key and plan -----------------------------------------------------------------------------------------


def test_key_records_the_machine_and_the_plan(gpu, tmp_path, monkeypatch) -> None:
    from engines import fp16
    from engines.plugins import crf_attention

    p = _onnx(tmp_path / "m.onnx")
    k = T.EngineBuilder("fp16", 2, 3, 5, workspace_gb=1.0).key(p)
    assert k == T.EngineKey(hashlib.sha256(p.read_bytes()).hexdigest(), "Fake GPU", "9.0", "10.13.0", "fp16", 2, 3, 5,
                            plugin=False, calibration_sha256="", plugin_kernel="",
                            rewrite=T.source_sha256(fp16.__file__), workspace=2**30)
    assert T.EngineBuilder("fp32").key(p).rewrite == ""  # nothing converted
    cal = tmp_path / "cal.npz"
    np.savez(cal, crops=np.zeros((4, 8, 8, 3), np.uint8))
    k8 = T.EngineBuilder("int8", calibration_file=cal).key(p)
    assert (k8.precision, k8.calibration_sha256, k8.rewrite) == ("int8", T.file_sha256(cal), "")
    assert T.EngineBuilder("int8").key(p).precision == "fp16"  # no calibration: fp16 is what gets built
    assert T.EngineBuilder("fp16", calibration_file=cal).key(p).calibration_sha256 == ""  # not calibrated
    monkeypatch.setattr(crf_attention, "kernel_source_hash", lambda: "kernel-v1")
    kp = T.EngineBuilder("fp16", use_plugin=True).key(p)
    assert kp.plugin is True and kp.plugin_kernel == "kernel-v1"


def test_plan_reads_the_file_and_this_tensorrt(gpu, tmp_path) -> None:
    p, q, h = _onnx(tmp_path / "p.onnx"), _onnx(tmp_path / "q.onnx", "qdq"), _onnx(tmp_path / "h.onnx", "fp16")
    assert T.EngineBuilder("fp16").plan(p) == T.PrecisionPlan("fp16", True, ("FP16",), False)
    assert T.EngineBuilder("int8").plan(q) == T.PrecisionPlan("int8", False, ("INT8", "FP16"), False)
    assert T.EngineBuilder("fp16").plan(h) == T.PrecisionPlan("fp16", False, ("FP16",), False)
    assert T.EngineBuilder("int8", calibration_file="c.npz").plan(p).calibrator is True
    gpu.use(version="11.0.0", flags=False, calibrator=False)
    assert T.EngineBuilder("int8").plan(q) == T.PrecisionPlan(
        "int8", True, (), False, "the Q/DQ file's float layers converted to FP16 (strongly typed)")
    assert T.EngineBuilder("int8", calibration_file="c.npz").plan(p).note.endswith(
        "this TensorRT has no implicit INT8 calibration: building fp16 instead "
        "(make a Q/DQ ONNX with python -m calibration.quantize)")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff not protobuf")
    with pytest.raises(ModelError, match=r"bad\.onnx is not an ONNX file \(\w+\)$"):
        T.EngineBuilder().plan(bad)


# -- build ------------------------------------------------------------------------------------------------


def test_build_fp16_on_tensorrt_10(gpu, tmp_path) -> None:
    p = _onnx(tmp_path / "m.onnx")
    cache = tmp_path / "tc" / "t.cache"
    b = T.EngineBuilder("fp16", 1, 2, 4, workspace_gb=0.5, timing_cache=cache)
    assert b.build(p) == BLOB
    (cfg,) = gpu.rec.configs
    assert gpu.rec.networks == [0]  # TensorRT >= 10: explicit batch is the only mode, no flag
    assert cfg.pools == {"WORKSPACE": 2**29} and cfg.profiling_verbosity == "DETAILED" and cfg.flags == ["FP16"]
    (prof,) = cfg.profiles
    assert prof.shapes == {"crops": ((1, 8, 8, 3), (2, 8, 8, 3), (4, 8, 8, 3))}
    assert cfg.int8_calibrator is None and cfg.calibration_profile is None
    (parsed,) = gpu.rec.parsed
    from engines.fp16 import is_fp16

    assert is_fp16(parsed)  # parsed from an FP16 copy of the file
    assert cache.read_bytes() == b"cache<>" and cfg.created_caches == [b""]
    assert b.built_precision == "fp16" and 0.0 <= b.build_seconds < 60.0
    assert gpu.rec.builds == 1


def test_build_fp32_on_tensorrt_11_and_an_old_tensorrt(gpu, tmp_path) -> None:
    p = _onnx(tmp_path / "m.onnx")
    gpu.use(version="11.0.0", flags=False, calibrator=False)
    b = T.EngineBuilder("fp32", 4, 4, 4, timing_cache=tmp_path / "t.cache")
    assert b.build(p) == BLOB
    cfg = gpu.rec.configs[-1]
    assert cfg.flags == [] and gpu.rec.networks == [0] and cfg.profiles[0].shapes["crops"][0] == (4, 8, 8, 3)
    assert gpu.rec.parsed[-1].SerializeToString() == p.read_bytes()  # fp32: the file itself
    gpu.use(version="8.6.1")
    T.EngineBuilder("fp32", timing_cache=tmp_path / "t.cache").build(p)
    assert gpu.rec.networks[-1] == 1 << 0  # TensorRT 8: EXPLICIT_BATCH


def test_build_reuses_a_timing_cache_and_replaces_a_foreign_one(gpu, tmp_path, caplog) -> None:
    p = _onnx(tmp_path / "m.onnx")
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"mine")
    T.EngineBuilder("fp32", timing_cache=cache).build(p)
    assert gpu.rec.configs[-1].timing_caches == [b"mine"] and cache.read_bytes() == b"cache<mine>"
    gpu.rec.foreign_cache = b"cache<mine>"
    with caplog.at_level(logging.WARNING, logger="engines.trt"):
        T.EngineBuilder("fp32", timing_cache=cache).build(p)
    cfg = gpu.rec.configs[-1]
    assert cfg.timing_caches == [b"cache<mine>", b""] and cfg.created_caches == [b"cache<mine>", b""]
    assert cache.read_bytes() == b"cache<>"
    assert f"timing cache {cache} is from another device or TensorRT; starting a fresh one" in \
        [r.getMessage() for r in caplog.records]


def test_build_default_timing_cache_is_per_device(gpu, tmp_path) -> None:
    T.EngineBuilder("fp32").build(_onnx(tmp_path / "m.onnx"))
    want = tmp_path / "cache" / "engines" / "timing_Fake-GPU_sm90_trt10.13.0.cache"
    assert want.read_bytes() == b"cache<>"


def test_build_failures_are_model_errors(gpu, tmp_path) -> None:
    p = _onnx(tmp_path / "m.onnx")
    gpu.rec.build_result = None
    with pytest.raises(ModelError, match=r"^TensorRT failed to build an engine from .*m\.onnx \(see the log above\)$"):
        T.EngineBuilder("fp32", timing_cache=tmp_path / "t.cache").build(p)
    assert not (tmp_path / "t.cache").exists()
    gpu.rec.parse_errors = ["node 3: bad", "node 4: worse"]
    with pytest.raises(ModelError, match=r"^TensorRT could not parse .*m\.onnx: node 3: bad; node 4: worse$"):
        T.EngineBuilder("fp32").build(p)
    assert len(gpu.rec.configs) == 1 and gpu.rec.builds == 1  # parsing failed before any configuration


def test_lint_errors_stop_the_build_before_tensorrt(gpu, tmp_path) -> None:
    p = _onnx(tmp_path / "dyn.onnx", hw="height")
    with pytest.raises(ModelError, match=r"^TensorRT cannot build .*dyn\.onnx: crops: input crops has a dynamic "
                                         r"dimension 1 .*\(python -m engines\.lint .*dyn\.onnx\)$"):
        T.EngineBuilder("fp32").build(p)
    assert gpu.rec.networks == [] and gpu.rec.parsed == []


def test_int8_without_calibration_warns_and_builds_fp16(gpu, tmp_path, caplog) -> None:
    b = T.EngineBuilder("int8", timing_cache=tmp_path / "t.cache")
    with caplog.at_level(logging.WARNING, logger="engines.trt"):
        b.build(_onnx(tmp_path / "m.onnx"))
    assert b.built_precision == "fp16" and gpu.rec.configs[-1].flags == ["FP16"]
    assert [r.getMessage() for r in caplog.records] == [T.plan_precision("int8", False, False, set(), True, False).note]


def test_int8_from_a_qdq_file_on_tensorrt_11_converts_its_floats(gpu, tmp_path) -> None:
    from engines.fp16 import has_qdq, is_fp16

    gpu.use(version="11.0.0", flags=False, calibrator=False)
    b = T.EngineBuilder("int8", timing_cache=tmp_path / "t.cache")
    b.build(_onnx(tmp_path / "q.onnx", "qdq"))
    parsed = gpu.rec.parsed[-1]
    assert has_qdq(parsed) and is_fp16(parsed) and b.built_precision == "int8" and gpu.rec.configs[-1].flags == []


def test_legacy_calibrator_is_given_the_opt_batch(gpu, tmp_path) -> None:
    cal = tmp_path / "cal.npz"
    crops = np.arange(5 * 8 * 8 * 3, dtype=np.uint8).reshape(5, 8, 8, 3)
    np.savez(cal, crops=crops)
    b = T.EngineBuilder("int8", 1, 2, 4, timing_cache=tmp_path / "t.cache", calibration_file=cal)
    b.build(_onnx(tmp_path / "m.onnx"))
    cfg = gpu.rec.configs[-1]
    assert cfg.flags == ["INT8", "FP16"] and b.built_precision == "int8"
    assert cfg.int8_calibrator.get_batch_size() == 2 and cfg.calibration_profile is cfg.profiles[0]
    assert gpu.rec.parsed[-1].SerializeToString() == (tmp_path / "m.onnx").read_bytes()  # not converted


def test_plugin_build_registers_the_plugin_and_prepares_the_file(gpu, tmp_path, monkeypatch) -> None:
    from engines.plugins import qdp

    calls = []
    monkeypatch.setattr(qdp, "plugin_support", lambda v: calls.append(("support", v)) or None)
    monkeypatch.setattr(qdp, "register_plugin", lambda arch, ptx: calls.append(("register", arch, ptx)))
    b = T.EngineBuilder("fp32", timing_cache=tmp_path / "t.cache", use_plugin=True)
    b.build(_onnx(tmp_path / "c.onnx", "custom"))
    assert calls == [("support", "10.13.0"), ("register", 90, 87)]  # sm 9.0, driver 12.8 -> PTX 8.7
    assert gpu.rec.networks == [1 << 3]  # PREFER_AOT_PYTHON_PLUGINS
    parsed = gpu.rec.parsed[-1]
    assert not parsed.functions and all(
        any(a.name == "plugin_namespace" for a in n.attribute) for n in parsed.graph.node if n.op_type == "CRFAttention")
    gpu.use(version="8.6.1")  # an old TensorRT (refused by plugin_support in real life): both flags
    b.build(_onnx(tmp_path / "c.onnx", "custom"))
    assert gpu.rec.networks[-1] == (1 << 0) | (1 << 3)
    monkeypatch.setattr(qdp, "plugin_support", lambda v: "triton is not installed")
    with pytest.raises(ModelError, match=r"^the CRFAttention plugin cannot be built here: triton is not installed; "
                                         r"build the decomposed ONNX instead$"):
        b.build(_onnx(tmp_path / "c.onnx", "custom"))


def test_plugin_build_keeps_a_prepared_file(gpu, tmp_path, monkeypatch) -> None:
    from engines.plugins import qdp

    monkeypatch.setattr(qdp, "plugin_support", lambda v: None)
    monkeypatch.setattr(qdp, "register_plugin", lambda arch, ptx: None)
    prepared = T.prepare_onnx_for_plugin(_onnx(tmp_path / "c.onnx", "custom"), tmp_path / "p.onnx")
    T.EngineBuilder("fp32", timing_cache=tmp_path / "t.cache", use_plugin=True).build(prepared)
    assert gpu.rec.parsed[-1].SerializeToString() == prepared.read_bytes()


def test_build_cached_builds_once_and_describes_the_engine(gpu, tmp_path, caplog) -> None:
    p = _onnx(tmp_path / "m.onnx")
    b = T.EngineBuilder("int8", 1, 2, 4, timing_cache=tmp_path / "t.cache")
    with caplog.at_level(logging.INFO, logger="engines.trt"):
        path = b.build_cached(p, tmp_path / "eng")
    key = b.key(p)
    assert path == tmp_path / "eng" / key.filename() and path.read_bytes() == BLOB
    assert not path.with_suffix(".tmp").exists() and b.cache_hit is False
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["precision"] == "fp16" == b.built_precision and side["key"] == dataclasses.asdict(key)
    assert side["metadata"] == {"mca.kind": "pose", "mca.precision": "fp16"}
    assert [r.getMessage() for r in caplog.records if r.name == "engines.trt"] == [
        "building a TensorRT fp16 engine for m.onnx (first use on this GPU; minutes on a Jetson); cached as "
        f"{path}", T.plan_precision("int8", False, False, set(), True, False).note]
    assert gpu.rec.builds == 1
    b.build_seconds, b.built_precision = 5.0, "stale"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="engines.trt"):
        assert b.build_cached(p, tmp_path / "eng") == path
    assert gpu.rec.builds == 1 and b.cache_hit is True and b.build_seconds == 0.0 and b.built_precision == "fp16"
    assert [r.getMessage() for r in caplog.records] == [f"engine cache hit: {path.name}"]
    path.with_suffix(".json").unlink()  # an engine without its description is built again
    b.build_cached(p, tmp_path / "eng")
    assert gpu.rec.builds == 2 and b.cache_hit is False


def test_build_cached_defaults_to_the_engine_cache(gpu, tmp_path) -> None:
    b = T.EngineBuilder("fp32", timing_cache=tmp_path / "t.cache")
    path = b.build_cached(_onnx(tmp_path / "m.onnx"))
    assert path.parent == tmp_path / "cache" / "engines" and path.name.startswith("Fake-GPU_sm90_trt10.13.0_fp32_b1-16_")


# -- the legacy calibrator --------------------------------------------------------------------------------


def test_entropy_calibrator_feeds_whole_batches_from_device_memory(gpu, tmp_path) -> None:
    cal = tmp_path / "cal.npz"
    crops = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    np.savez(cal, crops=crops)
    c = T.EntropyCalibrator.create(cal, batch=2)
    assert c.base_initialised and c.get_batch_size() == 2
    seen = []
    while (ptrs := c.get_batch(["crops"])) is not None:
        (ptr,) = ptrs
        assert gpu.rt.is_device(ptr, crops[:2].nbytes)
        seen.append(np.frombuffer(ctypes.string_at(ptr, crops[:2].nbytes), np.uint8).reshape(2, 4, 4, 3).copy())
    assert len(seen) == 2  # the fifth crop is no whole batch
    np.testing.assert_array_equal(np.concatenate(seen), crops[:4])
    assert c.read_calibration_cache() is None
    c.write_calibration_cache(bytearray(b"calib"))
    assert (tmp_path / "cal.npz.trtcache").read_bytes() == b"calib" and c.read_calibration_cache() == b"calib"
    c2 = T.EntropyCalibrator.create(cal, batch=5, cache=tmp_path / "other.cache")
    c2.write_calibration_cache(b"x")
    assert (tmp_path / "other.cache").read_bytes() == b"x" and c2.get_batch(["crops"]) is not None
    assert c2.get_batch(["crops"]) is None


def test_entropy_calibrator_refusals(gpu, tmp_path) -> None:
    np.savez(tmp_path / "few.npz", crops=np.zeros((3, 4, 4, 3), np.uint8))
    np.savez(tmp_path / "none.npz", images=np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(ModelError, match=r"few\.npz has 3 crops, fewer than one calibration batch \(4\)$"):
        T.EntropyCalibrator.create(tmp_path / "few.npz", batch=4)
    assert T.EntropyCalibrator.create(tmp_path / "few.npz", batch=3).get_batch_size() == 3
    with pytest.raises(ModelError, match=r"none\.npz has no 'crops' array$"):
        T.EntropyCalibrator.create(tmp_path / "none.npz")
    gpu.use(version="11.0.0", flags=False, calibrator=False)
    with pytest.raises(ModelError, match=r"^this TensorRT has no implicit INT8 calibration; build from a Q/DQ ONNX "
                                         r"\(python -m calibration\.quantize\)$"):
        T.EntropyCalibrator.create(tmp_path / "few.npz", batch=1)
