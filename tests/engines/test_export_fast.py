"""engines.export function by function on a tiny model (16k parameters, 32x32 crops): seconds, not minutes.

``test_export.py`` checks the registered configs end to end; this file pins down each step (the wrapper's
normalisation, the CRF custom op and its ONNX function, the metadata, fp16, verification, the YOLO path and
every CLI branch) with exact expectations on graphs small enough to export in about a second.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need PyTorch (the 'train' extra)")
onnx = pytest.importorskip("onnx")

import mca  # noqa: E402
from engines import export as E  # noqa: E402
from engines.base import ModelError  # noqa: E402
from engines.ort import OrtBackend, read_onnx_metadata  # noqa: E402
from tests.conftest import random_batchnorm  # noqa: E402

TINY = dict(num_stacks=2, channels=8, last_stack_channels=8, stem_channels=8, hourglass_depth=1,
            part_attention_from=1, crf_iterations=2, attention_kernel=3, input_size=32)


def _model(seed: int = 0, **over):
    torch.manual_seed(seed)
    return random_batchnorm(mca.create_model("mca_tiny", **{**TINY, **over}).eval())


def _crops(n: int = 2, s: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, s, s, 3), dtype=np.uint8)


def _by_hand(model, crops: np.ndarray):
    """BGR uint8 NHWC -> RGB float NCHW in [-0.5, 0.5] -> the last stack's outputs, written out."""
    x = torch.from_numpy(crops[..., ::-1].copy()).float().permute(0, 3, 1, 2) / 255.0 - 0.5
    with torch.no_grad():
        return model.forward_all(x)


@pytest.fixture(scope="module")
def tiny():
    return _model(0)


# One fixture per file, so that mutmut ties each export to the first test that uses it (the one checking it).
@pytest.fixture(scope="module")
def plain_file(tiny, tmp_path_factory):
    return E.export_pose(tiny, tmp_path_factory.mktemp("export_fast") / "a" / "b" / "plain.onnx")


@pytest.fixture(scope="module")
def custom_file(tiny, tmp_path_factory):
    return E.export_pose(tiny, tmp_path_factory.mktemp("export_fast") / "custom.onnx",
                         E.ExportOptions(custom_op=True, attention_outputs=True, source="ckpt.pt"))


@pytest.fixture
def files(tiny, plain_file, custom_file):
    return tiny, {"plain": plain_file, "custom": custom_file}


# -- the wrapper ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deploy", [False, True])
def test_wrapper_normalises_bgr_uint8_crops(deploy) -> None:
    m = _model(1, num_stacks=3)  # three stacks: the last one's outputs, not the second's
    before = {k: v.clone() for k, v in m.state_dict().items()}
    crops = _crops(seed=3)
    ref = _by_hand(m, crops)
    with torch.no_grad():
        hm = E._pose_wrapper(m, False, deploy=deploy)(torch.from_numpy(crops))
        hm2, hol, parts = E._pose_wrapper(m, True, deploy=deploy)(torch.from_numpy(crops))
    assert torch.allclose(hm, ref.heatmaps[-1], atol=1e-5) and torch.allclose(hm2, hm, atol=1e-6)
    assert torch.allclose(hol, ref.holistic[-1], atol=1e-5) and torch.allclose(parts, ref.parts[-1], atol=1e-5)
    assert abs(float(ref.heatmaps[-1].abs().max())) > 1e-3
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # the model is left as it was
    assert not any(getattr(x, "fused", False) or getattr(x, "fused_head", False) for x in m.modules())


def test_deploy_wrapper_folds_the_flip_into_a_copy_of_the_stem_and_fuses_parts() -> None:
    from mca.blocks import PartAttention
    from mca.model import Stack

    m = _model(2)
    g = E._pose_wrapper(m, False, deploy=True)
    assert g.net is not m and not g.training
    assert torch.equal(g.net.stem[0].weight, m.stem[0].weight.flip(1))
    assert all(x.fused for x in g.net.modules() if isinstance(x, PartAttention))
    assert all(x.fused_head for x in g.net.modules() if isinstance(x, Stack))
    u = E._pose_wrapper(m, False, deploy=True, fuse_parts=False)
    assert not any(x.fused for x in u.net.modules() if isinstance(x, PartAttention))
    assert not any(x.fused_head for x in u.net.modules() if isinstance(x, Stack))
    assert E._pose_wrapper(m, False).net is m  # not deploy: the model itself


