"""An audio-driven talking head made from one photo: jaw warp, mouth interior, blinks, head motion.

Deliberately simple (no learned model): the region below the lips, bounded by the jaw line, is
shifted down by the jaw opening with a smooth backward warp (`cv2.remap`); the gap this opens
between the lips is painted as a mouth interior (dark cavity, upper teeth). The jaw opening of frame
k follows the speech loudness at frame k (`talkface.measures.loudness_db`, 30 dB range), so a
clean clip is in sync by construction. Eyelids close by warping the skin above each eye downwards;
blinks come at random 2-6 s intervals. The whole head moves with a few slow sinusoids (small
rotation, translation, scale), nodding slightly with speech. dlib's HOG detector finds the result
and its mouth landmarks follow the opening; `tests/test_synth.py` checks both.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..constants import FPS, HOP
from ..measures import loudness_db
from .faces import Face

MAX_OPEN = 0.45  # jaw drop at full opening, in mouth widths
CAVITY = np.array([52, 18, 24], np.float32)
TEETH = np.array([226, 220, 206], np.float32)


def opening_from_audio(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Jaw opening in [0, 1] per video frame from mono 16 kHz speech. (n_frames,)"""
    db = loudness_db(audio, n_frames, HOP)
    peak = np.percentile(db, 95) if n_frames else 0.0
    opening = np.clip((db - (peak - 30.0)) / 30.0, 0.0, 1.0) ** 1.5
    # symmetric smoothing: no lag, so frame k still belongs to audio frame k
    return np.convolve(np.pad(opening, 1, mode="edge"), [0.25, 0.5, 0.25], "valid")


