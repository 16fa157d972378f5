"""The identity embedding of a reference portrait (the photo a generator was driven from), for the
similarity between a clip's face and its source: the CSIM talking-face papers report."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..errors import MediaError
from ..media import NativeFrame


def read_image(source) -> np.ndarray:
    """An RGB uint8 array from a path (any image OpenCV reads) or an array."""
    if isinstance(source, np.ndarray):
        return np.ascontiguousarray(source[..., :3], np.uint8)
    import cv2
    path = os.fspath(source)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"{os.path.basename(path)}: not an image file OpenCV can read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def portrait_descriptor(source, extractor=None) -> Optional[np.ndarray]:
    """128-D identity embedding of the largest face in a portrait, or None without a face.
    Reuses the extractor's face models when it has them."""
    from .detect import FaceDetector
    from .identity import IdentityEncoder
    from .mesh import FaceMesh, Roi
    from .pose import eye_centres
    backend = getattr(extractor, "backend", None)
    detector = getattr(backend, "detector", None) or FaceDetector(min_score=0.3)
    mesh = getattr(backend, "mesh", None) or FaceMesh()
    frame = NativeFrame.from_rgb(read_image(source))
    found = detector.detect(frame, tiled=None)
    if not found:
        return None
    points, presence = mesh(frame, Roi.from_detection(found[0]))
    points, presence = mesh(frame, Roi.from_points(points))  # refit on the mesh's own region
    if presence < 0.5:
        return None
    right, left = eye_centres(points)
    encoder = getattr(extractor, "_identity", None) or IdentityEncoder()
    return encoder.from_face(frame, right[:2], left[:2], float(np.linalg.norm(left - right)))
