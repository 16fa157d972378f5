"""The default visual backend for real footage: every face tracked at the source's resolution,
the speaking one scored, features on canonical crops and pose-free landmarks.

Per frame (`talkface.faces`): BlazeFace finds faces on a schedule (whole frame, then tiles for
small faces), FaceMesh fits 468 points and tracks each face between detections, shot cuts restart
tracking. For every tracked face the session cuts a canonical face crop and mouth crop from the
native frame and computes the face/mouth statistics on them (blockiness on the source's own
pixels, where the coding grid is), so the columns do not depend on the video's resolution or on
how large the face is in the frame.

At the end of the clip one track is scored: the one asked for (`face=N`), else the one whose lips
move with the speech (a `choose` callback from the extractor, which owns the audio and the sync
model), else the largest. Its landmarks are frontalised (`talkface.faces.pose`): pose and size are
removed, so a mouth shape means the same at any head angle; yaw, pitch and roll are columns.

Faces turned beyond the mesh's range (profile, strong tilt) are followed by the detectors
(`FaceTracker`'s held frames, found by dlib's profile-capable detector where BlazeFace gives up).
Their landmarks are not trusted, so they are scored only where a clip has nothing else: a clip
with mesh-fitted frames is scored on those (the held ones are missing frames, as before, with a
warning), a clip turned away throughout is scored on the held frames, with a warning, instead of
being refused. Frames scored before this keep their features; the profile detector runs only
where BlazeFace found no usable face, so it is always on and not an option (an option would be a
setting of the spec and change every checkpoint's fingerprint). Why frames have no face (nothing
seen, too small, turned away, too dark) is counted in `info["no_face"]` for the user's message.

Columns: `landmarks` (48 points of the iBUG 68 layout outside the mouth, pose-free x and y in
inter-ocular distances), `lips` (FaceMesh's 40 lip points, same units), `geometry`, `motion`,
`face_stats`, `mouth_stats`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import cv2
import numpy as np

from ..faces import crops
from ..faces.detect import FaceDetector
from ..faces.mesh import (CHIN, LIPS, LOWER_LIP_INNER, MESH_TO_68, NOSE_TIP, UPPER_LIP_INNER,
                          FaceMesh)
from ..faces.pose import eye_aspect_ratio, eye_centres, frontalise
from ..faces.profile import ProfileDetector
from ..faces.track import DARK_LUMA, FaceTracker, Track
from ..media import NativeFrame
from .base import ClipSession, VisualBackend, VisualResult, register_backend
from ..measures import sharpness
from .image_stats import grid_crop, stat_columns, stats_row

FACE_POINTS = [i for k, i in enumerate(MESH_TO_68) if k < 48]  # jaw, brows, nose, eyes
RIGHT_EYE_6 = [33, 160, 158, 133, 153, 144]
LEFT_EYE_6 = [362, 385, 387, 263, 373, 380]
MOUTH_CORNERS = (61, 291)
GEOMETRY = ["mouth_open", "mouth_width", "mouth_aspect", "jaw_drop", "ear_right", "ear_left",
            "yaw", "pitch", "roll", "presence"]
MOTION = ["landmark_velocity", "mouth_velocity", "head_velocity", "face_shift", "scale_change"]


@dataclass
class Previous:
    """The previous frame's crops of one face, for frame differences."""

    face: Optional[np.ndarray] = None
    mouth: Optional[np.ndarray] = None
    index: int = -2
    matrix: Optional[np.ndarray] = None
    luma: Optional[np.ndarray] = None


@dataclass
class TrackData:
    """What a session keeps per face track while the clip plays (frames are not kept)."""

    stats: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (16,) face+mouth
    mouths: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (48, 96) uint8
    chips: dict[int, tuple] = field(default_factory=dict)  # frame -> (frame, eyes, iod) samples
    sampled: set = field(default_factory=set)  # sample points already served
    # frame -> how much the face region changed since the previous frame, both cut with the
    # previous frame's crop (tracking jitter cannot make a repeated frame differ): the 99.5th
    # percentile of |luma difference| (a moving mouth alone counts as movement) over that of the
    # previous crop's gradient (so a soft face, whose every difference is small, reads the same)
    repeat: dict[int, float] = field(default_factory=dict)
    # frame -> sharpness of the face crop's upper half (eyes, brows): the mouth's reference
    upper: dict[int, float] = field(default_factory=dict)
    # fitted and held frames are differenced within their own kind, so a held frame between two
    # fitted ones leaves the fitted frames' columns as they were without it
    fitted: Previous = field(default_factory=Previous)
    held: Previous = field(default_factory=Previous)

    def keep_only(self, frames: set) -> None:
        """Forget frames the tracker took back (carried past a face's last detection)."""
        for table in (self.stats, self.mouths, self.chips, self.repeat, self.upper):
            for i in [i for i in table if i not in frames]:
                del table[i]


