"""Face-crop image statistics: what landmark geometry cannot see.

Per region (the face box and the mouth box): sharpness, noise and blockiness (the measures of
`talkface.measures`), brightness, contrast, two colour-opponent means (for colour shift and
flicker) and the mean absolute difference to the previous frame's crop.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..measures import blockiness, noise_sigma, sharpness

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels

STAT_NAMES = ["sharpness", "noise", "blockiness", "brightness", "contrast", "chroma_rg",
              "chroma_by", "frame_diff"]


def stat_columns(region: str) -> list[str]:
    return [f"{region}_{name}" for name in STAT_NAMES]


def grid_crop(frame: np.ndarray, box: Box, grid: int = 8) -> Optional[np.ndarray]:
    """The box of an image (H, W[, C]), its top-left corner snapped to the 8x8 coding grid so
    block edges stay where the codec put them; None when under 16x16 pixels."""
    h, w = frame.shape[:2]
    # snap to the 8x8 grid of the frame so coding-block edges stay where the codec put them
    x0 = max(0, int(box[0]) // grid * grid)
    y0 = max(0, int(box[1]) // grid * grid)
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return frame[y0:y1, x0:x1]


def stats_row(gray: np.ndarray, rgb: np.ndarray, coded: np.ndarray,
              prev: Optional[np.ndarray]) -> np.ndarray:
    """The 8 statistics of one region. gray: float32 crop at its analysis size; rgb: the same
    crop in colour (for brightness-independent colour means); coded: grey pixels (uint8) at the
    source's own resolution starting on its 8x8 coding grid (for blockiness); prev: the previous
    frame's `gray` (or None)."""
    r, g, b = cv2.mean(rgb)[:3]
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(gray))
    diff = cv2.norm(gray, prev, cv2.NORM_L1) / gray.size \
        if prev is not None and prev.shape == gray.shape else 0.0
    return np.array([sharpness(gray), np.log1p(noise_sigma(gray)), np.log(blockiness(coded)),
                     mean / 255, std / 255, (r - g) / 255, (b - (r + g) / 2) / 255, diff / 255],
                    np.float32)


def region_stats(frame: np.ndarray, box: Optional[Box], size: tuple[int, int],
                 prev: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Statistics of a box of an RGB frame, resized to `size` for analysis. Returns (values (8,),
    the resized grey crop for the next call)."""
    crop = grid_crop(frame, box) if box is not None else None
    if crop is None:
        return np.zeros(len(STAT_NAMES), np.float32), None
    gray_full = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = cv2.resize(gray_full, size, interpolation=cv2.INTER_AREA)
    return stats_row(gray, crop, gray_full, prev), gray


class CropStats:
    """Face and mouth statistics for a stream of frames (keeps the previous crops for frame_diff)."""

    FACE_SIZE, MOUTH_SIZE = (128, 128), (64, 32)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the previous crops (the face was lost: no frame difference across the gap)."""
        self.prev_face = self.prev_mouth = None

    @staticmethod
    def columns() -> list[tuple[str, list[str]]]:
        return [("face_stats", stat_columns("face")), ("mouth_stats", stat_columns("mouth"))]

    def __call__(self, frame: np.ndarray, face_box: Optional[Box],
                 mouth_box: Optional[Box]) -> np.ndarray:
        face, self.prev_face = region_stats(frame, face_box, self.FACE_SIZE, self.prev_face)
        mouth, self.prev_mouth = region_stats(frame, mouth_box, self.MOUTH_SIZE, self.prev_mouth)
        return np.concatenate([face, mouth])
