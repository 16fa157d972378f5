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

Turned faces. Where the mesh fails on its usual region, a face already followed is tried on wider
ones (`WIDER`). Beyond the mesh's range (profile, tilted far down) a face is *held*: a frame whose
detected face the mesh refuses still belongs to the track, marked held (`Track.held`, the mesh's
best fit on the detection's region), renewed by any detection over it and carried on the last
detected region for at most `detect_every` frames without one (frames carried past that are
taken back). Held landmarks are not trusted: `mesh_backend` scores them only where a clip has
nothing else. Where BlazeFace finds no usable face, on the schedule, a second detector
(`profile.ProfileDetector`, slow) looks for one; it alone may start a held track, a face once it
has seen it twice (`Track.is_face`; BlazeFace fires on face-like textures). It backs off (4, then
16 schedule steps) while it finds nothing and looks again at every cut, so a clip without a face
pays for it a few times, not every 10 frames.

Frames with no face keep why (`absent`): nothing detected, a face too small (refused, or found
only by a probe on fine tiles), one the mesh refused (turned away or unclear), or too dark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from ..media import NativeFrame
from .detect import Detection, FaceDetector, box_iou
from .mesh import FaceMesh, Roi

CUT_THUMB = 16
CUT_DIFF = 40.0  # mean |grey difference| (0-255) on the thumbnail above which a frame is a cut
MIN_FACE_PX = 32  # about the smallest face the mesh fits (and BlazeFace's tiles find)
DARK_LUMA = 40.0  # mean luma (video range 16-235) below which a frame or face is too dark
MAX_BACKOFF = 16  # the profile detector waits 1, 4, 16 schedule steps after misses
# faces too small for the detector are looked for, to say so, on fine tiles (BlazeFace then finds
# faces of about 12 px, which the mesh still fits) in the first few frames without a face
PROBE_TILE, PROBES = 240, 2
SURE_SCORE = 0.5  # BlazeFace's score (MediaPipe's own threshold) for a refused face to count as one
MIN_FRAMES, MIN_PRESENCE = 5, 0.5  # a face is fitted in this many frames, this confidently
# wider regions the mesh is tried on where the usual one (1.5x the face) fails on a face already
# followed: a face turned toward profile fills its detector's box and its own landmarks' extent
# unevenly, and the mesh fits it from a region a third or two thirds wider where the usual one
# gives nothing (on new detections they would let it fit face-like textures: measured)
WIDER = (4 / 3, 5 / 3)


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
    held: set[int] = field(default_factory=set)  # frames the mesh refused, kept by a detector
    witnesses: int = 0  # frames in which the profile detector saw this face
    hold_box: Optional[tuple] = None  # the last detection's box while held
    hold_roi: Optional[Roi] = None  # ... and its region, where carried frames are fitted
    hold_until: int = -1  # carried frames without a new detection are kept up to here
    carried: list[int] = field(default_factory=list)  # frames carried since the last detection

    @property
    def active(self) -> bool:
        return self.roi is not None

    @property
    def holding(self) -> bool:
        return self.hold_roi is not None

    def trusted(self) -> list[int]:
        """Frames whose landmarks the mesh fitted with confidence (not held)."""
        return [i for i in self.points if i not in self.held]

    def box(self, index: Optional[int] = None) -> tuple[float, float, float, float]:
        pts = self.points[self.last if index is None else index]
        (x0, y0), (x1, y1) = pts[:, :2].min(0), pts[:, :2].max(0)
        return float(x0), float(y0), float(x1), float(y1)

    def match_box(self) -> tuple[float, float, float, float]:
        """The box a new detection is compared with: the detector's own while held."""
        return self.hold_box if self.holding else self.box()

    def add(self, index: int, points: np.ndarray, presence: float) -> None:
        """A frame the mesh fitted: tracking goes on from its points."""
        self.points[index], self.presence[index] = points, presence
        self.held.discard(index)  # a face confirmed after another detection here was refused
        self.last, self.roi = index, Roi.from_points(points)
        self.hold_box = self.hold_roi = None
        self.carried = []  # the frames carried up to here are this face's

    def hold(self, index: int, points: np.ndarray, presence: float, det: Detection,
             until: int) -> None:
        """A frame whose face a detector saw and the mesh refused."""
        self.points[index], self.presence[index] = points, presence
        self.held.add(index)
        self.last, self.roi = index, None
        self.hold_box, self.hold_roi, self.hold_until = det.box, Roi.from_detection(det), until
        self.carried = []

    def carry(self, index: int, points: np.ndarray, presence: float) -> None:
        """A frame between detections of a held face, fitted on the last detected region."""
        self.points[index], self.presence[index] = points, presence
        self.held.add(index)
        self.last = index
        self.carried.append(index)

    def release(self) -> None:
        """Stop holding: frames carried since the last detection are taken back."""
        for i in self.carried:
            del self.points[i], self.presence[i]
            self.held.discard(i)
        self.carried, self.hold_box, self.hold_roi = [], None, None
        self.last = max(self.points, default=-1)

    @property
    def n_frames(self) -> int:
        return len(self.points)

    def mean_presence(self) -> float:
        """Mean mesh confidence over the trusted frames."""
        values = [self.presence[i] for i in self.trusted()]
        return float(np.mean(values)) if values else 0.0

    def is_face(self, min_frames: int = MIN_FRAMES, min_presence: float = MIN_PRESENCE) -> bool:
        """Fitted by the mesh in `min_frames` frames with a mean presence of `min_presence` (a
        face-like texture fitted once or twice is not a face), or followed in `min_frames`
        frames and seen by the profile detector in two (the mesh refuses a profile; BlazeFace's
        word alone is too weak, it fires on textures)."""
        if len(self.trusted()) >= min_frames and self.mean_presence() >= min_presence:
            return True
        return self.n_frames >= min_frames and self.witnesses >= 2

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
                 revive_frames: int = 25, fallback=None) -> None:
        self.detector, self.mesh, self.fallback = detector, mesh, fallback
        self.detect_every, self.max_faces = int(detect_every), int(max_faces)
        self.start_presence, self.keep_presence = float(start_presence), float(keep_presence)
        self.revive_frames = int(revive_frames)
        self.tracks: list[Track] = []
        self.cuts: list[int] = []
        self._cut = CutDetector()
        self.detector_runs = self.fallback_runs = 0
        self._fallback_next, self._fallback_wait = 0, 1  # wait in schedule steps
        self.absent: dict[int, str] = {}  # frame -> why no face: none, small, turned, dark
        self.small_face_px = 0.0  # height of the largest face seen but too small
        self._probes = 0
        self.dark_held: set[int] = set()  # held frames whose face was too dark for the mesh
        self._refused: list[Detection] = []

    def active(self) -> list[Track]:
        return [t for t in self.tracks if t.active]

    def faces(self, min_frames: int = MIN_FRAMES,
              min_presence: float = MIN_PRESENCE) -> list[Track]:
        """The tracks that are faces (`Track.is_face`), with the pieces of one face split by
        shot cuts joined (`_join_across_cuts`). Frames carried past a held face's last
        detection are taken back first."""
        for track in self.tracks:
            if track.holding:
                track.release()
        return _join_across_cuts([t for t in self.tracks if t.is_face(min_frames, min_presence)])

    def update(self, frame: NativeFrame, index: int) -> list[Track]:
        """Process frame `index`; returns the tracks that have a face in it."""
        lost, self._refused = False, []
        if self._cut(frame):
            self.cuts.append(index)
            for track in self.tracks:
                track.roi = None
                if track.holding:
                    track.release()
        for track in self.active():
            fit = self.mesh(frame, track.roi)
            if fit[1] < self.keep_presence and track.is_face():
                fit = self._wider(frame, track.roi, self.keep_presence, WIDER[:1], fit)
            points, presence = fit
            if presence >= self.keep_presence:
                track.add(index, points, presence)
            else:
                track.roi, lost = None, True
        self._drop_duplicates(index)
        active = self.active()
        if lost or not active or index % self.detect_every == 0 or \
                (self.cuts and self.cuts[-1] == index):
            self._detect(frame, index, active)
        self._carry(frame, index)
        seen = [t for t in self.tracks if t.last == index]
        if not seen:
            self.absent[index] = self._why_absent(frame)
        return seen

    def _detect(self, frame: NativeFrame, index: int, active: list[Track]) -> None:
        self.detector_runs += 1
        # tiles are slow: search them on the schedule, not on every face-less frame
        tiled = None if (not active and index % self.detect_every == 0) else False
        followed = self._take(frame, index, self.detector.detect(frame, tiled=tiled))
        if not followed and self._fallback_due(index):
            self.fallback_runs += 1
            found = self.fallback.detect(frame)
            self._take(frame, index, found, from_fallback=True)
            # a held face the profile detector or the mesh has vouched for is worth looking for
            waiting = any(t.holding and (t.witnesses or t.trusted()) for t in self.tracks)
            self._fallback_wait = 1 if found or waiting else \
                min(4 * self._fallback_wait, MAX_BACKOFF)
            self._fallback_next = index + self._fallback_wait * self.detect_every
        if not followed and not self._refused and self._probes < PROBES and \
                index % self.detect_every == 0:
            self._probe_small(frame)

    def _probe_small(self, frame: NativeFrame) -> None:
        """Look for faces below the detector's range (for the message only: they are not
        tracked), confirmed by the mesh as any face is."""
        self._probes += 1
        for det in self.detector.detect(frame, tiled=True, tile_side=PROBE_TILE):
            if det.height >= MIN_FACE_PX or det.score < SURE_SCORE:
                continue
            points, presence = self.mesh(frame, Roi.from_detection(det))
            if presence >= self.start_presence and \
                    self.mesh(frame, Roi.from_points(points))[1] >= self.start_presence:
                self.small_face_px = max(self.small_face_px, det.height)

    def _fallback_due(self, index: int) -> bool:
        """The profile detector runs where no face is followed, on the detection schedule (and
        at cuts), backing off while it finds nothing."""
        if self.fallback is None or self.active():
            return False
        if self.cuts and self.cuts[-1] == index:
            return True  # a new shot: worth a look whatever the last ones held
        return index >= self._fallback_next and index % self.detect_every == 0

    def _take(self, frame: NativeFrame, index: int, detections: list[Detection],
              from_fallback: bool = False) -> int:
        """Start, revive or hold tracks from detections; returns how many faces are followed
        (confirmed by the mesh, already followed, or held on a track known to be a face)."""
        followed = 0
        for det in detections:
            if len(self.active()) >= self.max_faces:
                break
            if any(box_iou(det.box, t.box()) > 0.3 for t in self.active()):
                followed += 1
                continue
            # wider regions only where the detection is a known face coming back (followed
            # into a turn): on new detections they let the mesh "fit" face-like textures
            known = self._revivable(det.box, index)
            wider = WIDER if known is not None and known.is_face() else ()
            roi = Roi.from_detection(det)
            first, first_presence = self._wider(frame, roi, self.start_presence, wider,
                                                self.mesh(frame, roi))
            if first_presence >= self.start_presence:
                # confirm on the mesh's own region: a face fits again, a face-like texture rarely
                roi = Roi.from_points(first)
                points, presence = self._wider(frame, roi, self.start_presence, wider[:1],
                                               self.mesh(frame, roi))
                if presence >= self.start_presence:
                    track = known or self._new_track()
                    track.witnesses += from_fallback
                    track.add(index, points, presence)
                    followed += 1
                    continue
            self._refused.append(det)
            # a refused face continues a track where it just was; only the profile detector,
            # trained on turned faces, may start one (a face once it has seen it twice)
            track = known or (self._new_track() if from_fallback else None)
            if track is None:
                continue
            track.witnesses += from_fallback
            if track.last != index:
                track.hold(index, first, first_presence, det, index + self.detect_every)
                if _luma(frame, det.box) < DARK_LUMA:
                    self.dark_held.add(index)
            followed += track.is_face()
        return followed

    def _wider(self, frame: NativeFrame, roi: Roi, needed: float, factors: tuple[float, ...],
               fit: tuple[np.ndarray, float]) -> tuple[np.ndarray, float]:
        """`fit` (the mesh on `roi`) if it has `needed` presence, else the first fit on a wider
        region that has (`fit` again when none does)."""
        for factor in factors if fit[1] < needed else ():
            wide = self.mesh(frame, roi.scaled(factor))
            if wide[1] >= needed:
                return wide
        return fit

    def _carry(self, frame: NativeFrame, index: int) -> None:
        """Held tracks no detection renewed in this frame: carried on the last detected
        region up to `hold_until`, released after."""
        for track in self.tracks:
            if not track.holding or track.last == index:
                continue
            if index <= track.hold_until:
                points, presence = self.mesh(frame, track.hold_roi)
                track.carry(index, points, presence)
            else:
                track.release()

    def _why_absent(self, frame: NativeFrame) -> str:
        """Why this frame has no face: the largest face the mesh refused (BlazeFace sure of it,
        or the profile detector) was too small, too dark or turned away/unclear; else nothing
        was seen: too dark when the frame is, too small when a probe found small faces."""
        sure = [d for d in self._refused if d.detector != "blazeface" or d.score >= SURE_SCORE]
        if sure:
            det = max(sure, key=lambda d: d.height)
            if det.height < MIN_FACE_PX:
                self.small_face_px = max(self.small_face_px, det.height)
                return "small"
            return "dark" if _luma(frame, det.box) < DARK_LUMA else "turned"
        if _luma(frame, (0, 0, frame.width, frame.height)) < DARK_LUMA:
            return "dark"
        return "small" if self.small_face_px else "none"

    def _revivable(self, box, index: int) -> Optional[Track]:
        """A track lost (or held) a moment ago where this detection is."""
        cut = self.cuts[-1] if self.cuts else -1
        candidates = [t for t in self.tracks if not t.active and t.last > cut
                      and index - t.last <= self.revive_frames
                      and box_iou(box, t.match_box()) > 0.2]
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


def _luma(frame: NativeFrame, box) -> float:
    """Mean luma (video range) of a box of the frame, from every 4th pixel."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(x0, 0), max(y0, 0)
    region = frame.y[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)][::4, ::4]
    return float(region.mean()) if region.size else 0.0


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
        host.held |= track.held
        host.witnesses += track.witnesses
        host.last = max(host.points)
        host.joined.append(track.id)
    return joined
