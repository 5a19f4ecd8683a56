"""Calibration sets (determinism, diversity rule, errors) and Q/DQ INT8 models that run in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.build import build_calibration_set, main as build_main, sample_diverse
from calibration.dataset import CalibrationError, CalibrationSet, iter_batches


def test_diversity_rule_drops_near_duplicates() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    other = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = [base] * 10 + [np.clip(base.astype(int) + 1, 0, 255).astype(np.uint8)] + [other] * 5 + [base]
    kept = list(sample_diverse(iter(frames), min_change=4.0))
    assert len(kept) == 3  # base, other, base again
    assert len(list(sample_diverse(iter(frames), stride=4, min_change=0.0))) == 5


def test_calibration_set_is_deterministic_and_round_trips(small_pose, tmp_path) -> None:
    a = build_calibration_set(["synthetic:12"], small_pose, None, 20, 50, 4.0, seed=3)
    b = build_calibration_set(["synthetic:12"], small_pose, None, 20, 50, 4.0, seed=3)
    assert np.array_equal(a.crops, b.crops) and a.crops.shape[1:] == (128, 128, 3)
    assert len(a.crops) == 20
    c = build_calibration_set(["synthetic:12"], small_pose, None, 20, 50, 4.0, seed=4)
    assert not np.array_equal(a.crops, c.crops)
    path = a.save(tmp_path / "cal.npz")
    back = CalibrationSet.load(path)
    assert np.array_equal(back.crops, a.crops) and back.manifest["count"] == 20 and back.manifest["seed"] == 3


@pytest.mark.parametrize("content,match", [
    (None, "not found"), (b"not a zip", "not a readable"), ("no_crops", "no 'crops'"), ("empty", "no crops"),
])
def test_bad_calibration_files(tmp_path, content, match) -> None:
    p = tmp_path / "c.npz"
    if content == "no_crops":
        np.savez(p, other=np.zeros(3))
    elif content == "empty":
        np.savez(p, crops=np.zeros((0, 8, 8, 3), np.uint8))
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(CalibrationError, match=match):
        CalibrationSet.load(p)


def test_build_cli_errors(small_pose, tmp_path, capsys) -> None:
    assert build_main([str(tmp_path / "missing.mp4"), "--pose", str(small_pose), "-o", str(tmp_path / "c.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_iter_batches() -> None:
    sizes = [len(b) for b in iter_batches(np.zeros((10, 2)), 4)]
    assert sizes == [4, 4, 2]


def test_qdq_model_runs_in_onnxruntime_within_tolerance(small_pose, tmp_path) -> None:
    import onnx

    from calibration.quantize import quantize_qdq
    from engines.ort import OrtBackend

    cal = build_calibration_set(["synthetic:16"], small_pose, None, 32, 50, 4.0, seed=1)
    out = quantize_qdq(small_pose, cal, tmp_path / "int8.onnx", "minmax", exclude=["attention"])
    m = onnx.load(str(out))
    ops = {n.op_type for n in m.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    zero_points = [i for i in m.graph.initializer if "zero_point" in i.name]
    assert zero_points and all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)  # symmetric
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["mca.precision"] == "int8" and meta["mca.kind"] == "pose"
    crops = cal.crops[:8]
    f32, i8 = OrtBackend(small_pose).run(crops)[0], OrtBackend(out).run(crops)[0]
    # Tolerance: INT8 heatmaps within 10 % of the FP32 heatmaps' range (random weights, 32 calibration crops).
    assert np.abs(f32 - i8).max() <= 0.1 * (f32.max() - f32.min())
    assert not np.array_equal(f32, i8)


def test_quantize_cli_errors(small_pose, tmp_path, capsys) -> None:
    from calibration.quantize import main

    assert main([str(small_pose), str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_node_groups_follow_the_module_tree(small_pose) -> None:
    from calibration.sensitivity import node_groups

    groups = node_groups(small_pose)
    assert "/stem" in groups and "/stacks.0/hourglass" in groups and "/stacks.0/head" in groups
    names = [n for g in groups.values() for n in g]
    assert len(names) == len(set(names))  # every node in exactly one group
    assert all(n.startswith(g) for g, ns in groups.items() if g != "/input" for n in ns)
    import onnx

    named = {n.name for n in onnx.load(str(small_pose)).graph.node
             if n.name and n.op_type not in ("Constant", "Identity", "Shape")}
    assert set(names) == named  # every node of the graph is in one group


def test_sensitivity_quantizes_one_group_at_a_time(small_pose, tmp_path, capsys) -> None:
    import onnx

    from calibration.quantize import quantize_qdq
    from calibration.sensitivity import layer_sensitivity, main, node_groups

    cal = build_calibration_set(["synthetic:8"], small_pose, None, 16, 50, 4.0, seed=1)
    groups = node_groups(small_pose)
    everything = [n for g in groups.values() for n in g]
    # excluding every compute node leaves no quantized convolution; excluding all but the stem quantizes the stem only
    none_q = onnx.load(str(quantize_qdq(small_pose, cal, tmp_path / "none.onnx", exclude=everything, exact=True)))
    stem_q = onnx.load(str(quantize_qdq(small_pose, cal, tmp_path / "stem.onnx",
                                        exclude=[n for n in everything if n not in groups["/stem"]], exact=True)))

    def quantized_convs(m) -> set[str]:  # convs whose weight comes through a DequantizeLinear
        dq_out = {n.output[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
        return {n.name for n in m.graph.node if n.op_type == "Conv" and n.input[1] in dq_out}

    assert quantized_convs(none_q) == set()
    assert quantized_convs(stem_q) and all(n.startswith("/stem") for n in quantized_convs(stem_q))
    rows = layer_sensitivity(small_pose, cal, num=8, groups=["/stem", "/stacks.0/head"], progress=False)
    assert [r.group for r in rows] != [] and {r.group for r in rows} == {"/stem", "/stacks.0/head"}
    assert rows[0].keypoint_error_px >= rows[1].keypoint_error_px >= 0
    cal.save(tmp_path / "c.npz")
    assert main([str(small_pose), str(tmp_path / "c.npz"), "--groups", "/nope"]) == 2
    assert "unknown groups" in capsys.readouterr().err


def test_detector_quantizes_with_its_own_inputs_and_still_finds_people(tmp_path, capsys) -> None:
    from calibration.quantize import main as quantize_main
    from calibration.quantize import quantize_detector
    from mca.data.synthetic import SceneRenderer
    from realtime.detectors import PersonDetector
    from realtime.models import BUNDLED, load_model
    from realtime.tracking import iou_matrix

    det_path, pose_path = BUNDLED["yolo_synth"].path, BUNDLED["mca_tiny_synth"].path
    if not (det_path.exists() and pose_path.exists()):
        pytest.skip("the bundled demo models are not in this checkout")
    cal = build_calibration_set(["synthetic:8"], pose_path, det_path, 16, 50, 4.0, seed=2, detector_frames=8)
    assert cal.detector_inputs is not None and cal.detector_inputs.dtype == np.uint8 and len(cal.detector_inputs) == 8
    out = quantize_detector(det_path, cal, tmp_path / "det.int8.onnx")
    a = PersonDetector(load_model(det_path, backend="ort"))
    b = PersonDetector(load_model(out, backend="ort"))
    assert b.family == "yolo" and b.backend.metadata["mca.precision"] == "int8"
    scene = SceneRenderer("mpii16", (640, 480), seed=99, min_people=2, max_people=2, min_height=200).render(0)
    da, db = a.detect(scene.image), b.detect(scene.image)
    assert len(da) >= 1 and len(db) >= 1
    assert iou_matrix(da.boxes[:1], db.boxes).max() >= 0.8  # INT8 finds the same most confident person
    no_det = CalibrationSet(cal.crops)  # a set built without --detector
    no_det.save(tmp_path / "nodet.npz")
    assert quantize_main([str(det_path), str(tmp_path / "nodet.npz"), "-o", str(tmp_path / "x.onnx"),
                          "--detector"]) == 2
    assert "no detector inputs" in capsys.readouterr().err


def test_ssd_detector_quantizes_with_uint8_inputs_and_runs_int8(tmp_path) -> None:
    """SSD (TF Object Detection API, uint8 NHWC input, NMS in a Loop): calibrated with uint8 frames as it takes them,
    and the CPU's in-memory INT8 step keeps the initializers the Loop body reads."""
    from calibration.quantize import quantize_detector
    from realtime.detectors import PersonDetector
    from realtime.models import BUNDLED, load_model
    from realtime.tracking import iou_matrix
    from tests.realtime.conftest import shared_data_dir

    det_path, pose_path = BUNDLED["ssdlite"].path, BUNDLED["mca_tiny_real"].path
    video = shared_data_dir() / "real-video" / "vtest.avi"
    if not (det_path.exists() and pose_path.exists()):
        pytest.skip("the bundled SSDLite and real-footage pose models are not in this checkout")
    if not video.exists():
        pytest.skip(f"real footage (SSDLite finds no synthetic people) is not here: {video}")
    cal = build_calibration_set([str(video)], pose_path, det_path, 8, 6, 4.0, seed=2, detector_frames=6)
    assert cal.detector_inputs is not None and cal.detector_inputs.shape[1:] == (300, 300, 3)
    assert cal.manifest["detector_inputs_scale"] == 1
    out = quantize_detector(det_path, cal, tmp_path / "ssd.int8.onnx")
    a = PersonDetector(load_model(det_path, backend="ort", int8="off"))
    b = PersonDetector(load_model(out, backend="ort"))
    assert b.family == a.family == "ssd_decoded" and b.backend.metadata["mca.precision"] == "int8"
    from calibration.quantize import file_sha256

    assert b.backend.metadata["mca.fp32_sha256"] == file_sha256(det_path)  # the twin knows its FP32 file
    assert b.backend.int8_rewritten > 0  # the integer kernels run (the Loop's outer reads survived the rewrite)
    import cv2

    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 400)
    ok, frame = cap.read()
    cap.release()
    assert ok
    da, db = a.detect(frame), b.detect(frame)
    assert len(da) >= 2 and len(db) >= 1
    assert iou_matrix(da.boxes[:1], db.boxes).max() >= 0.7  # INT8 finds the most confident FP32 person


