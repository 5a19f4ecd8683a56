"""mca.convert_t7 function by function on tiny hand-written .t7 files and a tiny model (fast: seconds).

The end-to-end checks on the released graph's module classes are in ``test_convert_t7.py`` and
``test_convert_lua_order.py``; these pin down each step (reading, order, mapping, the CLI) with exact values.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the converter builds a PyTorch model")
pytest.importorskip("torchfile", reason="the converter reads .t7 with torchfile")

import mca  # noqa: E402
from mca import convert_t7 as C  # noqa: E402
from mca.checkpoint import load_checkpoint  # noqa: E402
from tests.conftest import random_batchnorm  # noqa: E402
from tests.mca import t7_writer as W  # noqa: E402

# 139 convolutions / batch norms, 16k parameters: built in milliseconds
TINY = dict(num_stacks=2, channels=8, last_stack_channels=8, stem_channels=8, hourglass_depth=1,
            part_attention_from=1, crf_iterations=1, attention_kernel=3)


def _arr(shape, start: float = 0.0) -> np.ndarray:
    n = int(np.prod(shape))
    return (start + np.arange(n, dtype=np.float32) / 8).reshape(shape)


def _conv(shape=(2, 3, 1, 1), start: float = 0.0, cls: str = "nn.SpatialConvolution", bias: bool = True) -> W.Obj:
    f = {"weight": W.Tensor.of(_arr(shape, start))}
    if bias:
        f["bias"] = W.Tensor.of(_arr((shape[0],), start + 100))
    return W.Obj(cls, f)


def _bn(n: int = 2, start: float = 0.0, **extra) -> W.Obj:
    f = {"weight": W.Tensor.of(_arr((n,), start)), "bias": W.Tensor.of(_arr((n,), start + 1)),
         "running_mean": W.Tensor.of(_arr((n,), start + 2)), "running_var": W.Tensor.of(_arr((n,), start + 3) + 1)}
    f.update(extra)
    return W.Obj("cudnn.SpatialBatchNormalization", f)


def _save(tmp_path, obj, name: str = "m.t7"):
    p = tmp_path / name
    W.save(p, obj)
    return p


def _tiny(seed: int = 0, eps: float = 1e-5, **over):
    torch.manual_seed(seed)
    return random_batchnorm(mca.create_model("mca_tiny", **{**TINY, **over}).eval(), eps)


def _as_t7(model) -> W.Obj:
    """The model's parametrised modules as a Torch7 nn.Sequential in the released order."""
    mods = []
    for _, m, kind in C.released_order(model):
        f = {"weight": W.Tensor.of(m.weight.detach().numpy())}
        if m.bias is not None:
            f["bias"] = W.Tensor.of(m.bias.detach().numpy())
        if kind == "bn":
            f.update(running_mean=W.Tensor.of(m.running_mean.numpy()), running_var=W.Tensor.of(m.running_var.numpy()),
                     eps=m.eps)
        cls = {"conv": "nn.SpatialConvolution", "deconv": "nn.SpatialFullConvolution",
               "bn": "nn.SpatialBatchNormalization"}[kind]
        mods.append(W.Obj(cls, f))
        mods.append(W.Obj("nn.ReLU", {}))
    return W.Obj("nn.Sequential", {"modules": mods})


# -- reading ---------------------------------------------------------------------------------------------


def test_reads_each_kind_with_its_arrays_in_container_order(tmp_path) -> None:
    conv = _conv((2, 3, 1, 1), 0.0, "cudnn.SpatialConvolution")
    clone = W.Obj("nn.SpatialConvolution", {"weight": W.Tensor(conv.fields["weight"].storage, (2, 3, 1, 1)),
                                            "bias": conv.fields["bias"]})
    root = W.Obj("nn.Sequential", {"modules": [
        conv, W.Obj("nn.ReLU", {}), clone,
        W.Obj("nn.Sequential", {"modules": [_bn(2, 5.0, eps=1e-3), _conv((3, 2, 2, 2), 7.0, "nn.SpatialFullConvolution")]}),
        _conv((4, 2, 1, 1), 9.0, "nn.SpatialConvolutionMM", bias=False),
    ]})
    mods = C.read_t7_modules(_save(tmp_path, root))
    assert [(m.index, m.typename, m.kind) for m in mods] == [
        (0, "cudnn.SpatialConvolution", "conv"), (1, "cudnn.SpatialBatchNormalization", "bn"),
        (2, "nn.SpatialFullConvolution", "deconv"), (3, "nn.SpatialConvolutionMM", "conv")]
    np.testing.assert_array_equal(mods[0].weight, _arr((2, 3, 1, 1)))
    np.testing.assert_array_equal(mods[0].bias, _arr((2,), 100))
    assert mods[0].running_mean is None and mods[0].running_var is None and mods[0].eps == 1e-5
    bn = mods[1]
    np.testing.assert_array_equal(bn.weight, _arr((2,), 5))
    np.testing.assert_array_equal(bn.bias, _arr((2,), 6))
    np.testing.assert_array_equal(bn.running_mean, _arr((2,), 7))
    np.testing.assert_array_equal(bn.running_var, _arr((2,), 8) + 1)
    assert bn.eps == pytest.approx(1e-3)
    np.testing.assert_array_equal(mods[2].weight, _arr((3, 2, 2, 2), 7))
    assert mods[3].bias is None and mods[3].weight.dtype == np.float32


