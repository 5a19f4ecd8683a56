"""The peer tooling that needs no TensorFlow or mediapipe: TF.js graph patches, TF.js weights, BlazePose model copy,
and ``python -m realtime.bench.real`` on a generated video with hand-made MoveNet models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import load_tool as _tool
from tests.realtime.conftest import constant_movenet_onnx

def _graph(nodes: list[dict]) -> dict:
    return {"modelTopology": {"node": nodes}, "weightsManifest": []}


@pytest.mark.parametrize("node, want_targs", [
    ({"op": "_FusedConv2D", "attr": {"num_args": {"i": "1"}}}, ["DT_FLOAT"]),
    ({"op": "_FusedConv2D", "attr": {"num_args": {"i": "2"}}}, ["DT_FLOAT", "DT_FLOAT"]),
    ({"op": "_FusedConv2D", "attr": {"num_args": {"i": "1"}, "TArgs": {"list": {"type": ["DT_HALF"]}}}},
     ["DT_HALF"]),  # already there: kept
    ({"op": "FusedDepthwiseConv2dNative", "attr": {"num_args": {"i": "1"}}}, None),  # TF's op has no TArgs
])
def test_patch_topology_restores_fused_conv_targs(node, want_targs) -> None:
    conv = _tool("convert_movenet")
    original = _graph([node])
    patched, n = conv.patch_topology(original)
    attr = patched["modelTopology"]["node"][0]["attr"]
    assert attr.get("TArgs", {}).get("list", {}).get("type") == want_targs
    assert n == (1 if want_targs and "TArgs" not in node["attr"] else 0)
    assert "TArgs" not in original["modelTopology"]["node"][0]["attr"] or node["attr"].get("TArgs")  # copy, not edit


@pytest.mark.parametrize("attr, want", [({}, {"type": "DT_INT32"}), ({"index_type": {"type": "DT_INT64"}},
                                                                        {"type": "DT_INT64"})])
def test_patch_topology_fills_dropped_defaults_only(attr, want) -> None:
    conv = _tool("convert_movenet")
    patched, _ = conv.patch_topology(_graph([{"op": "Fill", "attr": dict(attr)}]),
                                     {"Fill": {"index_type": {"type": "DT_INT32"}}})
    assert patched["modelTopology"]["node"][0]["attr"]["index_type"] == want


def test_read_tfjs_weights_undoes_float16_and_uint8_quantisation(tmp_path) -> None:
    conv = _tool("convert_movenet")
    a = np.array([[1.5, -2.0], [0.25, 8.0]], np.float16)
    q = np.array([0, 10, 255], np.uint8)
    i = np.array([3, -4], np.int32)
    (tmp_path / "w.bin").write_bytes(a.tobytes() + q.tobytes() + i.tobytes())
    model = {"weightsManifest": [{"paths": ["w.bin"], "weights": [
        {"name": "a", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "q", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "i", "shape": [2], "dtype": "int32"}]}]}
    w = conv.read_tfjs_weights(model, tmp_path)
    np.testing.assert_array_equal(w["a"], a.astype(np.float32))
    np.testing.assert_allclose(w["q"], [-1.0, 4.0, 126.5])
    assert w["i"].dtype == np.int32 and w["i"].tolist() == [3, -4]
    model["weightsManifest"][0]["weights"].pop()  # the manifest no longer covers the file
    with pytest.raises(ValueError, match="covers"):
        conv.read_tfjs_weights(model, tmp_path)


def test_setup_blazepose_copies_only_missing_models(tmp_path) -> None:
    bp = _tool("setup_blazepose")
    pkg, target = tmp_path / "package", tmp_path / "pose_landmark"
    pkg.mkdir()
    target.mkdir()
    for name in bp.MODELS:
        (pkg / name).write_bytes(name.encode())
    (target / "pose_landmark_full.tflite").write_bytes(b"from the wheel")
    assert bp.install(pkg, target) == ["pose_landmark_lite.tflite", "pose_landmark_heavy.tflite"]
    assert (target / "pose_landmark_full.tflite").read_bytes() == b"from the wheel"
    assert len(bp.install(pkg, target, overwrite=True)) == 3
    with pytest.raises(FileNotFoundError, match="not a folder"):
        bp.install(pkg, tmp_path / "absent")


def _fake_peers(folder: Path) -> Path:
    single = np.zeros((1, 1, 17, 3), np.float32)
    single[..., :2], single[..., 2] = 0.5, 0.9
    multi = np.zeros((1, 6, 56), np.float32)
    multi[0, 0, :51] = np.tile([0.5, 0.5, 0.9], 17)
    multi[0, 0, 51:] = [0.2, 0.2, 0.8, 0.8, 0.9]
    folder.mkdir()
    constant_movenet_onnx(folder / "movenet_lightning.onnx", single, 64)
    constant_movenet_onnx(folder / "movenet_thunder.onnx", single, 64)
    constant_movenet_onnx(folder / "movenet_multipose.onnx", multi, None)
    return folder


def test_bench_real_runs_every_method_it_has_and_names_what_it_skips(models, video, tmp_path, capsys) -> None:
    from realtime.bench.real import main

    out = tmp_path / "real.md"
    rc = main(["--video", str(video), "--frames", "6", "--pose", str(models["pose"]), "--peers-dir",
               str(_fake_peers(tmp_path / "peers")), "--multipose-size", "64", "--threads", "1", "--out", str(out)])
    assert rc == 0
    data = json.loads(out.with_suffix(".json").read_text())
    names = [r["name"] for r in data["rows"]]
    assert len(names) == 4 and names[0].startswith("this project")
    assert {"MoveNet lightning (single pose)", "MoveNet multipose lightning",
            "MoveNet thunder on SSDLite crops"} <= set(names)
    assert all(r["fps"] > 0 for r in data["rows"]) and data["frames"] == 6
    lightning = next(r for r in data["rows"] if r["name"].startswith("MoveNet lightning"))
    assert lightning["people_per_frame"] == 1.0  # whole-frame single pose: one person per frame
    assert "BlazePose" in data["skipped"] and "--blazepose-python" in data["skipped"]["BlazePose"]
    assert "| MoveNet multipose lightning |" in out.read_text()


def test_bench_real_pose_every_box_adds_the_a_b_row_and_its_ratio(models, video, tmp_path) -> None:
    from realtime.bench.real import main

    out = tmp_path / "real.md"
    assert main(["--video", str(video), "--frames", "4", "--pose", str(models["pose"]), "--rows", "ours",
                 "--pose-every-box", "--threads", "1", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["every_box"] for r in rows] == [False, True]
    assert rows[1]["name"].endswith("every low-score box posed")
    assert "Deferred posing (the default) over every low-score box posed, same run: x" in out.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--video", "/nonexistent/v.avi"], "not found"),
    (["--pose", "/nonexistent/p.onnx"], "not found"),
])
def test_bench_real_errors_are_one_line(argv, message, video, tmp_path, capsys) -> None:
    from realtime.bench.real import main

    if "--video" not in argv:
        argv = argv + ["--video", str(video)]
    assert main(argv + ["--frames", "3", "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def _b64(*names: str) -> list[str]:
    import base64

    return [base64.b64encode(n.encode()).decode() for n in names]


@pytest.mark.parametrize("fused, ops", [(("BiasAdd", "Relu6"), ["DepthwiseConv2dNative", "BiasAdd", "Relu6"]),
                                        (("BiasAdd",), ["DepthwiseConv2dNative", "BiasAdd"])])
def test_fused_depthwise_is_split_into_the_ops_tensorflow_can_run(fused, ops) -> None:
    conv = _tool("convert_movenet")
    node = {"name": "dw", "op": "FusedDepthwiseConv2dNative", "input": ["x", "w", "b"],
            "attr": {"strides": {"list": {"i": ["1", "1", "1", "1"]}}, "padding": {"s": "U0FNRQ=="},
                     "T": {"type": "DT_FLOAT"}, "num_args": {"i": "1"}, "fused_ops": {"list": {"s": _b64(*fused)}},
                     "explicit_paddings": {"list": {}}}}
    out = conv.split_fused_depthwise(node)
    assert [n["op"] for n in out] == ops
    assert out[-1]["name"] == "dw"  # consumers still find it
    assert out[0]["input"] == ["x", "w"] and out[1]["input"] == [out[0]["name"], "b"]
    assert "fused_ops" not in out[0]["attr"] and out[0]["attr"]["strides"] == node["attr"]["strides"]
    with pytest.raises(ValueError, match="unsupported"):
        conv.split_fused_depthwise({**node, "attr": {**node["attr"], "fused_ops": {"list": {"s": _b64("Tanh")}}}})
