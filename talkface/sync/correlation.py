"""Lag correlation between two per-frame curves: the hand-made sync measure.

Sign convention everywhere in talkface: a positive lag d means curve b at frame t + d goes with
curve a at frame t, i.e. for (mouth, audio) the audio is late by d frames.

This is what the no-learning baseline uses (mouth opening against loudness) and what the
benchmark generator uses to check that two mouth-driving curves are not copies of each other.
It holds on the synthetic puppet, whose mouth follows the loudness by construction, and not on
real mouths (which lead the sound and close for /p b m/): the learned model in
`talkface.sync.model` is the lip-sync measure for real footage.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..constants import MAX_OFFSET_FRAMES
from ..measures import highpass


def lag_correlation(a: np.ndarray, b: np.ndarray, lag: int,
                    valid: Optional[np.ndarray] = None) -> float:
    """Pearson correlation of a[t] with b[t + lag] over frames where both are valid (0 when
    fewer than 5 frames overlap or a curve is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = a.size
    t = np.arange(max(0, -lag), min(n, n - lag))
    if t.size < 5:
        return 0.0
    keep = np.ones(t.size, bool) if valid is None else valid[t] & valid[t + lag]
    x, y = a[t][keep], b[t + lag][keep]
    if x.size < 5 or x.std() < 1e-8 or y.std() < 1e-8:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def correlation_curve(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_OFFSET_FRAMES,
                      valid: Optional[np.ndarray] = None,
                      highpass_frames: Optional[int] = 15) -> tuple[np.ndarray, np.ndarray]:
    """(lags -max_lag..max_lag, correlation per lag) of a against b, both high-passed first
    (minus a `highpass_frames` moving average) so slow drifts do not dominate."""
    if highpass_frames:
        a, b = highpass(a, highpass_frames), highpass(b, highpass_frames)
    mask = None if valid is None else np.asarray(valid, bool)
    lags = np.arange(-max_lag, max_lag + 1)
    return lags, np.array([lag_correlation(a, b, int(d), mask) for d in lags])


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_OFFSET_FRAMES,
             valid: Optional[np.ndarray] = None) -> tuple[int, float]:
    """The lag with the highest correlation and that correlation."""
    lags, curve = correlation_curve(a, b, max_lag, valid)
    i = int(np.argmax(curve))
    return int(lags[i]), float(curve[i])


def max_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> float:
    """Largest correlation of two curves over lags -max_lag..max_lag, without high-pass (for
    telling whether two driving curves are near copies)."""
    _, curve = correlation_curve(a, b, max_lag, highpass_frames=None)
    return float(curve.max()) if curve.size else 0.0


def correlation_sync(bundle):
    """A `SyncResult` from the mouth-opening / loudness correlation of a bundle (for features
    without the learned sync columns): distance = 1 - r per offset, LSE-style figures on it."""
    from .result import SyncResult
    fps = bundle.spec.fps
    spec = bundle.spec
    if "mouth_open" not in spec.visual_names or "log_rms" not in spec.audio_names:
        return SyncResult(False, "these features have no mouth opening", fps=fps,
                          method="correlation")
    mouth = np.where(bundle.valid, bundle.visual_column("mouth_open"), np.nan)
    level = bundle.audio_column("log_rms").astype(float)
    reason = bundle.unjudged.get("lip_sync")
    if reason is None and bundle.valid.sum() < 0.5 * fps:
        reason = "the face is visible for less than 0.5 s"
    if reason is not None:
        return SyncResult(False, reason, fps=fps, mouth_open=mouth, audio_level=level,
                          method="correlation")
    lags, r = correlation_curve(np.nan_to_num(mouth), level, valid=bundle.valid)
    distance = 1.0 - r
    best = int(np.argmin(distance))
    return SyncResult(True, "", int(lags[best]), float(np.median(distance) - distance[best]),
                      float(distance[best]), fps, lags, distance, mouth_open=mouth,
                      audio_level=level, method="correlation", reliable_confidence=0.3)
