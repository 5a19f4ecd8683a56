"""The MCA network: shapes over the whole registry, attention semantics, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mca
from mca.blocks import AttentionIter, HourglassResidual, PartAttention, Residual
from mca.model import Hourglass, MCANet
from mca.summary import count_macs, model_stats



@pytest.fixture(autouse=True)
def _no_grad():
    """Inference only here; a fixture, not a global switch, so other test modules keep autograd."""
    with torch.no_grad():
        yield

# Full-size configs are big on a 2-core CPU: shapes are checked at the config's own
# input size but with fewer/narrower stacks where the name says so.
SHRINK = {"mca_paper": dict(num_stacks=2, channels=32, last_stack_channels=64, part_attention_from=1),
          "mca_4s": dict(num_stacks=2, channels=32, last_stack_channels=32, part_attention_from=1)}


@pytest.mark.parametrize("name", mca.list_models())
def test_every_stack_output_shape(name: str) -> None:
    over = SHRINK.get(name, {})
    cfg = mca.get_config(name, **over)
    model = mca.create_model(name, **over).eval()
    x = torch.randn(2, 3, cfg.input_size, cfg.input_size)
    out = model.forward_all(x)
    h = cfg.heatmap_size
    assert len(out.heatmaps) == cfg.num_stacks
    for i, hm in enumerate(out.heatmaps):
        assert hm.shape == (2, cfg.num_joints, h, h)
        assert out.holistic[i].shape == (2, 1, h, h)
        if i >= cfg.part_attention_from:
            assert out.parts[i] is not None and out.parts[i].shape == (2, cfg.num_joints, h, h)
        else:
            assert out.parts[i] is None
    assert torch.isfinite(out.heatmaps[-1]).all()


@pytest.mark.parametrize("name", mca.list_models())
def test_registered_configs_structure(name: str) -> None:
    cfg = mca.get_config(name)
    model = mca.create_model(name) if name not in SHRINK else None
    n_part = cfg.num_stacks - cfg.part_attention_from
    assert n_part >= 1, "every config has part attention in its later stacks"
    if model is not None:
        heads = [s.head for s in model.stacks]
        assert sum(isinstance(h, PartAttention) for h in heads) == n_part
        assert all(len(h.parts) == cfg.num_joints for h in heads if isinstance(h, PartAttention))


def test_paper_config_is_the_released_graph() -> None:
    cfg = mca.get_config("mca_paper")
    assert (cfg.num_stacks, cfg.channels, cfg.last_stack_channels, cfg.stem_stride) == (8, 256, 512, 1)
    assert (cfg.attention_kernel, cfg.crf_iterations, cfg.input_size, cfg.heatmap_size) == (11, 3, 256, 64)
    assert cfg.num_joints == 16 and cfg.part_attention_from == 4


def test_paper_parameter_count_matches_summary_and_spec() -> None:
    model = mca.create_model("mca_paper")
    params = sum(p.numel() for p in model.parameters())
    stats = model_stats("mca_paper")
    assert stats.params == params
    # ../shared/design/mca-spec.md: about 58.3 M parameters and 63.9 GMACs.
    assert abs(params / 58.3e6 - 1) < 0.01
    assert abs(stats.macs / 63.9e9 - 1) < 0.01
    # The 24 HRUs hold 33.5 M parameters (spec).
    hrus = [m for m in model.modules() if isinstance(m, HourglassResidual)]
    assert len(hrus) == 24
    assert abs(sum(p.numel() for m in hrus for p in m.parameters()) / 33.5e6 - 1) < 0.01


def test_crf_kernel_is_one_shared_parameter() -> None:
    att = AttentionIter(8, kernel_size=11, iterations=3)
    convs = [m for m in att.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 1]
    assert len(convs) == 1, "one LxL kernel, not a copy per iteration"
    n_params = sum(p.numel() for p in att.parameters())
    assert n_params == (8 * 9 + 1) + (11 * 11 + 1)
    # The same kernel acts in every iteration: zeroing it changes every Q after the first.
    x = torch.randn(1, 8, 9, 9)
    u = att.u_conv(x)
    k = att.crf_kernel
    q = torch.sigmoid(u + k(u))
    q = torch.sigmoid(u + k(q))
    q = torch.sigmoid(u + k(q))
    torch.testing.assert_close(att.attention_map(x), q)


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_attention_multiplies_features_by_its_map(iterations: int) -> None:
    att = AttentionIter(6, kernel_size=5, iterations=iterations)
    x = torch.randn(2, 6, 7, 10)
    gated, q = att(x)
    assert q.shape == (2, 1, 7, 10)
    assert ((q > 0) & (q < 1)).all()
    torch.testing.assert_close(gated, x * q.expand_as(x))


def test_part_attention_has_separate_modules_one_map_per_joint() -> None:
    k = 5
    pa = PartAttention(8, k, kernel_size=3)
    assert len({id(m) for m in pa.parts}) == k
    assert len({id(m.crf_kernel.weight) for m in pa.parts}) == k
    for m in pa.parts:
        nn.init.normal_(m.crf_kernel.weight)
        nn.init.normal_(m.u_conv.weight)
    x = torch.randn(1, 8, 6, 6)
    out, maps = pa(x)
    assert out.shape == maps.shape == (1, k, 6, 6)
    for j in range(k):
        torch.testing.assert_close(maps[:, j:j + 1], pa.parts[j].attention_map(x))
        torch.testing.assert_close(out[:, j:j + 1], pa.heads[j](x * pa.parts[j].attention_map(x)))
    assert not torch.allclose(maps[:, 0], maps[:, 1])


@pytest.mark.parametrize("upsample", ["nearest", "deconv"])
def test_hru_sums_three_branches(upsample: str) -> None:
    hru = HourglassResidual(8, 16, upsample=upsample).eval()
    x = torch.randn(1, 8, 8, 8)
    expect = hru.conv_block(x) + hru.skip(x) + hru.pool_branch(x)
    torch.testing.assert_close(hru(x), expect)
    assert isinstance(hru.pool_branch[2], nn.MaxPool2d)
    r = Residual(8, 16)
    assert sum(p.numel() for p in hru.parameters()) > sum(p.numel() for p in r.parameters())


@pytest.mark.parametrize("depth,expect", [(4, [3, 2, 1, 1]), (3, [2, 1, 1]), (1, [1])])
def test_hourglass_skip_chains_follow_release(depth: int, expect: list[int]) -> None:
    hg = Hourglass(depth, 8)
    chains, level = [], hg
    while isinstance(level, Hourglass):
        chains.append(len(level.up))
        assert isinstance(level.up[0], Residual) and not isinstance(level.up[0], HourglassResidual)
        assert all(isinstance(m, HourglassResidual) for m in list(level.up)[1:])
        level = level.low2
    assert chains == expect


@pytest.mark.parametrize("option", [dict(multi_resolution_attention=True), dict(holistic_maps=2),
                                    dict(hru_upsample="deconv")])
def test_paper_options_run(option: dict) -> None:
    model = mca.create_model("mca_tiny", **option).eval()
    out = model.forward_all(torch.randn(1, 3, 128, 128))
    assert out.heatmaps[-1].shape == (1, 16, 32, 32)


def test_stem_stride_changes_cost_not_shape() -> None:
    a = mca.create_model("mca_tiny", stem_stride=1)
    b = mca.create_model("mca_tiny")
    assert count_macs(a, 128) > count_macs(b, 128)
    assert a(torch.randn(1, 3, 128, 128))[-1].shape == b(torch.randn(1, 3, 128, 128))[-1].shape


@pytest.mark.parametrize("bad,match", [
    ("nope", "valid: mca_paper"),
])
def test_unknown_model_lists_valid_names(bad: str, match: str) -> None:
    with pytest.raises(KeyError, match=match):
        mca.create_model(bad)


@pytest.mark.parametrize("override,match", [
    (dict(attention_kernel=4), "odd"), (dict(input_size=100), "cannot halve"),
    (dict(joint_set="h36m"), "valid"), (dict(bogus=1), "unknown config field"),
])
def test_bad_overrides_are_clear_errors(override: dict, match: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        mca.get_config("mca_tiny", **override)


def test_bad_input_shape_is_clear() -> None:
    model = MCANet(mca.get_config("mca_tiny"))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(1, 1, 128, 128))


def _part_attention_names() -> list[str]:
    return [n for n in mca.list_models() if mca.get_config(n).part_attention_from < mca.get_config(n).num_stacks]


@pytest.mark.parametrize("name", _part_attention_names())
def test_fused_part_attention_equals_the_per_part_modules(name: str) -> None:
    """The export's K-channel form computes what the K separate Lua-style modules compute."""
    cfg = mca.get_config(name)
    torch.manual_seed(0)
    pa = PartAttention(cfg.last_stack_channels, cfg.num_joints, cfg.attention_kernel, cfg.crf_iterations).eval()
    for p in pa.parameters():  # default init leaves the CRF near-linear; spread the maps over (0, 1)
        p.data.normal_(0, 0.3)
    x = torch.randn(2, cfg.last_stack_channels, 16, 16)
    ref_out, ref_maps = pa(x)
    pa.fused = True
    out, maps = pa(x)
    assert out.shape == ref_out.shape and maps.shape == ref_maps.shape == (2, cfg.num_joints, 16, 16)
    assert torch.allclose(maps, ref_maps, atol=1e-5) and torch.allclose(out, ref_out, atol=1e-4)
    assert 0.05 < float(maps.std()), "maps spread out, so the comparison means something"


def test_fused_head_equals_head_on_attended_features() -> None:
    """The deploy graph's 1x1 head on x * q, computed as q * head(x), gives the same heatmaps and maps."""
    torch.manual_seed(1)
    model = mca.create_model("mca_tiny", part_attention_from=2).eval()  # two stacks with 1x1 heads
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, 3, 128, 128)
    ref = model.forward_all(x)
    for st in model.stacks:
        st.fused_head = True
    got = model.forward_all(x)
    for a, b in zip(ref.heatmaps + ref.holistic, got.heatmaps + got.holistic):
        assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
