"""Canonical crops: one face crop and one mouth crop per frame, at one scale whatever the video.

Both are cut from the frame at the source's own resolution (`NativeFrame.warp`), so a face that
is 1000 px tall in a 4K frame and one that is 150 px tall in a 256 px clip give crops of the same
size with the eyes in the same place: statistics and models computed on them do not depend on the
video's resolution or the face's size (down to the point where the source has fewer pixels than
the crop, when the crop is an enlargement and looks soft, as the face does).

- face crop, FACE_SIZE x FACE_SIZE: eyes level, the eye midpoint at 40% of the height, the
  inter-ocular distance (measured in 3D, so it does not shrink when the head turns) FACE_IOD of
  the width. Used for sharpness, noise, brightness, colour and frame differences.
- mouth crop, MOUTH_SIZE: centred on the lips, the eye line's angle, MOUTH_IOD inter-ocular
  distances wide. Used for the mouth statistics and by the sync model.
"""
from __future__ import annotations

import math

import numpy as np

from .mesh import LIPS

FACE_SIZE = 112
FACE_IOD = 0.36  # inter-ocular distance as a fraction of the face crop's width
FACE_EYE_Y = 0.40  # eye midpoint height as a fraction of the face crop's height
MOUTH_SIZE = (96, 48)
MOUTH_IOD = 1.4  # the mouth crop is this many inter-ocular distances wide


def similarity(centre: np.ndarray, angle: float, pixels_per_unit: float,
               out_centre: tuple[float, float]) -> np.ndarray:
    """2x3 map: rotate by -angle about `centre` (source pixels), scale, move to `out_centre`."""
    c, n = math.cos(angle), math.sin(angle)
    a = pixels_per_unit * np.array([[c, n], [-n, c]])
    return np.hstack([a, (np.asarray(out_centre) - a @ centre)[:, None]])


def face_matrix(right_eye: np.ndarray, left_eye: np.ndarray, iod: float) -> np.ndarray:
    """Source -> face crop. Eye centres (x, y) in pixels; `iod` in pixels (3D eye distance)."""
    angle = math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])
    scale = FACE_IOD * FACE_SIZE / max(iod, 1e-6)
    return similarity((right_eye + left_eye) / 2, angle, scale,
                      (FACE_SIZE / 2, FACE_EYE_Y * FACE_SIZE))


def mouth_matrix(points: np.ndarray, right_eye: np.ndarray, left_eye: np.ndarray,
                 iod: float) -> np.ndarray:
    """Source -> mouth crop, centred on the mean of the 40 lip points (468-point mesh)."""
    angle = math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])
    scale = MOUTH_SIZE[0] / (MOUTH_IOD * max(iod, 1e-6))
    return similarity(points[LIPS, :2].mean(0), angle, scale,
                      (MOUTH_SIZE[0] / 2, MOUTH_SIZE[1] / 2))


def source_box(matrix: np.ndarray, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The source-pixel bounding box of a crop made with `matrix` (for on-grid statistics)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float) @ inverse.T
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    return float(x0), float(y0), float(x1), float(y1)
