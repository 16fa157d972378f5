"""One home for each quality measure: defined once here, imported by the benchmark's labels, the
no-learning baseline, the feature extractor, the API and the app.

- Quality curves: q(x) = 1 / (1 + (x / x50) ** k), the shape every factor's quality takes.
- Audio-visual offset quality after ITU-R BT.1359-1 (1998): audio early is noticed sooner than
  audio late (detectable at 45 ms early / 125 ms late, acceptable to 90 / 185 ms).
- Freeze: a face frame whose grey crop differs from the previous one by less than FREEZE_DIFF.
- The overall combination of the three aspects (a weighted geometric mean).
- Image measures on grey crops: sharpness (log Laplacian variance), noise (Immerkaer's fast
  estimator, J. Immerkaer, "Fast Noise Variance Estimation", CVIU 1996) and blockiness (luminance
  jumps on the 8x8 coding grid over jumps elsewhere: a simplified Wang-Bovik-Evans measure).
- Loudness: RMS level in dB per video frame, centred on the frame's instant.
- A high-pass (minus a moving average) for curves whose slow drift should not count.

AV timing itself (offsets, correlations, the learned sync model) lives in `talkface.sync`.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .constants import FPS, HOP, MAX_OFFSET_FRAMES
from .tasks import OVERALL_WEIGHTS

# ---- quality curves --------------------------------------------------------------------------


def q_curve(x: float, x50: float, k: float) -> float:
    """1 / (1 + (x / x50) ** k) for x >= 0 (negative x counts as 0): 1 at 0, 0.5 at x50."""
    return 1.0 / (1.0 + (max(x, 0.0) / x50) ** k)


def invert_curve(q: float, x50: float, k: float) -> float:
    """The x with q_curve(x) = q, for q in (0, 1]."""
    q = min(max(q, 1e-6), 1.0)
    return x50 * (1.0 / q - 1.0) ** (1.0 / k)


# ---- audio-visual offset (ITU-R BT.1359-1) ---------------------------------------------------

EARLY_DETECT_MS, EARLY_ACCEPT_MS = 45.0, 90.0
LATE_DETECT_MS, LATE_ACCEPT_MS = 125.0, 185.0


def offset_curve(audio_late: bool) -> tuple[float, float]:
    """(x50 in ms, k) of the offset quality on one side: q = 0.5 at the acceptability threshold
    and q = 0.8 at the detectability threshold, so k = ln(1/4) / ln(detect / accept)."""
    detect, accept = (LATE_DETECT_MS, LATE_ACCEPT_MS) if audio_late \
        else (EARLY_DETECT_MS, EARLY_ACCEPT_MS)
    return accept, math.log(0.25) / math.log(detect / accept)


def q_offset(offset_frames: float, fps: float = FPS) -> float:
    """Quality of an AV offset in frames (positive = audio late)."""
    x50, k = offset_curve(offset_frames > 0)
    return q_curve(abs(offset_frames) * 1000.0 / fps, x50, k)


def offset_for(target: float, audio_late: bool, fps: float = FPS) -> float:
    """The signed offset in frames whose `q_offset` equals `target`, capped at
    MAX_OFFSET_FRAMES (the largest offset the sync search can measure)."""
    x50, k = offset_curve(audio_late)
    frames = min(invert_curve(target, x50, k) * fps / 1000.0, MAX_OFFSET_FRAMES)
    return frames if audio_late else -frames


# ---- freezes ---------------------------------------------------------------------------------

FREEZE_DIFF = 1e-3  # mean |grey difference| / 255 below which a face frame repeats the last
FREEZE_X50, FREEZE_K = 0.15, 2.0  # temporal quality halves when 15% of frames are repeats


def freeze_fraction(frame_diff: np.ndarray, valid: np.ndarray) -> float:
    """Share of frames (with a face, after one with a face) that repeat the previous frame."""
    valid = np.asarray(valid, bool)
    both = valid[1:] & valid[:-1]
    diffs = np.asarray(frame_diff, float)[1:][both]
    return float(np.mean(diffs < FREEZE_DIFF)) if diffs.size else 0.0


# ---- the overall combination -----------------------------------------------------------------

def combine_overall(lip_sync: float, visual: float, temporal: float) -> float:
    """Weighted geometric mean of the aspects (weights from the task table,
    `talkface.tasks.OVERALL_WEIGHTS`); without a lip-sync judgement (no audio), the
    geometric mean of visual and temporal quality."""
    if lip_sync is None or not math.isfinite(lip_sync):
        return math.sqrt(visual * temporal)
    w = OVERALL_WEIGHTS
    return lip_sync ** w["lip_sync"] * visual ** w["visual_quality"] \
        * temporal ** w["temporal_quality"]


# ---- image measures (grey crops, float32 0-255) ----------------------------------------------

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def sharpness(gray: np.ndarray) -> float:
    """log(1 + variance of the Laplacian)."""
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return float(np.log1p(float(std[0, 0]) ** 2))


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer's estimate of the Gaussian noise sigma (grey levels)."""
    h, w = gray.shape
    residual = cv2.filter2D(gray, -1, _IMMERKAER)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * cv2.norm(residual, cv2.NORM_L1) / (6.0 * (w - 2) * (h - 2)))