@register_backend("mesh")
class MeshBackend(VisualBackend):
    name = "mesh"
    version = "1"  # bump when a column's meaning changes (crop geometry, template, formulas)
    revision = "2"  # 2: faces up to profile (held frames, the profile detector, wider regions)
    frame_kind = "native"

    def __init__(self, detect_every: int = 10, max_faces: int = 4, min_detection: float = 0.3,
                 start_presence: float = 0.5, keep_presence: float = 0.2,
                 profile_yaw: float = 45.0) -> None:
        # the detector may be permissive: a track starts only where the mesh confirms a face
        self.detector = FaceDetector(min_score=min_detection)
        self.mesh = FaceMesh()
        self.profile_detector = ProfileDetector()  # loads its network on first use
        self.detect_every, self.max_faces = int(detect_every), int(max_faces)
        self.min_detection = float(min_detection)
        self.start_presence, self.keep_presence = float(start_presence), float(keep_presence)
        self.profile_yaw = float(profile_yaw)

    def options(self) -> dict:
        return {"detect_every": self.detect_every, "max_faces": self.max_faces,
                "min_detection": self.min_detection, "start_presence": self.start_presence,
                "keep_presence": self.keep_presence, "profile_yaw": self.profile_yaw}

    def library_versions(self) -> dict[str, str]:
        import ai_edge_litert
        return {"ai-edge-litert": getattr(ai_edge_litert, "__version__", "?"),
                "opencv": cv2.__version__, "dlib": _dist_version("dlib-bin", "dlib")}

    def columns(self) -> list[tuple[str, list[str]]]:
        face = [f"{a}_{i:02d}" for a in ("face_x", "face_y") for i in range(len(FACE_POINTS))]
        lips = [f"{a}_{i:02d}" for a in ("lip_x", "lip_y") for i in range(len(LIPS))]
        return [("landmarks", face), ("lips", lips), ("geometry", list(GEOMETRY)),
                ("motion", list(MOTION)), ("face_stats", stat_columns("face")),
                ("mouth_stats", stat_columns("mouth"))]

    def start(self, identity_frames: int = 0, n_frames: Optional[int] = None) -> "MeshSession":
        return MeshSession(self, identity_frames, n_frames)


