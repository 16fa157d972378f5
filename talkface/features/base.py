"""The visual backend interface and its registry.

A backend holds the models (detectors, landmark fitters) and nothing about any one clip: each
clip gets its own `ClipSession` from `backend.start()`, which sees the frames in order and, at the
end, returns the clip's visual features for the face it chose (`VisualResult`). Because all
per-clip state lives in the session, one backend (and one Scorer) can serve several clips and
threads at once.

Backends that analyse frame by frame (dlib landmarks, py-feat) implement `FrameSession.process`;
the face-crop statistics and the choice of face are shared code, so every backend gets the same
sharpness, noise and blockiness columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..faces.detect import box_iou
from ..registry import Registry
from .image_stats import Box, CropStats


@dataclass
class FrameResult:
    """What a per-frame backend saw in one frame: `values` (the backend's own columns, without the
    crop statistics) or None when no face was found, the scored face's box and its mouth's box
    in frame pixels (the crop statistics are cut from these), and how many faces the frame
    held."""

    values: Optional[np.ndarray]
    face_box: Optional[Box] = None
    mouth_box: Optional[Box] = None
    n_faces: int = 0


@dataclass
class VisualResult:
    """One clip's visual features for the scored face.

    values (T, Dv) float32 (zero where no face), valid (T,) bool, boxes (T, 4) float32 of the
    scored face in source pixels (NaN where absent), n_faces (T,) faces seen per frame. `lips`
    (T, P, 2) are pose-free lip points for the sync model (None where the backend has none),
    `mouths` (T, h, w) uint8 canonical grey mouth crops (None likewise). `info` is JSON-able:
    face tracks, which one was scored and why, pose summaries.
    """

    values: np.ndarray
    valid: np.ndarray
    boxes: np.ndarray
    n_faces: np.ndarray
    lips: Optional[np.ndarray] = None
    mouths: Optional[np.ndarray] = None
    info: dict = field(default_factory=dict)


class ClipSession:
    """Per-clip state: `update(frame, index)` for each frame in order, then `finish(...)`."""

    def update(self, frame, index: int) -> None:
        raise NotImplementedError

    def finish(self, audio: Optional[np.ndarray], choose: Optional[Callable] = None,
               face: Optional[int] = None) -> VisualResult:
        """Features of the scored face. `choose(tracks, audio)` picks the speaking face where a
        backend follows several; `face` forces a track number."""
        raise NotImplementedError


class VisualBackend:
    """Subclasses set `name`, `version` and `frame_kind` ("rgb": frames downscaled to the
    extractor's max_side, as (H, W, 3) uint8; "native": `talkface.media.NativeFrame`s at the
    source resolution) and implement `options`, `columns` and `start`.

    `version` changes when a column's meaning does (it is part of the FeatureSpec, so checkpoints
    made before are refused); `revision` when only which frames get a face does (a face found
    where none was): it keys the feature cache, so cached bundles are made again, and leaves
    checkpoints alone."""

    name: str = ""
    version: str = "0"
    revision: str = "0"
    frame_kind: str = "rgb"

    def options(self) -> dict:
        """Settings that change the numbers, defaults included (recorded in the FeatureSpec)."""
        return {}

    def columns(self) -> list[tuple[str, list[str]]]:
        """Ordered (group, column names) pairs of every visual column the backend produces."""
        raise NotImplementedError

    def start(self) -> ClipSession:
        raise NotImplementedError

    def library_versions(self) -> dict[str, str]:
        return {}


BACKENDS = Registry("visual backend")


def register_backend(name: str):
    return BACKENDS.register(name)


def list_backends() -> list[str]:
    return BACKENDS.names()


def create_backend(name: str, **options) -> VisualBackend:
    factory = BACKENDS.get(name)
    if factory is None:
        from ..errors import BackendUnavailable
        raise BackendUnavailable(f"unknown visual backend {name!r}; choose one of "
                                 f"{', '.join(BACKENDS.names())}")
    try:
        return factory(**options)
    except TypeError as err:
        from ..errors import ConfigError
        raise ConfigError(f"visual backend {name!r}: {err}") from None




def choose_face(boxes: list[Box], tracked: Optional[Box], min_iou: float = 0.3) -> Optional[int]:
    """Index of the face to follow: the one overlapping the tracked face, else the largest."""
    if not boxes:
        return None
    if tracked is not None:
        overlaps = [box_iou(b, tracked) for b in boxes]
        if max(overlaps) > min_iou:
            return int(np.argmax(overlaps))
    return int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))


class FrameSession(ClipSession):
    """A session for per-frame backends: `process(frame)` -> FrameResult (tracking state kept on
    the session); crop statistics from the reported boxes; the largest (then tracked) face."""

    def __init__(self, backend: VisualBackend) -> None:
        self.backend, self.stats = backend, CropStats()
        self.rows, self.valid, self.faces, self.boxes = [], [], [], []
        self.dim = sum(len(c) for _, c in backend.columns())

    def process(self, frame: np.ndarray) -> FrameResult:
        raise NotImplementedError

    def update(self, frame: np.ndarray, index: int) -> None:
        result = self.process(frame)
        if result.values is None:
            self.rows.append(np.zeros(self.dim, np.float32))
            self.boxes.append((np.nan,) * 4)
            self.stats.reset()
        else:
            self.rows.append(np.concatenate(
                [result.values, self.stats(frame, result.face_box, result.mouth_box)]))
            self.boxes.append(result.face_box)
        self.valid.append(result.values is not None)
        self.faces.append(result.n_faces)

    def finish(self, audio=None, choose=None, face=None) -> VisualResult:
        n = len(self.rows)
        values = np.stack(self.rows).astype(np.float32) if n else np.zeros((0, self.dim),
                                                                             np.float32)
        faces = np.array(self.faces, int)
        info = {"tracks": [], "scored_track": None,
                "face_choice": "the largest face, then the one overlapping it"}
        if face not in (None, 0):
            from ..errors import ConfigError
            raise ConfigError(f"the {self.backend.name!r} backend follows one face only; "
                              f"face={face} needs the 'mesh' backend")
        return VisualResult(values, np.array(self.valid, bool),
                            np.array(self.boxes, np.float32).reshape(n, 4), faces, info=info)
