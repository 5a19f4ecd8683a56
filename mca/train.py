"""``python -m mca.train``: train any registered config with intermediate supervision.

Defaults are the released recipe: RMSprop, learning rate 2.5e-4, batch 8, MSE of
every stack's heatmaps against the same Gaussian targets (summed over stacks;
masked to labelled joints, or ``--loss all-maps`` as released: every map, zero maps
for absent joints), learning rate /10 at epochs 100 and 125 of 130 (the milestones
scale with ``--epochs``).  On several GPUs (or CPU processes) run it under torchrun:
``torchrun --nproc_per_node N -m mca.train ...`` (DistributedDataParallel; see
:mod:`mca.distributed`).  Checkpoints (last and best) carry the config, joint set,
input size, metrics, optimizer state and the position in the epoch; ``--resume``
goes on, at any world size.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["heatmap_loss", "stack_loss", "evaluate_model", "validation_metrics", "main"]


def heatmap_loss(outputs: list[Any], target: Any, weight: Any, mask: bool = True) -> Any:
    """Sum over stacks of the MSE (mean over pixels, maps and batch).

    ``mask=True`` (this project's default) counts only labelled joints inside the crop;
    ``mask=False`` is the release's: every map, so the network also learns zero maps for
    absent joints.
    """
    if not mask:
        return sum(((o - target) ** 2).mean() for o in outputs)
    w = weight[:, :, None, None]
    return sum(((o - target) ** 2 * w).mean() for o in outputs)


def stack_loss(outputs: list[Any], target: Any, weight: Any, mask: bool = True) -> Any:
    """The loss of one batch from the network's outputs; outputs with one map more than the target carry the
    -trainBg background map, whose target is the joints' maximum (the Lua's ``out[nParts+1]``), always counted."""
    import torch

    outputs = [o.float() for o in outputs]
    if outputs[0].shape[1] == target.shape[1] + 1:
        target = torch.cat([target, target.amax(1, keepdim=True)], 1)
        weight = torch.cat([weight, weight.new_ones(weight.shape[0], 1)], 1)
    return heatmap_loss(outputs, target, weight, mask)


def _predict(model: Any, loader: Any, joint_set: str, device: Any, flip: bool) -> tuple[np.ndarray, ...]:
    """Frame-pixel predictions, ground truth, labels and official head sizes (nan if none) over a loader."""
    import torch

    from mca import heatmaps as H
    from mca.data.datasets import to_network_input
    from mca.joints import get_joint_set

    js = get_joint_set(joint_set)
    preds, gts, vis, heads = [], [], [], []
    model.eval()
    with torch.no_grad():
        for b in loader:
            x = to_network_input(b["crop"]).to(device)
            if flip:
                def run(arr: np.ndarray) -> np.ndarray:
                    return model(torch.from_numpy(arr).to(device))[-1].float().cpu().numpy()
                hm = H.flip_test(run, x.cpu().numpy(), js.flip_index)
            else:
                hm = model(x)[-1].float().cpu().numpy()
            hm = hm[:, :len(js.names)]  # a -trainBg model trained with its background map: the joints only
            s_in, s_hm = x.shape[-1], hm.shape[-1]
            coords, _ = H.decode_heatmaps(hm)
            to_in = H.heatmap_to_input_matrix((s_hm, s_hm), (s_in, s_in))
            for k in range(len(coords)):
                m = b["frame_to_input"][k].numpy().astype(np.float64)
                preds.append(H.apply_affine(H.compose_affine(H.invert_affine(m), to_in), coords[k]))
            gts.append(b["gt_joints"].numpy())
            vis.append(b["gt_visible"].numpy())
            heads.append(b["head_size"].numpy() if "head_size" in b else np.full(len(coords), np.nan))
    return np.stack(preds), np.concatenate(gts), np.concatenate(vis), np.concatenate(heads)


def validation_metrics(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, head: np.ndarray,
                       joint_set: str) -> dict[str, float]:
    """PCK@0.2 (torso) and, for MPII-16, PCKh@0.5: with the official head sizes (MPII's head boxes or the .h5's
    ``normalize``) when every person has one (``pckh official`` = 1), else the head-top to upper-neck length."""
    from mca.joints import get_joint_set
    from mca.metrics import head_size, pck, torso_size

    out = {"pck@0.2": pck(pred, gt, vis, torso_size(gt, joint_set), 0.2).total}
    if "head_top" in get_joint_set(joint_set).names:
        official = bool(len(head)) and bool(np.all(np.isfinite(head) & (head > 0)))
        norm = head if official else head_size(gt, joint_set)
        out["pckh@0.5"] = pck(pred, gt, vis, norm, 0.5).total
        out["pckh official"] = float(official)
    return out


def evaluate_model(model: Any, loader: Any, joint_set: str, device: str = "cpu", flip: bool = False) -> dict[str, float]:
    """Validation metrics of ``model`` over ``loader`` (see :func:`validation_metrics`)."""
    return validation_metrics(*_predict(model, loader, joint_set, device, flip), joint_set)


def _milestones(epochs: int) -> list[int]:
    return sorted({max(1, round(epochs * 100 / 130)), max(1, round(epochs * 125 / 130))})


def _real_datasets(args: argparse.Namespace, cfg: Any) -> tuple[Any, Any]:
    """Training and validation sets of a real data set; raises ValueError (AnnotationError) for the user."""
    from mca.data.real import AnnotationError, RealPoseDataset, load_records

    if args.annotations is None or args.images is None:
        raise AnnotationError(f"--data {args.data} needs --annotations and --images")
    want = "coco17" if args.data == "coco" else "mpii16"
    if cfg.joint_set != want:
        raise AnnotationError(f"{args.data} is labelled in {want}; config {cfg.name} predicts {cfg.joint_set} "
                              f"(choose a {want} config{', e.g. mca_tiny_coco' if want == 'coco17' else ''})")
    records = load_records(args.data, args.annotations, args.h5_convention)
    if args.val_annotations:
        val = load_records(args.data, args.val_annotations, args.h5_convention)
        keys = {(r.image, r.image_id, r.ann_id) for r in val if r.image_id is not None}
        if keys:  # annot.h5 for training and valid.h5 for validation: leave the validation people out
            n = len(records)
            records = [r for r in records if (r.image, r.image_id, r.ann_id) not in keys]
            if n != len(records):
                log.info("left %d validation people out of the training set", n - len(records))
            elif {r.image for r in val} & {r.image for r in records}:
                log.warning("validation images also appear in the training set, but no person matched by "
                            "(image, index, person): validation may include trained-on people")
    else:
        if len(records) < 2:
            raise AnnotationError(f"{args.annotations}: too few people to hold some out for validation")
        n = min(args.val_size, max(1, len(records) // 10))
        records, val = records[:-n], records[-n:]
    log.info("%s: %d training people, %d validation", args.data, len(records), len(val))
    return (RealPoseDataset(records, args.images, cfg.joint_set, cfg.input_size, cfg.heatmap_size, seed=args.seed),
            RealPoseDataset(val, args.images, cfg.joint_set, cfg.input_size, cfg.heatmap_size, train=False))


def _overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` config overrides (numbers, true/false, or text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


def _anny_datasets(args: argparse.Namespace, cfg: Any) -> tuple[Any, Any]:
    """Training and validation crops of an Anny pose cache (``python -m mca.data.anny cache``); ValueError for
    the user."""
    if args.anny_cache is None:
        raise ValueError("--data anny needs --anny-cache DIR (write one with python -m mca.data.anny cache)")
    from mca.data.anny.dataset import cached_train_val

    try:
        train, val = cached_train_val(args.anny_cache, cfg.joint_set, cfg.input_size, cfg.heatmap_size,
                                      args.val_size, args.seed)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    log.info("anny cache %s: %d training crops, %d validation", args.anny_cache, len(train), len(val))
    return train, val


def _parser() -> argparse.ArgumentParser:
    from mca.config import list_models

    p = argparse.ArgumentParser(prog="python -m mca.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Several processes: torchrun --nproc_per_node N -m mca.train ... "
                                       "(one per GPU; gloo processes on CPU).")
    p.add_argument("--config", default="mca_tiny", help=f"registered config ({', '.join(list_models())})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set num_stacks=4 --set background_map=true")
    p.add_argument("--data", default="synthetic", choices=["synthetic", "mpii", "coco", "lsp", "anny"],
                   help="training data: rendered people, a real data set (--annotations, --images), or an Anny "
                        "cache (--anny-cache)")
    p.add_argument("--anny-cache", type=Path, help="pose cache of python -m mca.data.anny cache (with --data anny)")
    p.add_argument("--annotations", type=Path, help="MPII .mat/.h5/.json, COCO person_keypoints json, LSP joints.mat")
    p.add_argument("--images", type=Path, help="the real data set's image folder")
    p.add_argument("--val-annotations", type=Path,
                   help="validation annotations (default: the last --val-size people of --annotations, not trained on)")
    p.add_argument("--h5-convention", choices=["auto", "split", "combined"], default="auto",
                   help="MPII .h5 centre/scale: auto-detected, split train/valid.h5 (adjusted) or annot.h5 (raw)")
    p.add_argument("--epochs", type=int, default=130, help="epochs (the released run: 130)")
    p.add_argument("--iters-per-epoch", type=int, default=3000, help="optimizer steps per epoch (released: 3000)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="effective batch: samples per optimizer step over all processes (released: 8)")
    p.add_argument("--micro-batch", type=int,
                   help="samples per forward pass on one process (default: batch / processes); smaller values "
                        "accumulate gradients to the effective batch (the release: 2 per GPU on 4 GPUs)")
    p.add_argument("--loss", choices=["masked", "all-maps"], default="masked",
                   help="masked: labelled joints inside the crop only; all-maps: every map, zero maps for absent "
                        "joints (the release's MSECriterion)")
    p.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "adam", "sgd"],
                   help="optimizer (released: rmsprop; sgd: momentum 0.9, whose updates are linear in the gradient)")
    p.add_argument("--lr", type=float, default=2.5e-4, help="learning rate (released: 2.5e-4)")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes (per training process)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch's default)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda (under torchrun: the "
                                                    "process's local GPU) or cuda:N")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                   help="mixed precision (autocast; fp16 with a gradient scaler, CUDA only; bf16 also on CPU)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster convolutions on CUDA)")
    p.add_argument("--sync-bn", action="store_true",
                   help="batch-norm statistics over all processes' samples (torch SyncBatchNorm on CUDA, an "
                        "all-reduce on CPU); default: each process's own micro-batch, as the release's 4 GPUs")
    p.add_argument("--val-size", type=int, default=512, help="held-out synthetic crops evaluated after each epoch")
    p.add_argument("--val-flip", action="store_true", help="flip test in the per-epoch validation (the release's)")
    p.add_argument("--seed", type=int, default=0, help="seed (training scenes; validation uses seed + 1000)")
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="directory for checkpoints and the CSV logs")
    p.add_argument("--resume", type=Path, help="checkpoint to resume from (model, optimizer, epoch and step)")
    p.add_argument("--save-every", type=int, default=0, help="also write last.pt every N optimizer steps")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop after N optimizer steps of this run (last.pt is written; --resume goes on)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from mca.distributed import setup

        ctx = setup(args.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if ctx.main else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        return _train(args, ctx)
    finally:
        ctx.close()


def _train(args: argparse.Namespace, ctx: Any) -> int:
    import torch

    import mca
    from mca.checkpoint import CheckpointError, read_checkpoint
    from mca.data.datasets import SyntheticPoseDataset
    from mca.distributed import batch_plan, convert_sync_batchnorm, unwrap, wrap_model

    def user_error(msg: str) -> int:
        if ctx.main:
            print(f"error: {msg}", file=sys.stderr)
        return 2

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = mca.get_config(args.config, **_overrides(args.set))
        plan = batch_plan(args.batch_size, ctx.world, args.micro_batch)
    except KeyError as e:
        return user_error(e.args[0])
    except (TypeError, ValueError) as e:
        return user_error(str(e))
    if args.amp == "fp16" and ctx.device.type != "cuda":
        return user_error("--amp fp16 needs CUDA (use bf16 on CPU)")
    ck = None
    if args.resume:
        try:
            ck = read_checkpoint(args.resume)
        except CheckpointError as e:
            return user_error(str(e))
        from mca.config import MCAConfig

        try:
            same = MCAConfig(**ck["config"]) == cfg  # fields added since the checkpoint take their defaults
        except (TypeError, ValueError):
            same = False
        if not same:
            return user_error(f"{args.resume} is a {ck['config_name']} checkpoint of another config than "
                              f"{cfg.name} with these --set overrides")
    torch.manual_seed(args.seed)
    from mca.model import MCANet

    net = MCANet(cfg)
    net.return_background = cfg.background_map
    if ck is not None:
        net.load_state_dict(ck["state_dict"])
    if args.sync_bn and ctx.world > 1:
        net = convert_sync_batchnorm(net, ctx.device)
    net = net.to(ctx.device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = wrap_model(net, ctx)
    opt = {"rmsprop": lambda: torch.optim.RMSprop(net.parameters(), lr=args.lr),
           "adam": lambda: torch.optim.Adam(net.parameters(), lr=args.lr),
           "sgd": lambda: torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)}[args.optimizer]()
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp == "fp16")
    start_epoch, start_step, best = 0, 0, -math.inf
    if ck is not None:
        if "optimizer" in ck:
            opt.load_state_dict(ck["optimizer"])
        extra = ck.get("extra", {})
        if "scaler" in extra and args.amp == "fp16":
            scaler.load_state_dict(extra["scaler"])
        start_epoch, start_step = int(ck["epoch"]), int(ck.get("step", 0))
        best = float(extra.get("best", -math.inf))
        if int(extra.get("batch_size", args.batch_size)) != args.batch_size:
            log.warning("%s was trained with batch %s; going on with %d", args.resume, extra["batch_size"],
                        args.batch_size)
        log.info("resumed %s at epoch %d, step %d (saved by %s processes, now %d)", args.resume, start_epoch,
                 start_step, extra.get("world_size", "?"), ctx.world)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(args.epochs), 0.1, last_epoch=-1)
    with warnings.catch_warnings():  # fast-forwarding the schedule on resume, before any optimizer step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start_epoch):
            sched.step()
    n_train = args.epochs * args.iters_per_epoch * args.batch_size
    if args.data == "synthetic":
        train_ds = SyntheticPoseDataset(cfg.joint_set, cfg.input_size, cfg.heatmap_size, n_train, seed=args.seed)
        val_ds = SyntheticPoseDataset(cfg.joint_set, cfg.input_size, cfg.heatmap_size, args.val_size,
                                      seed=args.seed + 1000, train=False)
    else:
        try:
            train_ds, val_ds = (_anny_datasets if args.data == "anny" else _real_datasets)(args, cfg)
        except ValueError as e:
            return user_error(str(e))
    log.info("%d process(es) on %s; effective batch %d = %d x micro-batch %d x %d accumulation step(s); loss %s%s%s",
             ctx.world, ctx.device, plan.batch, ctx.world, plan.micro, plan.accumulate, args.loss,
             "; sync batch norm" if args.sync_bn and ctx.world > 1 else "",
             f"; autocast {args.amp}" if args.amp != "off" else "")
    from mca.train_loop import run_epochs

    best = run_epochs(args, ctx, cfg, net, model, opt, sched, scaler, plan, train_ds, val_ds, start_epoch,
                      start_step, best, unwrap)
    if ctx.main:
        score = f"best held-out score = {best:.4f}" if best > -math.inf else "no epoch finished yet"
        print(f"done: {score}; checkpoints in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
