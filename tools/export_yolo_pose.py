"""Build the YOLO-pose peer for ``python -m realtime.bench``: ``yolov8n-pose`` from its yaml, exported to ONNX.

Random weights (nothing is downloaded): the peer is timed, not scored. Needs an
interpreter with ultralytics (the ``yolo`` extra pulls torch 2.14.1 + torchvision;
keep it in its own environment, see scripts/train_demo_detector.py)::

    YOLO_OFFLINE=1 .venv-yolo/bin/python tools/export_yolo_pose.py -o peers/yolov8n-pose.onnx
    python -m realtime.bench --peer-onnx peers/yolov8n-pose.onnx --peer-python .venv-yolo/bin/python
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="yolov8n-pose.yaml", help="Ultralytics model yaml (random weights)")
    ap.add_argument("--imgsz", type=int, default=640, help="input size (square)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    args = ap.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        print("error: ultralytics is not installed in this interpreter (pip install '.[yolo]' in its own venv)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # ultralytics writes next to the model name
        try:
            exported = Path(YOLO(args.model).export(format="onnx", imgsz=args.imgsz, opset=17, dynamic=False,
                                                    simplify=False))
        finally:
            os.chdir(cwd)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / exported) if not exported.is_absolute() else str(exported), args.output)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
