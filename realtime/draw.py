"""Draw skeletons, boxes, track ids, attention maps and an FPS/latency overlay on frames."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from mca import heatmaps as H
from realtime.types import Poses

log = logging.getLogger(__name__)

__all__ = ["Renderer", "track_color", "ATTENTION_MODES", "KPT_THR"]

ATTENTION_MODES = ("holistic", "parts")
# Joints (and limbs to them) under this confidence are not drawn.  From data (tools/kpt_threshold.py on held-out
# real people, the bundled stage-6 mca_tiny_real): "drawn exactly when right" is best at 0.65 against MoveNet (0.836)
# and at 0.70 against BlazePose (0.804; 0.795 at 0.65): docs/training/stage6/kpt_threshold*.json.
KPT_THR = 0.65
_OUTLINE = (0, 0, 0)


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
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

    def __init__(self, skeleton: tuple[tuple[int, int], ...], min_score: float = KPT_THR, boxes: bool = True,
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
        """Skeletons (joints at or above ``min_score``), boxes with track ids, attention, and ``text`` top left.

        Layers go boxes, then skeletons, then labels, so no box hides another person's
        label; boxes, limbs and text have a dark outline to read over busy backgrounds.
        """
        img = image.copy()
        if self.attention:
            self.overlay_attention(img, poses)
        scale = max(1.0, img.shape[0] / 720)
        thick = max(1, int(round(2 * scale)))
        cols = [track_color(int(t) if t >= 0 else i) for i, t in enumerate(poses.track_ids)]
        if self.boxes:
            for i in range(len(poses)):
                x0, y0, x1, y1 = (int(round(v)) for v in poses.boxes[i])
                cv2.rectangle(img, (x0, y0), (x1, y1), _OUTLINE, max(1, thick // 2) + 2)
                cv2.rectangle(img, (x0, y0), (x1, y1), cols[i], max(1, thick // 2))
        for i in range(len(poses)):
            tall = float(poses.boxes[i, 3] - poses.boxes[i, 1])  # small people get small joint dots
            self._skeleton(img, poses.keypoints[i], poses.scores[i], cols[i], thick,
                           int(np.clip(round(tall / 40), 1, thick + 1)))
        placed: list[tuple[int, int, int, int]] = []  # the overlay band and the id tags: no tag goes under them
        if text:
            org = (8, int(22 * scale))
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
            bx0, by0, bx1, by1 = max(0, org[0] - 6), max(0, org[1] - th - 6), org[0] + tw + 6, org[1] + base + 4
            placed.append((bx0, by0, bx1, by1))
        if self.boxes:
            for i in range(len(poses)):
                if poses.track_ids[i] >= 0:
                    placed.append(self._label(img, f"#{int(poses.track_ids[i])}", poses.boxes[i], cols[i], scale,
                                              thick, placed))
        if text:  # last, on a dark band: above any box in the corner
            band = img[by0:by1, bx0:bx1]
            band[:] = (band * 0.35).astype(np.uint8)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thick, cv2.LINE_AA)
        return img

    def _skeleton(self, img: np.ndarray, kp: np.ndarray, sc: np.ndarray, col: tuple[int, int, int],
                  thick: int, radius: int) -> None:
        ok = sc >= self.min_score
        pts = [(int(round(x)), int(round(y))) for x, y in kp]
        for a, b in self.skeleton:
            if ok[a] and ok[b]:
                cv2.line(img, pts[a], pts[b], _OUTLINE, thick + 2, cv2.LINE_AA)
                cv2.line(img, pts[a], pts[b], col, thick, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(img, pts[j], radius + 1, _OUTLINE, -1, cv2.LINE_AA)
            cv2.circle(img, pts[j], radius, (255, 255, 255), -1, cv2.LINE_AA)

    @staticmethod
    def _label(img: np.ndarray, label: str, box: np.ndarray, col: tuple[int, int, int], scale: float,
               thick: int, placed: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
        """The track id on a tag in the track's colour, dark-edged, above the box's top left corner (inside the
        box when it touches the top; moved down past tags already ``placed``): dark text on a solid tag reads over
        any background and no label covers another.  Returns the tag's rectangle."""
        font, fs, t = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, max(1, thick // 2)
        (tw, th), base = cv2.getTextSize(label, font, fs, t)
        pad = max(2, int(round(2 * scale)))
        w, h = tw + 2 * pad, th + base + pad
        x0, y0 = int(round(box[0])), int(round(box[1]))
        x = min(max(0, x0), max(0, img.shape[1] - w - 1))
        y = y0 - h if y0 - h >= 0 else max(0, y0)

        def hits(yy: int) -> bool:
            return any(x <= px1 and px0 <= x + w and yy <= py1 and py0 <= yy + h for px0, py0, px1, py1 in placed)

        for _ in range(len(placed)):
            if not hits(y) or y + 2 * h + 1 >= img.shape[0]:
                break
            y = max(py1 for px0, py0, px1, py1 in placed
                    if x <= px1 and px0 <= x + w and y <= py1 and py0 <= y + h) + 1
        cv2.rectangle(img, (x, y), (x + w, y + h), col, -1)
        cv2.rectangle(img, (x, y), (x + w, y + h), _OUTLINE, 1)
        cv2.putText(img, label, (x + pad, y + pad + th), font, fs, _OUTLINE, t, cv2.LINE_AA)
        return x, y, x + w, y + h
