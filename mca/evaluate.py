"""``python -m mca.evaluate``: accuracy of a pose model on held-out synthetic people.

Runs an exported ONNX model through ONNX Runtime (or a training checkpoint through
PyTorch) on person crops made exactly as the realtime pipeline makes them (the
ground-truth box, padded 1.25, no augmentation), decodes with the released
quarter-pixel rule, and reports PCK@0.2 (torso = right shoulder to left hip) and,
for MPII-16, PCKh@0.5 (head size = head-top to upper-neck distance; MPII's own
head boxes do not exist for synthetic people).  Held-out scenes use a seed the
training never sees (training: 0, validation: 1000, this test set: 2000).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["evaluate_synthetic", "main"]

TEST_SEED = 2000


def _heldout(joint_set: str, input_size: int, heatmap_size: int, n: int, seed: int):  # noqa: ANN202
    """Crops, crop->frame transforms and ground truth of ``n`` held-out people."""
    from mca.data.augment import make_sample
    from mca.data.synthetic import SceneRenderer
    from mca.joints import get_joint_set

    js = get_joint_set(joint_set)
    r = SceneRenderer(joint_set, (384, 384), seed=seed, min_people=1, max_people=3, min_height=0.35 * 384,
                      max_height=1.1 * 384)
    crops, mats, gts, vis = [], [], [], []
    i = 0
    while len(crops) < n:
        scene = r.render(i)
        i += 1
        for p in scene.people:
            if p.visible.sum() < 4 or len(crops) >= n:
                continue
            s = make_sample(scene.image, p.joints, p.visible, p.box, input_size, heatmap_size, js.flip_index)
            crops.append(s.crop)
            mats.append(s.frame_to_input)
            gts.append(p.joints)
            vis.append(p.visible)
    return np.stack(crops), np.stack(mats), np.stack(gts), np.stack(vis)


def evaluate_synthetic(run: Callable[[np.ndarray], np.ndarray], joint_set: str, input_size: int, heatmap_size: int,
                       flip_index: tuple[int, ...], n: int = 1000, seed: int = TEST_SEED, flip: bool = False,
                       batch: int = 32) -> dict[str, float]:
    """PCK@0.2 / PCKh@0.5 of ``run`` (uint8 NHWC BGR crops -> heatmaps) on held-out synthetic people."""
    from mca import heatmaps as H
    from mca.metrics import head_size, pck, torso_size

    crops, mats, gt, vis = _heldout(joint_set, input_size, heatmap_size, n, seed)
    hms = []
    for i in range(0, len(crops), batch):
        chunk = crops[i:i + batch]
        hms.append(H.flip_test(run, chunk, flip_index, channels_last=True) if flip else run(chunk))
    coords, _ = H.decode_heatmaps(np.concatenate(hms))
    to_in = H.heatmap_to_input_matrix((heatmap_size, heatmap_size), (input_size, input_size))
    pred = np.stack([H.apply_affine(H.compose_affine(H.invert_affine(m), to_in), c) for m, c in zip(mats, coords)])
    out = {"people": float(len(crops)), "pck@0.2": pck(pred, gt, vis, torso_size(gt, joint_set), 0.2).total}
    if joint_set == "mpii16":
        out["pckh@0.5"] = pck(pred, gt, vis, head_size(gt, joint_set), 0.5).total
    err = np.linalg.norm(pred - gt, axis=-1)[vis]
    out["median error px"] = float(np.median(err))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mca.evaluate", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--onnx", type=Path, help="exported pose model (run with ONNX Runtime, no torch needed)")
    src.add_argument("--checkpoint", type=Path, help="training checkpoint (run with PyTorch)")
    p.add_argument("--data", default="synthetic", choices=["synthetic"],
                   help="evaluation data (held-out synthetic people; real data sets: see the README)")
    p.add_argument("--num", type=int, default=1000, help="held-out people to evaluate (default 1000)")
    p.add_argument("--seed", type=int, default=TEST_SEED, help=f"scene seed (default {TEST_SEED}, never trained on)")
    p.add_argument("--flip", action="store_true", help="flip test (average with the mirrored crop)")
    p.add_argument("--json", type=Path, help="also write the metrics here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.onnx:
            import engines
            from engines.base import ModelError

            try:
                be = engines.load(args.onnx, backend="ort")
            except ModelError as e:
                raise ValueError(str(e)) from None
            meta = be.metadata
            if meta.get("mca.kind") != "pose":
                raise ValueError(f"{args.onnx} is not a pose model from engines.export")
            idx = [o.name for o in be.outputs].index("heatmaps")
            run = lambda x: be.run(x)[idx]  # noqa: E731
            js, s, h = meta["mca.joint_set"], int(meta["mca.input_size"]), int(meta["mca.heatmap_size"])
            flip_index = tuple(json.loads(meta["mca.flip_index"]))
        else:
            import torch

            from mca.checkpoint import CheckpointError, load_checkpoint
            from mca.data.datasets import to_network_input
            from mca.joints import get_joint_set

            try:
                model, _ = load_checkpoint(args.checkpoint)
            except CheckpointError as e:
                raise ValueError(str(e)) from None

            def run(x: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return model(to_network_input(torch.from_numpy(np.ascontiguousarray(x))))[-1].numpy()

            cfg = model.cfg
            js, s, h = cfg.joint_set, cfg.input_size, cfg.heatmap_size
            flip_index = get_joint_set(js).flip_index
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = evaluate_synthetic(run, js, s, h, flip_index, args.num, args.seed, args.flip)
    for k, v in res.items():
        print(f"{k}: {v:.4f}" if k != "people" else f"{k}: {int(v)}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
