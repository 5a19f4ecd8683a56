"""Cut the TF pre/post-processing loops out of an SSD detector ONNX and check the boxes did not change.

``engines.ssd_cut`` keeps the network and the box decoding; the resize (which the pipeline does anyway)
and the per-class NMS loop go, and ``realtime.detectors``' ``ssd_decoded`` family does the NMS in NumPy.
This tool writes the cut file and, on real frames, runs both files through ``PersonDetector`` and
compares what the pipeline would get: the same people, boxes within ``--tol-px`` pixels and scores
within ``--tol-score``, at the family's verification threshold (0.2) and at ``--low`` (many more boxes,
so NMS order matters).  It also times both (median ms per frame, one thread, the same run)::

    python tools/ssdlite_cut.py realtime/models/person_ssdlite.onnx -o realtime/models/person_ssdlite.onnx

(in place: the original is read and kept in memory for the check; ``tools/convert_ssdlite.py`` rebuilds it).
Exit 0 when every frame agrees, 1 when one does not (the output is then not written), 2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("ssdlite_cut")
VIDEO = Path(os.environ.get("MCA_SHARED", ROOT.parent / "shared")) / "data" / "real-video" / "vtest.avi"


def _frames(video: Path, n: int, step: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    out, i = [], 0
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append(f)
        i += 1
    cap.release()
    return out


def compare(reference: object, cut: object, frames: list[np.ndarray], conf: float) -> dict[str, float]:
    """Both detectors (``PersonDetector``) on every frame at ``conf``: worst box and score differences."""
    ref_d, cut_d = reference, cut
    ref_d.conf = cut_d.conf = conf  # type: ignore[attr-defined]
    worst_px, worst_score, count_diff, people = 0.0, 0.0, 0, 0
    for f in frames:
        a, b = ref_d.detect(f), cut_d.detect(f)  # type: ignore[attr-defined]
        people += len(a)
        if len(a) != len(b):
            count_diff += 1
            continue
        if len(a):
            worst_px = max(worst_px, float(np.abs(a.boxes - b.boxes).max()))
            worst_score = max(worst_score, float(np.abs(a.scores - b.scores).max()))
    return {"conf": conf, "frames": len(frames), "people": people, "frames with another count": count_diff,
            "max box difference px": worst_px, "max score difference": worst_score}


def _time(a: object, b: object, frames: list[np.ndarray], repeat: int = 2) -> tuple[float, float]:
    """Median ms per frame of two detectors, alternating frame by frame so that the machine's drift hits both."""
    ms: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for f in frames:
            for det, out in ((a, ms[0]), (b, ms[1])):
                t = time.perf_counter()
                det.detect(f)  # type: ignore[attr-defined]
                out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms[0]), statistics.median(ms[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/ssdlite_cut.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", type=Path, help="a tf2onnx SSD export (family ssd), e.g. the bundled person_ssdlite.onnx")
    p.add_argument("-o", "--out", type=Path, required=True, help="the cut ONNX (may be the input: in place)")
    p.add_argument("--video", type=Path, default=VIDEO, help="real frames for the check")
    p.add_argument("--frames", type=int, default=150, help="frames checked")
    p.add_argument("--step", type=int, default=5, help="take every STEP-th frame")
    p.add_argument("--low", type=float, default=0.05, help="the second, low threshold checked")
    p.add_argument("--tol-px", type=float, default=0.01, help="largest box difference allowed (pixels)")
    p.add_argument("--tol-score", type=float, default=1e-5, help="largest score difference allowed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        import onnx
    except ImportError:
        print("error: the cut needs the 'onnx' package (pip install onnx)", file=sys.stderr)
        return 2
    from engines.base import ModelError
    from engines.ort import OrtBackend
    from engines.ssd_cut import cut_ssd
    from realtime.detectors import PersonDetector

    if not args.model.is_file():
        print(f"error: {args.model} not found", file=sys.stderr)
        return 2
    if not args.video.is_file():
        print(f"error: video {args.video} not found (--video)", file=sys.stderr)
        return 2
    try:
        m = onnx.load(str(args.model))
        cut_ssd(m)
        ref = PersonDetector(OrtBackend(args.model, threads=1))
        if ref.family != "ssd":
            raise ModelError(f"{args.model} is a {ref.family!r} detector; the cut takes an 'ssd' (tf2onnx) export")
        tmp = args.out.with_name(args.out.name + ".tmp")
        onnx.save(m, str(tmp))
        cut = PersonDetector(OrtBackend(tmp, threads=1))
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    frames = _frames(args.video, args.frames, args.step)
    ok = True
    for conf in (ref.verify_conf or ref.conf, args.low):
        r = compare(ref, cut, frames, conf)
        good = (r["frames with another count"] == 0 and r["max box difference px"] <= args.tol_px
                and r["max score difference"] <= args.tol_score)
        ok &= good
        print(f"conf {conf:.2f}: {r['people']} boxes on {r['frames']} frames, {r['frames with another count']} frames "
              f"with another count, max box difference {r['max box difference px']:.2e} px (tolerance "
              f"{args.tol_px}), max score difference {r['max score difference']:.2e} (tolerance {args.tol_score}): "
              f"{'ok' if good else 'DIFFERENT'}")
    ref.conf = cut.conf = ref.verify_conf or ref.conf
    t_ref, t_cut = _time(ref, cut, frames)
    print(f"median ms per frame (1 thread, alternating, same run): original {t_ref:.1f}, cut {t_cut:.1f} (x{t_ref / t_cut:.2f})")
    if not ok:
        tmp.unlink()
        print("error: the cut detector differs from the original; nothing written", file=sys.stderr)
        return 1
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
