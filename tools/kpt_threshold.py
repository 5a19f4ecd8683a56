"""Choose the drawing threshold (``python -m realtime.run --kpt-thr``) of a pose model from data.

A joint should be drawn when it is there and the model has it right; not drawn when the reference does not label
it (outside the picture, hidden: the legs of an upper-body shot) or when the model has it wrong.  For held-out
real people (``tools/pseudo_label.py``'s test split, each teacher as the reference in turn; ``head_top`` left out,
no teacher labels it) and held-out synthetic people (``mca.evaluate``'s test seed 2000, the renderer's exact
visibility), this sweeps the threshold on the model's confidence (the heatmap peak, as ``realtime.pose`` decodes
it) and reports ``mca.metrics.draw_threshold_sweep``: the fraction of joints drawn exactly when right
(``decision``), precision, recall and how many unlabelled joints are still drawn.  The suggested default is the
threshold with the best ``decision`` against the teacher the model was *not* trained on (``--judge``).

    python tools/kpt_threshold.py realtime/models/pose_mca_tiny_real.onnx --data data/pseudo --judge blazepose_heavy
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger(__name__)

THRESHOLDS = np.round(np.arange(0.0, 0.81, 0.05), 2)


def predict(run, images, joints, visible, boxes, input_size: int, heatmap_size: int,  # noqa: ANN001
            batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Frame-pixel joints and confidences for people cropped as the pipeline crops them (box, padding 1.25)."""
    from mca import heatmaps as H
    from mca.data.augment import make_sample
    from mca.joints import MPII16

    crops, mats = [], []
    for img, j, v, b in zip(images, joints, visible, boxes):
        s = make_sample(img, j, v, b, input_size, heatmap_size, MPII16.flip_index)
        crops.append(s.crop)
        mats.append(s.frame_to_input)
    x = np.stack(crops)
    hms = np.concatenate([run(x[i:i + batch]) for i in range(0, len(x), batch)])
    coords, conf = H.decode_heatmaps(hms)
    to_in = H.heatmap_to_input_matrix((heatmap_size, heatmap_size), (input_size, input_size))
    pred = np.stack([H.apply_affine(H.compose_affine(H.invert_affine(m), to_in), c) for m, c in zip(mats, coords)])
    return pred, np.clip(conf, 0.0, 1.0)


def sweep(pred: np.ndarray, conf: np.ndarray, gt: np.ndarray, labelled: np.ndarray, keep_joints: np.ndarray,
          thr: float = 0.2, torso_labelled: bool = True) -> dict:
    """``draw_threshold_sweep`` with right = within ``thr`` x torso of a labelled joint.

    People count when their torso (right shoulder to left hip) is known: labelled by the reference
    (``torso_labelled``, as ``tools/teacher_agreement.py`` counts people), or always for synthetic people."""
    from mca.joints import MPII16
    from mca.metrics import draw_threshold_sweep, torso_size

    ts = torso_size(gt, "mpii16")
    people = np.isfinite(ts) & (ts > 1)
    if torso_labelled:
        people &= labelled[:, MPII16.index("r_shoulder")] & labelled[:, MPII16.index("l_hip")]
    err = np.linalg.norm(pred - gt, axis=-1)
    correct = labelled & (err <= thr * ts[:, None])
    sel = (slice(None), keep_joints)
    r = draw_threshold_sweep(conf[people][sel], correct[people][sel], labelled[people][sel], THRESHOLDS)
    out = {k: [None if np.isnan(x) else round(float(x), 4) for x in v] for k, v in r.items()}
    out["people"] = int(people.sum())
    out["joints"] = int(keep_joints.sum() * people.sum())
    out["unlabelled"] = int((~labelled[people][sel]).sum())
    return out


def synthetic_people(n: int, seed: int = 2000):  # noqa: ANN201
    """Frames, labels and boxes of ``n`` held-out synthetic people (partly outside the frame included)."""
    from mca.data.synthetic import SceneRenderer

    r = SceneRenderer("mpii16", (384, 384), seed=seed, min_people=1, max_people=3, min_height=0.35 * 384,
                      max_height=1.1 * 384)
    imgs, js, vs, bs = [], [], [], []
    i = 0
    while len(imgs) < n:
        scene = r.render(i)
        i += 1
        for p in scene.people:
            if p.visible.sum() >= 4 and len(imgs) < n:
                imgs.append(scene.image)
                js.append(p.joints)
                vs.append(p.visible)
                bs.append(p.box)
    return imgs, np.stack(js), np.stack(vs), np.stack(bs)


def _f(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", type=Path, help="ONNX pose model (engines.export) or a training checkpoint")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "pseudo", help="tools/pseudo_label.py's folder")
    p.add_argument("--judge", default="blazepose_heavy", help="the teacher whose sweep picks the default")
    p.add_argument("--synthetic-num", type=int, default=500, help="held-out synthetic people (0: none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the sweeps here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from mca.data.pseudo_labels import load_split
    from mca.joints import MPII16
    from tools.teacher_agreement import load_runner

    try:
        base = load_split(args.data / "test.npz")
        refs = {base.teacher_names[0]: base}
        if base.alt_joints is not None:
            refs[base.teacher_names[1]] = base.swapped()
        if args.judge not in refs:
            raise ValueError(f"--judge {args.judge} is not a teacher in {args.data / 'test.npz'} ({', '.join(refs)})")
        run, size, hsize = load_runner(args.model, args.threads)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a corrupt model file: one line for the user
        print(f"error: cannot load {args.model}: {type(e).__name__}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
        return 2
    no_head_top = np.ones(16, bool)
    no_head_top[MPII16.index("head_top")] = False
    res: dict = {"model": str(args.model), "thresholds": THRESHOLDS.tolist(), "sweeps": {}}
    pred, conf = predict(run, base.images, base.joints, base.visible, base.boxes, size, hsize)
    for name, lb in refs.items():
        res["sweeps"][f"real vs {name}"] = sweep(pred, conf, lb.joints, lb.visible, no_head_top)
    if args.synthetic_num > 0:
        imgs, js, vs, bs = synthetic_people(args.synthetic_num)
        sp, sc = predict(run, imgs, js, vs, bs, size, hsize)
        res["sweeps"]["synthetic"] = sweep(sp, sc, js, vs, np.ones(16, bool), torso_labelled=False)
    judge = res["sweeps"][f"real vs {args.judge}"]
    best = int(np.nanargmax(np.asarray(judge["decision"], float)))
    res["suggested"] = float(THRESHOLDS[best])
    res["judge"] = args.judge
    for name, r in res["sweeps"].items():
        print(f"{name} ({r['people']} people, {r['unlabelled']} unlabelled joints of {r['joints']}):")
        print("  thr   decision precision recall invented wrong_drawn")
        for k, t in enumerate(THRESHOLDS):
            mark = " <-" if k == best and name == f"real vs {args.judge}" else ""
            print(f"  {t:.2f}  {_f(r['decision'][k])}    {_f(r['precision'][k])}     {_f(r['recall'][k])}  "
                  f"{_f(r['invented'][k])}    {_f(r['wrong_drawn'][k])}{mark}")
    print(f"suggested --kpt-thr {res['suggested']:.2f} (best decision vs {args.judge})")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
