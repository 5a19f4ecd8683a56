"""Reproduce the bundled synthetic-domain person detector with one command.

Renders a seeded synthetic detection data set (stills + video frames, YOLO labels),
trains an Ultralytics YOLOv8n from its yaml (no pretrained weights), exports it to
ONNX, stores the project's detector metadata in it, and reports AP50 on held-out
synthetic scenes with our own decode + NMS (the runtime's code path).

Needs the optional ``yolo`` extra, which pulls torch 2.14.1 + torchvision (a separate
environment is wise): ``python -m venv .venv-yolo && .venv-yolo/bin/pip install
torch==2.14.1 torchvision==0.29.1 ultralytics "opencv-python-headless<5" onnx onnxruntime``, then::

    YOLO_OFFLINE=1 PYTHONPATH=. .venv-yolo/bin/python scripts/train_demo_detector.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("train_demo_detector")


def render(out: Path, n_still: int, n_video: int, seed: int, size: tuple[int, int]) -> None:
    from mca.data.synthetic import SceneRenderer, VideoRenderer
    from mca.data.writers import write_dataset

    r = SceneRenderer("mpii16", size, seed=seed, min_people=0, max_people=7, min_height=28, max_height=size[1] * 1.1)

    def scenes():
        for i in range(n_still):
            yield r.render(i)
        per = max(1, n_video // 10)
        for v in range(10):
            vr = VideoRenderer("mpii16", size, 25.0, num_people=int(1 + v % 5), seed=seed * 100 + v)
            for k in range(per):
                s = vr.frame(k * 7)
                yield s

    write_dataset(scenes(), out, "mpii16", total=n_still + 10 * max(1, n_video // 10))


def stamp(onnx_path: Path, out: Path, imgsz: int, domain: str, train_s: float, source: str) -> None:
    """Copy an ultralytics ONNX export to ``out`` with the project's detector metadata (what
    ``realtime.detectors`` reads to pick the decode), keeping the exporter's own entries."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx_path, out)
    m = onnx.load(str(out))
    meta = {"mca.kind": "detector", "mca.detector_family": "yolo", "mca.input_size": str(imgsz),
            "mca.person_class": "0", "mca.class_names": json.dumps({"0": "person"}),
            "mca.source": source, "mca.domain": domain, "mca.train_seconds": f"{train_s:.0f}"}
    keep = [(q.key, q.value) for q in m.metadata_props if q.key not in meta]
    del m.metadata_props[:]
    for k, v in keep + list(meta.items()):
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "detector", help="work directory")
    p.add_argument("--out", type=Path, default=ROOT / "realtime" / "models" / "person_yolo_synth.onnx")
    p.add_argument("--train-images", type=int, default=1600)
    p.add_argument("--video-frames", type=int, default=400)
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--model", default="yolov8n.yaml", help="ultralytics model yaml (trained from scratch)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        print("error: ultralytics is not installed (the 'yolo' extra; see this script's docstring)", file=sys.stderr)
        return 2
    size = (640, 384)
    train_dir, val_dir = args.work / "train", args.work / "val"
    if not (train_dir / "coco_keypoints.json").exists():
        render(train_dir, args.train_images, args.video_frames, seed=11, size=size)
    if not (val_dir / "coco_keypoints.json").exists():
        render(val_dir, args.val_images, 100, seed=12345, size=size)
    data_yaml = args.work / "data.yaml"
    data_yaml.write_text(f"path: {args.work.resolve()}\ntrain: train/images\nval: val/images\nnames:\n  0: person\n")
    t0 = time.time()
    model = YOLO(args.model)
    model.train(data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device="cpu",
                workers=1, project=str(args.work), name="yolo", exist_ok=True, pretrained=False, amp=False,
                plots=False, verbose=False, mosaic=1.0, close_mosaic=5, patience=100)
    train_s = time.time() - t0
    best = args.work / "yolo" / "weights" / "best.pt"
    onnx_path = YOLO(str(best)).export(format="onnx", imgsz=args.imgsz, dynamic=False, simplify=False, opset=17)
    stamp(Path(onnx_path), args.out, args.imgsz, domain="synthetic", train_s=train_s,
          source=f"scripts/train_demo_detector.py ({args.model} from scratch on synthetic people, "
                 f"{args.epochs} epochs, imgsz {args.imgsz})")
    print(f"wrote {args.out}; training took {train_s / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
