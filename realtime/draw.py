"""Draw skeletons, boxes, track ids, attention maps and an FPS/latency overlay on frames."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from mca import heatmaps as H
from realtime.types import Poses

log = logging.getLogger(__name__)

__all__ = ["Renderer", "track_color", "ATTENTION_MODES"]

ATTENTION_MODES = ("holistic", "parts")


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _map_to_frame_matrix(map_wh: tuple[int, int], transform: H.CropTransform) -> np.ndarray:
    """Attention-map pixels -> frame pixels (maps cover the crop like the heatmaps, at their own size)."""
    to_hm = H.scale_matrix(map_wh, transform.heatmap_wh)
    return H.compose_affine(transform.heatmap_to_frame, to_hm)


class Renderer:
    """``draw(image, poses) -> image``: an annotated copy of the frame.

    ``attention`` = ``"holistic"`` or ``"parts"`` overlays the model's CRF attention
    (the holistic map, or the strongest part map per pixel) where each person's crop
    lies in the frame, warped back with the crop's own transform.
    """

    def __init__(self, skeleton: tuple[tuple[int, int], ...], min_score: float = 0.2, boxes: bool = True,
                 attention: str | bool | None = None, attention_alpha: float = 0.6) -> None:
        if attention is True:
            attention = "holistic"
        if attention not in (None, False, *ATTENTION_MODES):
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.skeleton, self.min_score, self.boxes = skeleton, min_score, boxes
        self.attention: str | None = attention or None
        self.alpha = attention_alpha

    def _attention_maps(self, poses: Poses) -> np.ndarray | None:
        if self.attention == "parts":
            return None if poses.part_attention is None else poses.part_attention.max(axis=1)
        return poses.attention

    def overlay_attention(self, img: np.ndarray, poses: Poses) -> None:
        """Blend each person's attention map (JET colours, opacity rising with attention) into ``img``."""
        maps = self._attention_maps(poses)
        if maps is None or poses.transforms is None:
            return
        fh, fw = img.shape[:2]
        for m, t in zip(maps, poses.transforms):
            mh, mw = m.shape
            to_frame = _map_to_frame_matrix((mw, mh), t)
            corners = H.apply_affine(to_frame, np.array([[-0.5, -0.5], [mw - 0.5, -0.5], [-0.5, mh - 0.5],
                                                          [mw - 0.5, mh - 0.5]]))
            x0, y0 = np.floor(corners.min(0)).astype(int)
            x1, y1 = np.ceil(corners.max(0)).astype(int)
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            # frame ROI pixel -> map pixel, for warpAffine's inverse mapping
            roi_to_map = H.invert_affine(H.compose_affine(np.array([[1, 0, -x0], [0, 1, -y0]], float), to_frame))
            v = np.asarray(m, np.float32)
            v = (v - v.min()) / max(float(v.max() - v.min()), 1e-6)
            warped = cv2.warpAffine(v, roi_to_map, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            heat = cv2.applyColorMap((warped * 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
            a = (self.alpha * warped)[..., None]
            roi = img[y0:y1, x0:x1]
            roi[:] = (a * heat + (1 - a) * roi).astype(np.uint8)

    def draw(self, image: np.ndarray, poses: Poses, text: str | None = None) -> np.ndarray:
        """Skeletons (joints above ``min_score``), boxes with track ids, attention, and ``text`` top left."""
        img = image.copy()
        if self.attention:
            self.overlay_attention(img, poses)
        scale = max(1.0, img.shape[0] / 720)
        thick = max(1, int(round(2 * scale)))
        for i in range(len(poses)):
            tid = int(poses.track_ids[i])
            col = track_color(tid if tid >= 0 else i)
            kp, sc = poses.keypoints[i], poses.scores[i]
            if self.boxes:
                x0, y0, x1, y1 = (int(round(v)) for v in poses.boxes[i])
                cv2.rectangle(img, (x0, y0), (x1, y1), col, max(1, thick // 2))
                if tid >= 0:
                    cv2.putText(img, f"#{tid}", (x0 + 2, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                                col, max(1, thick // 2), cv2.LINE_AA)
            for a, b in self.skeleton:
                if sc[a] >= self.min_score and sc[b] >= self.min_score:
                    pa = (int(round(kp[a, 0])), int(round(kp[a, 1])))
                    pb = (int(round(kp[b, 0])), int(round(kp[b, 1])))
                    cv2.line(img, pa, pb, col, thick, cv2.LINE_AA)
            for j in range(len(kp)):
                if sc[j] >= self.min_score:
                    cv2.circle(img, (int(round(kp[j, 0])), int(round(kp[j, 1]))), thick + 1, (255, 255, 255), -1,
                               cv2.LINE_AA)
        if text:
            org = (8, int(22 * scale))
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thick, cv2.LINE_AA)
        return img
