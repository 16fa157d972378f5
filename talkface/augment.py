"""Label-preserving augmentation of extracted features, for training.

Training reads cached feature bundles, so each augmentation here is the exact (or first-order)
effect on the feature columns of a media change that does not change a clip's labels:

- `gain`: the audio played `gain_db` louder or quieter. With `logmel` in dB (power_to_db,
  ref 1) every band moves by g dB; `mfcc_00` (an orthonormal DCT of the log-mel bands) by
  g * sqrt(n_mels); the other MFCCs, the deltas, spectral flux (differences of log-mel),
  centroid and ZCR do not move; `log_rms` (dB re full scale) moves by g. Floors (-100 dB) are
  kept. Exact, apart from samples a louder clip would clip.
- `stretch`: the clip played `1 +- stretch` times as fast, audio and video together (sync is
  kept: both streams are resampled on the same time axis). Columns are linearly interpolated at
  the new frame instants; per-frame rates (velocities, frame differences, MFCC deltas, spectral
  flux) are scaled by the speed factor; a frame is valid when both neighbours were. First order:
  an A/V offset in milliseconds changes by the same small factor.
  Clips without audio (all-zero columns) or whose lip sync cannot be judged are left alone.
- `drop`: a few frames lose their face (a detector miss): they are masked, as the extractor
  masks face-less frames, and the model ignores masked frames.
- `colour`: a global brightness offset and colour cast on the video. Per-crop brightness moves
  by the cast's luma; the two colour-opponent means by its chroma; sharpness (Laplacian),
  noise (Immerkaer), blockiness (a ratio of differences), contrast (std) and frame differences
  do not move. Exact, apart from pixels pushed past 0 or 255.

Blur, compression, noise, frame freezes, shake, flicker and A/V shifts are *not* here: each of
them is what a label measures. Columns are found by name in the clip's `FeatureSpec`; a feature
set without them (another backend) leaves that augmentation a no-op.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .predict import ClipFeatures

SILENCE_DB = -100.0
RATE_SUFFIXES = ("_velocity", "_frame_diff", "face_shift", "scale_change")
RATE_PREFIXES = ("mfcc_delta_", "spectral_flux")


class AugmentConfig(BaseModel):
    """Probabilities and sizes of each augmentation (all off by default)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    gain_p: float = Field(0.0, ge=0, le=1)
    gain_db: float = Field(6.0, ge=0)  # uniform in [-gain_db, +gain_db]
    stretch_p: float = Field(0.0, ge=0, le=1)
    stretch: float = Field(0.05, ge=0, lt=0.5)  # speed factor uniform in [1 - s, 1 + s]
    drop_p: float = Field(0.0, ge=0, le=1)
    drop_fraction: float = Field(0.05, ge=0, lt=1)  # share of frames losing their face
    colour_p: float = Field(0.0, ge=0, le=1)
    brightness: float = Field(0.08, ge=0, lt=1)  # offset uniform in +- this (0-1 grey scale)
    colour_cast: float = Field(0.03, ge=0, lt=1)  # per-channel offset uniform in +- this

    @property
    def enabled(self) -> bool:
        return any(p > 0 for p in (self.gain_p, self.stretch_p, self.drop_p, self.colour_p))


@dataclass(frozen=True)
class Columns:
    """Where the columns each augmentation touches are, from a FeatureSpec's names."""

    logmel: np.ndarray
    mfcc0: Optional[int]
    n_mels: int
    level: np.ndarray
    brightness: np.ndarray
    chroma_rg: np.ndarray
    chroma_by: np.ndarray
    visual_rates: np.ndarray
    audio_rates: np.ndarray

    @classmethod
    def of(cls, spec) -> "Columns":
        v, a = list(spec.visual_names), list(spec.audio_names)

        def find(names, test):
            return np.array([i for i, n in enumerate(names) if test(n)], int)

        def rate(n):
            return n.endswith(RATE_SUFFIXES) or n.startswith(RATE_PREFIXES)

        logmel = find(a, lambda n: n.startswith("logmel_"))
        return cls(logmel, a.index("mfcc_00") if "mfcc_00" in a else None, len(logmel),
                   find(a, lambda n: n == "log_rms"),
                   find(v, lambda n: n.endswith("_brightness")),
                   find(v, lambda n: n.endswith("_chroma_rg")),
                   find(v, lambda n: n.endswith("_chroma_by")),
                   find(v, rate), find(a, rate))


