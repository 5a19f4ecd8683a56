"""The converter against the order nngraph gives the released Lua graph (tests/mca/lua_graph.py), not its own.

The expected module order is derived from hg-attention.lua's construction and nngraph's topological
sort, independently of ``mca.convert_t7.released_order``; fixtures are written from that Lua graph
(nested containers, ReLUs, shared CRF clones) in the real Torch7 format, also inside a
DataParallelTable and as the 17-map (-trainBg) variant.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the converter builds a PyTorch model")
pytest.importorskip("torchfile", reason="the converter reads .t7 with torchfile")

import mca  # noqa: E402
import mca.convert_t7 as C  # noqa: E402
from mca.checkpoint import load_checkpoint  # noqa: E402
from tests.mca import lua_graph as L  # noqa: E402
from tests.mca import t7_writer as W  # noqa: E402

# the released graph's structure (stride-1 stem, HRUs, part attention, a wider last stack), small
SMALL = dict(num_stacks=2, channels=16, last_stack_channels=32, stem_channels=16, input_size=64,
             part_attention_from=1, attention_kernel=3)


def _expected(cfg) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(m.label, m.kind, m.shape) for m in L.released_graph(L.options_for(cfg))[1]]


def _actual(model) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(n, k, tuple(m.weight.shape)) for n, m, k in C.released_order(model)]


def _first_difference(a: list, b: list) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{len(a)} vs {len(b)} modules; first difference at {i}: {a[i:i + 1]} vs {b[i:i + 1]}"


@pytest.mark.parametrize("background,params,count", [(False, 58_312_088, 1169), (True, 58_328_204, 1181)])
def test_released_graph_order_from_the_lua_construction(background, params, count) -> None:
    """mca_paper's conversion order equals nngraph's order of hg-attention.lua's modules, name by name and shape by
    shape; the Lua model's own parameter count is the audit's (58,312,088; the 17-map variant 58,328,204)."""
    variant = {"background_map": True} if background else {}
    cfg = mca.get_config("mca_paper", **variant)
    lua = L.released_graph(L.options_for(cfg))[1]
    assert len(lua) == count and sum(m.num_params for m in lua) == params
    model = mca.create_model("mca_paper", **variant)
    assert sum(p.numel() for p in model.parameters()) == params
    expected, actual = _expected(cfg), _actual(model)
    assert actual == expected, _first_difference(actual, expected)


def _source(seed: int = 0, **over):
    torch.manual_seed(seed)
    m = mca.create_model("mca_paper", **{**SMALL, **over}).eval()
    with torch.no_grad():  # non-trivial statistics, so a swapped mean/var or a misplaced BN shows
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


def _lua_fixture(model) -> W.Obj:
    """The Lua graph of the model's config as Torch7 objects: gModule.modules in nngraph's order, each Residual a
    Sequential(ConcatTable(convBlock, skip[, pool]), CAddTable), the CRF clone sharing the kernel's storage; the
    weights are the PyTorch counterparts' (looked up by the Lua module's label)."""
    lua_modules, _ = L.released_graph(L.options_for(model.cfg))
    objs: dict[int, W.Obj] = {}
    counter = [0]

    def tensor(x: torch.Tensor) -> W.Tensor:
        return W.Tensor.of(x.detach().numpy())

    def to_obj(m: L.LuaModule) -> W.Obj:
        if id(m) in objs:
            return objs[id(m)]
        counter[0] += 1
        if m.shares is not None:
            src = to_obj(m.shares)
            w, b = src.fields["weight"], src.fields["bias"]
            o = W.Obj(src.cls, {**src.fields, "weight": W.Tensor(w.storage, w.shape), "bias": W.Tensor(b.storage, b.shape)})
        elif m.label is not None:
            t = model.get_submodule(m.label)
            cls = m.cls.replace("nn.", "cudnn.") if counter[0] % 2 else m.cls
            if m.kind == "bn":
                o = W.Obj(cls, {"weight": tensor(t.weight), "bias": tensor(t.bias), "running_mean": tensor(t.running_mean),
                                "running_var": tensor(t.running_var), "eps": t.eps, "momentum": 0.1, "affine": True,
                                "train": False})
            else:
                o = W.Obj(cls, {"weight": tensor(t.weight), "bias": tensor(t.bias), "nInputPlane": m.shape[1],
                                "nOutputPlane": m.shape[0], "kW": m.shape[3], "kH": m.shape[2], "dW": 1, "dH": 1,
                                "padW": m.shape[3] // 2, "padH": m.shape[2] // 2, "train": False})
        else:
            o = W.Obj(m.cls, {"modules": [to_obj(c) for c in m.children]} if m.children else {"train": False})
        objs[id(m)] = o
        return o

    mods = [to_obj(m) for m in lua_modules]
    nodes = [W.Obj("nngraph.Node", {"data": {"module": m}, "id": k + 1}) for k, m in enumerate(mods)]
    return W.Obj("nn.gModule", {"modules": mods, "forwardnodes": nodes, "train": False})


def _wrap(gmodule: W.Obj, version: int) -> W.Obj:
    """nn.DataParallelTable as cunn writes it: from version 2 on, ``__write`` puts gpuAssignments before the field
    table; the fields hold the one tower and the dispatcher (``impl``, whose ``dpt`` points back at the wrapper)."""
    gpus = [1, 2, 3, 4]
    fields = {"modules": [gmodule], "gpuAssignments": gpus, "dimension": 1, "typeStr": "torch.CudaTensor",
              "usenccl": False, "train": False, "inputGpu": {}, "outputGpu": {}}
    dpt = W.Obj("nn.DataParallelTable", fields, version=version, prelude=[gpus] if version >= 2 else [])
    fields["impl"] = W.Obj("nn.DataParallelTable.Basic", {"dpt": dpt})  # a reference to an object being read
    return dpt


def _outputs_match(src, path, **convert_kwargs) -> None:
    cfg = src.cfg
    out = C.convert(path, path.with_suffix(".pt"), "mca_paper", **{k: v for k, v in cfg.to_dict().items()
                                                                  if k in SMALL}, **convert_kwargs)
    converted, _ = load_checkpoint(out)
    background = getattr(cfg, "background_map", False)
    assert getattr(converted.cfg, "background_map", False) == background
    x = torch.rand(2, 3, 64, 64) - 0.5
    with torch.no_grad():
        a, b = src.forward_all(x), converted.forward_all(x)
        other = _source(1, **({"background_map": True} if background else {})).forward_all(x)
    for s in range(cfg.num_stacks):
        torch.testing.assert_close(b.heatmaps[s], a.heatmaps[s], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a.heatmaps[-1], other.heatmaps[-1], atol=1e-3)  # the comparison can fail
    if background:
        assert a.heatmaps[-1].shape[1] == 16 and b.background[-1].shape[1] == 1
        torch.testing.assert_close(b.background[-1], a.background[-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("wrapper", ["none", "DataParallelTable v3", "DataParallelTable v1"])
def test_lua_built_fixture_converts_exactly(tmp_path, wrapper) -> None:
    src = _source()
    assert _actual(src) == _expected(src.cfg)
    fx = _lua_fixture(src)
    if wrapper != "none":
        fx = _wrap(fx, int(wrapper[-1]))
    W.save(tmp_path / "model.t7", fx)
    _outputs_match(src, tmp_path / "model.t7")


def test_background_variant_is_detected_and_converted(tmp_path) -> None:
    """A 17-map file (-trainBg) converts onto the background_map config without being told (and on request)."""
    src = _source(background_map=True)
    W.save(tmp_path / "model.t7", _wrap(_lua_fixture(src), 3))
    _outputs_match(src, tmp_path / "model.t7")
    _outputs_match(src, tmp_path / "model.t7", background_map=True)
    with pytest.raises(C.T7Error, match="background map of the 17-map -trainBg variant"):
        C.convert(tmp_path / "model.t7", tmp_path / "no.pt", "mca_paper", background_map=False, **SMALL)


def _random_lua_fixture(opts: L.LuaOptions, seed: int = 0) -> W.Obj:
    """A gModule of the Lua graph with random weights (no PyTorch model needed: the variant may not exist here)."""
    rng = np.random.default_rng(seed)
    objs: dict[int, W.Obj] = {}

    def to_obj(m: L.LuaModule) -> W.Obj:
        if id(m) not in objs:
            if m.shares is not None:
                src = to_obj(m.shares)
                objs[id(m)] = W.Obj(src.cls, dict(src.fields))
            elif m.label is not None:
                n = m.shape[0]
                f = {"weight": W.Tensor.of(rng.standard_normal(m.shape).astype(np.float32)),
                     "bias": W.Tensor.of(rng.standard_normal(n).astype(np.float32))}
                if m.kind == "bn":
                    f |= {"running_mean": W.Tensor.of(np.zeros(n, np.float32)),
                          "running_var": W.Tensor.of(np.ones(n, np.float32)), "eps": 1e-5}
                objs[id(m)] = W.Obj(m.cls, f)
            else:
                objs[id(m)] = W.Obj(m.cls, {"modules": [to_obj(c) for c in m.children]} if m.children else {})
        return objs[id(m)]

    return W.Obj("nn.gModule", {"modules": [to_obj(m) for m in L.released_graph(opts)[0]]})


def test_a_17_map_file_is_named_when_the_config_has_16(tmp_path) -> None:
    """The -trainBg variant (17 maps, 12 modules more) offered to the 16-map config: the refusal says what it is."""
    import dataclasses

    cfg = mca.get_config("mca_paper", **SMALL)
    W.save(tmp_path / "bg.t7", _random_lua_fixture(dataclasses.replace(L.options_for(cfg), maps=17)))
    modules = C.read_t7_modules(tmp_path / "bg.t7")
    model = mca.create_model("mca_paper", **SMALL)
    assert len(modules) == len(C.released_order(model)) + 3 * (cfg.num_stacks - cfg.part_attention_from)
    with pytest.raises(C.T7Error, match="background map of the 17-map -trainBg variant"):
        C.load_into(model, modules)


def test_a_wrapper_without_a_model_names_it_and_the_lua_fix(tmp_path, capsys) -> None:
    W.save(tmp_path / "dpt.t7", _wrap(W.Obj("nn.Sequential", {"modules": [W.Obj("nn.ReLU", {})]}), 3))
    assert C.main([str(tmp_path / "dpt.t7"), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nn.DataParallelTable" in err[0] and "m:get(1):clearState()" in err[0]
    assert not (tmp_path / "out.pt").exists()


def _pool_branch_first(original):
    """The bug of issue 19: every HRU's pool branch mapped before its conv block."""
    def order(model):
        out = original(model)
        hrus = {n.rsplit(".pool_branch.", 1)[0] for n, _, _ in out if ".pool_branch." in n}
        result, i = [], 0
        while i < len(out):
            unit = next((h for h in hrus if out[i][0].startswith(h + ".")), None)
            if unit is None:
                result.append(out[i])
                i += 1
                continue
            j = i
            while j < len(out) and out[j][0].startswith(unit + "."):
                j += 1
            block = out[i:j]
            result += [e for e in block if ".pool_branch." in e[0]] + [e for e in block if ".pool_branch." not in e[0]]
            i = j
        return result
    return order


