"""Training on two gloo processes (torchrun) equals one process on the combined batch, and resumes across world sizes.

Tolerance: the first loss (no update yet) to rtol 1e-4; after that, float sums in another order (the all-reduce, the synchronised batch-norm statistics) and max-pool /
ReLU ties make two runs of the same training differ slightly; one process with 1 or 2 threads differs by the same
order (measured: <= 4e-4 relative on the losses of 6 SGD steps, lr 1e-3).  So later losses are compared to rtol 1e-3 and
weights to 1e-4, while a different batch-norm grouping moves the very first loss by far more than 1e-4 (checked).
SGD keeps the check sharp: RMSprop's first updates are about lr x sign(gradient), which turns float noise into
visible differences (1 vs 2 threads: 0.5 % after one step).
"""

from __future__ import annotations

import copy
import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs PyTorch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch build has no gloo backend", allow_module_level=True)

from mca.train import main as train_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COMMON = ["--config", "mca_tiny", "--set", "channels=16", "--set", "stem_channels=16", "--set", "last_stack_channels=16",
          "--epochs", "2", "--iters-per-epoch", "2", "--batch-size", "4", "--val-size", "2", "--threads", "1",
          "--optimizer", "sgd", "--lr", "0.001", "--device", "cpu"]


def _losses(out: Path) -> list[tuple[int, int, float, int]]:
    with (out / "steps.csv").open() as f:
        return [(int(r["epoch"]), int(r["step"]), float(r["loss"]), int(r["world_size"])) for r in csv.DictReader(f)]


def _weights(out: Path) -> dict:
    return torch.load(out / "last.pt", weights_only=True)["state_dict"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_and_resume_at_another_world_size(tmp_path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert train_main([*COMMON, "--workers", "0", "--out", str(one)]) == 0  # one process, batch 4
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "mca.train", *COMMON, "--sync-bn", "--workers", "1",
           "--max-steps", "3", "--out", str(two)]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # two processes x micro-batch 2, stopped mid-epoch 2: the same losses as one process on the batch of 4
    a, b = _losses(one), _losses(two)
    assert [x[:2] for x in b] == [(1, 1), (1, 2), (2, 1)] and {x[3] for x in b} == {2}
    assert b[0][2] == pytest.approx(a[0][2], rel=1e-4)  # before any update: only summation order differs
    for x, y in zip(a, b):
        assert y[2] == pytest.approx(x[2], rel=1e-3)
    assert (r.stdout + r.stderr).count("stopped after 3 steps") == 1  # logged by rank 0 only
    # resumed by one process: goes on at epoch 2, step 2, and ends where the uninterrupted run ended
    assert train_main([*COMMON, "--workers", "0", "--resume", str(two / "last.pt"), "--out", str(two)]) == 0
    c = _losses(two)
    assert [x[:2] for x in c] == [(1, 1), (1, 2), (2, 1), (2, 2)] and c[-1][3] == 1
    assert c[-1][2] == pytest.approx(a[-1][2], rel=1e-3)
    wa, wc = _weights(one), _weights(two)
    for k, v in wa.items():
        if v.is_floating_point():
            tol = 1e-2 * float(v.abs().max()) + 1e-6 if "running" in k else 1e-4
            assert float((v - wc[k]).abs().max()) <= tol, k
    assert len((two / "log.csv").read_text().splitlines()) == 3  # header + two epochs, one from each run
    # the comparison can fail: batch norm over micro-batches of 2 (accumulating to 4) moves the first loss
    micro = tmp_path / "micro"
    assert train_main([*COMMON, "--workers", "0", "--micro-batch", "2", "--max-steps", "1", "--out", str(micro)]) == 0
    assert abs(_losses(micro)[0][2] - a[0][2]) > 10 * 1e-4 * a[0][2]


def test_cpu_sync_batchnorm_is_a_plain_batchnorm_alone() -> None:
    """Outside a process group (and in eval) it is nn.BatchNorm2d, with the same state dict."""
    from mca.distributed import CPUSyncBatchNorm, convert_sync_batchnorm

    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    conv = convert_sync_batchnorm(copy.deepcopy(ref), torch.device("cpu"))
    assert isinstance(conv[1], CPUSyncBatchNorm) and conv.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(conv(x), ref(x))
    torch.testing.assert_close(conv[1].running_var, ref[1].running_var)


@pytest.mark.parametrize("batch,world,micro,expect", [(8, 4, None, (2, 1)), (8, 1, 2, (2, 4)), (8, 2, None, (4, 1)),
                                                      (8, 3, None, None), (8, 2, 3, None)])
def test_batch_plan(batch, world, micro, expect) -> None:
    from mca.distributed import batch_plan

    if expect is None:
        with pytest.raises(ValueError):
            batch_plan(batch, world, micro)
    else:
        p = batch_plan(batch, world, micro)
        assert (p.micro, p.accumulate) == expect and p.micro * p.accumulate * world == batch
