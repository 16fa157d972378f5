"""Identity embeddings with dlib's ResNet face descriptor (128-D, unit length).

Reference: dlib's `face_recognition_model_v1` (a ResNet-29 trained on about 3 million faces;
99.38% on LFW), shipped in `face-recognition-models` with the 5-point shape predictor it aligns
faces with. dlib's rule is "the same person when the Euclidean distance is below 0.6", which on
these (unit-length) vectors is a cosine similarity above 0.82. Measured here: one face across the
frames of a clip 0.95-0.99; different people 0.82-0.89 on the bundled photos (old, grey, similar
poses). So the scale is compressed: read similarities against those anchors, not against 0.

A face is cut from the native frame, eyes level, at 200 px, so the descriptor sees the same input
whatever the video's resolution. About 0.12 s per face on one core here, so a clip's identity
consistency is measured on a few frames, not all of them.
"""
from __future__ import annotations

import threading
import numpy as np

from ..media import NativeFrame
from .crops import similarity
from .model_files import dlib_model

CHIP = 200
CHIP_IOD = 0.32  # inter-ocular distance as a fraction of the chip width


class IdentityEncoder:
    """`encoder.from_face(frame, right_eye, left_eye, iod)` -> (128,) unit vector."""

    def __init__(self) -> None:
        import dlib
        self._dlib = dlib
        self._paths = (str(dlib_model("shape_predictor_5_face_landmarks.dat")),
                       str(dlib_model("dlib_face_recognition_resnet_model_v1.dat")))
        self._local = threading.local()  # dlib models are not documented as thread-safe

    def _models(self):
        if not hasattr(self._local, "models"):
            self._local.models = (self._dlib.shape_predictor(self._paths[0]),
                                  self._dlib.face_recognition_model_v1(self._paths[1]))
        return self._local.models

    def _describe(self, image: np.ndarray, rect) -> np.ndarray:
        predictor, resnet = self._models()
        shape = predictor(image, rect)
        vector = np.asarray(resnet.compute_face_descriptor(image, shape), np.float32)
        return vector / (np.linalg.norm(vector) + 1e-9)

    def from_face(self, frame: NativeFrame, right_eye: np.ndarray, left_eye: np.ndarray,
                  iod: float) -> np.ndarray:
        """Descriptor of the face whose eye centres and 3D eye distance (pixels) are given."""
        angle = float(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
        m = similarity((right_eye + left_eye) / 2, angle, CHIP_IOD * CHIP / max(iod, 1e-6),
                       (CHIP / 2, 0.42 * CHIP))
        chip = frame.warp(m, (CHIP, CHIP))
        side = CHIP_IOD * CHIP * 2.3  # a dlib-style face box around eyes, nose and mouth
        x0, y0 = CHIP / 2 - side / 2, 0.42 * CHIP - 0.35 * side
        rect = self._dlib.rectangle(int(x0), int(y0), int(x0 + side), int(y0 + side))
        return self._describe(chip, rect)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def consistency(vectors: list[np.ndarray]) -> float | None:
    """The lowest cosine similarity between any two of a face's embeddings across a clip
    (1 = the same face throughout; generators that drift go lower). None with fewer than two."""
    if len(vectors) < 2:
        return None
    return min(cosine(a, b) for i, a in enumerate(vectors) for b in vectors[i + 1:])
