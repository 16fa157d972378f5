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
    dx = np.abs(gray[:, 1:] - gray[:, :-1])
    dy = np.abs(gray[1:, :] - gray[:-1, :])
    on = float(dx[:, 7::8].sum() + dy[7::8, :].sum())
    n_on = dx[:, 7::8].size + dy[7::8, :].size
    n_off = dx.size + dy.size - n_on
    if n_on == 0 or n_off == 0:
        return 1.0
    off = float(dx.sum() + dy.sum()) - on
    return (on / n_on + 1e-3) / (off / n_off + 1e-3)


def region_stats(frame: np.ndarray, box: Optional[Box], size: tuple[int, int],
                 prev: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Statistics of one region. Returns (values (8,), the resized grey crop for the next call)."""
    crop = _crop(frame, box) if box is not None else None
    if crop is None:
        return np.zeros(len(STAT_NAMES), np.float32), None
    gray_full = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = cv2.resize(gray_full, size, interpolation=cv2.INTER_AREA)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    sharp = np.log1p(float(lap_std[0, 0]) ** 2)
    hh, ww = gray.shape
    residual = cv2.filter2D(gray, -1, _IMMERKAER)[1:-1, 1:-1]
    noise = np.sqrt(np.pi / 2) * cv2.norm(residual, cv2.NORM_L1) / (6.0 * (ww - 2) * (hh - 2))
    rgb = cv2.mean(crop)[:3]
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(gray))
    diff = cv2.norm(gray, prev, cv2.NORM_L1) / gray.size \
        if prev is not None and prev.shape == gray.shape else 0.0
    values = np.array([sharp, np.log1p(noise), np.log(_blockiness(gray_full)), mean / 255,
                       std / 255, (rgb[0] - rgb[1]) / 255, (rgb[2] - (rgb[0] + rgb[1]) / 2)
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
