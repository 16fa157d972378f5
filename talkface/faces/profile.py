"""A second face detector for the faces BlazeFace gives up on: turned toward profile, tilted
far up or down.

dlib's CNN face detector (the max-margin object detector, "MMOD": D. King, "Max-Margin Object
Detection", arXiv:1502.00046, 2015; `mmod_human_face_detector.dat` from face-recognition-models)
was trained on faces at every yaw up to profile, and on the turned faces talkface meets it finds
what BlazeFace's full-range model misses (a three-quarter view tilted down, a face at 80-90
degrees of yaw). OpenCV's Haar profile cascade was measured too and found too few of them.

It is slow on a CPU (a few hundred milliseconds on a 240x427 image, against 2 ms for BlazeFace),
so `FaceTracker` runs it only on its detection schedule and only where BlazeFace found no usable
face, and here on a downscaled frame (never enlarged): its 80-pixel window then finds faces of a
third of the frame's short side and larger, the large turned faces it is needed for (small faces
are BlazeFace's, on tiles). dlib networks are not thread-safe, so there is one per calling thread,
loaded on first use (a clip BlazeFace handles never loads it).
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import BackendUnavailable
from ..media import NativeFrame
from .detect import Detection
from .model_files import dlib_model

WORK_SIDE = 240  # the frame's short side is brought to this many pixels
MAX_LONG_SIDE = 480  # ... and its long side to at most this many (a panorama)
MIN_CONFIDENCE = 0.5  # dlib's detection score: its own threshold is 0, clear faces score about 1


class ProfileDetector:
    """`detect(frame)` -> faces found by dlib's CNN detector, largest first (boxes in source
    pixels, no key points, `score` dlib's confidence)."""

    def __init__(self, min_confidence: float = MIN_CONFIDENCE) -> None:
        self.min_confidence = float(min_confidence)
        self.path = str(dlib_model("mmod_human_face_detector.dat"))
        self._local = threading.local()

    def _net(self):
        net = getattr(self._local, "net", None)
        if net is None:
            try:
                import dlib
            except ImportError:
                raise BackendUnavailable("the profile face detector needs dlib "
                                         "(pip install dlib-bin)") from None
            net = self._local.net = dlib.cnn_face_detection_model_v1(self.path)
        return net

    @staticmethod
    def work_size(width: int, height: int) -> tuple[int, int]:
        """The (even) size a frame is resized to before detection."""
        scale = min(1.0, WORK_SIDE / min(width, height), MAX_LONG_SIDE / max(width, height))
        return (max(2, int(round(width * scale / 2)) * 2),
                max(2, int(round(height * scale / 2)) * 2))

    def detect(self, frame: NativeFrame) -> list[Detection]:
        w, h = self.work_size(frame.width, frame.height)
        image = np.ascontiguousarray(frame.region((0, 0, frame.width, frame.height), (w, h)))
        sx, sy = frame.width / w, frame.height / h
        found = []
        for d in self._net()(image, 0):
            if d.confidence < self.min_confidence:
                continue
            r = d.rect
            box = (r.left() * sx, r.top() * sy, (r.right() + 1) * sx, (r.bottom() + 1) * sy)
            found.append(Detection(tuple(float(v) for v in box), None, float(d.confidence),
                                   detector="dlib-mmod"))
        return sorted(found, key=lambda d: -d.height)
