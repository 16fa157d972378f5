"""The visual backend interface and its registry.

A backend turns one RGB frame into one feature vector for the chosen face, frame by frame, so the
extractor can stream a clip without holding it. Every backend also reports the face box and mouth
box it used; the extractor computes the face-crop image statistics from those, so all backends get
the same sharpness/noise/blockiness columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels


@dataclass
class FrameResult:
    """What a backend saw in one frame. `values` is None when no face was found."""

    values: Optional[np.ndarray]
    face_box: Optional[Box] = None
    mouth_box: Optional[Box] = None
    n_faces: int = 0


class VisualBackend:
    """Subclasses set `name` and `version` and implement `columns`, `reset` and `process`."""

    name: str = ""
    version: str = "0"

    def config(self) -> dict:
        """Settings that change the numbers (recorded in the FeatureSpec)."""
        return {}

    def columns(self) -> list[tuple[str, list[str]]]:
        """Ordered (group, column names) pairs of this backend's own columns."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget tracking state before a new clip."""

    def process(self, frame: np.ndarray) -> FrameResult:
        """(H, W, 3) uint8 RGB -> FrameResult for the tracked face."""
        raise NotImplementedError

    def library_versions(self) -> dict[str, str]:
        return {}


_BACKENDS: dict[str, Callable[..., VisualBackend]] = {}


def register_backend(name: str):
    def wrap(factory):
        _BACKENDS[name] = factory
        return factory
    return wrap


def list_backends() -> list[str]:
    _import_builtin()
    return sorted(_BACKENDS)


def create_backend(name: str, **options) -> VisualBackend:
    _import_builtin()
    if name not in _BACKENDS:
        from ..errors import BackendUnavailable
        raise BackendUnavailable(f"unknown visual backend {name!r}; choose one of "
                                 f"{', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[name](**options)


def _import_builtin() -> None:
    from . import landmarks, pyfeat_backend  # noqa: F401  (registration side effect)


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_face(boxes: list[Box], tracked: Optional[Box], min_iou: float = 0.3) -> Optional[int]:
    """Index of the face to follow: the one overlapping the tracked face, else the largest."""
    if not boxes:
        return None
    if tracked is not None:
        overlaps = [box_iou(b, tracked) for b in boxes]
        if max(overlaps) > min_iou:
            return int(np.argmax(overlaps))
    return int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
