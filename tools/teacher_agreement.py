"""Agreement of pose models with each of two teachers on held-out real people (``tools/pseudo_label.py``'s test split).

For every model (exported ONNX, run through ONNX Runtime, or a training checkpoint) and every teacher stored in
``DIR/test.npz`` (MoveNet thunder, BlazePose heavy), it reports PCK@0.2 with that teacher's MPII-16 joints as
the reference (torso = the teacher's right shoulder to left hip; only joints the teacher labels), per joint, and
the side-swap / side-collapse rates against the teacher (``mca.metrics.side_swap``).  Left/right count: a limb
put on the wrong side is a miss.  It also reports how well the two teachers agree with each other on the same
people, which is the most any model trained on one of them can be expected to reach against the other.

What this measures: closeness to an imperfect model on these scenes.  Not accuracy against human labels.

    python tools/teacher_agreement.py --data data/pseudo realtime/models/pose_mca_tiny_real.onnx --json out.json
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


def load_runner(path: Path, threads: int = 1):  # noqa: ANN201 - (run, input_size, heatmap_size)
    """A function uint8 NHWC BGR crops -> heatmaps for an ONNX pose model or a checkpoint."""
    if path.suffix == ".onnx":
        import engines

        be = engines.load(path, backend="ort", threads=threads)
        meta = be.metadata
        if meta.get("mca.kind") != "pose" or meta.get("mca.joint_set") != "mpii16":
            raise ValueError(f"{path} is not an MPII-16 pose model from engines.export")
        idx = [o.name for o in be.outputs].index("heatmaps")
        return (lambda x: be.run(x)[idx]), int(meta["mca.input_size"]), int(meta["mca.heatmap_size"])
    import torch

    from mca.checkpoint import load_checkpoint
    from mca.data.datasets import to_network_input

    torch.set_num_threads(threads)
    model, _ = load_checkpoint(path)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(to_network_input(torch.from_numpy(np.ascontiguousarray(x))))[-1].numpy()

    return run, model.cfg.input_size, model.cfg.heatmap_size


def with_flip(run):  # noqa: ANN001, ANN201
    """``run`` with the flip test (mirror, swap left/right maps back, average), as ``realtime.pose`` does it."""
    from mca import heatmaps as H
    from mca.joints import MPII16

    return lambda x: H.flip_test(run, x, MPII16.flip_index, channels_last=True)


def teacher_vs_teacher(lb) -> dict:  # noqa: ANN001 - PseudoLabels with a second teacher
    """PCK@0.2 of the primary teacher's joints against the second teacher's (its torso), on joints both label."""
    from mca.joints import MPII16
    from mca.metrics import pck, side_pair_names, side_swap, torso_size

    ref, rv = lb.alt_joints, lb.alt_visible
    ts = torso_size(ref, "mpii16")
    keep = rv[:, MPII16.index("r_shoulder")] & rv[:, MPII16.index("l_hip")] & (ts > 1)
    both = rv & lb.visible
    res = pck(lb.joints[keep], ref[keep], both[keep], ts[keep], 0.2)
    sw = side_swap(lb.joints[keep], ref[keep], both[keep], side_pair_names("mpii16"), ts[keep], 0.1)
    return {"pck@0.2": res.total, "people": int(keep.sum()), "joints": res.count,
            "side-swap": {k: v["swap"] for k, v in sw.items()}}


def agreement(run, lb, input_size: int, heatmap_size: int) -> dict:  # noqa: ANN001
    """``mca.data.pseudo_labels.teacher_agreement`` plus side swaps against the teacher."""
    from mca import heatmaps as H
    from mca.data.augment import make_sample
    from mca.data.pseudo_labels import teacher_agreement
    from mca.joints import MPII16
    from mca.metrics import side_pair_names, side_swap, torso_size

    out = teacher_agreement(run, lb, input_size, heatmap_size)
    ts = torso_size(lb.joints, "mpii16")
    keep = lb.visible[:, MPII16.index("r_shoulder")] & lb.visible[:, MPII16.index("l_hip")] & (ts > 1)
    preds = []
    to_in = H.heatmap_to_input_matrix((heatmap_size, heatmap_size), (input_size, input_size))
    for i in np.flatnonzero(keep):
        s = make_sample(lb.images[i], lb.joints[i], lb.visible[i], lb.boxes[i], input_size, heatmap_size,
                        MPII16.flip_index)
        c, _ = H.decode_heatmaps(run(s.crop[None]))
        preds.append(H.apply_affine(H.compose_affine(H.invert_affine(s.frame_to_input), to_in), c[0]))
    sw = side_swap(np.stack(preds), lb.joints[keep], lb.visible[keep], side_pair_names("mpii16"), ts[keep], 0.1)
    out["side-swap"] = {k: v["swap"] for k, v in sw.items()}
    out["side-collapse"] = {k: v["collapse"] for k, v in sw.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", type=Path, nargs="+", help="ONNX pose models or checkpoints")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "pseudo", help="tools/pseudo_label.py's folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--flip", action="store_true",
                   help="flip test: average each crop's heatmaps with its mirror's (as realtime.run --flip-test)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from mca.data.pseudo_labels import load_split

    try:
        base = load_split(args.data / "test.npz")
        teachers = {base.teacher_names[0]: base}
        if base.alt_joints is not None:
            teachers[base.teacher_names[1]] = base.swapped()
        runners = {str(m): load_runner(m, args.threads) for m in args.models}
        if args.flip:
            runners = {f"{k} (flip test)": (with_flip(r), s, h) for k, (r, s, h) in runners.items()}
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a corrupt model file: one line for the user
        print(f"error: cannot load a model: {type(e).__name__}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
        return 2
    res: dict = {"data": str(args.data), "teachers": list(teachers), "models": {}}
    if base.alt_joints is not None:
        res["teacher_vs_teacher"] = {f"{a} vs {b} (reference)": teacher_vs_teacher(lb)
                                     for (a, lb), b in zip(teachers.items(), list(teachers)[::-1])}
        for k, v in res["teacher_vs_teacher"].items():
            print(f"{k}: PCK@0.2 {v['pck@0.2']:.3f} ({v['joints']} joints, {v['people']} people)")
    for name, (run, s, h) in runners.items():
        res["models"][name] = {}
        for t, lb in teachers.items():
            r = agreement(run, lb, s, h)
            res["models"][name][t] = r
            sw = np.nanmean([v for v in r["side-swap"].values()])
            print(f"{name} vs {t}: PCK@0.2 {r['pck@0.2']:.3f} ({r['joints']} joints, {r['people']} people), "
                  f"mean side-swap {sw:.3f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
