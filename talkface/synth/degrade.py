"""Controlled degradations of a rendered talking head, one strength parameter each.

Where each acts: on the jaw-opening curve before rendering (frozen mouth, mouth driven by another
utterance), on the rendered frames (blur, noise, shake, frame freezes, colour flicker), on the
encoder (H.264 CRF, applied by `talkface.media.write_video`) or on the audio track (offset).
Pixel strengths are given for a 256-pixel frame and scaled with the frame size, so a parameter means
the same visible damage at every resolution. 0 (or labels.BASE_CRF) is always "clean".
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..constants import FPS, SAMPLE_RATE

REFERENCE_SIZE = 256
CLOSED_MOUTH = 0.1  # the opening a fully frozen mouth is held at


def _scale(frames: np.ndarray) -> float:
    return frames.shape[2] / REFERENCE_SIZE


def shift_audio(audio: np.ndarray, offset_frames: float, fps: float = FPS,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Audio-visual offset; positive = audio late (delayed against the video). Same length."""
    shift = int(round(offset_frames * sample_rate / fps))
    if shift == 0:
        return audio.copy()
    if shift > 0:
        return np.concatenate([np.zeros(shift, audio.dtype), audio[:-shift]])
    return np.concatenate([audio[-shift:], np.zeros(-shift, audio.dtype)])


def freeze_mouth(opening: np.ndarray, strength: float) -> np.ndarray:
    """Blend the jaw opening towards a constant nearly-closed mouth; 1 = frozen."""
    return (1 - strength) * opening + strength * CLOSED_MOUTH


def swap_drive(opening: np.ndarray, other: np.ndarray, mix: float) -> np.ndarray:
    """Drive the mouth with a different utterance; mix 1 = entirely the other utterance."""
    return (1 - mix) * opening + mix * other[:len(opening)]


def gaussian_blur(frames: np.ndarray, sigma: float, scale: Optional[float] = None) -> np.ndarray:
    """Gaussian blur of every frame; sigma in pixels of a 256-pixel frame (or times `scale`)."""
    s = sigma * (scale or _scale(frames))
    if s <= 0.05:
        return frames
    return np.stack([cv2.GaussianBlur(f, (0, 0), s, borderType=cv2.BORDER_REFLECT)
                     for f in frames])