def test_a_model_without_part_attention_has_two_attention_outputs() -> None:
    m = _model(0, part_attention_from=2)
    with torch.no_grad():
        out = E._pose_wrapper(m, True, deploy=True)(torch.from_numpy(_crops()))
    assert isinstance(out, tuple) and len(out) == 2 and out[1].shape == (2, 1, 8, 8)


# -- the CRF custom op ------------------------------------------------------------------------------------


def test_crf_function_forward_is_the_attention_module() -> None:
    from mca.blocks import AttentionIter

    torch.manual_seed(0)
    a = AttentionIter(4, kernel_size=5, iterations=2).eval()
    x = torch.randn(2, 4, 6, 5)
    fn = E._CRFAttentionOp.make_function()
    y, q = fn.apply(x, a.u_conv.weight, a.u_conv.bias, a.crf_kernel.weight, a.crf_kernel.bias, 2, 5)
    y0, q0 = a(x)
    assert torch.allclose(y, y0, atol=1e-6) and torch.allclose(q, q0, atol=1e-6) and q.shape == (2, 1, 6, 5)
    y1, _ = fn.apply(x, a.u_conv.weight, a.u_conv.bias, a.crf_kernel.weight, a.crf_kernel.bias, 1, 5)
    assert not torch.allclose(y1, y0, atol=1e-4)  # the iteration count is used


def test_patched_attention_modules_compute_the_same() -> None:
    from mca.blocks import AttentionIter

    m = _model(3)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = m.forward_all(x)
    n_att = sum(isinstance(a, AttentionIter) for a in m.modules())
    assert E._patch_attention_as_custom_op(m) == n_att > 16
    with torch.no_grad():
        got = m.forward_all(x)
        a = next(a for a in m.modules() if isinstance(a, AttentionIter))
        f = torch.randn(1, a.u_conv.in_channels, 8, 8)
        assert torch.allclose(a.attention_map(f), a(f)[1]) and torch.allclose(a(f)[0], f * a(f)[1])
    assert torch.allclose(got.heatmaps[-1], ref.heatmaps[-1], atol=1e-6)
    assert torch.allclose(got.parts[-1], ref.parts[-1], atol=1e-6)


def test_crf_onnx_function_body() -> None:
    f = E.crf_attention_function(2, 5, opset=18)
    assert (f.domain, f.name) == ("mca.pose", "CRFAttention")
    assert list(f.input) == ["X", "UW", "UB", "KW", "KB"] and list(f.output) == ["Y", "Q"]
    assert list(f.attribute) == ["iterations", "kernel_size"]
    assert [(o.domain, o.version) for o in f.opset_import] == [("", 18)]
    got = [(n.op_type, list(n.input), list(n.output),
            {a.name: list(a.ints) for a in n.attribute}) for n in f.node]
    assert got == [
        ("Conv", ["X", "UW", "UB"], ["U"], {"pads": [1, 1, 1, 1]}),
        ("Conv", ["U", "KW", "KB"], ["C0"], {"pads": [2, 2, 2, 2]}),
        ("Add", ["U", "C0"], ["S0"], {}),
        ("Sigmoid", ["S0"], ["Q0"], {}),
        ("Conv", ["Q0", "KW", "KB"], ["C1"], {"pads": [2, 2, 2, 2]}),
        ("Add", ["U", "C1"], ["S1"], {}),
        ("Sigmoid", ["S1"], ["Q"], {}),
        ("Mul", ["X", "Q"], ["Y"], {}),
    ]
    one = E.crf_attention_function(1, 3)
    assert [n.output[0] for n in one.node] == ["U", "C0", "S0", "Q", "Y"] and one.opset_import[0].version == 17


# -- export_pose and its metadata -------------------------------------------------------------------------


