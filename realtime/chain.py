"""The graph chain: a frame goes up once; only boxes and keypoints come back.

    upload(frame) -> detector (letterbox prologue merged in front, top-k candidates behind)
      -> [candidates down] -> decode + NMS on the host (the family's own code) -> one affine per person
      -> [maps up: 2 x (w + h) numbers a person] -> crop graph (reads the frame already uploaded)
      -> pose model with the heatmap decode appended -> [peaks + scores down] -> keypoints in the frame

Every step but the host's NMS and the 2x3 geometry is an ONNX graph (:mod:`engines.preprocess`,
:mod:`engines.postprocess`), so ONNX Runtime runs the chain here on host-backed arrays and
TensorRT runs the same graphs on the GPU (``backend="trt"``: ``TrtBackend.run_device`` on device
arrays).  On TensorRT every engine has its own CUDA stream; an engine waits for its inputs'
streams on events (no host wait), frames go up through a pinned double-buffered ring into pooled
device buffers (:class:`engines.device.Uploader`), and the host waits only for the small downloads.
With a precision other than fp32 the letterbox runs as its own FP32 engine in front of the
detector (the prologue is exact only in FP32/int32); the crop engine is always FP32.  The numbers
equal today's stages: the crop is bit-exact with ``cv2.warpAffine``, the letterbox within one
grey level of ``cv2.resize``, the decode equal to ``mca.heatmaps.decode_heatmaps``.
:attr:`GraphChain.transfers` records every crossing of the host/device boundary.

Pipeline hook: :attr:`GraphChain.detector` has ``detect(image)`` and :attr:`GraphChain.pose`
has ``info`` and ``estimate_frame(image, detections)``.  Not supported on the chain: flip test,
``refine="gaussian"`` and attention maps (they would bring whole maps back to the host).
Needs the ``onnx`` package to build its graphs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import engines
from engines.base import Backend, ModelError, TensorSpec
from engines.device import DeviceArray, TransferLog, Uploader, download, run_on_device, upload
from engines.graphbuild import require_onnx
from engines.postprocess import (CANDIDATES, PEAK_SCORES, PEAKS, with_heatmap_decode, with_ssd_candidates,
                                 with_yolo_candidates)
from engines.preprocess import (InputFormat, ResizeParams, crop_graph, crop_maps, frame_prologue, save_graph,
                                with_prologue)
from mca import heatmaps as H
from realtime.detectors import PersonDetector
from realtime.pose import PoseModelInfo
from realtime.types import Detections, Poses

log = logging.getLogger(__name__)

__all__ = ["ChainConfig", "GraphChain", "FAMILY_FORMATS", "described_backend", "rgb_to_bgr_graph"]

# the input each detector family wants (what realtime.detectors' pre-processing makes on the host)
FAMILY_FORMATS = {
    "yolo": lambda size: InputFormat(size),  # NCHW float32 RGB / 255, letterboxed with grey 114
    "ssd": lambda size: InputFormat(size, layout="NHWC", dtype="uint8", letterbox=False),  # uint8 RGB, stretched
    "ssd_decoded": lambda size: InputFormat(size, layout="NHWC", dtype="uint8", letterbox=False),
}
_FRAMES_KEPT = 16  # uploaded frames kept for the pose stage (the detector thread runs up to a queue ahead)


class _Described(Backend):
    """A model's interface and metadata read from its ONNX, without a session (for the family/info checks)."""

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        raise ModelError("a described model does not run")


def described_backend(model: Any, path: str | os.PathLike) -> Backend:
    """:class:`Backend`-shaped description of an ONNX ModelProto (inputs, outputs, metadata)."""
    from onnx import helper

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        return TensorSpec(v.name, dims, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)))

    init = {i.name for i in model.graph.initializer}
    return _Described(path=str(path), inputs=[spec(v) for v in model.graph.input if v.name not in init],
                      outputs=[spec(v) for v in model.graph.output],
                      metadata={p.key: p.value for p in model.metadata_props})


