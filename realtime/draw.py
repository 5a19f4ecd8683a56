"""Draw skeletons, boxes, track ids, attention maps and an FPS overlay on frames."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.types import Poses

__all__ = ["Renderer", "track_color"]


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


class Renderer:
    """``draw(image, poses) -> image``: annotated copy of the frame."""

    def __init__(self, skeleton: tuple[tuple[int, int], ...], min_score: float = 0.2, boxes: bool = True,
                 attention: bool = False, attention_alpha: float = 0.45) -> None:
        self.skeleton, self.min_score, self.boxes = skeleton, min_score, boxes
        self.attention, self.alpha = attention, attention_alpha

    def _overlay_attention(self, img: np.ndarray, poses: Poses) -> None:
        if poses.attention is None:
            return
        for i in range(len(poses)):
            x0, y0, x1, y1 = (int(round(v)) for v in poses.boxes[i])
            x0, y0 = max(x0, 0), max(y0, 0)
            x1, y1 = min(x1, img.shape[1] - 1), min(y1, img.shape[0] - 1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            # The map covers the padded square crop; show it over the person's box region.
            m = poses.attention[i]
            m = (m - m.min()) / max(float(m.max() - m.min()), 1e-6)
            heat = cv2.applyColorMap((cv2.resize(m, (x1 - x0, y1 - y0)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
            roi = img[y0:y1, x0:x1]
            cv2.addWeighted(heat, self.alpha, roi, 1 - self.alpha, 0, dst=roi)

    def draw(self, image: np.ndarray, poses: Poses, text: str | None = None) -> np.ndarray:
        img = image.copy()
        if self.attention:
            self._overlay_attention(img, poses)
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
            cv2.putText(img, text, (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0),
                        thick + 2, cv2.LINE_AA)
            cv2.putText(img, text, (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255),
                        thick, cv2.LINE_AA)
        return img
