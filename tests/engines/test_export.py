"""PyTorch -> ONNX -> ONNX Runtime, for every registered config."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need PyTorch (the 'train' extra)")

import mca  # noqa: E402
from engines.export import CUSTOM_DOMAIN, main as export_main, verify_onnx  # noqa: E402
from engines.ort import OrtBackend, read_onnx_metadata  # noqa: E402
from tests.engines.conftest import randomized_model  # noqa: E402

TOL = 1e-4  # FP32 export tolerance (max abs error on heatmaps)


def _crops(n: int, s: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, s, s, 3), dtype=np.uint8)


def _reference(model, crops: np.ndarray) -> list[np.ndarray]:
    x = torch.from_numpy(crops).float().flip(-1).permute(0, 3, 1, 2) / 255.0 - 0.5
    with torch.no_grad():
        out = model.forward_all(x)
    res = [out.heatmaps[-1].numpy(), out.holistic[-1].numpy()]
    if out.parts[-1] is not None:
        res.append(out.parts[-1].numpy())
    return res


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", mca.list_models())
def test_onnxruntime_equals_pytorch(exported, name: str, batch: int) -> None:
    model, path = exported(name)
    be = OrtBackend(path)
    s = model.cfg.input_size
    crops = _crops(batch, s, seed=batch)
    (got,) = be.run(crops)
    ref = _reference(model, crops)[0]
    assert got.shape == (batch, model.cfg.num_joints, s // 4, s // 4)
    assert np.abs(got - ref).max() <= TOL
    assert np.abs(ref).max() > 1e-3, "reference output is degenerate; the comparison would prove nothing"


@pytest.mark.parametrize("name", ["mca_tiny", "mca_paper"])
def test_custom_op_and_decomposed_exports_agree(exported, name: str) -> None:
    import onnx

    model, dec = exported(name, custom_op=False, attention=True)
    _, cus = exported(name, custom_op=True, attention=True)
    proto = onnx.load(str(cus))
    n_attention = model.cfg.num_stacks + (model.cfg.num_stacks - model.cfg.part_attention_from) * model.cfg.num_joints
    custom_nodes = [n for n in proto.graph.node if n.domain == CUSTOM_DOMAIN]
    assert len(custom_nodes) == n_attention and all(n.op_type == "CRFAttention" for n in custom_nodes)
    attrs = {a.name: a.i for a in custom_nodes[0].attribute}
    assert attrs == {"iterations": model.cfg.crf_iterations, "kernel_size": model.cfg.attention_kernel}
    assert not any(n.domain == CUSTOM_DOMAIN for n in onnx.load(str(dec)).graph.node)
    crops = _crops(2, model.cfg.input_size, seed=7)
    a, b = OrtBackend(dec).run(crops), OrtBackend(cus).run(crops)
    ref = _reference(model, crops)
    assert len(a) == len(b) == len(ref) == 3
    for x, y, r in zip(a, b, ref):
        assert np.abs(x - y).max() <= TOL and np.abs(x - r).max() <= TOL


def test_attention_outputs_are_maps_in_0_1(exported) -> None:
    model, path = exported("mca_tiny", attention=True)
    be = OrtBackend(path)
    assert [o.name for o in be.outputs] == ["heatmaps", "holistic_attention", "part_attention"]
    hm, hol, parts = be.run(_crops(2, 128))
    assert hol.shape == (2, 1, 32, 32) and parts.shape == (2, 16, 32, 32)
    assert 0 < hol.min() and hol.max() < 1 and 0 < parts.min() and parts.max() < 1


def test_metadata_round_trips(exported) -> None:
    model, path = exported("mca_tiny_coco")
    meta = read_onnx_metadata(path)
    cfg = model.cfg
    assert meta["mca.kind"] == "pose" and meta["mca.config"] == "mca_tiny_coco"
    assert mca.MCAConfig(**json.loads(meta["mca.config_json"])) == cfg
    assert json.loads(meta["mca.flip_index"]) == list(mca.COCO17.flip_index)
    assert json.loads(meta["mca.joint_names"]) == list(mca.COCO17.names)
    assert [tuple(e) for e in json.loads(meta["mca.skeleton"])] == list(mca.COCO17.skeleton)
    assert (meta["mca.input_size"], meta["mca.heatmap_size"]) == ("128", "32")
    assert (meta["mca.input_layout"], meta["mca.input_dtype"], meta["mca.input_channels"]) == ("NHWC", "uint8", "BGR")
    be = OrtBackend(path)
    assert be.metadata == meta and be.input.shape[1:] == (128, 128, 3) and be.input.dtype == np.uint8


def test_input_normalisation_is_in_the_graph(exported) -> None:
    """Feeding a uniform BGR crop must equal PyTorch on the RGB/255-0.5 tensor (channel order matters)."""
    model, path = exported("mca_tiny")
    crop = np.zeros((1, 128, 128, 3), np.uint8)
    crop[..., 0] = 255  # pure blue in BGR
    (got,) = OrtBackend(path).run(crop)
    x = torch.full((1, 3, 128, 128), -0.5)
    x[:, 2] = 0.5  # blue is the last RGB channel
    with torch.no_grad():
        ref = model(x)[-1].numpy()
    assert np.abs(got - ref).max() <= TOL


def test_cli_random_init_verifies(tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert export_main(["mca_tiny", "--random-init", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "verify:" in text and "ok" in text and out.is_file()


@pytest.mark.parametrize("argv,msg", [
    (["nope", "--random-init", "-o", "x.onnx"], "valid:"),
    (["mca_tiny", "-o", "x.onnx"], "--checkpoint"),
    (["mca_tiny", "--random-init", "--opset", "13", "-o", "x.onnx"], "opset"),
])
def test_cli_user_errors_exit_2(argv, msg, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert export_main(argv) == 2
    assert msg in capsys.readouterr().err


def test_verify_detects_a_wrong_model(exported) -> None:
    model, path = exported("mca_tiny")
    other = mca.create_model("mca_tiny").eval()
    assert verify_onnx(model, path) <= TOL
    assert verify_onnx(other, path) > TOL


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", ["mca_paper", "mca_4s"])
def test_full_size_export_equals_pytorch(exported, name: str, batch: int) -> None:
    """The full released graph (58 M params, 64 GMACs at 256x256), exported once per session: ~15 s on 2 cores."""
    model, path = exported(name, full=True)
    assert model.cfg == mca.get_config(name)  # really the full-size config
    s = model.cfg.input_size
    crops = _crops(batch, s, seed=10 + batch)
    (got,) = OrtBackend(path).run(crops)
    ref = _reference(model, crops)[0]
    assert got.shape == (batch, model.cfg.num_joints, s // 4, s // 4)
    assert np.abs(got - ref).max() <= TOL and np.abs(ref).max() > 1e-3


def test_detector_metadata_stamp_makes_any_onnx_a_detector(tmp_path) -> None:
    from engines.export import add_detector_metadata
    from realtime.detectors import PersonDetector
    from tests.realtime.conftest import constant_yolo_onnx

    import engines
    import onnx

    p = constant_yolo_onnx(tmp_path / "d.onnx", [(32, 32, 10, 10, 0.9)])
    m = onnx.load(str(p))
    del m.metadata_props[:]
    onnx.save(m, str(p))
    add_detector_metadata(p, "yolo", 64, 0, source="unit test")
    meta = read_onnx_metadata(p)
    assert (meta["mca.kind"], meta["mca.detector_family"], meta["mca.input_size"]) == ("detector", "yolo", "64")
    assert PersonDetector(engines.load(p, backend="ort")).family == "yolo"
    with pytest.raises(ValueError, match="valid: yolo, ssd"):
        add_detector_metadata(p, "detr", 64, 0)
    add_detector_metadata(p, "yolo", 64, 1, class_names=["car", "person"])
    meta = read_onnx_metadata(p)
    assert json.loads(meta["mca.class_names"]) == ["car", "person"] and meta["mca.person_class"] == "1"
    assert meta["mca.source"] == p.name  # restamped without a source: the file name
    with pytest.raises(ValueError, match="not one of the 2 class names"):
        add_detector_metadata(p, "yolo", 64, 2, class_names=["car", "person"])


def test_yolo_export_without_ultralytics_is_a_clear_error(tmp_path, capsys) -> None:
    import importlib.util

    if importlib.util.find_spec("ultralytics") is not None:
        pytest.skip("ultralytics is installed here; the message is for machines without the 'yolo' extra")
    w = tmp_path / "y.pt"
    w.write_bytes(b"x")
    assert export_main(["--yolo", str(w), "-o", str(tmp_path / "y.onnx")]) == 2
    assert "'yolo' extra" in capsys.readouterr().err


def test_deploy_graph_is_the_module_graph_with_fewer_nodes(tmp_path) -> None:
    """Fused part attention and the flip folded into the stem: same outputs, fewer convolutions, no input Slice."""
    import onnx

    from engines.export import ExportOptions, export_pose

    model = randomized_model("mca_tiny", seed=3)
    dep = export_pose(model, tmp_path / "deploy.onnx", ExportOptions(attention_outputs=True))
    mod = export_pose(model, tmp_path / "module.onnx", ExportOptions(attention_outputs=True, deploy=False))
    crops = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    for a, b in zip(OrtBackend(dep).run(crops), OrtBackend(mod).run(crops)):
        assert a.shape == b.shape and np.abs(a - b).max() <= TOL
    ops = {p: [n.op_type for n in onnx.load(str(p)).graph.node] for p in (dep, mod)}
    k = model.cfg.num_joints
    # per part: u_conv + 3 CRF convs + head -> one of each for all K parts
    assert ops[mod].count("Conv") - ops[dep].count("Conv") == (k - 1) * (2 + model.cfg.crf_iterations)
    assert "Slice" in ops[mod] and "Slice" not in ops[dep]
    meta = {p.key: p.value for p in onnx.load(str(dep)).metadata_props}
    assert meta["mca.graph"] == "deploy"


def _perturb_heatmap_bias(path, delta: float) -> None:
    """Add ``delta`` to one joint's bias in the node that writes ``heatmaps``: that joint's map moves by delta."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    (last,) = [n for n in proto.graph.node if "heatmaps" in n.output]
    inits = {t.name: t for t in proto.graph.initializer}
    (name,) = [i for i in last.input if i in inits]  # the head's bias (a constant input of the last node)
    bias = numpy_helper.to_array(inits[name]).copy()
    bias.flat[0] += delta
    inits[name].CopyFrom(numpy_helper.from_array(bias, name))
    onnx.save(proto, str(path))


