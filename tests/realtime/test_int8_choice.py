"""INT8 decided per CPU at load time: the NAME.int8.onnx beside a model runs when the plan (or --int8 / MCA_INT8) says so."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from realtime.models import ModelError, int8_variant, load_model, precision_note
from tests.realtime.conftest import blob_pose_onnx

onnx = pytest.importorskip("onnx", reason="making the INT8 twin edits an ONNX graph")


def _int8_twin(fp32: Path) -> Path:
    """The blob pose model with one symmetric int8 Q/DQ pair on its heatmap, marked INT8 as calibration.quantize does."""
    from onnx import helper, numpy_helper

    m = onnx.load(str(fp32))
    g = m.graph
    mul = next(n for n in g.node if n.op_type == "Mul")
    mul.output[0] = "one_f"
    g.initializer.extend([numpy_helper.from_array(np.array(1 / 127, np.float32), "qs"),
                          numpy_helper.from_array(np.array(0, np.int8), "qz")])
    at = list(g.node).index(mul) + 1
    g.node.insert(at, helper.make_node("QuantizeLinear", ["one_f", "qs", "qz"], ["one_q"]))
    g.node.insert(at + 1, helper.make_node("DequantizeLinear", ["one_q", "qs", "qz"], ["one"]))
    m.metadata_props.add(key="mca.precision", value="int8")
    m.metadata_props.add(key="mca.fp32_sha256", value=hashlib.sha256(fp32.read_bytes()).hexdigest())
    out = fp32.with_name(fp32.stem + ".int8.onnx")
    onnx.save(m, str(out))
    return out


@pytest.fixture()
def pair(tmp_path) -> tuple[Path, Path]:
    fp32 = blob_pose_onnx(tmp_path / "pose.onnx")
    return fp32, _int8_twin(fp32)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv("MCA_INT8", raising=False)
    monkeypatch.delenv("MCA_INT8_WEIGHT_BITS", raising=False)


def test_the_twin_is_found_only_beside_an_fp32_onnx(pair, tmp_path) -> None:
    fp32, q = pair
    assert int8_variant(fp32) == q
    assert int8_variant(q) is None
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(fp32, alone / "pose.onnx")
    assert int8_variant(alone / "pose.onnx") is None


def test_a_stale_or_unstamped_twin_is_skipped(pair, caplog) -> None:
    fp32, q = pair
    m = onnx.load(str(fp32))
    m.metadata_props.add(key="retrained", value="yes")  # the FP32 model changed after its twin was made
    onnx.save(m, str(fp32))
    assert int8_variant(fp32) is None and "made from another" in caplog.text
    back = load_model(fp32, backend="ort", device="cpu", int8="on")
    assert Path(back.path) == fp32 and back.weight_bits is None
    m = onnx.load(str(q))
    keep = [p for p in m.metadata_props if p.key != "mca.fp32_sha256"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    onnx.save(m, str(q))
    assert int8_variant(fp32) is None and "no mca.fp32_sha256" in caplog.text


def test_flag_on_runs_the_int8_twin_with_the_planned_weights(pair) -> None:
    from engines.cpu import int8_plan

    m = load_model(pair[0], backend="ort", device="cpu", int8="on")
    assert Path(m.path) == pair[1]
    assert m.weight_bits == int8_plan(mode="on").weight_bits
    assert precision_note(m).startswith(f"INT8 ({m.weight_bits}-bit weights)") and "--int8=on" in precision_note(m)


def test_flag_off_is_fp32(pair) -> None:
    m = load_model(pair[0], backend="ort", device="cpu", int8="off")
    assert Path(m.path) == pair[0] and m.weight_bits is None
    assert precision_note(m).startswith("FP32") and "--int8=off" in precision_note(m)


def test_auto_follows_the_cpu_and_the_environment(pair, monkeypatch) -> None:
    from engines.cpu import int8_plan

    auto = load_model(pair[0], backend="ort", device="cpu")
    assert (Path(auto.path) == pair[1]) == int8_plan().int8
    monkeypatch.setenv("MCA_INT8", "on")
    monkeypatch.setenv("MCA_INT8_WEIGHT_BITS", "8")
    forced = load_model(pair[0], backend="ort", device="cpu")
    assert Path(forced.path) == pair[1] and forced.weight_bits == 8 and "MCA_INT8=on" in precision_note(forced)
    monkeypatch.setenv("MCA_INT8", "maybe")
    with pytest.raises(ModelError, match="MCA_INT8"):
        load_model(pair[0], backend="ort", device="cpu")


def test_on_without_a_twin_says_so(pair, tmp_path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    p = shutil.copy(pair[0], alone / "pose.onnx")
    m = load_model(p, backend="ort", device="cpu", int8="on")
    assert Path(m.path) == Path(p) and "no usable pose.int8.onnx" in precision_note(m)


def test_the_cli_flag_and_its_summary_line(pair, capsys) -> None:
    from realtime.run import main

    base = ["--source", "demo", "--frames", "2", "--demo-size", "320x240", "--demo-people", "1", "--detector",
            "ground-truth", "--pose", str(pair[0]), "--backend", "ort", "--device", "cpu"]
    assert main(base + ["--int8", "on"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("precision: "))
    assert "pose INT8 (" in line and "--int8=on" in line
    assert main(base + ["--int8", "off"]) == 0
    assert "precision: pose FP32: --int8=off" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(base + ["--int8", "maybe"])
    assert e.value.code == 2


def test_a_model_measured_slower_in_int8_stays_fp32_under_auto_only(tmp_path, monkeypatch) -> None:
    """realtime.models.INT8_NOT_FASTER: SSDLite's twin is skipped by the VNNI rule, but --int8 on still runs it."""
    import engines.cpu as C
    from realtime.models import INT8_NOT_FASTER

    vnni = C.CpuFeatures(arch="x86_64", vnni=True, avx2=True, model="test VNNI")
    monkeypatch.setattr(C, "cpu_features", lambda *a, **k: vnni)
    assert "vnni" in INT8_NOT_FASTER["person_ssdlite.onnx"]
    fp32 = blob_pose_onnx(tmp_path / "person_ssdlite.onnx")
    q = _int8_twin(fp32)
    auto = load_model(fp32, backend="ort", device="cpu")
    assert Path(auto.path) == fp32 and auto.weight_bits is None
    assert precision_note(auto).startswith("FP32") and "91 % of FP32's people" in precision_note(auto)
    on = load_model(fp32, backend="ort", device="cpu", int8="on")
    assert Path(on.path) == q and on.weight_bits == 8
    (tmp_path / "other").mkdir()
    other = blob_pose_onnx(tmp_path / "other" / "pose.onnx")
    _int8_twin(other)
    assert Path(load_model(other, backend="ort", device="cpu").path).name == "pose.int8.onnx", \
        "models not in the table follow the CPU's rule"


def test_without_the_onnx_package_auto_keeps_fp32_and_says_why(pair, monkeypatch) -> None:
    """No onnx: ONNX Runtime would run the Q/DQ file as written (slower than FP32), so the rule keeps FP32."""
    import engines.cpu as C
    import realtime.models as M

    monkeypatch.setattr(C, "cpu_features", lambda *a, **k: C.CpuFeatures(arch="x86_64", vnni=True, avx2=True))
    monkeypatch.setattr(M, "_have_onnx", lambda: False)
    m = load_model(pair[0], backend="ort", device="cpu")
    assert Path(m.path) == pair[0] and m.weight_bits is None
    note = precision_note(m)
    assert note.startswith("FP32") and "pip install onnx" in note and ".int8.int8" not in note