@dataclass
class ChainConfig:
    """Settings of a chain (the pipeline's detector and pose options, plus where the graphs run)."""

    backend: str = "ort"  # "ort" (host arrays) or "trt" (device arrays, TrtBackend.run_device)
    device: str = "cpu"  # where arrays live: "cpu" (host-backed) or "cuda:0"
    conf: float | None = None  # detector score threshold (None: the family's default)
    iou: float = 0.5
    max_persons: int = 16
    crop_padding: float | None = None  # None: the pose model's own
    max_batch: int = 16  # pose batch per run
    candidates: int = 1000  # YOLO anchors kept by the in-graph top-k (a warning says when it saturates)
    ssd_candidates: int = 300  # the same for a cut SSD (1917 anchors; ~50 score >= 0.2 on a vtest frame)
    precision: str | None = None  # detector and pose engines (the crop graph is always fp32)
    threads: int | None = None  # ONNX Runtime threads per session
    cache_dir: Path | None = None  # where the built graphs are written (default ~/.cache/mca-pose/graphs)
    profile: bool = False  # CUDA: timing events after each stage (GraphChain.stage_ms), for the bench


class GraphChain:
    """Detector + crop + pose as graphs on one device; ``process(image) -> Poses``."""

    def __init__(self, detector: str | os.PathLike, pose: str | os.PathLike,
                 cfg: ChainConfig | None = None) -> None:
        onnx = require_onnx()
        self.cfg = cfg = cfg or ChainConfig()
        if cfg.backend not in ("ort", "trt"):
            raise ModelError(f"unknown chain backend {cfg.backend!r}; valid: ort, trt")
        try:
            det_model, pose_model = onnx.load(str(detector)), onnx.load(str(pose))
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
            raise ModelError(f"the chain needs ONNX models ({type(e).__name__} reading {detector} / {pose})") from None
        # the host stages' own checks and settings, read from the files' descriptions
        self.host_detector = PersonDetector(described_backend(det_model, detector), cfg.conf, cfg.iou,
                                            cfg.max_persons)
        self.info = PoseModelInfo(described_backend(pose_model, pose))
        self.family = self.host_detector.family
        if self.family not in FAMILY_FORMATS:
            raise ModelError(f"the chain has no input format for detector family {self.family!r}")
        self.format = FAMILY_FORMATS[self.family](self.host_detector.input_size)
        self._post = self.host_detector.post
        self._person_class = self.host_detector.person_class
        self._may_cut = False  # whether the top-k keeps fewer columns than the head has anchors
        if self.family == "yolo":
            anchors = self.host_detector.backend.outputs[0].shape[-1]
            det_model = with_yolo_candidates(det_model, self._person_class, cfg.candidates)
            self._may_cut = anchors is None or cfg.candidates < anchors
            self._person_class = 0  # the candidates' score row comes right after the box
        elif self.family == "ssd_decoded":
            anchors = self.host_detector.backend.outputs[0].shape[1]
            det_model = with_ssd_candidates(det_model, self._person_class, cfg.ssd_candidates)
            self._may_cut = anchors is None or cfg.ssd_candidates < anchors
        self._det_model = det_model
        self._det_name = Path(detector).stem
        pose_path = save_graph(with_heatmap_decode(pose_model, "quarter"), f"{Path(pose).stem}_decode",
                               cfg.cache_dir)
        self.pose_backend = self._load(pose_path, cfg.precision)
        self._pose_out = [o.name for o in self.pose_backend.outputs]
        self.padding = cfg.crop_padding or self.info.crop_padding
        self.input_wh = (self.info.input_size, self.info.input_size)
        self.heatmap_wh = (self.info.heatmap_size, self.info.heatmap_size)
        self.transfers = TransferLog()
        self._sizes: dict[tuple[int, int], tuple[Backend, Backend, ResizeParams, list[str]]] = {}
        self._prologues: dict[tuple[int, int], Backend] = {}  # TensorRT below fp32: the letterbox engine (fp32)
        self._swaps: dict[tuple[int, int], Backend] = {}  # RGB -> BGR engines for frames decoded on the device
        self._frames: OrderedDict[int, tuple[np.ndarray, DeviceArray]] = OrderedDict()
        self._lock = threading.Lock()
        self._warned_saturated = False
        self._marks: list[tuple[str, Any]] | None = None  # (stage, timing event) of the frame being profiled
        self.stream: Any = None
        self._frame_up: Uploader | None = None
        self._maps_up: Uploader | None = None
        if cfg.device.startswith("cuda"):
            # frames: one upload stream, a pinned ring of 2, pooled device buffers; the person maps: their own
            # (4 slots = 2 frames of row + column maps), so a map never waits for a frame's copy
            self._frame_up = Uploader(cfg.device, slots=2)
            self._maps_up = Uploader(cfg.device, slots=4)
            self.stream = self._frame_up.stream
        self.detector, self.pose = _ChainDetector(self), _ChainPose(self)

    # -- graphs ---------------------------------------------------------------------------
    @property
    def _split_prologue(self) -> bool:
        """TensorRT below fp32: the letterbox as its own FP32 engine (FP16 would round its integer sums)."""
        return self.cfg.backend == "trt" and (self.cfg.precision or "fp16") != "fp32"

    def _load(self, path: Path, precision: str | None) -> Backend:
        opts: dict[str, Any] = {"threads": self.cfg.threads} if self.cfg.threads and self.cfg.backend == "ort" else {}
        if self.cfg.backend == "trt":  # the crop engine takes every person of a frame in one run
            opts["max_batch"] = max(self.cfg.max_batch, self.cfg.max_persons)
        return engines.load(path, backend=self.cfg.backend, precision=precision, **opts)

    def stages(self, frame_hw: tuple[int, int]) -> tuple[Backend, Backend, ResizeParams, list[str]]:
        """(detector with prologue, crop graph, letterbox geometry, detector output names) for a frame size;
        built once per size (graphs are static in the frame size: one TensorRT engine per resolution)."""
        key = (int(frame_hw[0]), int(frame_hw[1]))
        with self._lock:
            if key not in self._sizes:
                h, w = key
                ort_gather = self.cfg.backend == "ort"
                if self._split_prologue:
                    pro, params = frame_prologue(self.format, key, gather_uint8=False)
                    self._prologues[key] = self._load(
                        save_graph(pro, f"letterbox_{self.family}{self.format.size}_{w}x{h}", self.cfg.cache_dir),
                        "fp32")
                    det = self._load(save_graph(self._det_model, f"{self._det_name}_chain", self.cfg.cache_dir),
                                     self.cfg.precision)
                else:
                    merged, params = with_prologue(self._det_model, self.format, key, gather_uint8=ort_gather)
                    det = self._load(save_graph(merged, f"{self._det_name}_{w}x{h}", self.cfg.cache_dir),
                                     self.cfg.precision)
                crop = crop_graph(key, self.input_wh, gather_uint8=self.cfg.backend == "ort")
                crop_be = self._load(save_graph(crop, f"crop_{w}x{h}_{self.input_wh[0]}", self.cfg.cache_dir),
                                     "fp32")
                self._sizes[key] = (det, crop_be, params, [o.name for o in det.outputs])
                log.info("chain graphs for %dx%d frames ready", w, h)
            return self._sizes[key]

    # -- profiling (CUDA) ------------------------------------------------------------------
    def _mark(self, name: str, stream: Any) -> None:
        """A timing event on ``stream`` after the work queued so far (profiling runs only)."""
        if self._marks is None or stream is None:
            return
        from engines import cuda

        ev = cuda.Event(timing=True)
        ev.record(stream)
        self._marks.append((name, ev))

    def stage_ms(self) -> dict[str, float]:
        """GPU milliseconds of each stage of the last profiled frame: from the previous stage's end event to
        this one's (the stages of a frame run one after the other, so this is the stage's share of the frame's
        GPU time line, host gaps included: "nms + maps up" is the candidates' download and the host's NMS)."""
        from engines import cuda

        out: dict[str, float] = {}
        marks = self._marks or []
        for (_, a), (name, b) in zip(marks, marks[1:]):
            out[name] = out.get(name, 0.0) + cuda.elapsed_ms(a, b)
        if len(marks) > 1:
            out["total"] = cuda.elapsed_ms(marks[0][1], marks[-1][1])
        return out

    # -- frames ---------------------------------------------------------------------------
    def upload(self, image: np.ndarray) -> DeviceArray:
        """The frame on the device, uploaded once however many stages read it."""
        with self._lock:
            hit = self._frames.get(id(image))
            if hit is not None and hit[0] is image:
                return hit[1]
            self._mark("start", self.stream)
            dev = upload(image, self.cfg.device, self.stream, log_=self.transfers, name="frame",
                         uploader=self._frame_up)
            self._mark("upload", self.stream)
            self._frames[id(image)] = (image, dev)
            while len(self._frames) > _FRAMES_KEPT:
                self._frames.popitem(last=False)
            return dev

    def _swapper(self, frame_hw: tuple[int, int]) -> Backend:
        """The RGB -> BGR engine for a frame size (a frame decoded on the device comes as RGB)."""
        key = (int(frame_hw[0]), int(frame_hw[1]))
        with self._lock:
            if key not in self._swaps:
                h, w = key
                self._swaps[key] = self._load(save_graph(rgb_to_bgr_graph(key), f"rgb2bgr_{w}x{h}",
                                                         self.cfg.cache_dir), "fp32")
            return self._swaps[key]

    def adopt(self, image: np.ndarray, device_rgb: DeviceArray) -> DeviceArray:
        """Use a frame already on the GPU for ``image`` (e.g. NVDEC's RGB copy of it): converted to BGR on the
        device into a pooled buffer, so this frame is never uploaded.  Without CUDA, an ordinary upload."""
        if self._frame_up is None or device_rgb.is_host:
            return self.upload(image)
        if device_rgb.shape != image.shape or device_rgb.dtype != np.uint8:
            raise ModelError(f"the device frame {device_rgb!r} does not match the image {image.shape}")
        swap = self._swapper(image.shape[:2])
        (bgr,) = run_on_device(swap, device_rgb)
        dev = self._frame_up.device_copy(bgr, getattr(swap, "stream", None), keep=device_rgb)
        with self._lock:
            self._frames[id(image)] = (image, dev)
            while len(self._frames) > _FRAMES_KEPT:
                self._frames.popitem(last=False)
        return dev

    def release(self, image: np.ndarray) -> None:
        """Forget a frame's upload (the pose stage is done with it)."""
        with self._lock:
            self._frames.pop(id(image), None)

    # -- stages ---------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> Detections:
        """People in a BGR frame, as :meth:`realtime.detectors.PersonDetector.detect` finds them."""
        h, w = image.shape[:2]
        det_be, _, params, names = self.stages((h, w))
        frame = self.upload(image)
        pro = self._prologues.get((h, w))
        outs = run_on_device(det_be, *run_on_device(pro, frame)) if pro is not None else run_on_device(det_be, frame)
        self._mark("detector", getattr(det_be, "stream", None))
        host = {n: download(o, self.transfers, n) for n, o in zip(names, outs)}
        ctx: tuple = (params.scale_x, (params.pad_x, params.pad_y)) if self.family == "yolo" else ()
        d = self.host_detector
        if CANDIDATES in host and self._may_cut and not self._warned_saturated:
            cand = host[CANDIDATES]
            if cand[0, 4, -1] >= d.conf:
                self._warned_saturated = True
                log.warning("all %d detector candidates scored above %.2f: raise ChainConfig.candidates "
                            "to be sure no person is cut", cand.shape[2], d.conf)
        if self.family == "ssd_decoded" and self._may_cut and not self._warned_saturated:
            last = host["scores"][0, -1, self._person_class]
            if last >= d.conf:
                self._warned_saturated = True
                log.warning("all %d detector candidates scored above %.2f: raise ChainConfig.ssd_candidates "
                            "to be sure no person is cut", host["scores"].shape[1], d.conf)
        det = self._post(host, ctx, (w, h), self._person_class, d.conf, d.iou)
        return det.top(self.cfg.max_persons)

    def transforms(self, detections: Detections) -> list[H.CropTransform]:
        """Each person's crop geometry, exactly as :class:`realtime.pose.Cropper` makes it."""
        out = []
        for box in detections.boxes:
            b = box.astype(np.float64)
            b[2], b[3] = max(b[2], b[0] + 1.0), max(b[3], b[1] + 1.0)
            out.append(H.CropTransform.from_box(b, self.input_wh, self.heatmap_wh, self.padding))
        return out

    def estimate(self, image: np.ndarray, detections: Detections) -> Poses:
        """Keypoints (frame pixels) of the detected people: crop and pose on the device, peaks back."""
        k = self.info.num_joints
        if len(detections) == 0:
            return Poses.empty(k)
        h, w = image.shape[:2]
        _, crop_be, _, _ = self.stages((h, w))
        tfs = self.transforms(detections)
        rows, cols = crop_maps(np.stack([t.frame_to_input for t in tfs]), self.input_wh)
        dev = self.cfg.device
        crops = run_on_device(crop_be, self.upload(image),
                              upload(rows, dev, self.stream, log_=self.transfers, name="maps", uploader=self._maps_up),
                              upload(cols, dev, self.stream, log_=self.transfers, name="maps", uploader=self._maps_up))[0]
        if self._maps_up is not None:
            self._mark("nms + maps up", self._maps_up.stream)
        self._mark("crop", getattr(crop_be, "stream", None))
        peaks, scores = [], []
        for i in range(0, len(tfs), max(1, self.cfg.max_batch)):
            outs = dict(zip(self._pose_out, run_on_device(self.pose_backend, crops[i:i + self.cfg.max_batch])))
            pose_stream = getattr(self.pose_backend, "stream", None)
            self._mark("pose", pose_stream)
            peaks.append(download(outs[PEAKS], self.transfers, PEAKS))
            scores.append(download(outs[PEAK_SCORES], self.transfers, PEAK_SCORES))
            self._mark("peaks down", pose_stream)
        mats = np.stack([t.heatmap_to_frame for t in tfs])
        kps = H.apply_affine(mats, np.concatenate(peaks)).astype(np.float32)
        return Poses(kps, np.clip(np.concatenate(scores), 0, 1), detections.boxes.copy(),
                     detections.scores.copy(), transforms=tfs)

    def process(self, image: np.ndarray) -> Poses:
        """Detect and estimate one frame (the frame is uploaded once and released after)."""
        if self.cfg.profile and self._frame_up is not None:
            self._marks = []
        try:
            return self.estimate(image, self.detect(image))
        finally:
            self.release(image)

    def close(self) -> None:
        for det, crop, _, _ in self._sizes.values():
            det.close()
            crop.close()
        for pro in (*self._prologues.values(), *self._swaps.values()):
            pro.close()
        self._swaps.clear()
        self._sizes.clear()
        self._prologues.clear()
        self._frames.clear()
        self.pose_backend.close()
        for up in (self._frame_up, self._maps_up):
            if up is not None:
                up.close()


