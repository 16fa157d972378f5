"""Following every face through a clip: detect on a schedule, track with the mesh in between.

Per frame, each active track's region comes from its previous frame's landmarks and FaceMesh
refits it (MediaPipe's own tracking loop). The detector runs on frame 0, every `detect_every`
frames (to pick up faces that enter), whenever a track is lost, on every frame while no face is
tracked, and at shot cuts. A cut (the frame differs from the previous one as a whole, on a 16x16
grey thumbnail) ends every track: after a cut the same place in the frame may hold another person.
A detection near where a track was lost within `revive_frames` continues that track, so a face
turning away for a moment stays one track.

A track starts where a detection is confirmed by two mesh fits (on the detection's region, then
on the mesh's own) and keeps going on lower mesh confidence than is needed to start one
(`keep_presence` vs `start_presence`): a face seen clearly once is followed through blocky,
blurred or turned frames. At the end, tracks seen in fewer than a few frames are not faces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from ..media import NativeFrame
from .detect import FaceDetector, box_iou
from .mesh import FaceMesh, Roi

CUT_THUMB = 16
CUT_DIFF = 40.0  # mean |grey difference| (0-255) on the thumbnail above which a frame is a cut


@dataclass
class Track:
    """One face over time: `points[t]` (468, 3) source pixels and `presence[t]` for each frame t
    it was seen in."""

    id: int
    points: dict[int, np.ndarray] = field(default_factory=dict)
    presence: dict[int, float] = field(default_factory=dict)
    roi: Optional[Roi] = None  # where to look in the next frame; None once lost
    last: int = -1
    joined: list[int] = field(default_factory=list)  # ids of later tracks joined to this one

    @property
    def active(self) -> bool:
        return self.roi is not None

    def box(self, index: Optional[int] = None) -> tuple[float, float, float, float]:
        pts = self.points[self.last if index is None else index]
        (x0, y0), (x1, y1) = pts[:, :2].min(0), pts[:, :2].max(0)
        return float(x0), float(y0), float(x1), float(y1)

    def add(self, index: int, points: np.ndarray, presence: float) -> None:
        self.points[index], self.presence[index] = points, presence
        self.last, self.roi = index, Roi.from_points(points)

    @property
    def n_frames(self) -> int:
        return len(self.points)

    def mean_presence(self) -> float:
        return float(np.mean(list(self.presence.values()))) if self.presence else 0.0

    def mean_height(self) -> float:
        heights = [p[:, 1].max() - p[:, 1].min() for p in self.points.values()]
        return float(np.mean(heights)) if heights else 0.0


class CutDetector:
    """Shot cuts from the mean grey-level change of a tiny thumbnail of the luma plane."""

    def __init__(self, threshold: float = CUT_DIFF) -> None:
        self.threshold, self.prev = threshold, None

    def __call__(self, frame: NativeFrame) -> bool:
        step = max(1, min(frame.width, frame.height) // (4 * CUT_THUMB))
        thumb = cv2.resize(frame.y[::step, ::step], (CUT_THUMB, CUT_THUMB),
                           interpolation=cv2.INTER_AREA).astype(np.float32)
        cut = self.prev is not None and float(np.abs(thumb - self.prev).mean()) > self.threshold
        self.prev = thumb
        return cut


class FaceTracker:
    """Feed frames in order with `update(frame, index)`; read `tracks` at the end.

    One tracker per clip (it holds the clip's state); the detector and mesh models are shared.
    """

    def __init__(self, detector: FaceDetector, mesh: FaceMesh, detect_every: int = 10,
                 max_faces: int = 4, start_presence: float = 0.5, keep_presence: float = 0.2,
                 revive_frames: int = 25) -> None:
        self.detector, self.mesh = detector, mesh
        self.detect_every, self.max_faces = int(detect_every), int(max_faces)
        self.start_presence, self.keep_presence = float(start_presence), float(keep_presence)
        self.revive_frames = int(revive_frames)
        self.tracks: list[Track] = []
        self.cuts: list[int] = []
        self._cut = CutDetector()
        self.detector_runs = 0

    def active(self) -> list[Track]:
        return [t for t in self.tracks if t.active]

    def faces(self, min_frames: int = 5, min_presence: float = 0.5) -> list[Track]:
        """The tracks that are faces: seen in at least `min_frames` frames with a mean presence
        of `min_presence` (a face-like texture fitted once or twice is not a face), with the
        pieces of one face split by shot cuts joined (`_join_across_cuts`)."""
        faces = [t for t in self.tracks if t.n_frames >= min_frames
                 and t.mean_presence() >= min_presence]
        return _join_across_cuts(faces)

    def update(self, frame: NativeFrame, index: int) -> list[Track]:
        """Process frame `index`; returns the tracks that have a face in it."""
        lost = False
        if self._cut(frame):
            self.cuts.append(index)
            for track in self.active():
                track.roi = None
        for track in self.active():
            points, presence = self.mesh(frame, track.roi)
            if presence >= self.keep_presence:
                track.add(index, points, presence)
            else:
                track.roi, lost = None, True
        self._drop_duplicates(index)
        active = self.active()
        if lost or not active or index % self.detect_every == 0 or \
                (self.cuts and self.cuts[-1] == index):
            self._detect(frame, index, active)
        return [t for t in self.tracks if t.last == index]

    def _detect(self, frame: NativeFrame, index: int, active: list[Track]) -> None:
        self.detector_runs += 1
        # tiles are slow: search them on the schedule, not on every face-less frame
        tiled = None if (not active and index % self.detect_every == 0) else False
        for det in self.detector.detect(frame, tiled=tiled):
            if len(self.active()) >= self.max_faces:
                break
            if any(box_iou(det.box, t.box()) > 0.3 for t in self.active()):
                continue  # already followed
            points, presence = self.mesh(frame, Roi.from_detection(det))
            if presence < self.start_presence:
                continue
            # confirm on the mesh's own region: a face fits again, a face-like texture rarely
            points, presence = self.mesh(frame, Roi.from_points(points))
            if presence < self.start_presence:
                continue
            track = self._revivable(det.box, index) or self._new_track()
            track.add(index, points, presence)

    def _revivable(self, box, index: int) -> Optional[Track]:
        cut = self.cuts[-1] if self.cuts else -1
        candidates = [t for t in self.tracks if not t.active and t.last > cut
                      and index - t.last <= self.revive_frames and box_iou(box, t.box()) > 0.2]
        return max(candidates, key=lambda t: t.last) if candidates else None

    def _new_track(self) -> Track:
        track = Track(len(self.tracks))
        self.tracks.append(track)
        return track

    def _drop_duplicates(self, index: int) -> None:
        """Two tracks that converged on one face: keep the older one."""
        current = [t for t in self.tracks if t.last == index]
        for a in current:
            for b in current:
                if a.id < b.id and b.active and a.active and box_iou(a.box(), b.box()) > 0.5:
                    b.roi = None
                    del b.points[index], b.presence[index]
                    b.last = max(b.points, default=-1)


MIN_CUTAWAY = 5  # frames without the face before a track may be joined to an earlier one


def _join_across_cuts(tracks: list[Track]) -> list[Track]:
    """A talking head cut to a cutaway and back comes back as a new track. Join a track to an
    earlier one that has ended before it starts when the face comes back in about the same place
    at about the same size (box IoU > 0.5) after a gap of more than `MIN_CUTAWAY` frames: the same
    shot framing, most likely the same person (identity consistency shows it where not). A direct
    cut from one face to another (no face-less gap) is two people, never joined; nor are tracks
    that overlap in time."""
    ordered = sorted(tracks, key=lambda t: min(t.points))
    joined: list[Track] = []
    for track in ordered:
        start = min(track.points)
        host = next((j for j in joined if j.last < start - MIN_CUTAWAY
                     and box_iou(j.box(j.last), track.box(start)) > 0.5), None)
        if host is None:
            joined.append(track)
            continue
        host.points.update(track.points)
        host.presence.update(track.presence)
        host.last = max(host.points)
        host.joined.append(track.id)
    return joined
