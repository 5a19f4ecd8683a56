"""Fine-tune the bundled mca_tiny on synthetic + teacher-pseudo-labelled real crops; report before and after.

Starts from ``realtime/models/pose_mca_tiny_synth.pt`` and trains on batches that are half synthetic people
(``SyntheticPoseDataset``, fresh scenes: seed 7) and half real crops pseudo-labelled by MoveNet thunder
(``tools/pseudo_label.py``), both through the one augmentation path (``mca.data.augment.make_sample``),
for a fixed number of iterations within a wall-clock budget.  No model selection on the held-out data:
the last weights are the result.  Before and after it measures

- agreement with the teacher on the held-out real crops (the last quarter of vtest.avi and two photos):
  PCK@0.2, torso-normalised, teacher joints as ground truth, only joints the teacher labels;
- held-out synthetic PCK@0.2 / PCKh@0.5 (``mca.evaluate``: 1000 people, seed 2000), to see whether
  synthetic accuracy is kept.

Writes ``OUT/finetuned.pt`` and ``OUT/results.json``; export with
``python -m engines.export -c OUT/finetuned.pt --attention -o realtime/models/pose_mca_tiny_real.onnx``.
Needs the ``train`` extra (PyTorch)::

    python tools/finetune_real.py --data data/pseudo --out runs/finetune_real
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

log = logging.getLogger(__name__)

SYNTH_SEED = 7  # training scenes the bundled model never saw (it trained on seed 0; validation 1000, test 2000)


def measure(model, labels, cfg, synth_num: int) -> dict:  # noqa: ANN001
    """Teacher agreement on the held-out real crops and held-out synthetic accuracy of a torch model."""
    import torch

    from mca.data.datasets import to_network_input
    from mca.data.pseudo_labels import teacher_agreement
    from mca.evaluate import evaluate_synthetic
    from mca.joints import get_joint_set

    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(to_network_input(torch.from_numpy(np.ascontiguousarray(x))))[-1].numpy()

    real = teacher_agreement(run, labels, cfg.input_size, cfg.heatmap_size)
    synth = evaluate_synthetic(run, cfg.joint_set, cfg.input_size, cfg.heatmap_size,
                               get_joint_set(cfg.joint_set).flip_index, n=synth_num)
    return {"real_teacher_agreement": real, "synthetic": synth}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fine-tune mca_tiny on synthetic + pseudo-labelled real crops.")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "realtime" / "models" / "pose_mca_tiny_synth.pt")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "pseudo", help="tools/pseudo_label.py's folder")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune_real")
    p.add_argument("--iters", type=int, default=450, help="training iterations")
    p.add_argument("--minutes", type=float, default=12.0, help="stop training after this much wall time")
    p.add_argument("--batch-real", type=int, default=8, help="real crops per batch")
    p.add_argument("--batch-synth", type=int, default=8, help="synthetic crops per batch")
    p.add_argument("--lr", type=float, default=2.5e-4, help="Adam learning rate (linearly decayed to 10%%)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: on 2 shared cores, 2 stalled)")
    p.add_argument("--synth-num", type=int, default=1000, help="held-out synthetic people (as mca.evaluate)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import torch

    from mca.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from mca.data.datasets import SyntheticPoseDataset, to_network_input
    from mca.data.pseudo_labels import PseudoLabelDataset, load_split
    from mca.train import heatmap_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        model, info = load_checkpoint(args.checkpoint)
        train_lb, test_lb = load_split(args.data / "train.npz"), load_split(args.data / "test.npz")
    except (CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = model.cfg
    if cfg.joint_set != "mpii16":
        print(f"error: {args.checkpoint} predicts {cfg.joint_set}; the pseudo-labels are MPII-16", file=sys.stderr)
        return 2
    t_start = time.time()
    before = measure(model, test_lb, cfg, args.synth_num)
    log.info("before: real agreement PCK@0.2 %.3f, synthetic PCK@0.2 %.3f (%.0f s)",
             before["real_teacher_agreement"]["pck@0.2"], before["synthetic"]["pck@0.2"], time.time() - t_start)

    real = PseudoLabelDataset(train_lb, cfg.input_size, cfg.heatmap_size, args.iters * args.batch_real, seed=args.seed)
    synth = SyntheticPoseDataset(cfg.joint_set, cfg.input_size, cfg.heatmap_size, args.iters * args.batch_synth,
                                 seed=SYNTH_SEED)
    order = np.random.default_rng(args.seed).permutation(args.iters * args.batch_real)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - 0.9 * min(i, args.iters) / args.iters)
    model.train()
    t0, done, running = time.time(), 0, []
    for it in range(args.iters):
        if time.time() - t0 > 60 * args.minutes:
            log.warning("wall-clock budget (%.1f min) reached after %d iterations", args.minutes, it)
            break
        items = [real[int(k)] for k in order[it * args.batch_real:(it + 1) * args.batch_real]]
        items += [synth[it * args.batch_synth + j] for j in range(args.batch_synth)]
        crop = torch.stack([b["crop"] for b in items])
        target = torch.stack([b["target"] for b in items])
        weight = torch.stack([b["weight"] for b in items])
        loss = heatmap_loss(model(to_network_input(crop)), target, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        done = it + 1
        if done % 25 == 0:
            log.info("iter %d/%d: loss %.5f (%.0f s)", done, args.iters, float(np.mean(running[-25:])), time.time() - t0)
    train_s = time.time() - t0
    after = measure(model, test_lb, cfg, args.synth_num)
    log.info("after: real agreement PCK@0.2 %.3f, synthetic PCK@0.2 %.3f", after["real_teacher_agreement"]["pck@0.2"],
             after["synthetic"]["pck@0.2"])
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"start": str(args.checkpoint.name), "iterations": done, "train_seconds": round(train_s, 1),
               "batch": {"real": args.batch_real, "synthetic": args.batch_synth}, "lr": args.lr,
               "train_people": len(train_lb), "test_people": len(test_lb), "before": before, "after": after,
               "command": "python tools/finetune_real.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    save_checkpoint(args.out / "finetuned.pt", model.cpu(), epoch=int(info.get("epoch", 0)), step=done,
                    metrics={"synthetic_pck@0.2": after["synthetic"]["pck@0.2"],
                             "real_teacher_pck@0.2": after["real_teacher_agreement"]["pck@0.2"]},
                    extra={"finetuned_from": args.checkpoint.name, "data": "synthetic + MoveNet-thunder pseudo-labels"})
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    b, a = before["real_teacher_agreement"], after["real_teacher_agreement"]
    print(f"teacher agreement PCK@0.2 on {b['people']} held-out real people ({b['joints']} joints): "
          f"{b['pck@0.2']:.3f} -> {a['pck@0.2']:.3f}")
    print(f"held-out synthetic PCK@0.2: {before['synthetic']['pck@0.2']:.3f} -> {after['synthetic']['pck@0.2']:.3f}; "
          f"PCKh@0.5: {before['synthetic'].get('pckh@0.5', float('nan')):.3f} -> "
          f"{after['synthetic'].get('pckh@0.5', float('nan')):.3f}")
    print(f"wrote {args.out / 'finetuned.pt'} and results.json ({done} iterations, {train_s / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
