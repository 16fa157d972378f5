"""The default, fully offline visual backend: dlib face detection + 68-point landmarks.

dlib's HOG frontal face detector runs every `detect_every` frames; in between, the face is
tracked by re-fitting the 68-point shape predictor (shipped in the `face-recognition-models`
package, iBUG 300-W layout) inside the box of the previous frame's landmarks. With several faces
the largest is chosen and then followed by box overlap. Head pose comes from landmark ratios
(`head_pose`). Frames are analysed at the extractor's `max_side`, so small faces in large frames
are missed: the `mesh` backend is the one for real footage.
"""
from __future__ import annotations

import threading
from typing import Optional

import cv2
import numpy as np

from ..faces.model_files import dlib_model
from ..faces.pose import eye_aspect_ratio
from .base import Box, FrameResult, FrameSession, VisualBackend, choose_face, register_backend
from .image_stats import CropStats

GEOMETRY = ["mouth_open", "mouth_width", "mouth_aspect", "jaw_drop", "ear_left", "ear_right",
            "yaw", "pitch", "roll", "face_x", "face_y", "face_size"]
MOTION = ["landmark_velocity", "mouth_velocity", "head_velocity"]

def shape_predictor_path() -> str:
    """dlib's 68-point model, shipped in the face-recognition-models package."""
    return str(dlib_model("shape_predictor_68_face_landmarks.dat"))


def head_pose(pts: np.ndarray) -> tuple[float, float, float]:
    """Approximate yaw, pitch, roll in degrees from 68 landmarks (x, y in pixels).

    Roll is the angle of the line through the outer eye corners. Yaw compares the nose tip's
    distance to the left and right jaw contour; pitch compares the nose tip's height between the
    eye line and the chin with a frontal face's ratio (about 0.33). These ratios are stable frame
    to frame; `cv2.solvePnP` against a generic 6-point face model was tried first and flipped
    between +-15 degrees of yaw on a frontal face, because a generic model fits no real face well.
    """
    eye_l, eye_r = pts[36:42].mean(0), pts[42:48].mean(0)
    dx, dy = eye_r - eye_l
    roll = np.degrees(np.arctan2(dy, dx))
    # undo roll so the remaining ratios are measured in the face's own axes
    c, s = np.cos(np.radians(-roll)), np.sin(np.radians(-roll))
    p = (pts - pts[27]) @ np.array([[c, s], [-s, c]], np.float32)
    left, right = p[30, 0] - p[0:3, 0].mean(), p[14:17, 0].mean() - p[30, 0]
    yaw = np.degrees(np.arcsin(np.clip((left - right) / (left + right + 1e-6), -1, 1)))
    eye_y = (p[36:48, 1]).mean()
    ratio = (p[30, 1] - eye_y) / (p[8, 1] - eye_y + 1e-6)
    pitch = np.degrees(np.arcsin(np.clip((ratio - 0.33) / 0.33, -1, 1)))
    return float(yaw), float(pitch), float(roll)


def geometry(pts: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
    """The 12 GEOMETRY columns from 68 landmarks in pixels."""
    iod = np.linalg.norm(pts[45] - pts[36]) + 1e-6  # inter-ocular distance: the face's scale
    inner_gap = np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in ((61, 67), (62, 66),
                                                                        (63, 65))])
    width_mouth = np.linalg.norm(pts[64] - pts[60])
    yaw, pitch, roll = head_pose(pts)
    bw, bh = box[2] - box[0], box[3] - box[1]
    return np.array([inner_gap / iod, width_mouth / iod, inner_gap / (width_mouth + 1e-6),
                     np.linalg.norm(pts[8] - pts[30]) / iod, eye_aspect_ratio(pts[36:42]),
                     eye_aspect_ratio(pts[42:48]), yaw / 90, pitch / 90, roll / 90,
                     (box[0] + bw / 2) / width, (box[1] + bh / 2) / height,
                     np.sqrt(bw * bh / (width * height))], np.float32)


def _landmark_box(pts: np.ndarray) -> Box:
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    # dlib's detector boxes sit a little inside the landmark hull at the top (brows): pad a bit
    pad_x, pad_y = 0.05 * (x1 - x0), 0.1 * (y1 - y0)
    return (x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y)


def _mouth_box(pts: np.ndarray) -> Box:
    m = pts[48:68]
    (x0, y0), (x1, y1) = m.min(0), m.max(0)
    px, py = 0.25 * (x1 - x0), 0.5 * (y1 - y0) + 0.05 * (x1 - x0)
    return (x0 - px, y0 - py, x1 + px, y1 + py)


