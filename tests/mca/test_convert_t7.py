"""mca.convert_t7 on .t7 fixtures written in the real Torch7 serialisation with the released graph's classes.

These fixtures follow ``released_order`` (they test reading: containers, clones, old weights, errors);
the order itself is checked against the Lua graph's construction in ``test_convert_lua_order.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the converter builds a PyTorch model")
pytest.importorskip("torchfile", reason="the converter reads .t7 with torchfile")

import mca  # noqa: E402
from mca.checkpoint import load_checkpoint  # noqa: E402
from mca.convert_t7 import T7Error, convert, main, read_t7_modules, released_order  # noqa: E402
from tests.mca import t7_writer as W  # noqa: E402

SMALL = dict(num_stacks=2, channels=16, last_stack_channels=24, part_attention_from=1)


def _model(seed: int):
    torch.manual_seed(seed)
    m = mca.create_model("mca_tiny", **SMALL).eval()
    with torch.no_grad():  # non-trivial running statistics, so a swapped mean/var would show
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


def _t(x: torch.Tensor) -> W.Tensor:
    return W.Tensor.of(x.detach().numpy())


def _fixture(model, container: str = "gModule", old_conv_weights: bool = False, clones: int = 3,
             order: str = "released") -> W.Obj:
    """The model's modules as Torch7 objects in the Lua graph's order (or PyTorch's registration order), with
    ReLU/CAddTable between, like the released graph."""
    mods: list[W.Obj] = []
    walk = ([(n, m) for n, m, _ in released_order(model)] if order == "released" else list(model.named_modules()))
    for i, (name, m) in enumerate(walk):
        if isinstance(m, torch.nn.Conv2d):
            w = m.weight.detach().numpy()
            weight = W.Tensor.of(w.reshape(w.shape[0], -1) if old_conv_weights else w)
            fields = {"weight": weight, "bias": _t(m.bias) if m.bias is not None else None,
                      "nInputPlane": m.in_channels, "nOutputPlane": m.out_channels, "kW": m.kernel_size[1],
                      "kH": m.kernel_size[0], "dW": m.stride[1], "dH": m.stride[0], "padW": m.padding[1],
                      "padH": m.padding[0], "train": False}
            cls = "cudnn.SpatialConvolution" if i % 2 else "nn.SpatialConvolution"
            mods.append(W.Obj(cls, fields))
            if name.endswith("crf_kernel"):  # the shared kernel appears once per mean-field iteration
                for _ in range(clones - 1):
                    shared = {**fields, "weight": W.Tensor(weight.storage, weight.shape),
                              "bias": W.Tensor(fields["bias"].storage, fields["bias"].shape)}
                    mods.append(W.Obj(cls, shared))
                    mods.append(W.Obj("nn.CMulTable", {}))
        elif isinstance(m, torch.nn.ConvTranspose2d):
            mods.append(W.Obj("nn.SpatialFullConvolution", {"weight": _t(m.weight), "bias": _t(m.bias)}))
        elif isinstance(m, torch.nn.BatchNorm2d):
            cls = "cudnn.SpatialBatchNormalization" if i % 3 == 0 else "nn.SpatialBatchNormalization"
            mods.append(W.Obj(cls, {"weight": _t(m.weight), "bias": _t(m.bias), "running_mean": _t(m.running_mean),
                                    "running_var": _t(m.running_var), "eps": m.eps, "momentum": 0.1,
                                    "affine": True, "train": False}))
            mods.append(W.Obj("cudnn.ReLU", {"inplace": True}))
        elif isinstance(m, torch.nn.MaxPool2d):
            mods.append(W.Obj("nn.SpatialMaxPooling", {"kW": 2, "kH": 2}))
    mods.append(W.Obj("nn.CAddTable", {}))
    if container == "gModule":
        nodes = [W.Obj("nngraph.Node", {"data": {"module": m}, "id": k}) for k, m in enumerate(mods)]
        return W.Obj("nn.gModule", {"modules": mods, "forwardnodes": nodes, "train": False})
    if container == "gModule-nodes-only":
        return W.Obj("nn.gModule", {"forwardnodes": [W.Obj("nngraph.Node", {"data": {"module": m}}) for m in mods]})
    half = len(mods) // 2  # nested containers, walked depth first
    return W.Obj("nn.Sequential", {"modules": [W.Obj("nn.Sequential", {"modules": mods[:half]}),
                                               W.Obj("nn.Sequential", {"modules": mods[half:]})]})


@pytest.mark.parametrize("container,old_weights", [("gModule", False), ("gModule-nodes-only", False),
                                                   ("Sequential", True)])
def test_conversion_reproduces_the_fixture_models_outputs(tmp_path, container, old_weights) -> None:
    src = _model(0)
    W.save(tmp_path / "model.t7", _fixture(src, container, old_weights))
    mods = read_t7_modules(tmp_path / "model.t7")
    n_targets = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ConvTranspose2d))
                    for m in src.modules())
    assert len(mods) == n_targets  # the kernel's clones count once, ReLU/CAddTable are skipped
    out = convert(tmp_path / "model.t7", tmp_path / "model.pt", "mca_tiny", **SMALL)
    converted, info = load_checkpoint(out)  # weights_only load of what was written
    assert "converted from model.t7" in info["extra"]["source"]
    x = torch.rand(2, 3, 128, 128) - 0.5
    with torch.no_grad():
        a, b = src.forward_all(x), converted.forward_all(x)
        different = _model(1).forward_all(x)
    assert torch.allclose(a.heatmaps[-1], b.heatmaps[-1], atol=1e-5)
    assert not torch.allclose(a.heatmaps[-1], different.heatmaps[-1], atol=1e-3)  # the check can fail


def test_wrong_config_is_refused_before_writing(tmp_path, capsys) -> None:
    W.save(tmp_path / "model.t7", _fixture(_model(0)))
    assert main([str(tmp_path / "model.t7"), str(tmp_path / "out.pt"), "--config", "mca_paper"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "convolution/batch-norm modules" in err[0] and "mca_paper" in err[0]
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("breakage,match", [
    ("shape", "the model wants"),
    ("kind", "where the model has a conv"),
])
def test_mismatched_tensor_names_the_module(tmp_path, breakage, match) -> None:
    fx = _fixture(_model(0))
    convs = [m for m in fx.fields["modules"] if m.cls.endswith("SpatialConvolution")]
    if breakage == "shape":
        w = convs[3].fields["weight"]
        convs[3].fields["weight"] = W.Tensor.of(np.zeros((w.shape[0] + 1, *w.shape[1:]), np.float32))
    else:
        convs[0].cls = "nn.SpatialBatchNormalization"
    W.save(tmp_path / "model.t7", fx)
    with pytest.raises(T7Error, match=match):
        convert(tmp_path / "model.t7", tmp_path / "out.pt", "mca_tiny", **SMALL)
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("content,match", [
    (os.urandom(300), "not a readable Torch7 file"),
    (None, "no such file"),
    ("table", "no convolution or batch-norm"),
])
def test_not_a_model_file(tmp_path, content, match) -> None:
    p = tmp_path / "x.t7"
    if content == "table":
        W.save(p, W.Obj("nn.Sequential", {"modules": [W.Obj("nn.ReLU", {})]}))
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(T7Error, match=match):
        read_t7_modules(p)


def test_part_attention_is_mapped_in_the_lua_order(tmp_path) -> None:
    """Lua builds each part's attention then its head; a file in PyTorch's registration order must not load."""
    src = _model(0)
    order = [n for n, _, _ in released_order(src)]
    first_head = next(i for i, n in enumerate(order) if ".heads." in n)
    assert ".parts.0." in order[first_head - 1] and ".parts.1." in order[first_head + 1]
    W.save(tmp_path / "model.t7", _fixture(src, order="registration"))
    with pytest.raises(T7Error):
        convert(tmp_path / "model.t7", tmp_path / "model.pt", "mca_tiny", **SMALL)