def test_plain_export_matches_the_model_with_its_metadata(files) -> None:
    m, f = files
    p = f["plain"]
    assert p.parent.name == "b" and p.is_file()
    proto = onnx.load(str(p))
    assert [i.name for i in proto.graph.input] == ["crops"] and [o.name for o in proto.graph.output] == ["heatmaps"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.doc_string == "MCA pose model mca_tiny (mpii16); input uint8 NHWC BGR crops"
    assert [(o.domain or "", o.version) for o in proto.opset_import] == [("", 17)] and not proto.functions
    assert not any(n.op_type in ("CRFAttention", "Slice") for n in proto.graph.node)  # deploy: no input flip
    crops = _crops(3, seed=5)
    (got,) = OrtBackend(p).run(crops)
    ref = _by_hand(m, crops).heatmaps[-1].numpy()
    assert got.shape == (3, 16, 8, 8) and np.abs(got - ref).max() <= 1e-5
    meta = read_onnx_metadata(p)
    cfg = m.cfg
    from mca.joints import get_joint_set

    js = get_joint_set(cfg.joint_set)
    assert meta == {
        "mca.kind": "pose", "mca.config": "mca_tiny", "mca.config_json": json.dumps(cfg.to_dict()),
        "mca.joint_set": "mpii16", "mca.joint_names": json.dumps(list(js.names)),
        "mca.flip_index": json.dumps(list(js.flip_index)), "mca.skeleton": json.dumps([list(e) for e in js.skeleton]),
        "mca.input_size": "32", "mca.heatmap_size": "8", "mca.input_layout": "NHWC", "mca.input_dtype": "uint8",
        "mca.input_channels": "BGR", "mca.attention": "decomposed", "mca.graph": "deploy", "mca.precision": "fp32",
        "mca.source": "random-init",
    }


def test_custom_op_export_carries_nodes_function_and_attention_outputs(files) -> None:
    m, f = files
    proto = onnx.load(str(f["custom"]))
    crf = [n for n in proto.graph.node if n.op_type == "CRFAttention"]
    n_att = 2 + 16  # one holistic per stack, one per part in the part-attention stack
    assert len(crf) == n_att and all(n.domain == "mca.pose" and len(n.output) == 2 for n in crf)
    value_info = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][1:] for v in proto.graph.value_info}
    for n in crf:
        assert {a.name: a.i for a in n.attribute} == {"iterations": 2, "kernel_size": 3}
        assert len(n.input) == 5 and all(n.input)
        assert value_info.get(n.output[1], [1, 8, 8]) == [1, 8, 8]  # Q typed with one channel
    assert sum(n.output[1] in value_info for n in crf) >= 2
    assert all("forward" not in vars(a) for a in m.modules())  # the caller's model is not patched
    assert [(fn.domain, fn.name) for fn in proto.functions] == [("mca.pose", "CRFAttention")]
    assert ("mca.pose", 1) in [(o.domain, o.version) for o in proto.opset_import]
    assert [o.name for o in proto.graph.output] == ["heatmaps", "holistic_attention", "part_attention"]
    meta = read_onnx_metadata(f["custom"])
    assert (meta["mca.attention"], meta["mca.graph"], meta["mca.source"]) == \
        ("custom_op", "deploy-unfused-parts", "ckpt.pt")
    crops = _crops(2, seed=6)
    got = OrtBackend(f["custom"]).run(crops)  # ONNX Runtime runs the custom node through its function
    ref = _by_hand(m, crops)
    for g, r in zip(got, [ref.heatmaps[-1], ref.holistic[-1], ref.parts[-1]]):
        assert g.shape == tuple(r.shape) and np.abs(g - r.numpy()).max() <= 1e-5
    assert E.verify_onnx(m, f["custom"]) <= 1e-5


def test_module_graph_fp16_and_refused_precisions(tmp_path) -> None:
    from engines.fp16 import is_fp16

    m = _model(4, part_attention_from=2)
    p = E.export_pose(m, tmp_path / "h.onnx", E.ExportOptions(precision="fp16", deploy=False, attention_outputs=True,
                                                             opset=18))
    proto = onnx.load(str(p))
    assert is_fp16(proto) and [o.name for o in proto.graph.output] == ["heatmaps", "holistic_attention"]
    assert [(o.domain or "", o.version) for o in proto.opset_import] == [("", 18)]
    meta = read_onnx_metadata(p)
    assert (meta["mca.precision"], meta["mca.graph"], meta["mca.attention"]) == ("fp16", "module", "decomposed")
    assert 1e-5 < E.verify_onnx(m, p) <= E.FP16_TOLERANCE
    with pytest.raises(ValueError, match=r"^export precision must be fp32 or fp16 \(INT8 comes from python -m "
                                         r"calibration\.quantize\), got 'int8'$"):
        E.export_pose(m, tmp_path / "q.onnx", E.ExportOptions(precision="int8"))


