"""Ground-truth labels of the synthetic benchmark: documented, monotone, versioned formulas.

Every degradation has one strength parameter x >= 0 (0 = clean) and a quality factor

    q(x) = 1 / (1 + (x / x50) ** k)          in (0, 1], q(0) = 1, never rising as x grows,

where x50 is the strength judged "half as good" and k sets how sharply quality falls. The tasks:

    lip_sync         = q_offset * q_frozen_mouth * q_swap_mix * sqrt(q_freeze)
    visual_quality   = q_blur * q_crf * q_noise
    temporal_quality = q_shake * q_freeze * q_flicker
    overall          = lip_sync ** 0.4 * visual_quality ** 0.3 * temporal_quality ** 0.3

(without audio lip sync cannot be judged: lip_sync is NaN and overall = sqrt(visual * temporal)).
Products and weighted geometric means of non-increasing factors are non-increasing, so every label
is monotone in every parameter. A frozen frame cannot be in sync, hence sqrt(q_freeze) in lip_sync.

Audio-visual offset follows ITU-R BT.1359-1 (1998), which found the asymmetry that audio early is
noticed sooner than audio late. Sign: positive = audio late (audio lags video). Thresholds:

    audio early: detectable at 45 ms, acceptable up to 90 ms
    audio late:  detectable at 125 ms, acceptable up to 185 ms

On each side x50 is the acceptability threshold (q = 0.5 there) and k is chosen so that q = 0.8 at
the detectability threshold: k = ln(1/4) / ln(detect / accept), i.e. k = 2 early, k = 3.54 late.

Strengths are not sampled directly: a target score is drawn uniformly in [q(x_max), 1] and
inverted, x = x50 * (1/q - 1) ** (1/k), so the labels cover the range evenly instead of piling up
near 1.0. Change any constant here and bump LABEL_VERSION.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LABEL_VERSION = "synth-labels-1"
TASKS = ("lip_sync", "visual_quality", "temporal_quality", "overall")
FPS = 25.0
BASE_CRF = 18  # every clip is encoded at least this hard; crf strength is crf - BASE_CRF

# BT.1359 thresholds in milliseconds (magnitudes)
EARLY_DETECT_MS, EARLY_ACCEPT_MS = 45.0, 90.0
LATE_DETECT_MS, LATE_ACCEPT_MS = 125.0, 185.0
MAX_OFFSET_FRAMES = 15


@dataclass(frozen=True)
class Factor:
    """One degradation: manifest column `param`, the task it lowers, and its q(x) constants."""

    param: str
    task: str
    x50: float
    k: float
    max_strength: float
    neutral: float = 0.0  # parameter value of a clean clip


FACTORS = {
    "frozen_mouth": Factor("frozen_mouth", "lip_sync", 0.35, 2.0, 1.0),
    "swap_mix": Factor("swap_mix", "lip_sync", 0.40, 2.0, 1.0),
    "blur_sigma": Factor("blur_sigma", "visual_quality", 1.5, 2.0, 6.0),
    "crf": Factor("crf", "visual_quality", 20.0, 4.0, 33.0, neutral=BASE_CRF),
    "noise_sigma": Factor("noise_sigma", "visual_quality", 10.0, 2.0, 40.0),
    "shake_px": Factor("shake_px", "temporal_quality", 2.0, 2.0, 8.0),
    "freeze_fraction": Factor("freeze_fraction", "temporal_quality", 0.15, 2.0, 0.6),
    "flicker_amp": Factor("flicker_amp", "temporal_quality", 0.06, 2.0, 0.3),
}
PARAMS = ("offset_frames",) + tuple(FACTORS)
NEUTRAL = {"offset_frames": 0.0, **{f.param: f.neutral for f in FACTORS.values()}}


def q_curve(x: float, x50: float, k: float) -> float:
    """1 / (1 + (x / x50) ** k) for x >= 0 (negative x counts as 0)."""
    return 1.0 / (1.0 + (max(x, 0.0) / x50) ** k)


def invert_curve(q: float, x50: float, k: float) -> float:
    """The strength x with q_curve(x) = q, for q in (0, 1]."""
    q = min(max(q, 1e-6), 1.0)
    return x50 * (1.0 / q - 1.0) ** (1.0 / k)


def _offset_constants(offset_frames: float) -> tuple[float, float]:
    detect, accept = (LATE_DETECT_MS, LATE_ACCEPT_MS) if offset_frames > 0 \
        else (EARLY_DETECT_MS, EARLY_ACCEPT_MS)
    return accept, math.log(0.25) / math.log(detect / accept)


def q_offset(offset_frames: float) -> float:
    """BT.1359 quality of an offset in frames at 25 fps (positive = audio late)."""
    x50, k = _offset_constants(offset_frames)
    return q_curve(abs(offset_frames) * 1000.0 / FPS, x50, k)


def offset_for(target: float, audio_late: bool) -> float:
    """Offset in frames (signed) whose q_offset equals `target`, capped at MAX_OFFSET_FRAMES."""
    x50, k = _offset_constants(1.0 if audio_late else -1.0)
    frames = min(invert_curve(target, x50, k) * FPS / 1000.0, MAX_OFFSET_FRAMES)
    return frames if audio_late else -frames


def q_factor(name: str, value: float) -> float:
    f = FACTORS[name]
    return q_curve(value - f.neutral, f.x50, f.k)


def strength_for(name: str, target: float) -> float:
    """Parameter value of factor `name` whose quality factor equals `target` (capped at max)."""
    f = FACTORS[name]
    return f.neutral + min(invert_curve(target, f.x50, f.k), f.max_strength)


def min_quality(name: str) -> float:
    """The lowest reachable quality factor of `name` (at its maximum strength)."""
    if name == "offset_frames":
        return max(q_offset(MAX_OFFSET_FRAMES), q_offset(-MAX_OFFSET_FRAMES))
    f = FACTORS[name]
    return q_curve(f.max_strength, f.x50, f.k)


def compute_labels(params: dict, has_audio: bool = True) -> dict[str, float]:
    """The four task labels in [0, 1] from a full or partial parameter dict (missing = clean)."""
    p = {**NEUTRAL, **params}
    q = {name: q_factor(name, p[name]) for name in FACTORS}
    visual = q["blur_sigma"] * q["crf"] * q["noise_sigma"]
    temporal = q["shake_px"] * q["freeze_fraction"] * q["flicker_amp"]
    if not has_audio:
        return {"lip_sync": float("nan"), "visual_quality": visual,
                "temporal_quality": temporal, "overall": math.sqrt(visual * temporal)}
    lip = q_offset(p["offset_frames"]) * q["frozen_mouth"] * q["swap_mix"] \
        * math.sqrt(q["freeze_fraction"])
    return {"lip_sync": lip, "visual_quality": visual, "temporal_quality": temporal,
            "overall": lip ** 0.4 * visual ** 0.3 * temporal ** 0.3}