def test_a_weight_at_another_offset_of_one_storage_is_not_a_clone(tmp_path) -> None:
    """getParameters() flattens every parameter into one storage: same storage, other offsets, other modules."""
    flat = W.Storage(np.arange(12, dtype=np.float32))
    a = W.Obj("nn.SpatialConvolution", {"weight": W.Tensor(flat, (2, 3, 1, 1), 0)})
    b = W.Obj("nn.SpatialConvolution", {"weight": W.Tensor(flat, (2, 3, 1, 1), 6)})
    c = W.Obj("nn.SpatialConvolution", {"weight": W.Tensor(flat, (2, 3, 1, 1), 0)})  # the clone of a
    mods = C.read_t7_modules(_save(tmp_path, W.Obj("nn.Sequential", {"modules": [a, b, c]})))
    assert len(mods) == 2
    np.testing.assert_array_equal(mods[1].weight.reshape(-1), np.arange(6, 12))


def test_old_batch_norm_std_and_missing_eps(tmp_path) -> None:
    std = np.array([0.5, 0.25], np.float32)
    old = W.Obj("nn.SpatialBatchNormalization", {"weight": W.Tensor.of(np.ones(2)), "bias": W.Tensor.of(np.zeros(2)),
                                                 "running_mean": W.Tensor.of(np.zeros(2)),
                                                 "running_std": W.Tensor.of(std), "eps": 0.01})
    no_eps = _bn(2, 0.0)
    (a, b) = C.read_t7_modules(_save(tmp_path, W.Obj("nn.Sequential", {"modules": [old, no_eps]})))
    np.testing.assert_allclose(a.running_var, 1 / std.astype(np.float64) ** 2 - 0.01, rtol=1e-6)  # 3.99, 15.99
    assert a.eps == pytest.approx(0.01) and b.eps == pytest.approx(1e-5)
    np.testing.assert_array_equal(b.running_var, _arr((2,), 3) + 1)  # running_var wins where it is there


def test_an_empty_tensor_is_no_tensor(tmp_path) -> None:
    m = W.Obj("nn.SpatialConvolution", {"weight": W.Tensor.of(np.ones((1, 1, 1, 1))),
                                        "bias": W.Tensor(W.Storage(np.zeros(0, np.float32)), (0,))})
    (mod,) = C.read_t7_modules(_save(tmp_path, W.Obj("nn.Sequential", {"modules": [m]})))
    assert mod.bias is None and mod.weight.shape == (1, 1, 1, 1)


def test_gmodule_nodes_and_mixed_key_tables_are_walked_in_order(tmp_path) -> None:
    a, b, c = _conv(start=1), _conv(start=2), _conv(start=3)
    nodes = [W.Obj("nngraph.Node", {"data": {"module": m}}) for m in (a, b)] + [W.Obj("nngraph.Node", {"data": {}})]
    g = W.Obj("nn.gModule", {"forwardnodes": nodes})
    # a table with an array part and a named key: numbers first, in order (Lua's sort would fail on the mix)
    root = W.Obj("nn.Sequential", {"modules": {2: c, 1: g, "extra": _conv(start=4)}})
    mods = C.read_t7_modules(_save(tmp_path, root))
    assert [float(m.weight.flat[0]) for m in mods] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("root,match", [
    ({"model": None, "epoch": 3}, r"plain Lua table \(keys: epoch, model\)"),
    ({"modules": {1: None, "n": 2}}, r"plain Lua table \(keys: modules\)"),
    ([1, 2], "holds a list, not a Torch7 model object"),
])
def test_a_plain_table_is_not_a_model(tmp_path, root, match) -> None:
    """torchfile's dict answers every attribute (with None), so the object check must look at the type."""
    with pytest.raises(C.T7Error, match=match):
        C.read_t7_modules(_save(tmp_path, root))