def test_metadata_graph_names() -> None:
    cfg = _model(0).cfg
    assert E._metadata(cfg, E.ExportOptions(deploy=False, custom_op=True))["mca.graph"] == "module"
    assert E._metadata(cfg, E.ExportOptions(custom_op=True))["mca.graph"] == "deploy-unfused-parts"
    assert E._metadata(cfg, E.ExportOptions())["mca.graph"] == "deploy"
    assert E.ExportOptions() == E.ExportOptions(False, False, 17, "random-init", "fp32", True)
    assert (E.OPSET, E.EXPORT_TOLERANCE, E.FP16_TOLERANCE, E.CUSTOM_DOMAIN) == (17, 1e-4, 2e-2, "mca.pose")


def test_verify_measures_the_largest_difference_over_every_output(files, monkeypatch) -> None:
    m, f = files
    assert E.verify_onnx(m, f["plain"]) <= 1e-5
    other = _model(9)
    assert E.verify_onnx(other, f["plain"]) > 1e-3
    seen = {}
    real = OrtBackend.run

    def spy(self, crops):
        seen["crops"] = crops
        return real(self, crops)

    monkeypatch.setattr(OrtBackend, "run", spy)
    E.verify_onnx(m, f["custom"], batch=3, seed=4)
    np.testing.assert_array_equal(seen["crops"], np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), np.uint8))
    # an error only in the part attention output is found too
    monkeypatch.setattr(OrtBackend, "run", lambda self, c: [o + (0.5 if i == 2 else 0) for i, o in
                                                              enumerate(real(self, c))])
    assert E.verify_onnx(m, f["custom"]) == pytest.approx(0.5, abs=1e-4)


# -- YOLO -------------------------------------------------------------------------------------------------


def _fake_ultralytics(monkeypatch, tmp_path, names):
    calls = {}

    class YOLO:
        def __init__(self, weights):
            calls["weights"] = weights
            calls["offline"] = __import__("os").environ.get("YOLO_OFFLINE")
            if names != "absent":
                self.names = names

        def export(self, **kw):
            calls["export"] = kw
            from onnx import TensorProto, helper

            x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
            y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 64, 64])
            model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g",
                                                        [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
            out = tmp_path / "tmp_export.onnx"
            onnx.save(model, str(out))
            return str(out)

    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=YOLO))
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    return calls


@pytest.mark.parametrize("names,person,classes", [
    ({0: "car", 1: "person"}, "1", ["car", "person"]),
    (["person", "bike"], "0", ["person", "bike"]),
    ({0: "a", 1: "b"}, "0", ["a", "b"]),
    (None, "0", None),
    ("absent", "0", None),
])
def test_export_yolo_with_a_stand_in_ultralytics(monkeypatch, tmp_path, names, person, classes) -> None:
    calls = _fake_ultralytics(monkeypatch, tmp_path, names)
    out = E.export_yolo(tmp_path / "w.pt", tmp_path / "d" / "e" / "y.onnx", imgsz=64)
    assert out == tmp_path / "d" / "e" / "y.onnx" and out.is_file()
    assert calls["weights"] == str(tmp_path / "w.pt") and calls["offline"] == "1"
    assert calls["export"] == dict(format="onnx", imgsz=64, dynamic=False, simplify=False, opset=17)
    meta = read_onnx_metadata(out)
    assert meta["mca.kind"] == "detector" and meta["mca.detector_family"] == "yolo" and meta["mca.input_size"] == "64"
    assert meta["mca.person_class"] == person and meta["mca.source"] == str(tmp_path / "w.pt")
    assert (json.loads(meta["mca.class_names"]) if "mca.class_names" in meta else None) == classes
    E.export_yolo(tmp_path / "w.pt", out)  # again, into the same folder, at the default size
    assert calls["export"]["imgsz"] == 640 and read_onnx_metadata(out)["mca.input_size"] == "640"


