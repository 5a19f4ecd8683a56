"""``python -m mca.data.anny``: realistic synthetic people with the Anny body model (training tools only).

Commands:

* ``setup`` -- build Anny's model cache once (minutes, about 1 GB under ``~/.cache/mca-pose/anny``).
* ``cache --out DIR --num N`` -- person crops with MPII-16 and COCO-17 labels, for pose training
  (:class:`mca.data.anny.AnnyCachedPoseDataset` reads them); resumable, deterministic per ``--seed``.
* ``scenes --out DIR --num N`` -- full frames with several people: YOLO labels, COCO keypoints, for the detector.
* ``bench`` -- render crops and print crops/s (the machine's other load counts: say so when you quote it).
* ``fit --labels NPZ --out BANK`` -- a pose bank: Anny fitted to a teacher's 2-D keypoints on real frames
  (``cache``/``scenes --pose-bank BANK`` draw 30% of poses from it).
* ``grid --out PNG`` -- a labelled grid of crops to look at (left joints green, right red, centre cyan).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {s!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError("size must be at least 32x32")
    return w, h


def _pair(s: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI degrees, got {s!r}") from None
    if not -90 <= lo <= hi <= 90:
        raise argparse.ArgumentTypeError("need -90 <= LO <= HI <= 90")
    return lo, hi


def _bench_worker(args: tuple[int, int, int, int, bool]) -> tuple[int, float]:
    seed, lo, n, size, collision = args
    from mca.data.anny.generate import AnnyCropRenderer

    r = AnnyCropRenderer(size, seed=seed, collision_check=collision)
    r.render(lo - 1)  # warm-up (kernels, caches) outside the timing
    t0 = time.perf_counter()
    for i in range(lo, lo + n):
        r.render(i)
    return n, time.perf_counter() - t0


def _bench(a: argparse.Namespace) -> int:
    import multiprocessing as mp

    jobs = [(a.seed, 1 + k * a.num, a.num, a.size, not a.no_collision) for k in range(a.workers)]
    t0 = time.perf_counter()
    if a.workers == 1:
        res = [_bench_worker(jobs[0])]
    else:
        with mp.get_context("fork").Pool(a.workers) as pool:  # the parent holds no torch state yet
            res = pool.map(_bench_worker, jobs)
    wall = time.perf_counter() - t0
    n = sum(r[0] for r in res)
    per_proc = [r[0] / r[1] for r in res]
    rate = sum(per_proc)
    print(f"anny crops {a.size}x{a.size}, supersample 2, collision check {'off' if a.no_collision else 'on'}: "
          f"{rate:.1f} crops/s with {a.workers} process(es) ({', '.join(f'{x:.1f}' for x in per_proc)} each; "
          f"{n} crops, {wall:.0f} s wall incl. start-up). Shared machine: other load slows this.")
    return 0


def _grid(a: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from mca.data.anny.generate import AnnyCropRenderer
    from mca.data.anny.render import JOINT_NAMES
    from mca.joints import get_joint_set

    if a.pose_bank is not None and not a.pose_bank.is_file():
        print(f"error: no pose bank at {a.pose_bank}", file=sys.stderr)
        return 2
    r = AnnyCropRenderer(a.size, a.joint_set, a.seed, pose_bank=str(a.pose_bank) if a.pose_bank else None)
    js = get_joint_set(a.joint_set)
    tiles = []
    for i in range(a.num):
        s = r.render(i)
        im = s.image.copy()
        for p in s.people:
            for (x0, y0), (x1, y1) in ((p.joints[u], p.joints[v]) for u, v in js.skeleton
                                       if p.visible[u] and p.visible[v]):
                cv2.line(im, (int(x0), int(y0)), (int(x1), int(y1)), (255, 255, 255), 1, cv2.LINE_AA)
            for (x, y), v, n in zip(p.joints, p.visible, JOINT_NAMES[a.joint_set]):
                c = (0, 220, 0) if n.startswith("l_") else (0, 0, 255) if n.startswith("r_") else (255, 255, 0)
                cv2.circle(im, (int(round(x)), int(round(y))), 3 if v else 2, c, -1 if v else 1, cv2.LINE_AA)
        tiles.append(np.hstack([s.image, im]) if a.pairs else im)
    cols = a.cols
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[k:k + cols]) for k in range(0, len(tiles), cols)])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(a.out), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        print(f"error: could not write {a.out}", file=sys.stderr)
        return 2
    print(f"wrote {a.out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


def _fit(a: argparse.Namespace) -> int:
    from mca.data.anny.fit import fit_file

    if not a.labels.is_file():
        print(f"error: no pseudo-label file at {a.labels}", file=sys.stderr)
        return 2
    try:
        r = fit_file(a.labels, a.out, a.sources, a.key, a.min_score, a.min_keypoints, a.max_rms, a.limit, a.seed,
                     a.steps, a.elevation)
    except (ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {r['accepted']} poses of {r['fitted']} fitted (median RMS {r['median_rms']:.3f} of the "
          f"person's size; {r['with_enough_keypoints']} of {r['people_from_sources']} people had enough keypoints)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mca.data.anny", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup", help="build Anny's model cache once")
    for name, hlp in (("cache", "person crops for pose training"), ("scenes", "full frames for the detector")):
        c = sub.add_parser(name, help=hlp, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        c.add_argument("--out", type=Path, required=True, help="cache directory (resumed if it exists)")
        c.add_argument("--num", type=int, required=True, help="number of pictures")
        c.add_argument("--seed", type=int, default=0, help="seed: same seed, same pictures")
        c.add_argument("--workers", type=int, default=1, help="rendering processes")
        c.add_argument("--chunk", type=int, default=250 if name == "cache" else 50, help="items per label chunk")
        c.add_argument("--supersample", type=int, default=2, help="anti-aliasing factor")
        c.add_argument("--no-collision", action="store_true", help="skip the self-intersection rejection")
        c.add_argument("--pose-bank", type=Path, help="pose bank .npz (angles) to draw some poses from")
        if name == "cache":
            c.add_argument("--size", type=int, default=256, help="square picture size (the person fills ~60%%)")
        else:
            c.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH")
            c.add_argument("--min-people", type=int, default=1, help="at least this many people per frame")
            c.add_argument("--max-people", type=int, default=6, help="at most this many people per frame")
    b = sub.add_parser("bench", help="crops/s", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--num", type=int, default=20, help="crops per process")
    b.add_argument("--workers", type=int, default=2, help="processes")
    b.add_argument("--size", type=int, default=256, help="crop size")
    b.add_argument("--seed", type=int, default=0, help="seed")
    b.add_argument("--no-collision", action="store_true", help="skip the self-intersection rejection")
    f = sub.add_parser("fit", help="a pose bank fitted to a teacher's 2-D keypoints on real frames",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("--labels", type=Path, required=True,
                   help="pseudo-label split of tools/pseudo_label.py (its train split only: never the held-out one)")
    f.add_argument("--out", type=Path, required=True, help="bank .npz to write (report next to it, .json)")
    f.add_argument("--sources", default="vtest.avi*", help="glob on the items' sources (the shared photos are held out)")
    f.add_argument("--key", default="teacher", help="keypoint array: teacher (MoveNet) or alt_teacher (BlazePose)")
    f.add_argument("--min-score", type=float, default=0.3, help="keypoints scoring below are ignored")
    f.add_argument("--min-keypoints", type=int, default=10, help="people with fewer confident keypoints are skipped")
    f.add_argument("--max-rms", type=float, default=0.05, help="reject fits worse than this (fraction of size)")
    f.add_argument("--limit", type=int, help="fit at most this many people")
    f.add_argument("--seed", type=int, default=0, help="seed")
    f.add_argument("--steps", type=int, default=150, help="Adam steps, then as many L-BFGS iterations")
    f.add_argument("--elevation", type=_pair, default=(-10.0, 60.0),
                   help="LO,HI degrees: the camera's elevation above the people (vtest.avi: about 20,45; a negative LO as --elevation=-10,60)")
    g = sub.add_parser("grid", help="a labelled grid of crops", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g.add_argument("--out", type=Path, required=True, help="PNG to write")
    g.add_argument("--num", type=int, default=12, help="crops")
    g.add_argument("--cols", type=int, default=6, help="columns")
    g.add_argument("--size", type=int, default=192, help="crop size")
    g.add_argument("--seed", type=int, default=0, help="seed")
    g.add_argument("--joint-set", default="mpii16", choices=["mpii16", "coco17"], help="labels drawn")
    g.add_argument("--pairs", action="store_true", help="each crop plain and labelled side by side")
    g.add_argument("--pose-bank", type=Path, help="pose bank .npz (python -m mca.data.anny fit) to draw 30%% from")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from mca.data.anny.body import anny_available, cache_root

    if not anny_available():
        print("error: the 'anny' package is not installed: pip install -e '.[synth]'", file=sys.stderr)
        return 2
    if a.cmd in ("cache", "scenes", "bench", "grid") and a.num < 1:
        print("error: --num must be >= 1", file=sys.stderr)
        return 2
    if getattr(a, "workers", 1) < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    if a.cmd == "setup":
        from mca.data.anny.body import get_body_model

        t0 = time.time()
        get_body_model()
        print(f"Anny model ready in {time.time() - t0:.0f} s (cache: {cache_root()})")
        return 0
    if a.cmd == "bench":
        return _bench(a)
    if a.cmd == "grid":
        return _grid(a)
    if a.cmd == "fit":
        return _fit(a)
    if a.pose_bank is not None and not a.pose_bank.is_file():
        print(f"error: no pose bank at {a.pose_bank}", file=sys.stderr)
        return 2
    from mca.data.anny.cache import write_cache

    kw = dict(seed=a.seed, supersample=a.supersample, collision_check=not a.no_collision,
              pose_bank=str(a.pose_bank) if a.pose_bank else None, workers=a.workers, chunk=a.chunk,
              command="python -m mca.data.anny " + " ".join(sys.argv[1:] if argv is None else argv))
    try:
        if a.cmd == "cache":
            m = write_cache(a.out, a.num, "anny-pose", size=a.size, **kw)
        else:
            if not 0 <= a.min_people <= a.max_people:
                print("error: need 0 <= --min-people <= --max-people", file=sys.stderr)
                return 2
            m = write_cache(a.out, a.num, "anny-scenes", scene_size=a.size, min_people=a.min_people,
                            max_people=a.max_people, **kw)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state = "complete" if m["complete"] else f"{len(m['chunks_done'])} chunks done (rerun to resume)"
    print(f"{a.out}: {state}; manifest {a.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
