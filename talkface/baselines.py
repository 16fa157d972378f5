"""Baselines without learning: the row every learned model must beat.

- Audio-visual offset: the lag that maximises the Pearson correlation between the mouth opening
  and the speech envelope (log RMS), both high-passed (minus a 0.6 s moving average) so that slow
  drifts do not dominate. Sign convention as `talkface.synth.degrade.shift_audio`: positive = audio
  late, i.e. envelope[t + d] follows mouth[t]. Lip-sync confidence also needs the mouth to move
  (std of the high-passed mouth opening), because correlation alone ignores amplitude.
- Visual quality from the face crop: sharpness (log Laplacian variance), noise (Immerkaer) and
  blockiness (8x8 grid) columns of the FeatureBundle.
- Temporal quality: shake (frame-to-frame acceleration of the face box centre, high-passed),
  freezes (share of face frames identical to the previous one) and flicker (frame-to-frame jumps of
  face brightness and colour).

Each measure is mapped to a quality in [0, 1] with fixed, hand-set constants (read off clean
synthetic clips, not fitted) and combined with `talkface.measures`' curves and overall
combination, the ones the synthetic labels use. Columns are looked up by name in the bundle's
FeatureSpec.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .measures import FREEZE_K, FREEZE_X50, combine_overall, freeze_fraction, highpass, q_curve
from .measures import q_offset
from .sync.correlation import correlation_curve
from .tasks import TASKS


def _col(bundle, name: str) -> np.ndarray:
    return np.asarray(bundle.visual_column(name), np.float64)


def _valid_diff(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|x[t] - x[t-1]| where both frames are valid, NaN elsewhere. (T,)"""
    d = np.full(x.size, np.nan)
    both = valid[1:] & valid[:-1]
    d[1:][both] = np.abs(np.diff(x))[both]
    return d


def _shake(bundle) -> np.ndarray:
    """Per-frame jitter of the face's position in face sizes, smooth head motion removed: from
    the frame-to-frame shift of the `mesh` backend (in inter-ocular distances), or from the face
    box centre of the per-frame backends."""
    if "face_shift" in bundle.spec.visual_names:
        return np.abs(highpass(_col(bundle, "face_shift"), 5))
    size = np.maximum(_col(bundle, "face_size"), 1e-6)
    cx, cy = _col(bundle, "face_x"), _col(bundle, "face_y")
    return np.hypot(highpass(cx, 5), highpass(cy, 5)) / size


def baseline_signals(bundle) -> dict:
    """Per-frame curves the app plots, plus the offset correlation curve. Arrays are (T,) unless
    noted; NaN marks frames where a curve is undefined (no face)."""
    valid = np.asarray(bundle.valid, bool)
    mouth = _col(bundle, "mouth_open")
    env = np.asarray(bundle.audio_column("log_rms"), np.float64)
    offsets, curve = correlation_curve(mouth, env, valid=valid)
    offset = int(offsets[int(np.argmax(curve))])
    jitter = _shake(bundle)
    flicker = np.fmax.reduce([_valid_diff(_col(bundle, c), valid) for c in
                              ("face_brightness", "face_chroma_rg", "face_chroma_by")])
    nan = np.where(valid, 1.0, np.nan)
    return {"valid": valid, "mouth_open": mouth * nan, "audio_env": env,
            "offset_frames": offset, "offsets": offsets, "correlation": curve,
            "sharpness": _col(bundle, "face_sharpness") * nan,
            "noise": _col(bundle, "face_noise") * nan,
            "blockiness": _col(bundle, "face_blockiness") * nan,
            "shake": jitter * nan, "frame_diff": _col(bundle, "face_frame_diff") * nan,
            "flicker": flicker}