def blink_curve(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure in [0, 1] per frame: ~250 ms blinks every 2-6 s. (n_frames,)"""
    closure = np.zeros(n_frames, np.float32)
    t = int(rng.integers(5, 40))
    shape = np.array([0.35, 0.8, 1.0, 0.75, 0.4, 0.15], np.float32)
    while t < n_frames:
        end = min(n_frames, t + shape.size)
        closure[t:end] = shape[:end - t]
        t += int(rng.integers(int(2 * FPS), int(6 * FPS)))
    return closure


def head_motion(n_frames: int, rng: np.random.Generator, size: int,
                opening: np.ndarray) -> np.ndarray:
    """Per-frame (angle deg, dx px, dy px, scale) from slow random sinusoids. (n_frames, 4)"""
    t = np.arange(n_frames) / FPS
    amps = np.array([1.5, 0.012 * size, 0.01 * size, 0.01])
    out = np.zeros((n_frames, 4))
    for j, amp in enumerate(amps):
        for _ in range(2):
            freq, phase = rng.uniform(0.1, 0.45), rng.uniform(0, 2 * np.pi)
            out[:, j] += amp / 2 * np.sin(2 * np.pi * freq * t + phase)
    out[:, 2] += 0.004 * size * opening  # a slight nod with speech
    out[:, 3] += 1.0
    return out


def _taper(dist: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """1 inside `inner`, cosine fall to 0 at `outer`."""
    x = np.clip((dist - inner) / max(outer - inner, 1e-6), 0, 1)
    return 0.5 + 0.5 * np.cos(np.pi * x)


@dataclass
class _Region:
    x0: int
    y0: int
    x1: int
    y1: int

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.mgrid[self.y0:self.y1, self.x0:self.x1].astype(np.float32)
        return xs, ys


class TalkingHead:
    """Renders frames of one face (already at the output size) for given jaw/blink/head curves."""

    def __init__(self, face: Face) -> None:
        self.face = face
        self.image = face.image
        pts = face.landmarks
        size = self.image.shape[0]
        self.mouth_width = float(np.linalg.norm(pts[54] - pts[48]))
        self._setup_jaw(pts, size)
        self._eyes = [self._setup_eye(pts[i:i + 6], size) for i in (36, 42)]

    def _setup_jaw(self, pts: np.ndarray, size: int) -> None:
        jaw_w = float(pts[14, 0] - pts[2, 0])
        self.mouth_cx = cx = float(pts[48:68, 0].mean())
        chin = float(pts[8, 1])
        below = 0.35 * (chin - float(pts[19:25, 1].mean()))
        lip = pts[[60, 67, 66, 65, 64]].astype(np.float32)  # lower inner lip, left to right
        self.lip_x, self.lip_y = lip[:, 0], lip[:, 1]
        half = self.mouth_width / 2
        self.jaw = _Region(max(0, int(cx - 0.6 * jaw_w)), max(0, int(lip[:, 1].min() - half)),
                           min(size, int(cx + 0.6 * jaw_w) + 1),
                           min(size, int(chin + below) + 1))
        xs, ys = self.jaw.grid()
        self.wx_inner, self.wx_outer = 0.28 * jaw_w, 0.55 * jaw_w
        wx = _taper(np.abs(xs - cx), self.wx_inner, self.wx_outer)
        # a sharp cut along the lower lip inside the mouth (the painted gap hides it); beyond the
        # corners a soft ramp taller than the largest drop, so cheeks stretch instead of tearing
        dist = np.abs(xs - cx)
        ramp = 1.0 + 1.1 * MAX_OPEN * self.mouth_width * np.clip((dist - 0.9 * half)
                                                                 / (0.3 * half), 0, 1)
        curve = np.interp(xs, self.lip_x, self.lip_y)
        wy = np.clip((ys - curve) / ramp + 0.5, 0, 1)
        wy *= _taper(np.maximum(ys - chin, 0), 0.0, below)
        self.jaw_xs, self.jaw_ys, self.jaw_w = xs, ys, (wx * wy).astype(np.float32)
        inner_gap = float(np.mean(np.linalg.norm(pts[[61, 62, 63]] - pts[[67, 66, 65]], axis=1)))
        self.draw_teeth = inner_gap < 0.08 * self.mouth_width  # open-mouthed photos show theirs

    def _setup_eye(self, eye: np.ndarray, size: int) -> dict:
        width = float(eye[3, 0] - eye[0, 0])
        top, bottom = float(eye[1:3, 1].mean()), float(eye[4:6, 1].mean())
        lid_top = top - 0.45 * width
        cx = float(eye[:, 0].mean())
        region = _Region(max(0, int(cx - 0.8 * width)), max(0, int(lid_top)),
                         min(size, int(cx + 0.8 * width) + 1), min(size, int(bottom + 3) + 1))
        xs, ys = region.grid()
        return {"region": region, "xs": xs, "ys": ys, "top": top, "bottom": bottom + 1.0,
                "lid_top": lid_top, "wx": _taper(np.abs(xs - cx), 0.5 * width, 0.8 * width)}

    def render(self, opening: float, closure: float, motion: np.ndarray) -> np.ndarray:
        """One frame: jaw opening and eyelid closure in [0, 1], motion (angle, dx, dy, scale)."""
        frame = self.image.copy()
        drop = opening * MAX_OPEN * self.mouth_width
        if drop > 0.05:
            self._open_jaw(frame, drop)
        if closure > 0.02:
            for eye in self._eyes:
                self._close_eye(frame, eye, closure)
        return self._move(frame, motion)

    def _open_jaw(self, frame: np.ndarray, drop: float) -> None:
        r = self.jaw
        map_y = self.jaw_ys - drop * self.jaw_w
        frame[r.y0:r.y1, r.x0:r.x1] = cv2.remap(self.image, self.jaw_xs, map_y, cv2.INTER_LINEAR,
                                                 borderMode=cv2.BORDER_REPLICATE)
        self._paint_mouth(frame, drop)

    def _mouth_polygon(self, drop: float) -> np.ndarray:
        """The opened gap: from the lower lip's rest line down to where it now is (lens shape)."""
        xs = np.linspace(self.lip_x[0], self.lip_x[-1], 17)
        top = np.interp(xs, self.lip_x, self.lip_y)
        rel = np.abs(xs - self.mouth_cx) / (self.mouth_width / 2)
        bottom = top + drop * np.clip(1 - rel ** 4, 0, 1) \
            * _taper(np.abs(xs - self.mouth_cx), self.wx_inner, self.wx_outer)
        return np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])

    def _paint_mouth(self, frame: np.ndarray, drop: float) -> None:
        poly = self._mouth_polygon(drop)
        x0, y0 = np.maximum(np.floor(poly.min(0)).astype(int) - 2, 0)
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 3
        h, w = y1 - y0, x1 - x0
        ss = 4  # supersampled mask: anti-aliased lip edges
        mask = np.zeros((h * ss, w * ss), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - [x0, y0]) * ss).astype(np.int32)], 255)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        mask = cv2.GaussianBlur(mask, (3, 3), 0.6)[..., None]
        ys = np.arange(h, dtype=np.float32)[:, None, None] + y0
        top = np.interp(np.arange(w, dtype=np.float32) + x0, poly[:17, 0],
                        poly[:17, 1])[None, :, None]
        colour = np.broadcast_to(CAVITY, (h, w, 3))
        if self.draw_teeth:
            teeth = np.clip((top + 0.25 * drop + 0.5 - ys) / 1.2, 0, 1)
            colour = teeth * TEETH + (1 - teeth) * CAVITY
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi * (1 - mask) + colour * mask, 0, 255).astype(np.uint8)

    def _close_eye(self, frame: np.ndarray, eye: dict, closure: float) -> None:
        r, ys = eye["region"], eye["ys"]
        top_lid, upper, bottom = eye["lid_top"], eye["top"], eye["bottom"]
        lid = upper + closure * (bottom - upper)  # where the upper lid edge is now
        above = top_lid + (ys - top_lid) * (upper - top_lid) / max(lid - top_lid, 1e-3)
        below = upper + (ys - lid) * (bottom - upper) / max(bottom - lid, 1e-3)
        src = np.where(ys < lid, above, np.where(ys < bottom, below, ys))
        src = np.where(ys < top_lid, ys, src)
        map_y = (ys + eye["wx"] * (src - ys)).astype(np.float32)
        frame[r.y0:r.y1, r.x0:r.x1] = cv2.remap(frame, eye["xs"], map_y, cv2.INTER_LINEAR,
                                                 borderMode=cv2.BORDER_REPLICATE)

    def _move(self, frame: np.ndarray, motion: np.ndarray) -> np.ndarray:
        angle, dx, dy, scale = motion
        centre = tuple(float(v) for v in self.face.landmarks[27:36].mean(0))
        m = cv2.getRotationMatrix2D(centre, float(angle), float(scale))
        m[:, 2] += (dx, dy)
        size = frame.shape[1], frame.shape[0]
        return cv2.warpAffine(frame, m, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)


def render_frames(face: Face, opening: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, S, S, 3) uint8 frames of `face` (already at output size) following `opening` (T,)."""
    n = len(opening)
    head = TalkingHead(face)
    closure = blink_curve(n, rng)
    motion = head_motion(n, rng, face.image.shape[0], opening)
    return np.stack([head.render(float(opening[i]), float(closure[i]), motion[i])
                     for i in range(n)])
