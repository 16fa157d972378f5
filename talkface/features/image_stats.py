"""Face-crop image statistics: what landmark geometry cannot see.

Per region (the face box and the mouth box): sharpness as log Laplacian variance, noise sigma
by Immerkaer's fast estimator (J. Immerkaer, "Fast Noise Variance Estimation", CVIU 1996),
blockiness as the ratio of luminance jumps on the 8x8 coding grid to jumps elsewhere (a
simplified Wang-Bovik-Evans blockiness measure), brightness, contrast, two colour-opponent means
(for colour shift and flicker) and the mean absolute difference to the previous frame's crop.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from .base import Box

STAT_NAMES = ["sharpness", "noise", "blockiness", "brightness", "contrast", "chroma_rg",
              "chroma_by", "frame_diff"]
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def stat_columns(region: str) -> list[str]:
    return [f"{region}_{name}" for name in STAT_NAMES]


def _crop(frame: np.ndarray, box: Box, grid: int = 8) -> Optional[np.ndarray]:
    h, w = frame.shape[:2]
    # snap to the 8x8 grid of the frame so coding-block edges stay where the codec put them
    x0 = max(0, int(box[0]) // grid * grid)
    y0 = max(0, int(box[1]) // grid * grid)
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return frame[y0:y1, x0:x1]


def _blockiness(gray: np.ndarray) -> float:
    dx = np.abs(np.diff(gray, axis=1))
    dy = np.abs(np.diff(gray, axis=0))
    on_x, on_y = dx[:, 7::8], dy[7::8, :]
    off_x = dx.sum() - on_x.sum()
    off_y = dy.sum() - on_y.sum()
    n_on = on_x.size + on_y.size
    n_off = dx.size + dy.size - n_on
    if n_on == 0 or n_off == 0:
        return 1.0
    return float(((on_x.sum() + on_y.sum()) / n_on + 1e-3) / ((off_x + off_y) / n_off + 1e-3))


def region_stats(frame: np.ndarray, box: Optional[Box], size: tuple[int, int],
                 prev: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Statistics of one region. Returns (values (8,), the resized grey crop for the next call)."""
    crop = _crop(frame, box) if box is not None else None
    if crop is None:
        return np.zeros(len(STAT_NAMES), np.float32), None
    gray_full = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = cv2.resize(gray_full, size, interpolation=cv2.INTER_AREA)
    sharp = np.log1p(cv2.Laplacian(gray, cv2.CV_32F).var())
    hh, ww = gray.shape
    noise = np.sqrt(np.pi / 2) * np.abs(cv2.filter2D(gray, -1, _IMMERKAER)[1:-1, 1:-1]).sum() \
        / (6.0 * (ww - 2) * (hh - 2))
    rgb = crop.reshape(-1, 3).astype(np.float32).mean(0)
    diff = float(np.abs(gray - prev).mean()) if prev is not None and prev.shape == gray.shape \
        else 0.0
    values = np.array([sharp, np.log1p(noise), np.log(_blockiness(gray_full)), gray.mean() / 255,
                       gray.std() / 255, (rgb[0] - rgb[1]) / 255, (rgb[2] - (rgb[0] + rgb[1]) / 2)
                       / 255, diff / 255], np.float32)
    return values, gray


class CropStats:
    """Face and mouth statistics for a stream of frames (keeps the previous crops for frame_diff)."""

    FACE_SIZE, MOUTH_SIZE = (128, 128), (64, 32)

    def __init__(self) -> None:
        self.prev_face = self.prev_mouth = None

    @staticmethod
    def columns() -> list[tuple[str, list[str]]]:
        return [("face_stats", stat_columns("face")), ("mouth_stats", stat_columns("mouth"))]

    def __call__(self, frame: np.ndarray, face_box: Optional[Box],
                 mouth_box: Optional[Box]) -> np.ndarray:
        face, self.prev_face = region_stats(frame, face_box, self.FACE_SIZE, self.prev_face)
        mouth, self.prev_mouth = region_stats(frame, mouth_box, self.MOUTH_SIZE, self.prev_mouth)
        return np.concatenate([face, mouth])