def rgb_to_bgr_graph(frame_hw: tuple[int, int]) -> Any:
    """``frame`` (H, W, 3) uint8 RGB -> ``bgr`` (H, W, 3) uint8 (a channel gather; cast around it because
    TensorRT gathers float, not uint8)."""
    from onnx import TensorProto, helper

    h, w = (int(v) for v in frame_hw)
    idx = helper.make_tensor("rgb2bgr/idx", TensorProto.INT64, [3], [2, 1, 0])
    g = helper.make_graph(
        [helper.make_node("Cast", ["frame"], ["rgb2bgr/f"], to=TensorProto.FLOAT),
         helper.make_node("Gather", ["rgb2bgr/f", "rgb2bgr/idx"], ["rgb2bgr/g"], axis=2),
         helper.make_node("Cast", ["rgb2bgr/g"], ["bgr"], to=TensorProto.UINT8)], "rgb2bgr",
        [helper.make_tensor_value_info("frame", TensorProto.UINT8, [h, w, 3])],
        [helper.make_tensor_value_info("bgr", TensorProto.UINT8, [h, w, 3])], [idx])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="mca-pose")
    m.ir_version = 8
    return m


class _ChainDetector:
    """The chain as the pipeline's detector: ``detect(image) -> Detections``."""

    def __init__(self, chain: GraphChain) -> None:
        self.chain, self.family = chain, chain.family

    def detect(self, image: np.ndarray) -> Detections:
        return self.chain.detect(image)

    def detect_frame(self, frame: Any) -> Detections:
        """The pipeline's call: a frame that is already on the GPU (``device_rgb``, NVDEC) is not uploaded."""
        device_rgb = getattr(frame, "device_rgb", None)
        if device_rgb is not None:
            self.chain.adopt(frame.image, device_rgb)
        return self.chain.detect(frame.image)


class _ChainPose:
    """The chain as the pipeline's pose stage: ``info`` and ``estimate_frame(image, detections)``."""

    def __init__(self, chain: GraphChain) -> None:
        self.chain, self.info, self.backend = chain, chain.info, chain.pose_backend
        self.attention = False  # the chain brings no attention maps back

    def estimate_frame(self, image: np.ndarray, detections: Detections) -> Poses:
        try:
            return self.chain.estimate(image, detections)
        finally:
            self.chain.release(image)
