"""468 face landmarks per frame with MediaPipe's FaceMesh, and the point sets talkface uses.

Reference: Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile
GPUs" (2019), and MediaPipe's face landmark graph: the model looks at a square region of interest
(ROI) 1.5x the face, rotated so the eyes are level, resized to 192x192 (RGB in [0, 1]), and returns
468 (x, y, z) points in that crop plus a face-presence logit. The ROI of the next frame comes from
this frame's points (eye corners 33 -> 263 give the rotation), which is how MediaPipe tracks a face
without running the detector every frame.

z has about the scale of x (relative depth, smaller = closer), so 3D distances are usable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..media import NativeFrame
from .detect import LEFT_EYE, RIGHT_EYE, Detection
from .model_files import TFLiteModel, mediapipe_model

INPUT = 192
ROI_SCALE = 1.5
N_POINTS = 468

# The subject's right eye is on the image's left. Indices into the 468 points.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
# the 40 lip points: outer contour then inner contour, each clockwise from the image-left corner
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181,
              91, 146]
LIPS_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178,
              88, 95]
LIPS = LIPS_OUTER + LIPS_INNER
# the iBUG 300-W 68-point layout (dlib's) picked from the mesh, so every backend can give the same
# 68 points: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67
MESH_TO_68 = [127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356,
              70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
              168, 197, 5, 4, 75, 97, 2, 326, 305,
              33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
              61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
              78, 81, 13, 311, 308, 402, 14, 178]
# points that move little with expression: eye corners, nose, forehead, cheekbones, temples
RIGID = [33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 10, 151, 9, 8, 234, 454, 127, 356, 93,
         323, 116, 345, 123, 352]


@dataclass(frozen=True)
class Roi:
    """A square region: centre (x, y) and side in source pixels, angle (radians) of the eye line
    in image coordinates (0 = eyes level)."""

    cx: float
    cy: float
    side: float
    angle: float

    def scaled(self, factor: float) -> "Roi":
        """The same region, `factor` times as wide."""
        return Roi(self.cx, self.cy, self.side * factor, self.angle)

    def matrix(self, size: int = INPUT) -> np.ndarray:
        """2x3 affine map from source pixels to a size x size crop of this ROI."""
        s = size / self.side
        c, n = math.cos(self.angle), math.sin(self.angle)
        a = s * np.array([[c, n], [-n, c]])
        return np.hstack([a, (size / 2 - a @ [self.cx, self.cy])[:, None]])

    @classmethod
    def from_detection(cls, det: Detection) -> "Roi":
        """The detection's box, 1.5x, turned by its eye line (upright without key points)."""
        x0, y0, x1, y1 = det.box
        angle = 0.0
        if det.keypoints is not None:
            r, l = det.keypoints[RIGHT_EYE], det.keypoints[LEFT_EYE]
            angle = math.atan2(l[1] - r[1], l[0] - r[0])
        return cls((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), angle)

    @classmethod
    def from_points(cls, points: np.ndarray) -> "Roi":
        """The next frame's ROI from this frame's (468, 2+) points in source pixels."""
        r, l = points[RIGHT_EYE_OUTER, :2], points[LEFT_EYE_OUTER, :2]
        angle = math.atan2(l[1] - r[1], l[0] - r[0])
        c, n = math.cos(angle), math.sin(angle)
        rot = np.array([[c, n], [-n, c]])  # into the face's own axes
        local = points[:, :2] @ rot.T
        lo, hi = local.min(0), local.max(0)
        centre = ((lo + hi) / 2) @ rot  # back to image axes
        return cls(float(centre[0]), float(centre[1]), ROI_SCALE * float((hi - lo).max()), angle)


class FaceMesh:
    """`mesh(frame, roi)` -> (points (468, 3) in source pixels, presence in [0, 1])."""

    def __init__(self, threads: int = 1) -> None:
        self.model = TFLiteModel(mediapipe_model("face_landmark.tflite"), threads)

    def __call__(self, frame: NativeFrame, roi: Roi) -> tuple[np.ndarray, float]:
        m = roi.matrix(INPUT)
        crop = frame.warp(m, (INPUT, INPUT))
        raw, flag = self.model((crop.astype(np.float32) / 255.0)[None])
        pts = raw.reshape(N_POINTS, 3).astype(np.float64)
        inverse = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        xy = pts[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        z = pts[:, 2] * roi.side / INPUT
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(flag.ravel()[-1], -80, 80))))
        return np.column_stack([xy, z]).astype(np.float32), presence
