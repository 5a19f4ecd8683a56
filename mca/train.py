"""``python -m mca.train``: train any registered config with intermediate supervision.

Defaults are the released recipe: RMSprop, learning rate 2.5e-4, batch 8, MSE of
every stack's heatmaps against the same Gaussian targets (summed over stacks,
masked to labelled joints), learning rate /10 at epochs 100 and 125 of 130
(the milestones scale with ``--epochs``).  Checkpoints (last and best) carry the
config, joint set, input size, metrics and optimizer state; ``--resume`` goes on.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["heatmap_loss", "evaluate_model", "main"]


def heatmap_loss(outputs: list[Any], target: Any, weight: Any) -> Any:
    """Sum over stacks of the masked MSE (mean over pixels, joints and batch)."""
    w = weight[:, :, None, None]
    return sum(((o - target) ** 2 * w).mean() for o in outputs)


def evaluate_model(model: Any, loader: Any, joint_set: str, device: str = "cpu", flip: bool = False) -> dict[str, float]:
    """PCK@0.2 (torso) and, for MPII-16, PCKh@0.5 (head-top to neck) in frame pixels."""
    import torch

    from mca import heatmaps as H
    from mca.data.datasets import to_network_input
    from mca.joints import get_joint_set
    from mca.metrics import head_size, pck, torso_size

    js = get_joint_set(joint_set)
    preds, gts, vis = [], [], []
    model.eval()
    with torch.no_grad():
        for b in loader:
            x = to_network_input(b["crop"]).to(device)
            if flip:
                def run(arr: np.ndarray) -> np.ndarray:
                    return model(torch.from_numpy(arr).to(device))[-1].cpu().numpy()
                hm = H.flip_test(run, x.cpu().numpy(), js.flip_index)
            else:
                hm = model(x)[-1].cpu().numpy()
            s_in, s_hm = x.shape[-1], hm.shape[-1]
            coords, _ = H.decode_heatmaps(hm)
            to_in = H.heatmap_to_input_matrix((s_hm, s_hm), (s_in, s_in))
            for k in range(len(coords)):
                m = b["frame_to_input"][k].numpy().astype(np.float64)
                preds.append(H.apply_affine(H.compose_affine(H.invert_affine(m), to_in), coords[k]))
            gts.append(b["gt_joints"].numpy())
            vis.append(b["gt_visible"].numpy())
    pred, gt, v = np.stack(preds), np.concatenate(gts), np.concatenate(vis)
    out = {"pck@0.2": pck(pred, gt, v, torso_size(gt, joint_set), 0.2).total}
    if "head_top" in js.names:
        out["pckh@0.5"] = pck(pred, gt, v, head_size(gt, joint_set), 0.5).total
    return out


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
    records = load_records(args.data, args.annotations)
    if args.val_annotations:
        val = load_records(args.data, args.val_annotations)
    else:
        if len(records) < 2:
            raise AnnotationError(f"{args.annotations}: too few people to hold some out for validation")
        n = min(args.val_size, max(1, len(records) // 10))
        records, val = records[:-n], records[-n:]
    log.info("%s: %d training people, %d validation", args.data, len(records), len(val))
    return (RealPoseDataset(records, args.images, cfg.joint_set, cfg.input_size, cfg.heatmap_size, seed=args.seed),
            RealPoseDataset(val, args.images, cfg.joint_set, cfg.input_size, cfg.heatmap_size, train=False))


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


def main(argv: list[str] | None = None) -> int:
    from mca.config import list_models

    p = argparse.ArgumentParser(prog="python -m mca.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="mca_tiny", help=f"registered config ({', '.join(list_models())})")
    p.add_argument("--data", default="synthetic", choices=["synthetic", "mpii", "coco", "lsp", "anny"],
                   help="training data: rendered people, a real data set (--annotations, --images), or an Anny "
                        "cache (--anny-cache)")
    p.add_argument("--anny-cache", type=Path, help="pose cache of python -m mca.data.anny cache (with --data anny)")
    p.add_argument("--annotations", type=Path, help="MPII .mat/.h5/.json, COCO person_keypoints json, LSP joints.mat")
    p.add_argument("--images", type=Path, help="the real data set's image folder")
    p.add_argument("--val-annotations", type=Path,
                   help="validation annotations (default: the last --val-size people of --annotations, not trained on)")
    p.add_argument("--epochs", type=int, default=130, help="epochs (the released run: 130)")
    p.add_argument("--iters-per-epoch", type=int, default=3000, help="iterations per epoch (released: 3000)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (released: 8)")
    p.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "adam"], help="optimizer (released: rmsprop)")
    p.add_argument("--lr", type=float, default=2.5e-4, help="learning rate (released: 2.5e-4)")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--val-size", type=int, default=512, help="held-out synthetic crops evaluated after each epoch")
    p.add_argument("--seed", type=int, default=0, help="seed (training scenes; validation uses seed + 1000)")
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="directory for checkpoints and the CSV log")
    p.add_argument("--resume", type=Path, help="checkpoint to resume from (model, optimizer, epoch)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    import mca
    from mca.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
    from mca.data.datasets import SyntheticPoseDataset, to_network_input

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = mca.get_config(args.config)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available to PyTorch", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    model = mca.create_model(args.config).to(args.device)
    opt = (torch.optim.RMSprop(model.parameters(), lr=args.lr) if args.optimizer == "rmsprop"
           else torch.optim.Adam(model.parameters(), lr=args.lr))
    start_epoch, best = 0, -math.inf
    if args.resume:
        try:
            ck = read_checkpoint(args.resume)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if ck["config_name"] != cfg.name:
            print(f"error: {args.resume} is a {ck['config_name']} checkpoint, not {cfg.name}", file=sys.stderr)
            return 2
        model.load_state_dict(ck["state_dict"])
        if "optimizer" in ck:
            opt.load_state_dict(ck["optimizer"])
        start_epoch = int(ck["epoch"])
        best = float(ck.get("extra", {}).get("best", -math.inf))
        log.info("resumed %s at epoch %d", args.resume, start_epoch)
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
            print(f"error: {e}", file=sys.stderr)
            return 2
    val_loader = DataLoader(val_ds, batch_size=32, num_workers=args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "log.csv"
    new_log = not log_path.exists() or not args.resume
    with log_path.open("w" if new_log else "a", newline="") as f:
        writer = csv.writer(f)
        if new_log:
            writer.writerow(["epoch", "lr", "train_loss", "pck@0.2", "pckh@0.5", "seconds"])
        for epoch in range(start_epoch, args.epochs):
            model.train()
            lo = epoch * args.iters_per_epoch * args.batch_size
            if args.data == "synthetic":  # an endless stream of new scenes
                idx = list(range(lo, lo + args.iters_per_epoch * args.batch_size))
            else:  # a shuffled pass (repeated as needed), new augmentation each epoch
                train_ds.epoch = epoch
                order = np.random.default_rng([args.seed, epoch]).permutation(len(train_ds))
                idx = np.resize(order, args.iters_per_epoch * args.batch_size).tolist()
            loader = DataLoader(torch.utils.data.Subset(train_ds, idx), batch_size=args.batch_size,
                                shuffle=False, num_workers=args.workers, drop_last=True,
                                persistent_workers=False)
            t0, total = time.time(), 0.0
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", unit="it", leave=False)
            for i, b in enumerate(bar):
                x = to_network_input(b["crop"]).to(args.device)
                outs = model(x)
                loss = heatmap_loss(outs, b["target"].to(args.device), b["weight"].to(args.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{total / (i + 1):.5f}")
            sched.step()
            metrics = evaluate_model(model, val_loader, cfg.joint_set, args.device)
            train_loss = total / max(1, len(loader))
            writer.writerow([epoch + 1, opt.param_groups[0]["lr"], f"{train_loss:.6f}",
                             f"{metrics['pck@0.2']:.4f}", f"{metrics.get('pckh@0.5', float('nan')):.4f}",
                             f"{time.time() - t0:.1f}"])
            f.flush()
            log.info("epoch %d: loss %.5f, val PCK@0.2 %.3f, PCKh@0.5 %.3f (%.0f s)", epoch + 1, train_loss,
                     metrics["pck@0.2"], metrics.get("pckh@0.5", float("nan")), time.time() - t0)
            score = metrics["pck@0.2"]
            is_best = score > best
            best = max(best, score)
            model.cpu()
            save_checkpoint(args.out / "last.pt", model, epoch=epoch + 1, metrics=metrics, optimizer=opt,
                            extra={"best": best, "train_loss": train_loss})
            if is_best:
                save_checkpoint(args.out / "best.pt", model, epoch=epoch + 1, metrics=metrics)
            model.to(args.device)
    print(f"done: best held-out PCK@0.2 = {best:.4f}; checkpoints in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