def test_detector_inputs_of_another_model_are_refused(tmp_path, capsys) -> None:
    from calibration.quantize import main as quantize_main
    from realtime.models import BUNDLED

    det_path = BUNDLED["ssdlite"].path
    if not det_path.exists():
        pytest.skip("the bundled SSDLite is not in this checkout")
    yolo_like = CalibrationSet(np.zeros((2, 128, 128, 3), np.uint8), np.zeros((2, 3, 320, 320), np.uint8),
                               {"detector_inputs_scale": 1 / 255})
    yolo_like.save(tmp_path / "y.npz")
    assert quantize_main([str(det_path), str(tmp_path / "y.npz"), "-o", str(tmp_path / "x.onnx"), "--detector"]) == 2
    assert "build the set with this detector" in capsys.readouterr().err


def test_float16_qdq_file_keeps_int8_weights_and_the_numbers(small_pose, tmp_path, capsys) -> None:
    """``--float16``: TensorRT 11's INT8 file, its float layers in FP16; ONNX Runtime must give what it means."""
    import onnx

    from calibration.quantize import main as quantize_main
    from engines.lint import lint_file
    from engines.ort import OrtBackend

    cal = build_calibration_set(["synthetic:16"], small_pose, None, 32, 50, 4.0, seed=1)
    cal_path = cal.save(tmp_path / "cal.npz")
    out = tmp_path / "int8.onnx"
    assert quantize_main([str(small_pose), str(cal_path), "-o", str(out), "--float16"]) == 0
    twin = tmp_path / "int8.fp32-floats.onnx"
    assert "FP32-float twin" in capsys.readouterr().out and twin.is_file()
    m = onnx.load(str(out))
    assert next(o.version for o in m.opset_import if o.domain == "") >= 19
    scales = {n.input[1] for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    inits = {t.name: t for t in m.graph.initializer}
    assert scales and all(inits[s].data_type == onnx.TensorProto.FLOAT16 for s in scales)
    weights = [n.input[0] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weights and all(inits[w].data_type == onnx.TensorProto.INT8 for w in weights)
    assert not [f for f in lint_file(out) if f.severity == "error"]
    crops = cal.crops[:8]
    f32, i8, h8 = (OrtBackend(p).run(crops)[0] for p in (small_pose, twin, out))
    # Tolerance: INT8 within 10 % of the FP32 heatmaps' range (as above); FP16 floats add at most 5 % to that.
    rng = f32.max() - f32.min()
    assert np.abs(f32 - h8).max() <= 0.1 * rng and np.abs(i8 - h8).max() <= 0.05 * rng
