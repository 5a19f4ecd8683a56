"""``python -m mca.evaluate``: accuracy of a pose model on held-out synthetic people or a real data set.

Runs an exported ONNX model through ONNX Runtime (or a training checkpoint through
PyTorch) on person crops made exactly as the realtime pipeline makes them (the
ground-truth box, padded 1.25, no augmentation), decodes with this project's
quarter-pixel rule (argmax on the heatmap plus a quarter pixel towards the larger
neighbour, from Newell's hourglass code), and reports PCK@0.2 (torso = right shoulder
to left hip) and, for MPII-16, PCKh@0.5 (synthetic people: head size = head-top to
upper-neck distance; MPII: the official head boxes, or the .h5's ``normalize``).
Held-out scenes use a seed the training never sees (training: 0, validation: 1000,
this test set: 2000).

Real data sets can be scored with the authors' test protocol instead (``--protocol released``:
heatmaps upsampled into the image and the argmax taken there, flip; ``--protocol paper`` adds
the 0.7-1.2 scale pyramid the paper used), see :mod:`mca.protocol`; every run prints the
protocol it used, per-joint accuracy and the total.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mca.data.synthetic import SIDE_VIEW

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
    crops, mats, gts, vis, yaws = [], [], [], [], []
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
            yaws.append(p.yaw)
    return np.stack(crops), np.stack(mats), np.stack(gts), np.stack(vis), np.asarray(yaws, float)


VIEWS = {"front": (0.0, SIDE_VIEW[0]), "side": SIDE_VIEW, "back": (SIDE_VIEW[1], 180.01)}  # |body yaw| in degrees


def side_swap_by_view(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, yaw: np.ndarray, norm: np.ndarray,
                      joint_set: str, min_sep: float = 0.1) -> dict[str, float]:
    """``side-swap all <view>`` and its pair count for people seen from the front, side and back: where the
    side errors are (a back view needs the model to turn its left/right around; a side view hides one limb)."""
    from mca.metrics import side_pair_names, side_swap

    pairs = side_pair_names(joint_set)
    out: dict[str, float] = {}
    a = np.abs(((np.asarray(yaw, float) + 180.0) % 360.0) - 180.0)
    for view, (lo, hi) in VIEWS.items():
        m = (a >= lo) & (a < hi)
        if not m.any():
            continue
        sw = side_swap(pred[m], gt[m], vis[m], pairs, norm[m], min_sep)
        n = sum(v["pairs"] for v in sw.values())
        out[f"side-swap all {view}"] = (float(sum(np.nan_to_num(v["swap"]) * v["pairs"] for v in sw.values()) / n)
                                        if n else float("nan"))
        out[f"side pairs {view}"] = float(n)
    return out


def evaluate_synthetic(run: Callable[[np.ndarray], np.ndarray], joint_set: str, input_size: int, heatmap_size: int,
                       flip_index: tuple[int, ...], n: int = 1000, seed: int = TEST_SEED, flip: bool = False,
                       batch: int = 32) -> dict[str, float]:
    """PCK@0.2 / PCKh@0.5 of ``run`` (uint8 NHWC BGR crops -> heatmaps) on held-out synthetic people,
    with per-joint PCK, side swaps and left/right heatmap correlation (:func:`mca.metrics.side_summary`)."""
    from mca import heatmaps as H
    from mca.metrics import head_size, label_heatmaps, pck, side_summary, torso_size

    crops, mats, gt, vis, yaw = _heldout(joint_set, input_size, heatmap_size, n, seed)
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
    out |= side_summary(pred, gt, vis, np.concatenate(hms), joint_set, torso_size(gt, joint_set), 0.2,
                        label_heatmaps(gt, vis, mats, input_size, heatmap_size))  # what the total hides
    out |= side_swap_by_view(pred, gt, vis, yaw, torso_size(gt, joint_set), joint_set)
    return out


def _real_people(ds: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, person box) of every record, with a progress bar (long on MPII's 2958 people)."""
    from tqdm import tqdm

    for i in tqdm(range(len(ds)), desc="people", unit="person", leave=False, mininterval=2.0):
        yield ds.image(i), ds.records[i].box


def evaluate_real(run: Callable[[np.ndarray], np.ndarray], records: list, image_root: Path, dataset: str,
                  joint_set: str, input_size: int, heatmap_size: int, flip_index: tuple[int, ...], flip: bool = False,
                  batch: int = 32, coco_annotations: Path | None = None, protocol: Any = None) -> dict[str, Any]:
    """MPII: PCKh@0.5 (official head-box normalisation, and MPII's table); LSP: PCK@0.2 (torso); COCO: OKS AP.

    ``protocol`` (a :class:`mca.protocol.Protocol`; default: this project's rule, with ``flip``) decides
    how heatmaps become positions: decoding, flip, scale pyramid.
    """
    from mca.data.real import RealPoseDataset
    from mca.joints import get_joint_set
    from mca.metrics import coco_keypoint_ap, head_size, mpii_head_size_from_box, pck, torso_size
    from mca.protocol import Protocol, mpii_table, predict_people

    protocol = protocol or Protocol(flip=flip)
    ds = RealPoseDataset(records, image_root, joint_set, input_size, heatmap_size, train=False)
    pred, conf = predict_people(run, _real_people(ds), input_size, heatmap_size, flip_index, protocol, batch)
    gt = np.stack([r.joints for r in records])
    vis = np.stack([r.visible for r in records])
    names = get_joint_set(joint_set).names
    out: dict[str, Any] = {"people": float(len(records)), "protocol": protocol.describe()}
    if dataset == "mpii":
        if all(r.head_box is not None for r in records):
            norm, out["head size"] = mpii_head_size_from_box(np.stack([r.head_box for r in records])), "head boxes"
        elif all(r.head_size is not None for r in records):
            norm, out["head size"] = np.array([r.head_size for r in records]), "normalize (.h5)"
        else:
            norm, out["head size"] = head_size(gt, joint_set), "head top to upper neck (no head boxes)"
        res = pck(pred, gt, vis, norm, 0.5)
        out["pckh@0.5"] = res.total
        out |= {f"pckh@0.5 {k}": v for k, v in res.as_dict(names).items() if k != "total"}
        out |= {f"mpii table {k}": v for k, v in mpii_table(pred, gt, vis, norm, 0.5).items()}
    else:
        res = pck(pred, gt, vis, torso_size(gt, joint_set), 0.2)
        out["pck@0.2"] = res.total
        if dataset == "lsp":
            out |= {f"pck@0.2 {k}": v for k, v in res.as_dict(names).items() if k != "total"}
    if dataset == "coco":
        results = [{"image_id": r.image_id, "category_id": 1, "score": float(c.mean()),
                    "keypoints": np.concatenate([p, c[:, None]], 1).reshape(-1).tolist()}
                   for r, p, c in zip(records, pred, conf)]
        out |= {f"oks {k}": v for k, v in coco_keypoint_ap(json.loads(Path(coco_annotations).read_text()),
                                                          results).items()}
    return out