def test_export_yolo_without_ultralytics(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    with pytest.raises(ModelError, match=r"^exporting a YOLO \.pt needs the 'yolo' extra \(ultralytics, with torch "
                                         r"2\.14\.1 \+ torchvision 0\.29\.1\); see the README$"):
        E.export_yolo(tmp_path / "w.pt", tmp_path / "y.onnx")


# -- the CLI ----------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_registry(monkeypatch):
    """``mca.create_model(name)`` builds the tiny variant of ``name`` (the CLI takes only registered names)."""
    real = mca.create_model
    monkeypatch.setattr(mca, "create_model", lambda name, **kw: real(name, **{**TINY, **kw}))


def test_cli_random_init_exports_and_verifies(tiny_registry, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert E.main(["mca_tiny", "--random-init", "-o", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 2 and text[0].startswith(f"wrote {out} (") and text[0].endswith(" MB)")
    assert text[1].startswith("verify: max |PyTorch - ONNX Runtime| = ") and \
        text[1].endswith(" (tolerance 0.0001, fp32): ok")
    assert read_onnx_metadata(out)["mca.source"] == "random-init" and read_onnx_metadata(out)["mca.input_size"] == "32"


def test_cli_passes_every_option_through(tiny_registry, tmp_path, capsys, monkeypatch) -> None:
    got = {}

    def fake_export(model, out, opts):
        got["model"], got["opts"] = model, opts
        out.write_bytes(b"x" * 250_000)
        return out

    monkeypatch.setattr(E, "export_pose", fake_export)
    monkeypatch.setattr(E, "verify_onnx", lambda model, path: got.setdefault("verified", (model, path)) and 0.0)
    out = tmp_path / "m.onnx"
    assert E.main(["mca_tiny", "--random-init", "-o", str(out), "--attention", "--custom-op", "--opset", "18",
                   "--precision", "fp16"]) == 0
    assert got["opts"] == E.ExportOptions(True, True, 18, "random-init", "fp16", True)
    assert not got["model"].training and got["verified"] == (got["model"], out)
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out} (0.2 MB)", "verify: max |PyTorch - ONNX Runtime| = 0.00e+00 (tolerance 0.02, fp16): ok"]
    got.clear()
    assert E.main(["mca_tiny", "--random-init", "-o", str(out), "--no-verify"]) == 0
    assert got["opts"] == E.ExportOptions() and "verified" not in got
    assert capsys.readouterr().out == f"wrote {out} (0.2 MB)\n"
    # --random-init seeds the weights: two runs export the same model
    E.main(["mca_tiny", "--random-init", "-o", str(out), "--no-verify"])
    first = got["model"].state_dict()
    E.main(["mca_tiny", "--random-init", "-o", str(out), "--no-verify"])
    assert all(torch.equal(first[k], v) for k, v in got["model"].state_dict().items())
    torch.manual_seed(0)  # ... from seed 0
    assert all(torch.equal(first[k], v) for k, v in mca.create_model("mca_tiny").state_dict().items())


def test_cli_from_a_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    from mca.checkpoint import save_checkpoint

    m = _model(5)
    ckpt = save_checkpoint(tmp_path / "c.pt", m)
    got = {}

    def fake_export(model, out, opts):
        got["model"], got["opts"] = model, opts
        out.write_bytes(b"x")
        return out

    monkeypatch.setattr(E, "export_pose", fake_export)
    out = tmp_path / "m.onnx"
    assert E.main(["-c", str(ckpt), "-o", str(out), "--no-verify"]) == 0
    assert got["opts"].source == str(ckpt) and got["model"].cfg == m.cfg
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in got["model"].state_dict().items())
    assert E.main(["mca_tiny", "-c", str(ckpt), "-o", str(out), "--no-verify"]) == 0  # the matching name is fine
    assert E.main(["mca_small", "-c", str(ckpt), "-o", str(out)]) == 2
    assert capsys.readouterr().err == "error: checkpoint is mca_tiny, not mca_small\n"
    assert E.main(["-c", str(tmp_path / "none.pt"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert E.main(["-c", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("argv,msg", [
    (["nope", "--random-init"], "error: unknown model 'nope'"),
    (["mca_tiny"], "error: give --checkpoint FILE, or --random-init with a config name\n"),
    (["--random-init"], "error: name a config to export with --random-init\n"),
    (["mca_tiny", "--random-init", "--opset", "16"], "error: --opset must be >= 17\n"),
])
def test_cli_user_errors(argv, msg, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(E, "export_pose", lambda *a: pytest.fail("nothing is exported"))
    assert E.main([*argv, "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(msg)


def test_cli_other_checkpoint_errors_propagate(tmp_path, monkeypatch) -> None:
    import mca.checkpoint as ck

    def boom(path):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ck, "load_checkpoint", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        E.main(["-c", str(tmp_path / "c.pt"), "-o", str(tmp_path / "x.onnx")])


def test_cli_without_torch(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert E.main(["mca_tiny", "--random-init", "-o", str(tmp_path / "x.onnx")]) == 2
    assert capsys.readouterr().err == ("error: export needs PyTorch: pip install torch==2.13.0 (or the 'train' "
                                       "extra)\n")


def test_cli_yolo(tmp_path, capsys, monkeypatch) -> None:
    seen = []

    def fake_yolo(weights, out, imgsz):
        seen.append((weights, out, imgsz))
        if imgsz == 1:
            raise ModelError("no good")
        if imgsz == 2:
            raise ValueError("bad size")
        return Path(out)

    monkeypatch.setattr(E, "export_yolo", fake_yolo)
    w = tmp_path / "y.pt"
    assert E.main(["--yolo", str(w), "-o", str(tmp_path / "y.onnx")]) == 2
    assert capsys.readouterr().err == f"error: no such file: {w}\n" and seen == []
    w.write_bytes(b"x")
    assert E.main(["--yolo", str(w), "-o", str(tmp_path / "y.onnx")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'y.onnx'}\n"
    assert seen == [(w, tmp_path / "y.onnx", 640)]
    for size, msg in ((1, "no good"), (2, "bad size")):
        assert E.main(["--yolo", str(w), "-o", str(tmp_path / "y.onnx"), "--imgsz", str(size)]) == 2
        assert capsys.readouterr().err == f"error: {msg}\n"


def test_cli_requires_an_output_and_documents_its_options(capsys) -> None:
    with pytest.raises(SystemExit):
        E.main(["mca_tiny", "--random-init"])
    assert "-o/--output" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        E.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m engines.export ")
    text = f" {text} "
    for phrase in ["Export a registered MCA config (with a checkpoint, or random weights) to ONNX: uint8 NHWC BGR "
                   "crops in, the last stack's heatmaps out, metadata inside; verified against PyTorch.",
                   f"registered config: {', '.join(mca.list_models())} (optional with --checkpoint, which names its "
                   "config)", "training checkpoint (.pt) to export", "export random weights (benchmarks, tests)",
                   "ONNX file to write",
                   "also output the last stack's holistic and part attention maps (for --show-attention)",
                   "CRF attention as mca.pose::CRFAttention nodes (TensorRT plugin) instead of standard ops; ONNX "
                   "Runtime still runs it through the embedded ONNX function", "ONNX opset (>= 17, default 17)",
                   "fp16: convert the graph to float16 with the uint8 input and float32 outputs kept (what TensorRT 11 "
                   "needs for an FP16 engine; engines.build also converts on the fly). INT8: python -m "
                   "calibration.quantize", "skip the PyTorch vs ONNX Runtime check",
                   "export an Ultralytics YOLO person detector instead (needs the 'yolo' extra)",
                   "YOLO input size (with --yolo)", "--yolo WEIGHTS.pt", "{fp32,fp16}"]:
        assert f" {phrase} " in text, phrase


def test_custom_op_module_graph_logs_its_nodes(tmp_path, caplog, monkeypatch) -> None:
    import logging

    m = _model(6, part_attention_from=2)  # holistic attention only: one CRF node per stack
    with caplog.at_level(logging.INFO, logger="engines.export"):
        p = E.export_pose(m, tmp_path / "c.onnx", E.ExportOptions(custom_op=True, deploy=False, attention_outputs=True))
    assert [r.getMessage() for r in caplog.records if r.name == "engines.export"] == [
        "exported 2 attention modules as mca.pose::CRFAttention"]
    proto = onnx.load(str(p))
    assert sum(n.op_type == "CRFAttention" for n in proto.graph.node) == 2
    assert any(n.op_type == "Slice" for n in proto.graph.node)  # the module graph flips the input channels
    meta = read_onnx_metadata(p)
    assert (meta["mca.attention"], meta["mca.graph"]) == ("custom_op", "module")
    assert E.verify_onnx(m, p) <= 1e-5
    real = OrtBackend.run  # an error only in the holistic map (the second of two outputs) is found
    monkeypatch.setattr(OrtBackend, "run", lambda self, c: [o + (0.25 if i == 1 else 0) for i, o in
                                                              enumerate(real(self, c))])
    assert E.verify_onnx(m, p) == pytest.approx(0.25, abs=1e-4)