def additive_noise(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Independent Gaussian noise per pixel and frame; sigma in 8-bit grey levels."""
    if sigma <= 0:
        return frames
    noise = rng.normal(0.0, sigma, frames.shape).astype(np.float32)
    return np.clip(frames.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)


def shake(frames: np.ndarray, amplitude: float, rng: np.random.Generator,
          scale: Optional[float] = None) -> np.ndarray:
    """Camera shake: random per-frame translation (and a little rotation), amplitude in pixels of a
    256-pixel frame, or times `scale` (standard deviation of the jitter)."""
    if amplitude <= 0:
        return frames
    a = amplitude * (scale or _scale(frames))
    h, w = frames.shape[1:3]
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        dx, dy = rng.normal(0, a, 2)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.normal(0, 0.3 * amplitude)), 1.0)
        m[:, 2] += (dx, dy)
        out[i] = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    return out


def freeze_frames(frames: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Frame freezes: runs of 3-8 frames repeat the frame before them until about `fraction` of
    all frames are repeats."""
    n = len(frames)
    target = min(int(round(fraction * n)), n - 1)
    frozen = np.zeros(n, bool)
    while frozen.sum() < target:  # ends: frames 1..n-1 can all be frozen and target <= n - 1
        start, length = int(rng.integers(1, n)), int(rng.integers(3, 9))
        free = np.flatnonzero(~frozen[start:start + length]) + start
        frozen[free[:target - frozen.sum()]] = True
    out = frames.copy()
    for i in np.flatnonzero(frozen):
        out[i] = out[i - 1]
    return out


def colour_flicker(frames: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame random brightness and colour gains: gain_c = 1 + amplitude * (g + 0.5 c_c), with
    g, c_c standard normal (brightness common to all channels, colour per channel)."""
    if amplitude <= 0:
        return frames
    n = len(frames)
    gains = 1 + amplitude * (rng.normal(0, 1, (n, 1)) + 0.5 * rng.normal(0, 1, (n, 3)))
    gains = np.clip(gains, 0.2, 2.0).astype(np.float32)[:, None, None, :]
    return np.clip(frames.astype(np.float32) * gains, 0, 255).round().astype(np.uint8)


FRAME_DEGRADATIONS = {
    "blur_sigma": lambda frames, v, rng, scale: gaussian_blur(frames, v, scale),
    "noise_sigma": lambda frames, v, rng, scale: additive_noise(frames, v, rng),
    "shake_px": shake,
    "freeze_fraction": lambda frames, v, rng, scale: freeze_frames(frames, v, rng),
    "flicker_amp": lambda frames, v, rng, scale: colour_flicker(frames, v, rng),
}


def degrade_frames(frames: np.ndarray, params: dict, rng: np.random.Generator,
                   scale: Optional[float] = None) -> np.ndarray:
    """Apply every frame-level degradation whose parameter in `params` is non-zero. `scale`:
    frame pixels per reference pixel for the strengths given in pixels (default: the frame's
    width over 256; the real-footage benchmark uses the face's height instead)."""
    for name, fn in FRAME_DEGRADATIONS.items():
        value = float(params.get(name, 0.0))
        if value > 0:
            frames = fn(frames, value, rng, scale)
    return frames


# ---- the artifacts real generators leave, on the lower face of real recordings --------------
# `boxes` (T, 4) are the face's boxes (x0, y0, x1, y1) per frame, from talkface's face stage.

def lower_face(box) -> tuple[int, int, int, int]:
    """The region a mouth-editing generator (Wav2Lip, MuseTalk, ...) repaints: the lower half of
    the face box, inset at the cheeks."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return int(x0 + 0.12 * w), int(y0 + 0.52 * h), int(x1 - 0.12 * w), int(y1 - 0.02 * h)


def _feather(h: int, w: int) -> np.ndarray:
    """(h, w, 1) blending weights: 1 inside, falling to 0 at the region's border, so a pasted
    region leaves no hard seam (the low-resolution paste keeps its seam on purpose)."""
    mask = np.zeros((h, w), np.float32)
    ih, iw = max(1, int(0.15 * h)), max(1, int(0.15 * w))
    mask[ih:h - ih, iw:w - iw] = 1.0
    sigma = max(1.0, 0.08 * min(h, w))
    return cv2.GaussianBlur(mask, (0, 0), sigma)[:, :, None]


def _blend(target: np.ndarray, patch: np.ndarray) -> np.ndarray:
    alpha = _feather(*target.shape[:2])
    return (alpha * patch + (1 - alpha) * target).round().astype(np.uint8)


def _region(frame: np.ndarray, box) -> tuple[slice, slice]:
    x0, y0, x1, y1 = lower_face(box)
    h, w = frame.shape[:2]
    x0, x1 = max(0, x0), min(w, max(x1, x0 + 4))
    y0, y1 = max(0, y0), min(h, max(y1, y0 + 4))
    return slice(y0, y1), slice(x0, x1)


def paste_lowres(frames: np.ndarray, boxes: np.ndarray, octaves: float) -> np.ndarray:
    """Wav2Lip-style: the lower face rendered 2**octaves times smaller than the video shows it,
    upscaled and pasted back with a hard edge (the seam). 0 = unchanged."""
    if octaves <= 0:
        return frames
    out = frames.copy()
    for frame, box in zip(out, boxes):
        if not np.isfinite(box).all():
            continue
        rows, cols = _region(frame, box)
        patch = frame[rows, cols]
        ph, pw = patch.shape[:2]
        small = cv2.resize(patch, (max(2, int(pw / 2 ** octaves)), max(2, int(ph / 2 ** octaves))),
                           interpolation=cv2.INTER_AREA)
        frame[rows, cols] = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_LINEAR)
    return out


def colour_mismatch(frames: np.ndarray, boxes: np.ndarray, amount: float,
                    rng: np.random.Generator) -> np.ndarray:
    """A pasted lower face whose colour and brightness do not match the face around it: one gain
    per channel, 1 + amount * (g + 0.5 c_c), for the whole clip."""
    if amount <= 0:
        return frames
    gains = np.clip(1 + amount * (rng.choice([-1, 1]) + 0.5 * rng.normal(0, 1, 3)), 0.3, 2.0)
    out = frames.copy()
    for frame, box in zip(out, boxes):
        if np.isfinite(box).all():
            rows, cols = _region(frame, box)
            frame[rows, cols] = np.clip(frame[rows, cols] * gains, 0, 255).round()
    return out


def region_jitter(frames: np.ndarray, boxes: np.ndarray, amplitude: float,
                  rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A pasted lower face that shakes against the rest: each frame's region moved by a random
    offset (standard deviation `amplitude` reference pixels, times `scale`)."""
    if amplitude <= 0:
        return frames
    out = frames.copy()
    for frame, source, box in zip(out, frames, boxes):
        if not np.isfinite(box).all():
            continue
        dx, dy = rng.normal(0, amplitude * scale, 2)
        rows, cols = _region(frame, box)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(source, m, (source.shape[1], source.shape[0]),
                               borderMode=cv2.BORDER_REFLECT)
        frame[rows, cols] = _blend(frame[rows, cols], moved[rows, cols])
    return out


def _runs(n: int, fraction: float, rng: np.random.Generator, shortest: int = 8) -> np.ndarray:
    """(n,) bool: runs of at least `shortest` frames covering about `fraction` of them."""
    chosen = np.zeros(n, bool)
    target = int(round(min(fraction, 1.0) * n))
    while chosen.sum() < target:
        start = int(rng.integers(0, n))
        chosen[start:start + int(rng.integers(shortest, 3 * shortest))] = True
    return chosen


def _paste(frame: np.ndarray, box, donor: np.ndarray, donor_box) -> None:
    """The lower face of `donor` (at `donor_box`), resized into `frame`'s lower face."""
    rows, cols = _region(frame, box)
    drows, dcols = _region(donor, donor_box)
    patch = donor[drows, dcols]
    h, w = rows.stop - rows.start, cols.stop - cols.start
    if patch.size and h > 1 and w > 1:
        frame[rows, cols] = _blend(frame[rows, cols],
                                   cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR))


def mouth_from_elsewhere(frames: np.ndarray, boxes: np.ndarray, fraction: float,
                         donors: np.ndarray, donor_boxes: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
    """Natural mouth shapes at the wrong time: for `fraction` of the frames (in runs), the lower
    face comes from another moment of the same recording (`donors`, far from these frames)."""
    if fraction <= 0 or not len(donors):
        return frames
    out = frames.copy()
    usable = np.flatnonzero(np.isfinite(donor_boxes).all(1))
    if not usable.size:
        return frames
    start = int(rng.integers(len(usable)))
    for k, i in enumerate(np.flatnonzero(_runs(len(frames), fraction, rng))):
        j = usable[(start + k) % len(usable)]
        if np.isfinite(boxes[i]).all():
            _paste(out[i], boxes[i], donors[j], donor_boxes[j])
    return out


def freeze_lower_face(frames: np.ndarray, boxes: np.ndarray, fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
    """A lower face that stops moving while the speech goes on: in runs covering `fraction` of the
    frames, the lower face of the run's first frame is held (following the head)."""
    if fraction <= 0:
        return frames
    out = frames.copy()
    held = _runs(len(frames), fraction, rng)
    anchor = None
    for i in range(len(frames)):
        if not held[i] or not np.isfinite(boxes[i]).all():
            anchor = None
            continue
        if anchor is None:
            anchor = i
        else:
            _paste(out[i], boxes[i], frames[anchor], boxes[anchor])
    return out


# ---- more of what generators get wrong (issue 19): region smoothing, texture flicker, stiff
# ---- upper face, missing blinks, frame repeats at an encoder's cadence, over-smooth motion

def upper_face(box) -> tuple[int, int, int, int]:
    """The region above the mouth (forehead, eyes, nose) of a face box."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return int(x0 + 0.05 * w), int(y0), int(x1 - 0.05 * w), int(y0 + 0.55 * h)


def eye_band(box) -> tuple[int, int, int, int]:
    """The band of the face box that holds both eyes."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return int(x0 + 0.08 * w), int(y0 + 0.22 * h), int(x1 - 0.08 * w), int(y0 + 0.52 * h)


def _slices(frame: np.ndarray, region) -> tuple[slice, slice]:
    x0, y0, x1, y1 = region
    h, w = frame.shape[:2]
    x0, x1 = max(0, x0), min(w, max(x1, x0 + 4))
    y0, y1 = max(0, y0), min(h, max(y1, y0 + 4))
    return slice(y0, y1), slice(x0, x1)


def _in_region(frames: np.ndarray, boxes: np.ndarray, region, edit) -> np.ndarray:
    """`edit(patch, i)` applied to each frame's `region(box)`, blended in with soft edges."""
    out = frames.copy()
    for i, (frame, box) in enumerate(zip(out, boxes)):
        if np.isfinite(box).all():
            rows, cols = _slices(frame, region(box))
            patch = frame[rows, cols]
            if patch.shape[0] > 4 and patch.shape[1] > 4:
                frame[rows, cols] = _blend(patch, edit(patch, i))
    return out


def mouth_blur(frames: np.ndarray, boxes: np.ndarray, sigma: float,
               scale: float = 1.0) -> np.ndarray:
    """A smeared mouth (teeth and lips without texture, as a dubbing generator's upscaled mouth):
    the lower face blurred, `sigma` reference pixels times `scale`, the rest left sharp."""
    if sigma <= 0:
        return frames
    s = sigma * scale
    return _in_region(frames, boxes, lower_face,
                      lambda patch, i: cv2.GaussianBlur(patch, (0, 0), s))


def face_smoothing(frames: np.ndarray, boxes: np.ndarray, amount: float) -> np.ndarray:
    """GAN-like skin: the face's texture ironed out by an edge-preserving filter (bilateral,
    repeated), blended in by `amount` in [0, 1]; edges and shapes stay."""
    if amount <= 0:
        return frames

    def smooth(patch, i):
        flat = patch
        for _ in range(3):
            flat = cv2.bilateralFilter(flat, 9, 40, 9)
        return cv2.addWeighted(flat, float(min(amount, 1.0)), patch, float(1 - min(amount, 1.0)),
                               0)
    whole = lambda box: tuple(int(v) for v in box)  # noqa: E731 - the face box itself
    return _in_region(frames, boxes, whole, smooth)


def texture_flicker(frames: np.ndarray, boxes: np.ndarray, amplitude: float,
                    rng: np.random.Generator) -> np.ndarray:
    """The face's texture comes and goes from frame to frame (brightness kept): each frame's face
    is mixed with its blurred self by a random weight |N(0, amplitude)| (at most 1)."""
    if amplitude <= 0:
        return frames
    weights = np.clip(np.abs(rng.normal(0, amplitude, len(frames))), 0, 1)
    whole = lambda box: tuple(int(v) for v in box)  # noqa: E731 - the face box itself
    return _in_region(frames, boxes, whole, lambda patch, i: cv2.addWeighted(
        cv2.GaussianBlur(patch, (0, 0), 2.5), float(weights[i]), patch,
        float(1 - weights[i]), 0))


def _held_region(frames: np.ndarray, boxes: np.ndarray, fraction: float,
                 rng: np.random.Generator, region) -> np.ndarray:
    """In runs covering `fraction` of the frames, `region` of the run's first frame is held."""
    if fraction <= 0:
        return frames
    held = _runs(len(frames), fraction, rng)
    anchors, anchor = {}, None
    for i in range(len(frames)):
        anchor = (anchor if anchor is not None else i) if held[i] else None
        anchors[i] = anchor
    def held_patch(patch, i):
        a = anchors[i]
        if a is None or not np.isfinite(boxes[a]).all():
            return patch
        source = frames[a][_slices(frames[a], region(boxes[a]))]  # following the head
        return cv2.resize(source, (patch.shape[1], patch.shape[0]))
    return _in_region(frames, boxes, region, held_patch)


def stiff_head(frames: np.ndarray, boxes: np.ndarray, fraction: float,
               rng: np.random.Generator) -> np.ndarray:
    """A head held still while the mouth moves: the upper face of each run's first frame is held
    for `fraction` of the frames (in runs)."""
    return _held_region(frames, boxes, fraction, rng, upper_face)


def no_blinks(frames: np.ndarray, boxes: np.ndarray, fraction: float,
              rng: np.random.Generator) -> np.ndarray:
    """Eyes that never blink or move: the eye band of each run's first frame is held for
    `fraction` of the frames (in runs)."""
    return _held_region(frames, boxes, fraction, rng, eye_band)


def frame_repeats(frames: np.ndarray, fraction: float) -> np.ndarray:
    """Frames dropped and the previous one shown again at a regular cadence, as an encoder or a
    frame-rate converter does: every round(1 / fraction)-th frame repeats the one before."""
    if fraction <= 0:
        return frames
    every = max(2, int(round(1.0 / min(fraction, 0.5))))
    out = frames.copy()
    for i in range(every - 1, len(frames), every):
        out[i] = out[i - 1]
    return out


def over_smooth(frames: np.ndarray, radius: float) -> np.ndarray:
    """Motion too smooth to be real: each frame a weighted mean of its neighbours within
    `radius` frames (a triangular window), so fast movements ghost and settle late."""
    if radius <= 0:
        return frames
    r = int(np.ceil(radius))
    weights = np.array([max(0.0, 1 - abs(k) / (radius + 1)) for k in range(-r, r + 1)])
    weights /= weights.sum()
    padded = np.concatenate([frames[:1].repeat(r, 0), frames, frames[-1:].repeat(r, 0)])
    out = np.zeros(frames.shape, np.float32)
    for k, w in enumerate(weights):
        out += w * padded[k:k + len(frames)].astype(np.float32)
    return out.round().astype(np.uint8)


FRAME_DEGRADATIONS.update({
    "frame_repeat": lambda frames, v, rng, scale: frame_repeats(frames, v),
    "over_smooth": lambda frames, v, rng, scale: over_smooth(frames, v),
})