def baseline_measures(bundle, signals: Optional[dict] = None) -> dict[str, float]:
    """Clip-level measures (medians over face frames; NaN without faces)."""
    s = signals or baseline_signals(bundle)
    valid = s["valid"]
    if valid.sum() < 2:
        return {k: float("nan") for k in ("sync_peak", "offset_frames", "mouth_motion",
                                          "sharpness", "noise", "blockiness", "shake", "freeze",
                                          "flicker")}
    silent = "lip_sync" in bundle.unjudged
    return {"sync_peak": float("nan") if silent else float(np.max(s["correlation"])),
            "offset_frames": float("nan") if silent else float(s["offset_frames"]),
            "mouth_motion": float(np.std(highpass(s["mouth_open"][valid]))),
            "sharpness": float(np.nanmedian(s["sharpness"])),
            "noise": float(np.nanmedian(s["noise"])),
            "blockiness": float(np.nanmedian(s["blockiness"])),
            "shake": float(np.nanmedian(s["shake"])),
            "freeze": freeze_fraction(s["frame_diff"], valid),
            "flicker": float(np.nanmedian(s["flicker"]))}


def _logistic(x: float, centre: float, width: float) -> float:
    """Rising logistic in [0, 1]; NaN stays NaN."""
    return float(1.0 / (1.0 + math.exp(-(x - centre) / width))) if np.isfinite(x) else x


# Hand-set constants, read off clean synthetic clips (typical clean values in comments).
SYNC_PEAK_FLOOR, SYNC_PEAK_FULL = 0.15, 0.7  # clean: 0.7-0.95, frozen mouth: ~0.2
MOUTH_MOTION_FULL = 0.07  # clean: 0.05-0.09 (std of high-passed mouth_open, eye distances)
SHARPNESS_CENTRE, SHARPNESS_WIDTH = 4.4, 0.3  # clean: 5.0-6.3 (log Laplacian variance)
NOISE_CENTRE, NOISE_WIDTH = 1.1, 0.15  # clean: 0.3-0.8 (log1p Immerkaer sigma)
BLOCK_CENTRE, BLOCK_WIDTH = 0.15, 0.05  # clean: -0.05-0.07 (log grid/off-grid ratio)
SHAKE_CLEAN, SHAKE_X50 = 0.010, 0.012  # clean: 0.007-0.012 (face sizes per frame)
FLICKER_CLEAN, FLICKER_X50 = 0.008, 0.015  # clean: 0.002-0.012


def baseline_scores(bundle, measures: Optional[dict] = None) -> dict[str, float]:
    """The four task scores in [0, 1] (higher is better); NaN where a task cannot be judged
    (lip sync without audio, everything without a face)."""
    m = measures or baseline_measures(bundle)
    if math.isnan(m["sharpness"]):
        return {t: float("nan") for t in TASKS}
    visual = (_logistic(m["sharpness"], SHARPNESS_CENTRE, SHARPNESS_WIDTH)
              * (1 - _logistic(m["noise"], NOISE_CENTRE, NOISE_WIDTH))
              * (1 - _logistic(m["blockiness"], BLOCK_CENTRE, BLOCK_WIDTH)))
    temporal = (q_curve(m["shake"] - SHAKE_CLEAN, SHAKE_X50, 2.0)
                * q_curve(m["freeze"], FREEZE_X50, FREEZE_K)
                * q_curve(m["flicker"] - FLICKER_CLEAN, FLICKER_X50, 2.0))
    if math.isnan(m["sync_peak"]):
        return {"lip_sync": float("nan"), "visual_quality": visual,
                "temporal_quality": temporal, "overall": combine_overall(math.nan, visual,
                                                                         temporal)}
    # correlation ignores scale, so a half-frozen mouth correlates as well as a free one: the
    # mouth must also move as much as a speaking mouth does
    confidence = float(np.clip((m["sync_peak"] - SYNC_PEAK_FLOOR)
                               / (SYNC_PEAK_FULL - SYNC_PEAK_FLOOR), 0, 1)
                       * np.clip(m["mouth_motion"] / MOUTH_MOTION_FULL, 0, 1))
    lip = q_offset(m["offset_frames"]) * confidence
    return {"lip_sync": lip, "visual_quality": visual, "temporal_quality": temporal,
            "overall": combine_overall(lip, visual, temporal)}