def audio_gain(audio: np.ndarray, cols: Columns, gain_db: float) -> np.ndarray:
    """(T, Da) audio features of the clip played `gain_db` louder."""
    out = audio.copy()
    for idx in (cols.logmel, cols.level):
        if idx.size:
            silent = out[:, idx] <= SILENCE_DB
            out[:, idx] = np.where(silent, out[:, idx],
                                   np.maximum(out[:, idx] + gain_db, SILENCE_DB))
    if cols.mfcc0 is not None and cols.n_mels:
        out[:, cols.mfcc0] += gain_db * math.sqrt(cols.n_mels)
    return out


def colour_jitter(visual: np.ndarray, valid: np.ndarray, cols: Columns,
                  offsets: np.ndarray) -> np.ndarray:
    """(T, Dv) visual features of the clip with per-channel (R, G, B) offsets on the 0-1 grey
    scale added to every pixel; frames without a face stay zero."""
    r, g, b = (float(x) for x in offsets)
    out = visual.copy()
    rows = valid[:, None]
    for idx, shift in ((cols.brightness, 0.299 * r + 0.587 * g + 0.114 * b),
                       (cols.chroma_rg, r - g), (cols.chroma_by, b - (r + g) / 2)):
        if idx.size:
            out[:, idx] = np.where(rows, out[:, idx] + shift, out[:, idx])
    return out


def time_stretch(clip: ClipFeatures, cols: Columns, speed: float) -> ClipFeatures:
    """The clip played `speed` times as fast (both streams), as a new ClipFeatures."""
    t = clip.n_frames
    n = max(2, int(round(t / speed)))
    if t < 2:
        return clip
    times = np.minimum(np.arange(n) * speed, t - 1)
    lo = np.floor(times).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (times - lo)[:, None].astype(np.float32)

    def resample(x, rates):
        y = (1 - w) * x[lo] + w * x[hi]
        if rates.size:
            y[:, rates] *= speed
        return y.astype(np.float32)

    valid = clip.valid[lo] & clip.valid[hi]
    visual = np.where(valid[:, None], resample(clip.visual, cols.visual_rates), 0.0)
    return ClipFeatures(visual.astype(np.float32), resample(clip.audio, cols.audio_rates), valid,
                clip.file, clip.unjudged, clip.targets)


def drop_faces(clip: ClipFeatures, rng: np.random.Generator, fraction: float) -> ClipFeatures:
    """Mask a random `fraction` of the frames with a face (at least one frame survives)."""
    faces = np.flatnonzero(clip.valid)
    k = min(int(round(fraction * faces.size)), faces.size - 1)
    if k <= 0:
        return clip
    valid = clip.valid.copy()
    valid[rng.choice(faces, k, replace=False)] = False
    visual = np.where(valid[:, None], clip.visual, 0.0).astype(np.float32)
    return ClipFeatures(visual, clip.audio, valid, clip.file, clip.unjudged, clip.targets)


class FeatureAugmenter:
    """`augmenter.stretch(clip, rng)` before cropping, `augmenter(clip, rng)` after it."""

    def __init__(self, config: AugmentConfig, spec) -> None:
        self.config, self.cols = config, Columns.of(spec)

    def stretch(self, clip: ClipFeatures, rng: np.random.Generator) -> ClipFeatures:
        c = self.config
        if c.stretch_p > 0 and rng.random() < c.stretch_p and c.stretch > 0:
            return time_stretch(clip, self.cols, float(rng.uniform(1 - c.stretch, 1 + c.stretch)))
        return clip

    def __call__(self, clip: ClipFeatures, rng: np.random.Generator) -> ClipFeatures:
        c = self.config
        visual, audio = clip.visual, clip.audio
        if c.gain_p > 0 and rng.random() < c.gain_p and audio.any() and not clip.unjudged:
            audio = audio_gain(audio, self.cols, float(rng.uniform(-c.gain_db, c.gain_db)))
        if c.colour_p > 0 and rng.random() < c.colour_p:
            grey = rng.uniform(-c.brightness, c.brightness)
            offsets = grey + rng.uniform(-c.colour_cast, c.colour_cast, 3)
            visual = colour_jitter(visual, clip.valid, self.cols, offsets)
        clip = ClipFeatures(visual, audio, clip.valid, clip.file, clip.unjudged, clip.targets)
        if c.drop_p > 0 and rng.random() < c.drop_p:
            clip = drop_faces(clip, rng, c.drop_fraction)
        return clip