def test_the_order_checks_catch_a_pool_branch_mapped_first(tmp_path, monkeypatch) -> None:
    """With the HRU bug put into the converter, both the order check and the Lua-built fixture fail."""
    src = _source()
    W.save(tmp_path / "model.t7", _lua_fixture(src))
    monkeypatch.setattr(C, "released_order", _pool_branch_first(C.released_order))
    assert _actual(src) != _expected(src.cfg)
    with pytest.raises(C.T7Error, match="the model wants"):
        C.convert(tmp_path / "model.t7", tmp_path / "model.pt", "mca_paper", **SMALL)


def test_lua_graph_model_is_nngraphs_topsort() -> None:
    """The graph helpers on a hand-checked diamond: post-order from the outputs, inputs in call order."""
    a, b = L.conv(3, 4, 1, "a"), L.conv(3, 4, 1, "b")
    c, d = L.conv(4, 4, 1, "c"), L.conv(4, 4, 1, "d")
    inp = L.call(L.plain("nn.Identity"))
    na, nb = L.call(a, inp), L.call(b, inp)
    out1 = L.call(c, L.call(L.plain("nn.CAddTable"), nb, na))  # inputs in call order: b first
    out2 = L.call(d, na)
    labels = [m.label for m in L.gmodule_modules([inp], [out1, out2]) if m.label]
    assert labels == ["b", "a", "c", "d"]
    assert np.array_equal([m.num_params for m in (a, c)], [16, 20])
