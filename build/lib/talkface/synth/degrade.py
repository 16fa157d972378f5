"""Controlled degradations of a rendered talking head, one strength parameter each.

Where each acts: on the jaw-opening curve before rendering (frozen mouth, mouth driven by another
utterance), on the rendered frames (blur, noise, shake, frame freezes, colour flicker), on the
encoder (H.264 CRF, applied by `talkface.media.write_video`) or on the audio track (offset).
Pixel strengths are given for a 256-pixel frame and scaled with the frame size, so a parameter means
the same visible damage at every resolution. 0 (or labels.BASE_CRF) is always "clean".
"""
from __future__ import annotations

import cv2
import numpy as np

REFERENCE_SIZE = 256
CLOSED_MOUTH = 0.1  # the opening a fully frozen mouth is held at


def _scale(frames: np.ndarray) -> float:
    return frames.shape[2] / REFERENCE_SIZE


def shift_audio(audio: np.ndarray, offset_frames: float, fps: float = 25.0,
                sample_rate: int = 16000) -> np.ndarray:
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


def gaussian_blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every frame; sigma in pixels of a 256-pixel frame."""
    s = sigma * _scale(frames)
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


def shake(frames: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Camera shake: random per-frame translation (and a little rotation), amplitude in pixels of a
    256-pixel frame (standard deviation of the jitter)."""
    if amplitude <= 0:
        return frames
    a = amplitude * _scale(frames)
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
    "blur_sigma": lambda frames, v, rng: gaussian_blur(frames, v),
    "noise_sigma": additive_noise,
    "shake_px": shake,
    "freeze_fraction": freeze_frames,
    "flicker_amp": colour_flicker,
}


def degrade_frames(frames: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Apply every frame-level degradation whose parameter in `params` is non-zero."""
    for name, fn in FRAME_DEGRADATIONS.items():
        value = float(params.get(name, 0.0))
        if value > 0:
            frames = fn(frames, value, rng)
    return frames