@register_backend("landmarks")
class LandmarkBackend(VisualBackend):
    name = "landmarks"
    version = "1"
    frame_kind = "rgb"

    def __init__(self, detect_every: int = 5, detect_max_side: int = 512,
                 upsample: int = 0, min_score: float = 0.3, detect_face_px: int = 120) -> None:
        import dlib  # imported here so `import talkface` stays light
        self.detect_every = int(detect_every)
        self.detect_max_side = int(detect_max_side)
        self.upsample = int(upsample)
        # HOG scores near 0 are mostly textures that look face-like (badges, posters)
        self.min_score = float(min_score)
        self.detect_face_px = int(detect_face_px)
        self._dlib = dlib
        self._predictor_path = shape_predictor_path()
        self._local = threading.local()  # dlib's models are not documented as thread-safe

    def models(self):
        """(HOG detector, 68-point predictor) of the calling thread."""
        if not hasattr(self._local, "models"):
            self._local.models = (self._dlib.get_frontal_face_detector(),
                                  self._dlib.shape_predictor(self._predictor_path))
        return self._local.models

    def options(self) -> dict:
        return {"detect_every": self.detect_every, "detect_max_side": self.detect_max_side,
                "upsample": self.upsample, "min_score": self.min_score,
                "detect_face_px": self.detect_face_px}

    def library_versions(self) -> dict[str, str]:
        return {"dlib": self._dlib.__version__, "opencv": cv2.__version__}

    def columns(self) -> list[tuple[str, list[str]]]:
        lm = [f"lm_x_{i:02d}" for i in range(68)] + [f"lm_y_{i:02d}" for i in range(68)]
        return [("landmarks", lm), ("geometry", list(GEOMETRY)), ("motion", list(MOTION))] \
            + CropStats.columns()

    def start(self) -> "LandmarkSession":
        return LandmarkSession(self)


class LandmarkSession(FrameSession):
    """One clip's tracking state for `LandmarkBackend`."""

    def __init__(self, backend: LandmarkBackend) -> None:
        super().__init__(backend)
        self.detector, self.predictor = backend.models()
        self._frame_index = 0
        self._box: Optional[Box] = None
        self._n_faces = 0
        self._prev: Optional[np.ndarray] = None  # previous landmarks, in face-box units
        self._prev_geo: Optional[np.ndarray] = None

    def _detect(self, gray: np.ndarray) -> list[Box]:
        b = self.backend
        scale = min(1.0, b.detect_max_side / max(gray.shape))
        if self._box is not None:
            # HOG finds faces from 80 px up: while tracking a big face, look at a smaller image
            # in which that face is still ~120 px wide (4x fewer pixels for a 240 px face)
            width = self._box[2] - self._box[0]
            scale = min(scale, max(b.detect_face_px / max(width, 1.0), 0.25))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
            if scale < 1 else gray
        rects, scores, _ = self.detector.run(small, b.upsample, b.min_score)
        return [(r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
                for r in rects]

    def process(self, frame: np.ndarray) -> FrameResult:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        if self._frame_index % self.backend.detect_every == 0 or self._box is None:
            boxes = self._detect(gray)
            self._n_faces = len(boxes)
            chosen = choose_face(boxes, self._box)
            self._box = boxes[chosen] if chosen is not None else None
        self._frame_index += 1
        if self._box is None:
            self._prev = self._prev_geo = None
            return FrameResult(None, n_faces=0)
        x0, y0, x1, y1 = self._box
        shape = self.predictor(gray, self.backend._dlib.rectangle(int(x0), int(y0), int(x1),
                                                                  int(y1)))
        pts = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        box = _landmark_box(pts)
        self._box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]),
                     min(float(h), box[3]))
        return FrameResult(self._features(pts, box, w, h), face_box=box,
                           mouth_box=_mouth_box(pts), n_faces=max(self._n_faces, 1))

    def _features(self, pts: np.ndarray, box: Box, w: int, h: int) -> np.ndarray:
        bw, bh = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
        norm = (pts - np.array([box[0], box[1]], np.float32)) / np.array([bw, bh], np.float32)
        geo = geometry(pts, box, w, h)
        if self._prev is None:
            motion = np.zeros(len(MOTION), np.float32)
        else:
            motion = np.array([np.linalg.norm(norm - self._prev, axis=1).mean(),
                               geo[0] - self._prev_geo[0],
                               np.linalg.norm(geo[6:9] - self._prev_geo[6:9])], np.float32)
        self._prev, self._prev_geo = norm, geo
        return np.concatenate([norm[:, 0], norm[:, 1], geo, motion]).astype(np.float32)
