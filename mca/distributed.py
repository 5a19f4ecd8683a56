"""Training on several processes: ``torchrun --nproc_per_node N -m mca.train ...`` (imports torch).

One process per GPU (NCCL) or per CPU worker (gloo).  The pieces :mod:`mca.train` uses:

- :func:`setup` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins the
  process group; without torchrun it is a world of one and nothing is initialised.
- :func:`batch_plan`: the effective batch (what one optimizer step sees, the released 8) is split into
  ``world x micro-batch x accumulation``; the released run had 4 GPUs x 2 (DataParallelTable), so
  ``--batch-size 8`` on 4 processes gives the same batch-norm batch of 2.
- :func:`epoch_loader`: a ``DistributedSampler`` over the epoch's global sample list.  Step ``s`` of
  every world size sees the same ``B`` samples (``list[s*B:(s+1)*B]``), so a checkpoint resumes at
  another world size and, with synchronised batch norm, the losses match one process on the combined
  batch.
- :func:`convert_sync_batchnorm`: ``torch.nn.SyncBatchNorm`` on CUDA; on CPU (gloo, where torch's
  needs a GPU) :class:`CPUSyncBatchNorm`, the same statistics all-reduced over the world.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

__all__ = ["DistContext", "setup", "BatchPlan", "batch_plan", "epoch_loader", "CPUSyncBatchNorm",
           "convert_sync_batchnorm", "wrap_model", "unwrap"]


@dataclass
class DistContext:
    """This process's place in the world and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Rank 0 writes logs, checkpoints and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a per-process number over the world."""
        if not self.distributed:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str = "auto") -> DistContext:
    """The process's context; joins the process group under torchrun (NCCL on CUDA, gloo on CPU).

    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` (this process's local GPU under torchrun)
    or ``cuda:N``.  Raises ValueError for a device that is not there.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} but no CUDA device is available to PyTorch")
        index = local if device == "cuda" else int(device.split(":", 1)[1])
        if index >= torch.cuda.device_count():
            raise ValueError(f"process {rank} wants GPU {index}, but {torch.cuda.device_count()} are visible")
        torch.cuda.set_device(index)
        dev = torch.device("cuda", index)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    ctx = DistContext(rank, world, local, dev, None)
    if world > 1:
        ctx.backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(ctx.backend, init_method="env://", rank=rank, world_size=world,
                                device_id=dev if dev.type == "cuda" else None)
        log.info("process %d of %d (%s, %s)", rank, world, ctx.backend, dev)
    return ctx


@dataclass(frozen=True)
class BatchPlan:
    batch: int  # samples per optimizer step, over all processes
    micro: int  # samples per forward pass on one process
    accumulate: int  # forward/backward passes per optimizer step on each process


def batch_plan(batch: int, world: int, micro: int | None = None) -> BatchPlan:
    """Split the effective batch over processes and accumulation steps; ValueError if it does not divide."""
    if batch < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch}")
    if micro is None:
        if batch % world:
            raise ValueError(f"--batch-size {batch} does not split over {world} processes; give --micro-batch")
        micro = batch // world
    if micro < 1 or batch % (world * micro):
        raise ValueError(f"--batch-size {batch} is not a multiple of {world} processes x --micro-batch {micro}")
    return BatchPlan(batch, micro, batch // (world * micro))


def epoch_loader(dataset: Any, indices: Sequence[int], plan: BatchPlan, ctx: DistContext, workers: int,
                 ) -> torch.utils.data.DataLoader:
    """This process's micro-batches of one epoch's global sample list (a multiple of the effective batch).

    ``DistributedSampler`` (no shuffling: the list is already the epoch's order) gives process ``r`` the
    samples ``r, r + world, ...``, so each optimizer step's ``world x micro x accumulate`` samples are one
    contiguous block of the list, whatever the world size.
    """
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    subset = Subset(dataset, list(indices))
    sampler = DistributedSampler(subset, num_replicas=ctx.world, rank=ctx.rank, shuffle=False, drop_last=True)
    return DataLoader(subset, batch_size=plan.micro, sampler=sampler, num_workers=workers, drop_last=True,
                      pin_memory=ctx.device.type == "cuda", persistent_workers=False)


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """Batch norm with statistics over every process's batch, for the gloo backend.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this computes the same thing on CPU: per-channel sums
    and sums of squares (float64) all-reduced with autograd (``torch.distributed.nn``), so the gradients
    are those of one batch norm over the combined batch.  Running statistics are updated as
    ``nn.BatchNorm2d`` does (unbiased variance).  Outside training or in a world of one it is a plain
    batch norm; its state dict is ``nn.BatchNorm2d``'s.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import warnings

        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        xd = x.double()
        local = torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)), xd.new_tensor([x.numel() / c])])
        with warnings.catch_warnings():  # torch 2.13 points at a private replacement; this one has autograd
            warnings.simplefilter("ignore", FutureWarning)
            total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = (1, c, 1, 1)
        y = (xd - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.double().view(shape) + self.bias.double().view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every ``BatchNorm2d`` as a synchronised one: torch's on CUDA, :class:`CPUSyncBatchNorm` on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(m: nn.Module) -> nn.Module:
        if type(m) is nn.BatchNorm2d:
            new = CPUSyncBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            new.load_state_dict(m.state_dict())
            new.train(m.training)
            return new
        for name, child in m.named_children():
            setattr(m, name, convert(child))
        return m

    return convert(model)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel in a world of more than one (gradients averaged over the processes)."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