def blockiness(gray: np.ndarray) -> float:
    """Mean luminance jump across 8x8 block edges over the mean jump elsewhere (1 = none);
    `gray` must start on the coding grid of the frame it was cut from. A uint8 image is
    measured in integers, without a float copy (the same value: float sums of whole grey levels
    are exact below 2 ** 24)."""
    if gray.dtype == np.uint8:
        if min(gray.shape) >= 2:
            return _blockiness_u8(gray)
        gray = gray.astype(np.float32)
    dx = np.abs(gray[:, 1:] - gray[:, :-1])
    dy = np.abs(gray[1:, :] - gray[:-1, :])
    on = float(dx[:, 7::8].sum() + dy[7::8, :].sum())
    n_on = dx[:, 7::8].size + dy[7::8, :].size
    n_off = dx.size + dy.size - n_on
    if n_on == 0 or n_off == 0:
        return 1.0
    off = float(dx.sum() + dy.sum()) - on
    return (on / n_on + 1e-3) / (off / n_off + 1e-3)


def _blockiness_u8(gray: np.ndarray) -> float:
    h, w = gray.shape
    # |a - b| of uint8 is exact in uint8; column and row sums of those are exact in int32
    cols = cv2.reduce(cv2.absdiff(gray[:, 1:], gray[:, :-1]), 0, cv2.REDUCE_SUM,
                      dtype=cv2.CV_32S).ravel().astype(np.int64)
    rows = cv2.reduce(cv2.absdiff(gray[1:, :], gray[:-1, :]), 1, cv2.REDUCE_SUM,
                      dtype=cv2.CV_32S).ravel().astype(np.int64)
    on = float(cols[7::8].sum() + rows[7::8].sum())
    n_on = len(cols[7::8]) * h + len(rows[7::8]) * w
    n_off = (w - 1) * h + (h - 1) * w - n_on
    if n_on == 0 or n_off == 0:
        return 1.0
    off = float(cols.sum() + rows.sum()) - on
    return (on / n_on + 1e-3) / (off / n_off + 1e-3)


# ---- loudness and curves ---------------------------------------------------------------------

LEVEL_WINDOW = 1024  # samples (64 ms at 16 kHz) of RMS around each frame's instant
SILENCE_DB = -100.0


def loudness_db(audio: np.ndarray | None, n_frames: int, hop: int = HOP) -> np.ndarray:
    """RMS level (dB re full scale, floor -100) of the LEVEL_WINDOW samples centred on each
    frame's instant k * hop. (n_frames,) float32; silence (or no audio) is -100."""
    if audio is None or np.size(audio) == 0:
        return np.full(n_frames, SILENCE_DB, np.float32)
    y = np.asarray(audio, np.float32)
    half = LEVEL_WINDOW // 2
    padded = np.pad(y, (half, max(0, n_frames * hop + half - y.size)))
    power = np.concatenate([[0.0], np.cumsum(padded.astype(np.float64) ** 2)])
    starts = np.arange(n_frames) * hop
    mean = (power[starts + LEVEL_WINDOW] - power[starts]) / LEVEL_WINDOW
    return np.maximum(10 * np.log10(np.maximum(mean, 1e-10)), SILENCE_DB).astype(np.float32)


def speech_mask(level_db: np.ndarray, floor_db: float = -50.0, range_db: float = 30.0
                ) -> np.ndarray:
    """Frames loud enough to be speech: above `floor_db` and within `range_db` of the clip's
    loud frames (95th percentile), so background hiss in a quiet recording does not count."""
    level = np.asarray(level_db, float)
    if level.size == 0:
        return np.zeros(0, bool)
    return (level > floor_db) & (level > np.percentile(level, 95) - range_db)


def highpass(x: np.ndarray, width: int = 15) -> np.ndarray:
    """x minus its centred moving average over `width` frames (edges padded)."""
    x = np.asarray(x, np.float64)
    if x.size < 3:
        return x - x.mean() if x.size else x
    width = min(width, x.size)
    smooth = np.convolve(np.pad(x, width // 2, mode="edge"), np.ones(width) / width, "valid")
    return x - smooth[:x.size]