def _add_protocol_args(p: argparse.ArgumentParser) -> None:
    """The test-protocol options (mca.protocol): a preset, and each setting on its own (overrides the preset)."""
    from mca.protocol import DECODES, PRESETS

    g = p.add_argument_group("test protocol (real data sets)")
    g.add_argument("--protocol", choices=list(PRESETS), default="project",
                   help="project: argmax + quarter pixel on the heatmap, single scale, no flip (unless --flip); "
                        "released: test/main.lua as shipped (heatmaps upsampled into the image, argmax there, "
                        "flip); paper: released + the scale pyramid 0.7..1.2 the paper used")
    g.add_argument("--decode", choices=DECODES, help="override the preset's decoding (image = test/main.lua's)")
    g.add_argument("--scales", help="override the preset's scale pyramid, e.g. 0.7,0.8,0.9,1.0,1.1,1.2")
    g.add_argument("--fuse", choices=["mean", "max"], help="how the scales are combined (default mean)")
    g.add_argument("--no-flip", action="store_true", help="override a preset's flip test")
    g.add_argument("--h5-convention", choices=["auto", "split", "combined"], default="auto",
                   help="MPII .h5 centre/scale: auto-detected, split train/valid.h5 (adjusted) or annot.h5 (raw)")


def _protocol_from_args(args: argparse.Namespace) -> Any:
    """The Protocol the options ask for; raises ValueError for bad values."""
    import dataclasses

    from mca.protocol import PRESETS

    prot = PRESETS[args.protocol]
    over: dict[str, Any] = {}
    if args.decode:
        over["decode"] = args.decode
    if args.scales:
        try:
            over["scales"] = tuple(float(v) for v in args.scales.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--scales must be comma-separated numbers, got {args.scales!r}") from None
    if args.fuse:
        over["fuse"] = args.fuse
    if args.flip or args.no_flip:
        over["flip"] = bool(args.flip and not args.no_flip)
    return dataclasses.replace(prot, **over)


def _print_results(res: dict[str, Any]) -> None:
    for k, v in res.items():
        if isinstance(v, str):
            print(f"{k}: {v}")
        else:
            print(f"{k}: {v:.4f}" if k != "people" else f"{k}: {int(v)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mca.evaluate", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--onnx", type=Path, help="exported pose model (run with ONNX Runtime, no torch needed)")
    src.add_argument("--checkpoint", type=Path, help="training checkpoint (run with PyTorch)")
    p.add_argument("--data", default="synthetic", choices=["synthetic", "mpii", "coco", "lsp"],
                   help="held-out synthetic people, or a real data set (needs --annotations and --images)")
    p.add_argument("--annotations", type=Path, help="MPII .mat/.h5/.json, COCO person_keypoints json, LSP joints.mat")
    p.add_argument("--images", type=Path, help="the data set's image folder")
    p.add_argument("--num", type=int, help="people to evaluate (default: 1000 synthetic, every real one)")
    p.add_argument("--seed", type=int, default=TEST_SEED, help=f"scene seed (default {TEST_SEED}, never trained on)")
    p.add_argument("--flip", action="store_true", help="flip test (average with the mirrored crop)")
    p.add_argument("--json", type=Path, help="also write the metrics here")
    _add_protocol_args(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        protocol = _protocol_from_args(args)
        if args.data == "synthetic" and (protocol.decode != "quarter" or protocol.scales != (1.0,)):
            raise ValueError("--protocol/--decode/--scales apply to real data sets (they need the frame); "
                             "synthetic people take --flip only")
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
    if args.data == "synthetic":
        res = {"protocol": protocol.describe(),  # synthetic people: quarter-pixel decoding, --flip
               **evaluate_synthetic(run, js, s, h, flip_index, args.num or 1000, args.seed, protocol.flip)}
    else:
        from mca.data.real import AnnotationError, load_records

        try:
            if args.annotations is None or args.images is None:
                raise AnnotationError(f"--data {args.data} needs --annotations and --images")
            want = "coco17" if args.data == "coco" else "mpii16"
            if js != want:
                raise AnnotationError(f"{args.data} is labelled in {want}; this model predicts {js}")
            records = load_records(args.data, args.annotations, args.h5_convention)[: args.num]
            log.info("protocol: %s", protocol.describe())
            res = evaluate_real(run, records, args.images, args.data, js, s, h, flip_index, protocol.flip,
                                coco_annotations=args.annotations, protocol=protocol)
        except AnnotationError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    _print_results(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
