"""The README's real-footage pictures: a grid of photos through the default real-footage pipeline, and one frame
of an annotated video.

``grid``: every photo of a folder (default: the seven shared MPII photos) runs through what
``python -m realtime.run --source FOLDER`` runs by default for real footage (the ``ssdlite`` detector,
``mca_tiny_real``, the default ``--kpt-thr``, the same ``Pipeline.process`` and ``Renderer``: each photo is a
new scene, so nothing carries over between them); the drawn photos are fitted into tiles of one grid, each
named with its file and the number of people drawn.  ``frame``: frame N of a video (the MP4 that
``realtime.run -o`` wrote) as a PNG, decoded with PyAV::

    python tools/readme_pictures.py grid --out docs/images/real_photos_grid.png
    python -m realtime.run --source ../shared/data/real-video/vtest.avi --frames 120 --output /tmp/vtest.mp4
    python tools/readme_pictures.py frame /tmp/vtest.mp4 110 --out docs/images/vtest_annotated.png
    python tools/readme_pictures.py thresholds      # SSDLite's boxes by score band: what a lower threshold adds
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the checkout's packages
    sys.path.insert(0, str(ROOT))

from realtime.types import Poses  # noqa: E402

log = logging.getLogger(__name__)

SHARED = Path(os.environ.get("MCA_SHARED", ROOT.parent / "shared")) / "data"


def fit(image: np.ndarray, size: tuple[int, int], fill: int = 32) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``image`` scaled to fit a (width, height) tile, keeping its aspect, centred on a dark background; the
    scale and offset (a photo point ``p`` lands at ``p * scale + offset``)."""
    w, h = size
    s = min(w / image.shape[1], h / image.shape[0])
    nw, nh = max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))
    out = np.full((h, w, 3), fill, np.uint8)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, s, (x0, y0)


def moved(poses: Poses, scale: float, offset: tuple[int, int]) -> Poses:
    """The same people drawn on a scaled tile: keypoints and boxes through ``p * scale + offset`` (pixel
    centres: the +0.5 / -0.5 keep a pixel's centre on the scaled pixel's centre)."""
    off = np.asarray(offset, np.float32)
    kps = (poses.keypoints + 0.5) * scale - 0.5 + off
    boxes = ((poses.boxes.reshape(-1, 2, 2) + 0.5) * scale - 0.5 + off).reshape(-1, 4)
    return replace(poses, keypoints=kps, boxes=boxes, attention=None, part_attention=None, transforms=None)


def grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Equal-sized tiles in rows of ``cols`` (the last row padded with empty tiles)."""
    if not tiles:
        raise ValueError("no tiles")
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    return out


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """``text`` on a dark band along the tile's bottom edge."""
    out = tile.copy()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    y0 = out.shape[0] - th - base - 8
    out[y0:] = (out[y0:] * 0.3).astype(np.uint8)
    cv2.putText(out, text, (6, out.shape[0] - base - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def photo_grid(folder: Path, out: Path, tile: tuple[int, int], cols: int, extra: list[str]) -> list[str]:
    """Run the default real-footage pipeline on each photo of ``folder``; write the grid; one line per photo."""
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.pose import PoseEstimator
    from realtime.detectors import PersonDetector
    from realtime.run import _load, build_parser  # the CLI's own defaults and model loading
    from realtime.sources import open_source

    args = build_parser().parse_args(["--source", str(folder), *extra])
    estimator = PoseEstimator(_load(args.pose, "pose", False, args), flip_test=args.flip_test)
    det_backend = _load(args.detector, "detector", False, args)
    detector = PersonDetector(det_backend, conf=args.conf, max_persons=args.max_persons)
    cfg = PipelineConfig(detect_every=args.detect_every, max_persons=args.max_persons, smooth=not args.no_smooth,
                         crop_padding=args.crop_padding, kpt_thr=args.kpt_thr)
    pipe = Pipeline(detector, estimator, cfg)
    tiles, lines = [], []
    with open_source(str(folder)) as src:
        for frame in src.frames():
            poses = pipe.process(frame, None)
            small, scale, off = fit(frame.image, tile)  # drawn at the tile's size: lines as thick as in a video
            drawn = pipe.renderer.draw(small, moved(poses, scale, off))
            tiles.append(caption(drawn, f"{frame.file}: {len(poses)} people"))
            lines.append(f"{frame.file}: {len(poses)} people, boxes "
                         + "; ".join(f"[{', '.join(str(int(round(v))) for v in b)}]" for b in poses.boxes))
    models = f"{Path(det_backend.path).name} + {Path(estimator.backend.path).name}, --kpt-thr {args.kpt_thr}"
    info = np.full((tile[1], tile[0], 3), 32, np.uint8)
    for i, t in enumerate(["python tools/readme_pictures.py grid", "default real-footage pipeline:",
                           *models.split(", ")]):
        cv2.putText(info, t, (10, 40 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    if len(tiles) % cols:
        tiles.append(info)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid(tiles, cols)):
        raise OSError(f"cannot write {out}")
    return [models] + lines


BANDS = ((0.35, (0, 255, 0)), (0.2, (0, 255, 255)), (0.0, (0, 0, 255)))  # score from, BGR colour


def threshold_picture(video: Path, frames: int, show: list[int], out: Path, cols: int = 2) -> list[str]:
    """SSDLite (FP32) run down to 0.1 on the held-out frames ``realtime.bench.detector_real`` uses; boxes coloured
    by score band (>= 0.35, the default: green; 0.2-0.35: yellow; 0.1-0.2: red); frames ``show`` (positions in
    that list) as a grid; returns the box count of each band over all the frames."""
    from realtime.bench.detector_real import heldout_images
    from realtime.detectors import PersonDetector
    from realtime.models import load_model, resolve_model

    det = PersonDetector(load_model(resolve_model("ssdlite", "detector"), backend="ort", int8="off"), conf=0.1,
                         max_persons=100)
    counts = [0] * len(BANDS)
    tiles = []
    images = heldout_images(video, frames, [])
    for k, (name, img) in enumerate(images):
        d = det.detect(img)
        drawn = img.copy()
        for b, sc in zip(d.boxes, d.scores):
            band = next(i for i, (lo, _) in enumerate(BANDS) if sc >= lo)
            counts[band] += 1
            col = BANDS[band][1]
            x0, y0, x1, y1 = (int(round(v)) for v in b)
            cv2.rectangle(drawn, (x0, y0), (x1, y1), col, 2)
            cv2.putText(drawn, f"{sc:.2f}", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1, cv2.LINE_AA)
        if k in show:
            tiles.append(caption(drawn, name))
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid(tiles, cols)):
        raise OSError(f"cannot write {out}")
    return [f"{len(images)} frames; boxes scoring >= 0.35: {counts[0]}, 0.2-0.35: {counts[1]}, 0.1-0.2: {counts[2]}"]


def video_frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, in decode order) of ``video`` as BGR, with PyAV."""
    import av

    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                return f.to_ndarray(format="bgr24")
    raise IndexError(f"{video} has no frame {index}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The README's real-footage pictures.")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid", help="photos through the default real-footage pipeline, as one grid")
    g.add_argument("--photos", type=Path, default=SHARED / "real-people", help="a folder of photos")
    g.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "real_photos_grid.png")
    g.add_argument("--tile", default="640x400", help="tile size WxH")
    g.add_argument("--cols", type=int, default=4)
    g.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                   help="more realtime.run options (e.g. --kpt-thr 0.5); default: none, the CLI's defaults")
    t = sub.add_parser("thresholds", help="SSDLite's boxes by score band on held-out vtest.avi frames")
    t.add_argument("--video", type=Path, default=SHARED / "real-video" / "vtest.avi")
    t.add_argument("--frames", type=int, default=50, help="held-out frames (as realtime.bench.detector_real)")
    t.add_argument("--show", type=int, nargs="+", default=[0, 12, 25, 37], help="which of them to draw")
    t.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "ssdlite_thresholds.png")
    f = sub.add_parser("frame", help="one frame of a video as a PNG")
    f.add_argument("video", type=Path)
    f.add_argument("index", type=int)
    f.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.cmd == "grid":
        w, h = (int(v) for v in args.tile.lower().split("x"))
        for line in photo_grid(args.photos, args.out, (w, h), args.cols, args.run_args):
            print(line)
    elif args.cmd == "thresholds":
        for line in threshold_picture(args.video, args.frames, args.show, args.out):
            print(line)
    else:
        import av

        try:
            img = video_frame(args.video, args.index)
        except (av.error.FFmpegError, IndexError) as e:  # a missing or unreadable video, a frame past its end
            print(f"error: {args.video}: {e}", file=sys.stderr)
            return 2
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.out), img):
            print(f"error: cannot write {args.out}", file=sys.stderr)
            return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
