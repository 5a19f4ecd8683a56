"""The epoch loop of :mod:`mca.train`: sample order, accumulation, mixed precision, logs and checkpoints.

Every process walks the same global sample list per epoch (synthetic: the next ``steps x batch`` scene
indices; real data: a seeded permutation, repeated as needed), and optimizer step ``s`` consumes
``list[s*B:(s+1)*B]`` whatever the number of processes, so a run resumes at another world size (and
mid-epoch, from ``--save-every`` / ``--max-steps`` checkpoints) on the same samples.  Rank 0 writes
``log.csv`` (per epoch), ``steps.csv`` (per optimizer step: the loss averaged over all processes) and
the checkpoints, and shows the progress bar.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import time
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["epoch_indices", "run_epochs"]


def epoch_indices(args: argparse.Namespace, n_dataset: int, epoch: int) -> list[int]:
    """The epoch's global sample list (``iters x batch`` dataset indices), the same on every process."""
    n = args.iters_per_epoch * args.batch_size
    if args.data == "synthetic":  # an endless stream of new scenes
        lo = epoch * n
        return list(range(lo, lo + n))
    order = np.random.default_rng([args.seed, epoch]).permutation(n_dataset)  # a new shuffled pass
    return np.resize(order, n).tolist()


def _save(path: Any, net: Any, ctx: Any, args: argparse.Namespace, epoch: int, step: int, metrics: dict, opt: Any,
          scaler: Any, best: float, train_loss: float) -> None:
    from mca.checkpoint import save_checkpoint

    extra = {"best": best, "train_loss": train_loss, "world_size": ctx.world, "batch_size": args.batch_size}
    if scaler.is_enabled():
        extra["scaler"] = scaler.state_dict()
    save_checkpoint(path, net, epoch=epoch, step=step, metrics=metrics, optimizer=opt, extra=extra)


def run_epochs(args: argparse.Namespace, ctx: Any, cfg: Any, net: Any, model: Any, opt: Any, sched: Any,
               scaler: Any, plan: Any, train_ds: Any, val_ds: Any, start_epoch: int, start_step: int, best: float,
               unwrap: Callable[[Any], Any]) -> float:
    """Train from (``start_epoch``, ``start_step``) to ``args.epochs``; returns the best validation score."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from mca.data.datasets import to_network_input
    from mca.distributed import epoch_loader
    from mca.train import evaluate_model, stack_loss

    dev = ctx.device
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    mask = args.loss == "masked"
    val_loader = DataLoader(val_ds, batch_size=32, num_workers=args.workers) if ctx.main else None
    if ctx.main:
        args.out.mkdir(parents=True, exist_ok=True)
    fresh = not args.resume
    log_path, step_path = args.out / "log.csv", args.out / "steps.csv"
    files = contextlib.ExitStack()
    writer = steps = None
    handles: list[Any] = []
    if ctx.main:
        new_log = fresh or not log_path.exists()
        f = files.enter_context(log_path.open("w" if new_log else "a", newline=""))
        writer = csv.writer(f)
        if new_log:
            writer.writerow(["epoch", "lr", "train_loss", "pck@0.2", "pckh@0.5", "pckh_official", "seconds"])
        new_steps = fresh or not step_path.exists()
        g = files.enter_context(step_path.open("w" if new_steps else "a", newline=""))
        handles += [f, g]
        steps = csv.writer(g)
        if new_steps:
            steps.writerow(["epoch", "step", "loss", "world_size"])
    done_steps = 0
    with files:
        for epoch in range(start_epoch, args.epochs):
            if hasattr(train_ds, "epoch"):
                train_ds.epoch = epoch  # a new augmentation of every person each epoch
            first = start_step if epoch == start_epoch else 0
            idx = epoch_indices(args, len(train_ds), epoch)[first * args.batch_size:]
            loader = epoch_loader(train_ds, idx, plan, ctx, args.workers)
            model.train()
            t0, total, n_steps = time.time(), 0.0, 0
            bar = tqdm(total=args.iters_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{args.epochs}", unit="it",
                       leave=False, disable=not ctx.main)
            it = iter(loader)
            stopped = False
            for step in range(first, args.iters_per_epoch):
                step_loss = 0.0
                for a in range(plan.accumulate):
                    b = next(it)
                    x = to_network_input(b["crop"]).to(dev, non_blocking=True)
                    if args.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    sync = a == plan.accumulate - 1 or not hasattr(model, "no_sync")
                    with (contextlib.nullcontext() if sync else model.no_sync()):
                        with (torch.autocast(dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()):
                            outs = model(x)
                        loss = stack_loss(outs, b["target"].to(dev), b["weight"].to(dev), mask) / plan.accumulate
                        scaler.scale(loss).backward()
                    step_loss += float(loss.detach())
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                step_loss = ctx.mean(step_loss)
                total += step_loss
                n_steps += 1
                done_steps += 1
                if steps is not None:
                    steps.writerow([epoch + 1, step + 1, f"{step_loss:.8f}", ctx.world])
                bar.update(1)
                if n_steps % 10 == 1:
                    bar.set_postfix(loss=f"{total / n_steps:.5f}")
                at_end = step + 1 == args.iters_per_epoch
                stop = bool(args.max_steps) and done_steps >= args.max_steps and not at_end
                if ctx.main and not at_end and (stop or (args.save_every and (step + 1) % args.save_every == 0)):
                    _save(args.out / "last.pt", unwrap(model), ctx, args, epoch, step + 1, {}, opt, scaler, best,
                          total / n_steps)
                if stop:
                    stopped = True
                    break
            bar.close()
            if stopped:
                log.info("stopped after %d steps (epoch %d, step %d); --resume %s goes on", done_steps, epoch + 1,
                         step + 1, args.out / "last.pt")
                ctx.barrier()
                return best
            sched.step()
            train_loss = total / max(1, n_steps)
            if ctx.main:
                net_ = unwrap(model)
                metrics = evaluate_model(net_, val_loader, cfg.joint_set, dev, flip=args.val_flip)
                official = metrics.get("pckh official", 0.0) > 0
                score = metrics["pckh@0.5"] if official else metrics["pck@0.2"]
                is_best = score > best
                best = max(best, score)
                writer.writerow(  # type: ignore[union-attr]  # rank 0 opened it
                    [epoch + 1, opt.param_groups[0]["lr"], f"{train_loss:.6f}", f"{metrics['pck@0.2']:.4f}",
                     f"{metrics.get('pckh@0.5', float('nan')):.4f}", int(official), f"{time.time() - t0:.1f}"])
                log.info("epoch %d: loss %.5f, val PCK@0.2 %.3f, PCKh@0.5 %.3f%s (%.0f s)", epoch + 1, train_loss,
                         metrics["pck@0.2"], metrics.get("pckh@0.5", float("nan")),
                         " (official head sizes)" if official else "", time.time() - t0)
                _save(args.out / "last.pt", net_, ctx, args, epoch + 1, 0, metrics, opt, scaler, best, train_loss)
                if is_best:
                    from mca.checkpoint import save_checkpoint

                    save_checkpoint(args.out / "best.pt", net_, epoch=epoch + 1, metrics=metrics)
                for fh in handles:
                    fh.flush()
            ctx.barrier()
            if args.max_steps and done_steps >= args.max_steps:
                break
    return best
