"""Train (or fine-tune) a pose config on a mix of sources, watching sides as well as PCK.

Sources (any mix, weights after a colon): fresh synthetic people (``--synthetic W``), teacher-labelled real
crops from ``tools/pseudo_label.py`` (``--pseudo DIR:W``, its ``train.npz``), rendered mesh people
(``--anny DIR:W``, a cache of ``python -m mca.data.anny cache``, each pass with new augmentation).  Every
item goes through ``mca.data.augment.make_sample``.

The learning rate follows a cosine from ``--lr`` down to ``--lr-floor`` x ``--lr`` over the run, where the
run's progress is the larger of iterations done / ``--iters`` and wall time / ``--minutes``: on a machine
shared with other jobs the schedule still ends when the time budget does.  Every ``--eval-every`` iterations
it measures held-out *validation* synthetic people (seed 1000; the test seed 2000 of ``python -m
mca.evaluate`` is never looked at here): PCK@0.2, the side-swap and side-collapse rates and the left/right
ankle and knee heatmap correlation (``mca.metrics.side_summary``), logs them to ``OUT/log.csv`` and writes
``OUT/last.pt`` (resumable: ``--resume OUT/last.pt``) and ``OUT/best.pt`` (best validation PCK@0.2).

    python scripts/train_pose.py --config mca_tiny --init realtime/models/pose_mca_tiny_synth.pt \\
        --iters 6000 --minutes 150 --out runs/tiny_sides
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

log = logging.getLogger(__name__)

VAL_SEED = 1000  # mca.train's validation seed; mca.evaluate tests on 2000


def validation_set(joint_set: str, input_size: int, heatmap_size: int, n: int, seed: int = VAL_SEED):  # noqa: ANN201
    """Crops, crop transforms and labels of ``n`` held-out synthetic people, made exactly as ``mca.evaluate`` makes
    them (its own function, at mca.train's validation seed)."""
    from mca.evaluate import _heldout

    return _heldout(joint_set, input_size, heatmap_size, n, seed)


def measure(run, val, joint_set: str, input_size: int, heatmap_size: int, batch: int = 32) -> dict[str, float]:  # noqa: ANN001
    """PCK@0.2 and the side report of ``run`` (uint8 NHWC crops -> heatmaps) on a validation set."""
    from mca import heatmaps as H
    from mca.metrics import label_heatmaps, pck, side_summary, torso_size

    crops, mats, gt, vis = val[:4]
    hms = np.concatenate([run(crops[i:i + batch]) for i in range(0, len(crops), batch)])
    coords, _ = H.decode_heatmaps(hms)
    to_in = H.heatmap_to_input_matrix((heatmap_size, heatmap_size), (input_size, input_size))
    pred = np.stack([H.apply_affine(H.compose_affine(H.invert_affine(m), to_in), c) for m, c in zip(mats, coords)])
    norm = torso_size(gt, joint_set)
    out = {"pck@0.2": pck(pred, gt, vis, norm, 0.2).total}
    out |= side_summary(pred, gt, vis, hms, joint_set, norm, 0.2, label_heatmaps(gt, vis, mats, input_size,
                                                                                   heatmap_size))
    if len(val) > 4:  # body turns recorded: the side-view swaps, where the remaining side errors are
        from mca.evaluate import side_swap_by_view

        out |= side_swap_by_view(pred, gt, vis, val[4], norm, joint_set)
    return out


def _source_arg(s: str) -> tuple[Path, float]:
    path, _, w = s.rpartition(":") if ":" in s else (s, "", "1")
    try:
        return Path(path), float(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIR or DIR:WEIGHT, got {s!r}") from None


def _share(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = -1.0
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {s!r}")
    return v


def _override(s: str) -> tuple[str, object]:
    k, eq, v = s.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {s!r}")
    try:
        val: object = int(v)
    except ValueError:
        try:
            val = float(v)
        except ValueError:
            val = v
    return k, val


def lr_factor(it: int, iters: int, elapsed: float, budget_s: float, warmup: int, floor: float) -> tuple[float, float]:
    """(learning-rate factor, progress in [0, 1]) of the time-aware cosine schedule."""
    progress = min(1.0, max(it / max(1, iters), elapsed / budget_s if budget_s > 0 else 0.0))
    f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if it < warmup:
        f *= (it + 1) / warmup
    return f, progress


class Epochs:
    """A cache read again and again: pass ``i`` is item ``i % len`` with the augmentation of epoch ``i // len``
    (a cached dataset draws its augmentation from ``(seed, item, epoch)``, so without this every visit of an
    item would be the same crop)."""

    def __init__(self, src) -> None:  # noqa: ANN001 - a dataset with ``epoch``
        self.src = src

    def __len__(self) -> int:
        return 1 << 40  # MixedDataset indexes ``i % len``: let every index through

    def __getitem__(self, i: int):  # noqa: ANN204
        n = len(self.src)
        self.src.epoch = i // n
        return self.src[i % n]


def build_sources(args: argparse.Namespace, cfg, n: int):  # noqa: ANN001, ANN201
    from mca.data.datasets import SyntheticPoseDataset
    from mca.data.mix import MixedDataset

    sources, weights, names = [], [], []
    if args.synthetic > 0:
        sources.append(SyntheticPoseDataset(cfg.joint_set, cfg.input_size, cfg.heatmap_size, n, seed=args.seed,
                                            side_share=args.side_views))
        weights.append(args.synthetic)
        names.append("synthetic")
    for folder, w in args.pseudo or []:
        from mca.data.pseudo_labels import PseudoLabelDataset, load_split

        lb = load_split(folder / "train.npz", teacher=args.pseudo_teacher)
        sources.append(PseudoLabelDataset(lb, cfg.input_size, cfg.heatmap_size, n, seed=args.seed))
        weights.append(w)
        names.append(f"pseudo:{folder.name}:{lb.teacher_names[0]}")
    for folder, w in args.anny or []:
        try:  # helper "anny"'s cache reader (python -m mca.data.anny cache); not in every checkout yet
            from mca.data.anny.dataset import AnnyCachedPoseDataset
        except ImportError:
            raise ValueError("--anny needs mca.data.anny (the Anny mesh-people renderer and its cache reader), "
                             "which this checkout does not have") from None
        src = AnnyCachedPoseDataset(folder, cfg.joint_set, cfg.input_size, cfg.heatmap_size, seed=args.seed)
        if len(src) == 0:
            raise ValueError(f"{folder}: the Anny cache has no finished chunk yet")
        sources.append(Epochs(src))
        weights.append(w)
        names.append(f"anny:{folder.name}:{len(src)}")
    if not sources:
        raise ValueError("no training source (give --synthetic W > 0, --pseudo DIR or --anny DIR)")
    return MixedDataset(sources, weights, n, seed=args.seed, names=names)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/train_pose.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="mca_tiny", help="registered config")
    p.add_argument("--set", type=_override, action="append", default=[], metavar="FIELD=VALUE",
                   help="config field override, e.g. input_size=192 (stored in the checkpoint); with --init only fields "
                        "that keep the weights' shapes")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (new optimizer and schedule)")
    p.add_argument("--resume", type=Path, help="continue this script's OUT/last.pt (weights, optimizer, step, time)")
    p.add_argument("--out", type=Path, required=True, help="folder for log.csv, last.pt, best.pt")
    p.add_argument("--iters", type=int, default=6000, help="iterations of the full schedule")
    p.add_argument("--minutes", type=float, default=150.0, help="wall-time budget of the full schedule")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam peak learning rate")
    p.add_argument("--lr-floor", type=float, default=0.03, help="final learning rate as a fraction of --lr")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up iterations")
    p.add_argument("--synthetic", type=float, default=1.0, help="weight of fresh synthetic people (0: none)")
    p.add_argument("--side-views", type=_share, default=0.0, metavar="SHARE",
                   help="share of synthetic people turned to a side view (45-135 degrees), on top of those the uniform "
                        "body turn gives: where left/right is hardest (0: the held-out distribution)")
    p.add_argument("--pseudo", type=_source_arg, action="append", help="tools/pseudo_label.py folder[:weight]")
    p.add_argument("--pseudo-teacher", default=None,
                   help="whose labels to train on (movenet_thunder, blazepose_heavy; default: the file's first)")
    p.add_argument("--stop-at", type=int, default=0, help="stop after this step (the schedule is not changed)")
    p.add_argument("--anny", type=_source_arg, action="append", help="rendered mesh-people cache folder[:weight]")
    p.add_argument("--eval-every", type=int, default=250, help="iterations between validation passes")
    p.add_argument("--val-num", type=int, default=384, help="validation people (seed 1000)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import torch

    import mca
    from mca.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
    from mca.data.datasets import to_network_input
    from mca.data.mix import collate
    from mca.model import MCANet
    from mca.train import heatmap_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    state = None
    try:
        if args.resume:
            state = read_checkpoint(args.resume)
            model, _ = load_checkpoint(args.resume)
        elif args.init:
            model, _ = load_checkpoint(args.init, overrides=dict(args.set))  # --set input_size=192 fine-tunes larger
        else:
            model = MCANet(mca.get_config(args.config, **dict(args.set)))
    except (CheckpointError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    cfg = model.cfg
    step = int(state["step"]) if state else 0
    elapsed0 = float(state.get("extra", {}).get("elapsed", 0.0)) if state else 0.0
    best = float(state.get("extra", {}).get("best", -1.0)) if state else -1.0
    try:
        data = build_sources(args, cfg, args.iters * args.batch)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state and "optimizer" in state:
        opt.load_state_dict(state["optimizer"])
    log.info("%s (%s, input %d): %s, weights %s; from step %d", cfg.name, cfg.joint_set, cfg.input_size,
             data.names, np.round(data.p, 3).tolist(), step)
    val = validation_set(cfg.joint_set, cfg.input_size, cfg.heatmap_size, args.val_num)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(to_network_input(torch.from_numpy(np.ascontiguousarray(x))))[-1].numpy()

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "log.csv"
    cols = ["step", "lr", "loss", "pck@0.2", "side-swap all", "side-swap all side", "side-collapse all",
            "lr-corr ankle", "lr-corr knee", "lr-corr hip", "lr-corr wrist", "minutes"]
    new = not log_path.exists() or not args.resume
    f = log_path.open("w" if new else "a", newline="")
    writer = csv.writer(f)
    if new:
        writer.writerow(cols)
    t0 = time.time() - elapsed0
    losses: list[float] = []
    budget = 60 * args.minutes
    model.train()
    while True:
        fac, progress = lr_factor(step, args.iters, time.time() - t0, budget, args.warmup, args.lr_floor)
        if progress >= 1.0 or (args.stop_at and step >= args.stop_at):
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * fac
        b = collate([data[step * args.batch + j] for j in range(args.batch)])
        loss = heatmap_loss(model(to_network_input(b["crop"])), b["target"], b["weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % args.eval_every == 0:
            model.eval()
            m = measure(run, val, cfg.joint_set, cfg.input_size, cfg.heatmap_size)
            model.train()
            mins = (time.time() - t0) / 60
            row = [step, f"{args.lr * fac:.2e}", f"{np.mean(losses):.6f}"] + \
                  [f"{m.get(c, float('nan')):.4f}" for c in cols[3:-1]] + [f"{mins:.1f}"]
            writer.writerow(row)
            f.flush()
            log.info("step %d (%.0f%%): loss %.5f, val PCK@0.2 %.3f, swap %.3f (side views %.3f), collapse %.3f, L/R corr ankle %.2f "
                     "knee %.2f (%.1f min)", step, 100 * progress, np.mean(losses), m["pck@0.2"],
                     m["side-swap all"], m.get("side-swap all side", float("nan")), m["side-collapse all"], m["lr-corr ankle"], m["lr-corr knee"], mins)
            losses = []
            extra = {"elapsed": time.time() - t0, "best": max(best, m["pck@0.2"]), "sources": data.names,
                     "weights": data.p.tolist(), "command": " ".join(sys.argv)}
            save_checkpoint(args.out / "last.pt", model, step=step, metrics=m, optimizer=opt, extra=extra)
            if m["pck@0.2"] > best:
                best = m["pck@0.2"]
                save_checkpoint(args.out / "best.pt", model, step=step, metrics=m, extra=extra)
    f.close()
    model.eval()
    m = measure(run, val, cfg.joint_set, cfg.input_size, cfg.heatmap_size)
    extra = {"elapsed": time.time() - t0, "best": max(best, m["pck@0.2"]), "sources": data.names,
             "weights": data.p.tolist(), "command": " ".join(sys.argv), "finished": True}
    save_checkpoint(args.out / "last.pt", model, step=step, metrics=m, optimizer=opt, extra=extra)
    if m["pck@0.2"] > best:
        save_checkpoint(args.out / "best.pt", model, step=step, metrics=m, extra=extra)
    print(f"done at step {step}: validation PCK@0.2 {m['pck@0.2']:.4f}, side-swap {m['side-swap all']:.4f}, "
          f"collapse {m['side-collapse all']:.4f}, L/R corr ankle {m['lr-corr ankle']:.3f} knee {m['lr-corr knee']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
