"""The chain's graphs checked on a backend: crop, letterbox and heatmap decode against their references.

``check_graphs("trt")`` is the chain check ``python -m engines.selftest`` runs on a GPU (one
pass/fail line each); ``check_graphs("ort")`` runs the same checks here.  References:
``cv2.warpAffine`` for the crop, ``cv2.resize`` + letterbox + ``/255`` for the prologue,
``mca.heatmaps.decode_heatmaps`` for the decode.  All three graphs are exact (integer-valued
arithmetic, or an argmax), so the check asks for equality on FP32 engines.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["CheckResult", "check_graphs"]


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    ms: float = 0.0

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  chain {self.name}: {self.detail} ({self.ms:.2f} ms)"


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 3: h // 2] = 255  # a hard edge: where rounding differences show
    return img


def _run(path: Path, backend: str, *arrays: np.ndarray, on_device: bool = False) -> tuple[list[np.ndarray], float]:
    """Outputs and milliseconds of one run; ``on_device``: inputs uploaded, ``run_device``, outputs downloaded
    (the chain's own path; needs a backend with ``run_device`` and a CUDA device)."""
    import engines

    with engines.load(path, backend=backend, precision="fp32") as b:
        if not on_device:
            b.run(*arrays)  # warm-up (and TensorRT's first-run allocations)
            t0 = time.perf_counter()
            out = b.run(*arrays)
            return out, 1000 * (time.perf_counter() - t0)
        from engines.device import Uploader, download, run_on_device

        up, dev = Uploader("cuda:0"), []
        try:
            dev = [up.upload(a) for a in arrays]
            run_on_device(b, *dev)
            t0 = time.perf_counter()
            out = [download(o) for o in run_on_device(b, *dev)]
            return out, 1000 * (time.perf_counter() - t0)
        finally:
            dev.clear()  # the pooled buffers go back before the pool is freed
            up.close()


def _letterbox_reference(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    from engines.preprocess import resize_params

    h, w = img.shape[:2]
    p = resize_params((w, h), size)
    canvas = np.full((size, size, 3), 114, np.uint8)
    y0, x0 = int(p.pad_y), int(p.pad_x)
    canvas[y0:y0 + p.new_h, x0:x0 + p.new_w] = cv2.resize(img, (p.new_w, p.new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * (1.0 / 255.0)


def check_graphs(backend: str = "ort", frame_hw: tuple[int, int] = (720, 1280), persons: int = 8,
                 crop: int = 128, cache_dir: str | Path | None = None, on_device: bool = False) -> list[CheckResult]:
    """Build the crop, letterbox and decode graphs, run them on ``backend``, compare with the references.

    ``on_device``: through device arrays (upload, ``run_device``, download), as the chain runs them.
    """
    import cv2
    from onnx import TensorProto, helper

    from engines.postprocess import PEAK_SCORES, PEAKS, with_heatmap_decode
    from engines.preprocess import InputFormat, crop_graph, crop_maps, frame_prologue, save_graph
    from mca import heatmaps as H

    tmp = None
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory()
        cache_dir = tmp.name
    results = []
    h, w = frame_hw
    img = _frame(h, w, 0)
    try:
        rng = np.random.default_rng(1)
        mats = np.stack([H.crop_matrix(tuple(rng.uniform([-0.1 * w, -0.1 * h], [1.1 * w, 1.1 * h]).tolist()),
                                       (rng.uniform(20, h), rng.uniform(20, h)), (crop, crop),
                                       rng.uniform(-180, 180) if i % 2 else 0.0, flip=i % 3 == 0)
                         for i in range(persons)])
        rows, cols = crop_maps(mats, (crop, crop))
        path = save_graph(crop_graph((h, w), (crop, crop)), "check_crop", cache_dir)
        (got,), ms = _run(path, backend, img, rows, cols, on_device=on_device)
        want = np.stack([cv2.warpAffine(img, m, (crop, crop), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0) for m in mats])
        dmax = int(np.abs(got.astype(np.int16) - want).max())
        results.append(CheckResult(f"crop {persons}x{crop}px from {w}x{h}", dmax == 0,
                                   f"max |graph - cv2.warpAffine| = {dmax} grey levels", ms))

        pro, _ = frame_prologue(InputFormat(320), (h, w))
        path = save_graph(pro, "check_letterbox", cache_dir)
        (got,), ms = _run(path, backend, img, on_device=on_device)
        d = float(np.abs(got - _letterbox_reference(img, 320)).max() * 255)
        results.append(CheckResult(f"letterbox {w}x{h}->320", d < 1e-3,
                                   f"max |graph - cv2.resize| = {d:.3f} grey levels", ms))

        k, hm = 16, 32
        g = helper.make_graph([helper.make_node("Identity", ["x"], ["heatmaps"])], "pose",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k, hm, hm])],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", k, hm, hm])])
        ident = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        path = save_graph(with_heatmap_decode(ident), "check_decode", cache_dir)
        maps = np.random.default_rng(2).normal(size=(persons, k, hm, hm)).astype(np.float32)
        outs, ms = _run(path, backend, maps, on_device=on_device)
        by = dict(zip([PEAKS, PEAK_SCORES], outs))
        want_p, want_s = H.decode_heatmaps(maps)
        dp, ds = float(np.abs(by[PEAKS] - want_p).max()), float(np.abs(by[PEAK_SCORES] - want_s).max())
        results.append(CheckResult(f"heatmap decode {persons}x{k}x{hm}x{hm}", dp == 0 and ds < 1e-6,
                                   f"max peak error {dp} px, score error {ds:.1e}", ms))
    except Exception as e:  # noqa: BLE001 - a check that cannot run is a failed check, with its reason
        results.append(CheckResult("graphs", False, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return results