class MeshSession(ClipSession):
    """One clip: the face tracker plus, per track, crop statistics and mouth crops."""

    def __init__(self, backend: MeshBackend, identity_frames: int = 0,
                 n_frames: Optional[int] = None) -> None:
        self.backend = backend
        self.tracker = FaceTracker(backend.detector, backend.mesh, backend.detect_every,
                                   backend.max_faces, backend.start_presence,
                                   backend.keep_presence, fallback=backend.profile_detector)
        self.data: dict[int, TrackData] = {}
        self.n = 0
        self.held: list[int] = []  # frames that show the previous source frame again (resampling)
        self._last_frame = None
        self.size: Optional[tuple[int, int]] = None
        # frames at which to keep a face chip for the identity embedding
        self.samples = _sample_points(identity_frames, n_frames)

    def update(self, frame: NativeFrame, index: int) -> None:
        self.n, self.size = index + 1, (frame.width, frame.height)
        if frame is self._last_frame:  # `media` hands a held source frame over again, as is
            self.held.append(index)
        self._last_frame = frame
        for track in self.tracker.update(frame, index):
            data = self.data.setdefault(track.id, TrackData())
            self._crops(frame, index, track.points[index], data, index in track.held)

    def _crops(self, frame: NativeFrame, index: int, points: np.ndarray, d: TrackData,
               held: bool = False) -> None:
        right, left = eye_centres(points)
        iod = float(np.linalg.norm(left - right))  # 3D: does not shrink when the head turns
        fm = crops.face_matrix(right[:2], left[:2], iod)
        mm = crops.mouth_matrix(points, right[:2], left[:2], iod)
        face_rgb = frame.warp(fm, (crops.FACE_SIZE, crops.FACE_SIZE))
        mouth_rgb = frame.warp(mm, crops.MOUTH_SIZE)
        face_gray = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        mouth_gray = cv2.cvtColor(mouth_rgb, cv2.COLOR_RGB2GRAY)
        prev = d.held if held else d.fitted
        if prev.index != index - 1:
            prev.face = prev.mouth = None  # no frame difference across a gap
        face_row = stats_row(face_gray, face_rgb, _coded(frame, fm, (crops.FACE_SIZE,) * 2),
                             prev.face)
        mouth_f = mouth_gray.astype(np.float32)
        mouth_row = stats_row(mouth_f, mouth_rgb, _coded(frame, mm, crops.MOUTH_SIZE),
                              prev.mouth)
        d.stats[index] = np.concatenate([face_row, mouth_row])
        d.upper[index] = sharpness(face_gray[:crops.FACE_SIZE // 2])
        self._repeat(frame, index, fm, d, prev)
        d.mouths[index] = mouth_gray
        prev.face, prev.mouth, prev.index = face_gray, mouth_f, index
        due = {s for s in self.samples if s <= index} - d.sampled
        # the first frame of this face at or after a sample point (not a held face: its crop is
        # cut by unfitted landmarks)
        if due and not held:
            d.sampled |= due
            d.chips[index] = (frame, right[:2], left[:2], iod)

    @staticmethod
    def _repeat(frame: NativeFrame, index: int, fm: np.ndarray, d: TrackData,
                prev: Previous) -> None:
        size = (crops.FACE_SIZE, crops.FACE_SIZE)
        if prev.matrix is not None and prev.index == index - 1:
            still = frame.warp_gray(prev.matrix, size).astype(np.float32)
            d.repeat[index] = relative_change(prev.luma, still)
        prev.matrix = fm
        prev.luma = frame.warp_gray(fm, size).astype(np.float32)

    def finish(self, audio: Optional[np.ndarray] = None, choose: Optional[Callable] = None,
               face: Optional[int] = None) -> VisualResult:
        tracks = self.tracker.faces()
        for t in self.tracker.tracks:
            if t.id in self.data:
                self.data[t.id].keep_only(set(t.points))
        for t in tracks:  # pieces of one face split by a cut: one track, one set of crops
            for other in t.joined:
                mine, theirs = self.data[t.id], self.data.pop(other)
                mine.stats.update(theirs.stats)
                mine.repeat.update(theirs.repeat)
                mine.upper.update(theirs.upper)
                mine.mouths.update(theirs.mouths)
                for k, v in theirs.chips.items():
                    mine.chips.setdefault(k, v)
        n = self.n
        dim = sum(len(c) for _, c in self.backend.columns())
        counts = np.zeros(n, int)
        for t in tracks:
            counts[list(t.points)] += 1
        chosen, reason = self._choose(tracks, audio, choose, face)
        values = np.zeros((n, dim), np.float32)
        valid = np.zeros(n, bool)
        boxes = np.full((n, 4), np.nan, np.float32)
        lips = np.full((n, len(LIPS), 2), np.nan, np.float32)
        mouths = np.zeros((n, crops.MOUTH_SIZE[1], crops.MOUTH_SIZE[0]), np.uint8)
        poses = []
        if chosen is not None:
            data, prev = self.data[chosen.id], None
            for i in scored_frames(chosen):
                row, pose, front = self._row(chosen, i, data, prev if prev and prev[0] == i - 1
                                             else None)
                values[i], valid[i], boxes[i] = row, True, chosen.box(i)
                lips[i], mouths[i] = front[LIPS, :2], data.mouths[i]
                poses.append(pose)
                prev = (i, front, pose, row)
        info = self._info(tracks, chosen, reason, np.array(poses).reshape(-1, 3))
        info["no_face"] = self._absence(tracks, valid)
        return VisualResult(values, valid, boxes, counts, lips, mouths, info)

    def _absence(self, tracks: list[Track], valid: np.ndarray) -> dict:
        """Why the frames without a scored face have none: 'none' (nothing detected, or a
        face-like region seen too briefly to be a face), 'small', 'turned' (a face the mesh
        refused), 'dark', and 'unfitted' (followed, but the mesh could not fit it: not
        scored)."""
        followed = set().union(*(t.points for t in tracks)) if tracks else set()
        reasons = {"none": 0, "small": 0, "turned": 0, "dark": 0, "unfitted": 0}
        for i in np.flatnonzero(~valid):
            i = int(i)
            reason = "unfitted" if i in followed else self.tracker.absent.get(i, "none")
            reasons[reason] += 1
        return {"frames": int((~valid).sum()), "reasons": reasons,
                "small_face_px": round(self.tracker.small_face_px, 1),
                "dark_luma": DARK_LUMA}

    def _choose(self, tracks: list[Track], audio, choose, face) -> tuple[Optional[Track], str]:
        if not tracks:
            return None, "no face found"
        if face is not None:
            match = [t for t in tracks if t.id == face]
            if not match:
                from ..errors import ConfigError
                raise ConfigError(f"face {face} was not found; faces in this clip: "
                                  f"{', '.join(str(t.id) for t in tracks)}")
            return match[0], f"face {face}, as asked"
        if len(tracks) > 1 and choose is not None and audio is not None:
            picked = choose([(t.id, self._lip_curve(t)) for t in tracks], audio)
            if picked is not None:
                return next(t for t in tracks if t.id == picked), \
                    "the face whose lips move with the speech"
        largest = max(tracks, key=lambda t: t.n_frames * t.mean_height())
        return largest, "the only face" if len(tracks) == 1 else \
            "the largest face (no speech to tell the speaker by)"

    def _lip_curve(self, track: Track) -> tuple[np.ndarray, np.ndarray]:
        """(lips (T, 40, 2) pose-free, NaN where absent; mouth crops (T, 48, 96)) of a track,
        for the speaking-face choice."""
        lips = np.full((self.n, len(LIPS), 2), np.nan, np.float32)
        mouths = np.zeros((self.n, crops.MOUTH_SIZE[1], crops.MOUTH_SIZE[0]), np.uint8)
        data = self.data[track.id]
        for i in scored_frames(track):
            lips[i] = frontalise(track.points[i])[0][LIPS, :2]
            mouths[i] = data.mouths[i]
        return lips, mouths

    def _row(self, track: Track, i: int, data: TrackData, prev) -> tuple:
        points = track.points[i]
        front, (yaw, pitch, roll), iod = frontalise(points)
        xy = front[:, :2]
        gap = float(np.linalg.norm(xy[UPPER_LIP_INNER] - xy[LOWER_LIP_INNER]))
        width = float(np.linalg.norm(xy[MOUTH_CORNERS[0]] - xy[MOUTH_CORNERS[1]]))
        geo = np.array([gap, width, gap / (width + 1e-6), xy[CHIN, 1] - xy[NOSE_TIP, 1],
                        eye_aspect_ratio(xy[RIGHT_EYE_6]), eye_aspect_ratio(xy[LEFT_EYE_6]),
                        yaw / 90, pitch / 90, roll / 90, track.presence[i]], np.float32)
        centre = (points[33, :2] + points[263, :2]) / 2
        if prev is None:
            motion = np.zeros(len(MOTION), np.float32)
        else:
            _, pfront, ppose, prow = prev
            pcentre, piod = prev_centre_iod(track, i - 1)
            motion = np.array([np.linalg.norm(xy - pfront[:, :2], axis=1).mean(),
                               gap - prow[len(FACE_POINTS) * 2 + len(LIPS) * 2],
                               np.linalg.norm(np.subtract((yaw, pitch, roll), ppose)) / 90,
                               np.linalg.norm(centre - pcentre) / max(iod, 1e-6),
                               abs(np.log(max(iod, 1e-6) / max(piod, 1e-6)))], np.float32)
        row = np.concatenate([xy[FACE_POINTS].T.ravel(), xy[LIPS].T.ravel(), geo, motion,
                              data.stats[i]])
        return row, (yaw, pitch, roll), front

    def _info(self, tracks: list[Track], chosen: Optional[Track], reason: str,
              poses: np.ndarray) -> dict:
        info = {"tracks": [{"id": t.id, "first": min(t.points), "last": max(t.points),
                            "frames": t.n_frames, "unfitted": len(t.held),
                            "height_px": round(t.mean_height(), 1), **_portrait(t)}
                           for t in tracks],
                "scored_track": None if chosen is None else chosen.id, "face_choice": reason,
                "cuts": list(self.tracker.cuts), "frame_size": list(self.size or (0, 0))}
        if chosen is not None and chosen.held:
            # followed where the mesh could not fit it: scored only where nothing else is
            info["unfitted"] = {"frames": len(chosen.held), "fraction": len(chosen.held) / self.n,
                            "dark": len(chosen.held & self.tracker.dark_held),
                            "scored": not chosen.trusted()}
        if len(poses):
            profile = np.abs(poses[:, 0]) > self.backend.profile_yaw
            info["pose"] = {"yaw_median": float(np.median(poses[:, 0])),
                            "pitch_median": float(np.median(poses[:, 1])),
                            "roll_median": float(np.median(poses[:, 2])),
                            "yaw_max_abs": float(np.abs(poses[:, 0]).max()),
                            "profile_fraction": float(profile.mean()),
                            "profile_yaw": self.backend.profile_yaw}
        info["held_frames"] = list(self.held)
        if chosen is not None:
            repeat = self.data[chosen.id].repeat
            info["repeat_diff"] = [round(repeat[i], 6) if i in repeat else None
                                   for i in range(self.n)]
            upper = self.data[chosen.id].upper
            info["upper_sharpness"] = [round(upper[i], 5) if i in upper else None
                                       for i in range(self.n)]
            info["identity_samples"] = self.data[chosen.id].chips  # replaced by the extractor
        return info


def _dist_version(*names: str) -> str:
    """An installed distribution's version, without importing it (dlib is imported only when
    the profile detector is first needed)."""
    from importlib.metadata import PackageNotFoundError, version
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "?"


def scored_frames(track: Track) -> list[int]:
    """The frames of a track that are scored: those the mesh fitted, or, where it fitted none
    (a face turned away throughout), the held ones."""
    return sorted(track.trusted() or track.points)


def _portrait(track: Track) -> dict:
    """Where to see this face: a middle scored frame and its box (source pixels), for a face
    picker's crop."""
    frames = scored_frames(track)
    if not frames:
        return {}
    mid = frames[len(frames) // 2]
    return {"frame": int(mid), "box": [round(v, 1) for v in track.box(mid)]}


def relative_change(before: np.ndarray, after: np.ndarray) -> float:
    """99.5th percentile of |after - before| over the 99.5th percentile of before's gradient
    magnitude (Sobel / 8, so a step edge of height h reads h), floored at one grey level."""
    gx = cv2.Sobel(before, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(before, cv2.CV_32F, 0, 1)
    edge = float(np.percentile(cv2.magnitude(gx, gy), 99.5)) / 8.0
    return float(np.percentile(np.abs(after - before), 99.5)) / max(edge, 1.0)


def prev_centre_iod(track: Track, i: int) -> tuple[np.ndarray, float]:
    pts = track.points[i]
    right, left = eye_centres(pts)
    return (pts[33, :2] + pts[263, :2]) / 2, float(np.linalg.norm(left - right))


def _coded(frame: NativeFrame, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The source's own luma pixels under a crop, from its coding grid (for blockiness): a
    uint8 view of the frame, not a copy."""
    box = crops.source_box(matrix, size)
    region = grid_crop(frame.y, box)
    if region is None:
        return np.zeros((16, 16), np.uint8)
    return region


def _sample_points(k: int, n_frames: Optional[int]) -> list[int]:
    """k frame indices spread over a clip of n_frames (start, middle, end for k = 3)."""
    if k <= 0:
        return []
    n = max(int(n_frames or 1), 1)
    return sorted({int(round(x)) for x in np.linspace(0, max(n - 1, 0), k)})