def test_verify_reports_a_small_error_in_the_exported_graph(tmp_path) -> None:
    """One bias off by 1e-3 (10x the FP32 tolerance, well under the FP16 one) is what verify_onnx measures."""
    from engines.export import ExportOptions, export_pose

    model = randomized_model("mca_tiny")
    path = export_pose(model, tmp_path / "m.onnx", ExportOptions())
    assert verify_onnx(model, path) <= TOL
    _perturb_heatmap_bias(path, 1e-3)
    err = verify_onnx(model, path)
    assert err == pytest.approx(1e-3, abs=1e-5)


def test_cli_fails_an_export_that_is_off_by_more_than_the_fp32_tolerance(tmp_path, capsys, monkeypatch) -> None:
    """The CLI's FAILED branch, reached by a real graph error of 1e-3: exit 1, the message, the file kept."""
    import engines.export as ex

    real_export = ex.export_pose

    def export_then_break(model, out, opts):
        path = real_export(model, out, opts)
        _perturb_heatmap_bias(path, 1e-3)
        return path

    monkeypatch.setattr(ex, "export_pose", export_then_break)
    out = tmp_path / "m.onnx"
    assert export_main(["mca_tiny", "--random-init", "-o", str(out)]) == 1
    text = capsys.readouterr().out
    assert "FAILED" in text and "tolerance 0.0001" in text and out.is_file()


@pytest.mark.parametrize("err,precision,rc", [
    (0.9e-4, "fp32", 0), (1.1e-4, "fp32", 1), (1e-3, "fp32", 1),
    (1.9e-2, "fp16", 0), (2.1e-2, "fp16", 1),
])
def test_cli_verification_threshold(err, precision, rc, tmp_path, capsys, monkeypatch) -> None:
    """The stated tolerances (README: max abs error <= 1e-4 in FP32; 2e-2 in FP16) decide the exit status."""
    import engines.export as ex

    def fake_export(model, out, opts):
        out.write_bytes(b"x")
        return out

    monkeypatch.setattr(ex, "export_pose", fake_export)
    monkeypatch.setattr(ex, "verify_onnx", lambda model, path: err)
    out = tmp_path / "m.onnx"
    assert export_main(["mca_tiny", "--random-init", "--precision", precision, "-o", str(out)]) == rc
    text = capsys.readouterr().out
    assert ("FAILED" in text) == (rc == 1) and (" ok" in text) == (rc == 0)