def test_a_model_without_parametrised_modules(tmp_path) -> None:
    p = _save(tmp_path, W.Obj("nn.Sequential", {"modules": [W.Obj("nn.ReLU", {})]}))
    with pytest.raises(C.T7Error, match=r"m\.t7 has no convolution or batch-norm modules \(is it a model\?\)$"):
        C.read_t7_modules(p)


def test_missing_file_and_missing_torchfile(tmp_path, monkeypatch) -> None:
    with pytest.raises(C.T7Error, match="^no such file: .*nope.t7$"):
        C.read_t7_modules(tmp_path / "nope.t7")
    monkeypatch.setitem(sys.modules, "torchfile", None)
    with pytest.raises(C.T7Error, match=r"needs the torchfile package \(pip install torchfile\)"):
        C.read_t7_modules(_save(tmp_path, W.Obj("nn.Sequential", {"modules": [_conv()]})))


def test_garbage_is_named_with_the_reader_error(tmp_path) -> None:
    p = tmp_path / "g.t7"
    p.write_bytes(b"\x07\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(C.T7Error, match=r"g\.t7 is not a readable Torch7 file \(\w+: "):
        C.read_t7_modules(p)


# -- DataParallelTable ------------------------------------------------------------------------------------


def _dpt(inner: list, version: int) -> W.Obj:
    gpus = [1.0, 2.0, 3.0, 4.0]
    fields = {"modules": inner, "gpuAssignments": gpus} if version < 2 else {"modules": inner}
    return W.Obj(C.DPT, fields, version=version, prelude=[gpus] if version >= 2 else [])


@pytest.mark.parametrize("version", [1, 2, 3])
def test_data_parallel_table_wrapping_one_model(tmp_path, version, caplog) -> None:
    inner = W.Obj("nn.Sequential", {"modules": [_conv(start=1), _bn(2, 2.0)]})
    with caplog.at_level(logging.INFO, logger="mca.convert_t7"):
        mods = C.read_t7_modules(_save(tmp_path, _dpt([inner], version)))
    assert [m.kind for m in mods] == ["conv", "bn"] and float(mods[0].weight.flat[0]) == 1.0
    assert "a model saved inside nn.DataParallelTable (4 GPUs)" in caplog.text


def test_data_parallel_table_reader_keeps_the_version_and_gpus(tmp_path) -> None:
    import torchfile

    torchfile.type_handlers.setdefault(C.DPT.encode(), C._read_data_parallel_table)
    root = torchfile.load(str(_save(tmp_path, _dpt([_conv()], 3))), utf8_decode_strings=True)
    assert root._version_number == 3 and C._typename(root) == C.DPT
    assert list(root["gpuAssignments"]) == [1.0, 2.0, 3.0, 4.0] and len(root["modules"]) == 1


@pytest.mark.parametrize("inner,match", [
    ([_conv(), _conv(start=2)], "is a nn.DataParallelTable with 2 wrapped modules \\(expected 1\\)"),
    ({"a": 1}, "is a nn.DataParallelTable with no wrapped modules \\(expected 1\\)"),
    ([W.Obj("nn.Sequential", {"modules": [W.Obj("nn.ReLU", {})]})], "whose wrapped module has no convolution"),
])
def test_data_parallel_table_refusals_say_how_to_unwrap(tmp_path, inner, match) -> None:
    with pytest.raises(C.T7Error, match=match) as e:
        C.read_t7_modules(_save(tmp_path, _dpt(inner, 3)))
    assert str(e.value).endswith(C.LUA_UNWRAP)


def test_data_parallel_table_without_its_field_table(tmp_path) -> None:
    broken = W.Obj(C.DPT, {}, version=3, prelude=[[1.0, 2.0], "not a table"])
    with pytest.raises(C.T7Error, match=r"a nn.DataParallelTable without its field table; unwrap it in Lua first: th "):
        C.read_t7_modules(_save(tmp_path, broken))


def test_deep_reader_returns_raises_and_restores_the_limits() -> None:
    limit = sys.getrecursionlimit()

    def deep(n: int) -> int:
        return 0 if n == 0 else 1 + deep(n - 1)

    assert C._load_deep(lambda: deep(20_000)) == 20_000  # deeper than the default limit allows
    assert C._load_deep(lambda: None) is None
    with pytest.raises(KeyError, match="boom"):
        C._load_deep(lambda: {}["boom"])
    assert sys.getrecursionlimit() == limit
    import threading

    assert threading.stack_size() == 0


# -- order and mapping ------------------------------------------------------------------------------------


def test_released_order_interleaves_each_parts_attention_and_head() -> None:
    m = _tiny()
    order = C.released_order(m)
    names = [n for n, _, _ in order]
    assert len(order) == 139 and names[:3] == ["stem.0", "stem.1", "stem.3.conv_block.0"]
    assert [k for _, _, k in order[:3]] == ["conv", "bn", "bn"]
    assert all(mod is m.get_submodule(n) for n, mod, _ in order)
    tail = [n for n in names if ".parts." in n or ".heads." in n]
    k = m.cfg.num_joints
    assert tail[:3] == ["stacks.1.head.parts.0.u_conv", "stacks.1.head.parts.0.crf_kernel",
                        "stacks.1.head.heads.0"]
    assert tail[-1] == f"stacks.1.head.heads.{k - 1}" and len(tail) == 3 * k
    assert len(set(names)) == len(names)


def test_background_modules_count_one_part_per_part_attention_stack() -> None:
    cfg = mca.get_config("mca_tiny", **{**TINY, "num_stacks": 4, "part_attention_from": 1})
    assert C._background_modules(cfg) == 9
    assert C._background_modules(mca.get_config("mca_tiny", **{**TINY, "part_attention_from": 2})) == 0
    plain, bg = _tiny(), _tiny(background_map=True)
    assert len(C.released_order(bg)) - len(C.released_order(plain)) == C._background_modules(plain.cfg)


def test_load_into_copies_every_tensor_and_eps(tmp_path) -> None:
    src, dst = _tiny(0, eps=1e-3), _tiny(1)
    mods = C.read_t7_modules(_save(tmp_path, _as_t7(src)))
    assert C.load_into(dst, mods) == 139
    for (a, ma, _), (b, mb, kind) in zip(C.released_order(src), C.released_order(dst)):
        assert a == b and torch.equal(ma.weight, mb.weight)
        assert (ma.bias is None) == (mb.bias is None) and (ma.bias is None or torch.equal(ma.bias, mb.bias))
        if kind == "bn":
            assert torch.equal(ma.running_mean, mb.running_mean) and torch.equal(ma.running_var, mb.running_var)
            assert mb.eps == pytest.approx(1e-3)
    x = torch.rand(1, 3, 128, 128) - 0.5
    with torch.no_grad():
        assert torch.equal(src(x)[-1], dst(x)[-1])


def _modules(model, tmp_path):
    return C.read_t7_modules(_save(tmp_path, _as_t7(model)))


def test_load_into_reshapes_old_two_dimensional_weights(tmp_path) -> None:
    src = _tiny(0)
    mods = _modules(src, tmp_path)
    w = mods[0].weight
    mods[0].weight = w.reshape(w.shape[0], -1)
    dst = _tiny(1)
    C.load_into(dst, mods)
    assert torch.equal(dst.stem[0].weight, src.stem[0].weight)
    mods[0].weight = w.reshape(-1)  # a 1-D weight is not an old layout: refused
    with pytest.raises(C.T7Error, match=r"^module 0 \(nn.SpatialConvolution -> stem.0\): weight is \[\d+\], the model"):
        C.load_into(dst, mods)


@pytest.mark.parametrize("breakage,match", [
    ("count", r"^the file has 138 convolution/batch-norm modules, config mca_tiny has 139 \(142 with the background map of the 17-map -trainBg variant\): not this model"),
    ("kind", r"^module 1: the file has a nn.SpatialConvolution where the model has a bn \(stem.1\)$"),
    ("shape", r"^module 1 \(nn.SpatialBatchNormalization -> stem.1\): weight is \[9\], the model wants \[64\]$"),
    ("no weight", r"^module 0 \(nn.SpatialConvolution -> stem.0\) has no weight$"),
    ("no bias", r"^module 0 \(nn.SpatialConvolution -> stem.0\) has no bias$"),
    ("no mean", r"^module 1 \(nn.SpatialBatchNormalization -> stem.1\) has no running_mean$"),
    ("no var", r"^module 1 \(nn.SpatialBatchNormalization -> stem.1\) has no running_var$"),
    ("bad var", r"^module 1 \(nn.SpatialBatchNormalization -> stem.1\): running_var is \[3\]"),
    ("extra bias", r"^module 0 \(stem.0\): the file has a bias the model does not$"),
])
def test_load_into_names_the_first_mismatch(tmp_path, breakage, match) -> None:
    src, dst = _tiny(0), _tiny(1)
    mods = _modules(src, tmp_path)
    if breakage == "count":
        mods = mods[:-1]
    elif breakage == "kind":
        mods[1] = mods[0]
    elif breakage == "shape":
        mods[1].weight = np.zeros(9, np.float32)
    elif breakage == "no weight":
        mods[0].weight = None
    elif breakage == "no bias":
        mods[0].bias = None
    elif breakage == "no mean":
        mods[1].running_mean = None
    elif breakage == "no var":
        mods[1].running_var = None
    elif breakage == "bad var":
        mods[1].running_var = np.ones(3, np.float32)
    else:
        dst.stem[0].bias = None  # a convolution without a bias
        mods[0].bias = np.zeros_like(mods[0].bias)
        C.load_into(dst, mods)  # an all-zero bias is no bias: loads
        mods[0].bias[-1] = 0.5
    with pytest.raises(C.T7Error, match=match):
        C.load_into(dst, mods)


def test_count_message_for_a_background_model(tmp_path) -> None:
    mods = _modules(_tiny(0), tmp_path)
    with pytest.raises(C.T7Error, match=r"config mca_tiny has 142 \(139 without the background map.*--config or"):
        C.load_into(_tiny(0, background_map=True), mods)


# -- convert and the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True])
def test_convert_detects_the_background_variant_and_writes_a_checkpoint(tmp_path, background, caplog) -> None:
    src = _tiny(0, background_map=background)
    p = _save(tmp_path, _as_t7(src), "model.t7")
    with caplog.at_level(logging.INFO, logger="mca.convert_t7"):
        out = C.convert(p, tmp_path / "out.pt", "mca_tiny", **TINY)
    assert out == tmp_path / "out.pt"
    model, info = load_checkpoint(out)
    assert model.cfg.background_map is background and model.cfg.num_joints == 16
    assert info["extra"]["source"] == "converted from model.t7"
    x = torch.rand(1, 3, 128, 128) - 0.5
    with torch.no_grad():
        assert torch.equal(model(x)[-1], src(x)[-1])
    assert "mapped 139 modules" in caplog.text or "mapped 142 modules" in caplog.text
    assert ("17-map variant's 142 modules" in caplog.text) is background
    assert caplog.text.rstrip().endswith(" with the background map") is background


def test_convert_with_the_background_map_refused(tmp_path) -> None:
    p = _save(tmp_path, _as_t7(_tiny(0, background_map=True)))
    with pytest.raises(C.T7Error, match="file has 142 .* config mca_tiny has 139"):
        C.convert(p, tmp_path / "o.pt", "mca_tiny", background_map=False, **TINY)
    assert not (tmp_path / "o.pt").exists()
    out = C.convert(p, tmp_path / "o.pt", "mca_tiny", background_map=True, **TINY)
    assert load_checkpoint(out)[0].cfg.background_map is True


def test_cli(tmp_path, capsys, monkeypatch) -> None:
    p = _save(tmp_path, _as_t7(_tiny(0)), "model.t7")
    calls = []
    real = C.convert

    def spy(t7, out, config, background_map=None):
        calls.append((t7, out, config, background_map))
        return real(t7, out, config, background_map=background_map, **TINY)

    monkeypatch.setattr(C, "convert", spy)
    assert C.main([str(p), str(tmp_path / "o.pt"), "--config", "mca_tiny"]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'o.pt'}\n"
    assert calls[-1] == (p, tmp_path / "o.pt", "mca_tiny", None)
    assert C.main([str(p), str(tmp_path / "o.pt"), "--config", "mca_tiny", "--no-background-map"]) == 0
    assert calls[-1][3] is False
    assert C.main([str(p), str(tmp_path / "b.pt"), "--config", "mca_tiny", "--background-map"]) == 2
    assert calls[-1][3] is True
    err = capsys.readouterr().err
    assert err.startswith("error: the file has 139 ") and err.count("\n") == 1
    assert C.main([str(p), str(tmp_path / "x.pt"), "--config", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_config" in err and not err.startswith("error: '")
    assert not (tmp_path / "b.pt").exists() and not (tmp_path / "x.pt").exists()
    with pytest.raises(SystemExit):
        C.main([str(p), str(tmp_path / "x.pt"), "--background-map", "--no-background-map"])
    calls.clear()
    C.main([str(p), str(tmp_path / "d.pt")])
    assert calls[-1][2] == "mca_paper"  # the default config


def test_cli_help_documents_the_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        C.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m mca.convert_t7 [-h] [--config CONFIG]")
    assert C.__doc__.splitlines()[0] in out and "\n\nThe released MPII model is a Torch7" in out  # raw description
    text = " ".join(out.split())
    for phrase in ["the authors' Torch7 model file (model.t7)", "checkpoint to write (.pt)",
                   "registered config the file was trained as",
                   "the file is the 17-map variant (Lua -trainBg: 16 joints + a background map); default: detected "
                   "from the module count", "the file has only the joint maps (do not detect)"]:
        assert phrase in text, phrase


def test_log_lines_name_the_file_and_config(tmp_path, caplog) -> None:
    p = _save(tmp_path, _as_t7(_tiny(0, background_map=True)), "model.t7")
    with caplog.at_level(logging.INFO, logger="mca.convert_t7"):
        C.convert(p, tmp_path / "o.pt", "mca_tiny", **TINY)
    assert [r.getMessage() for r in caplog.records] == [
        "model.t7 has the 17-map variant's 142 modules (-trainBg: the joints + a background map)",
        f"mapped 142 modules of {p} onto mca_tiny with the background map"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mca.convert_t7"):
        C.read_t7_modules(_save(tmp_path, W.Obj(C.DPT, {"modules": [_conv()], "gpuAssignments": "x"}), "d.t7"))
    assert caplog.records[-1].getMessage() == ("d.t7: a model saved inside nn.DataParallelTable (? GPUs): "
                                               "converting the wrapped module")


def test_exact_refusal_messages(tmp_path, monkeypatch) -> None:
    p = _save(tmp_path, {f"k{i}": 1 for i in range(10)})
    with pytest.raises(C.T7Error) as e:
        C.read_t7_modules(p)
    assert str(e.value) == (f"{p} holds a plain Lua table (keys: k0, k1, k2, k3, k4, k5, k6, k7), not a Torch7 model "
                            "object; save the model itself (torch.save(path, model))")
    with pytest.raises(C.T7Error, match=r"holds a plain Lua table \(keys: a, b\), not a Torch7"):
        C.read_t7_modules(_save(tmp_path, {"b": 2, "a": 1}, "n.t7"))
    monkeypatch.setitem(sys.modules, "torchfile", None)
    with pytest.raises(C.T7Error) as e:
        C.read_t7_modules(p)
    assert str(e.value) == "reading .t7 files needs the torchfile package (pip install torchfile)"


def test_reader_errors_keep_their_type_and_text(tmp_path, monkeypatch) -> None:
    import torchfile

    def bad(path, **kw):
        raise ValueError("x" * 200)

    monkeypatch.setattr(torchfile, "load", bad)
    p = _save(tmp_path, [1])
    with pytest.raises(C.T7Error) as e:
        C.read_t7_modules(p)
    assert str(e.value) == f"{p} is not a readable Torch7 file (ValueError: {'x' * 120})"


def test_table_order_and_a_shared_module_walked_once(tmp_path) -> None:
    assert sorted([3, "b", 1.0, "a", 2], key=C._table_order) == [1.0, 2, 3, "a", "b"]
    assert C._table_order(True) == (True, "True") and C._table_order(2) == (False, 2)
    shared = _conv(start=5)
    root = W.Obj("nn.Sequential", {"modules": [shared, W.Obj("nn.Sequential", {"modules": [shared]}), _conv(start=6)]})
    mods = C.read_t7_modules(_save(tmp_path, root))
    assert [float(m.weight.flat[0]) for m in mods] == [5.0, 6.0]


def test_typename_of_bytes_and_objects() -> None:
    assert C._typename(types_ns(b"nn.Sp\xffx")) == "nn.Sp\ufffdx"
    assert C._typename(types_ns("cudnn.ReLU")) == "cudnn.ReLU"
    assert C._typename(object()) == ""
    assert C._is_object(types_ns("x")) and not C._is_object({"_typename": "x"}) and not C._is_object(3)


def types_ns(name):
    import types

    return types.SimpleNamespace(_typename=name)
