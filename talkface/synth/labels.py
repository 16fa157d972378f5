"""Ground-truth labels of the synthetic benchmark: documented, monotone, versioned formulas.

Every degradation has one strength parameter x >= 0 (0 = clean) and a quality factor

    q(x) = 1 / (1 + (x / x50) ** k)          in (0, 1], q(0) = 1, never rising as x grows,

where x50 is the strength judged "half as good" and k sets how sharply quality falls. The tasks:

    lip_sync         = q_offset * q_frozen_mouth * q_swap_mix * q_other_speaker * q_mouth_time
                       * q_frozen_lower * sqrt(q_freeze)
    visual_quality   = q_source * q_blur * q_crf * q_noise * q_lowres_mouth * q_colour_mismatch
                       * q_mouth_blur * q_face_smoothing
    temporal_quality = q_shake * q_freeze * q_flicker * q_region_jitter * q_texture_flicker
                       * q_frame_repeat * q_stiff_head * q_no_blinks * q_over_smooth
    overall          = lip_sync ** 0.4 * visual_quality ** 0.3 * temporal_quality ** 0.3

q_source is 1 unless the benchmark's sources were rated (`talkface.synth.sources`: a soft or
noisy recording is not a perfect one). Without audio lip sync cannot be judged: lip_sync is NaN
and overall = sqrt(visual * temporal).
Products and weighted geometric means of non-increasing factors are non-increasing, so every label
is monotone in every parameter. A frozen frame cannot be in sync, hence sqrt(q_freeze) in lip_sync.

Audio-visual offset quality follows ITU-R BT.1359-1 (`talkface.measures.q_offset`: audio early
is noticed sooner than audio late; positive = audio late). The curves, the freeze constants and the
overall combination are `talkface.measures`' own, shared with the baseline and the scorer.

Strengths are not sampled directly: a target score is drawn uniformly in [q(x_max), 1] and
inverted, x = x50 * (1/q - 1) ** (1/k), so the labels cover the range evenly instead of piling up
near 1.0. Change any constant here and bump LABEL_VERSION (and REAL_LABEL_VERSION: the
real-footage benchmark shares these factors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..constants import MAX_OFFSET_FRAMES
from ..measures import (FREEZE_K, FREEZE_X50, combine_overall, invert_curve, offset_for,
                        q_curve, q_offset)
from ..tasks import TASKS

LABEL_VERSION = "synth-labels-1"
REAL_LABEL_VERSION = "real-labels-2"  # 2: seven more generator-like factors
BASE_CRF = 18  # every clip is encoded at least this hard; crf strength is crf - BASE_CRF


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
    "freeze_fraction": Factor("freeze_fraction", "temporal_quality", FREEZE_X50, FREEZE_K, 0.6),
    "flicker_amp": Factor("flicker_amp", "temporal_quality", 0.06, 2.0, 0.3),
    # the artifacts real generators leave (`talkface.synth.real`); 0 on the puppet benchmark
    "other_speaker": Factor("other_speaker", "lip_sync", 0.40, 2.0, 1.0),
    "mouth_time": Factor("mouth_time", "lip_sync", 0.40, 2.0, 1.0),
    "frozen_lower": Factor("frozen_lower", "lip_sync", 0.35, 2.0, 1.0),
    "lowres_mouth": Factor("lowres_mouth", "visual_quality", 1.5, 2.0, 3.0),
    "colour_mismatch": Factor("colour_mismatch", "visual_quality", 0.08, 2.0, 0.3),
    "region_jitter": Factor("region_jitter", "temporal_quality", 1.5, 2.0, 6.0),
    # more of what generators get wrong (real-labels-2): a smeared mouth, GAN-smoothed skin,
    # texture flicker, frame repeats at an encoder's cadence, a stiff head, eyes that never
    # blink, motion smoothed into ghosting
    "mouth_blur": Factor("mouth_blur", "visual_quality", 2.0, 2.0, 8.0),
    "face_smoothing": Factor("face_smoothing", "visual_quality", 0.5, 2.0, 1.0),
    "texture_flicker": Factor("texture_flicker", "temporal_quality", 0.3, 2.0, 1.0),
    "frame_repeat": Factor("frame_repeat", "temporal_quality", FREEZE_X50, FREEZE_K, 0.5),
    "stiff_head": Factor("stiff_head", "temporal_quality", 0.5, 2.0, 1.0),
    "no_blinks": Factor("no_blinks", "temporal_quality", 0.6, 2.0, 1.0),
    "over_smooth": Factor("over_smooth", "temporal_quality", 1.5, 2.0, 4.0),
}
LIP_FACTORS = [n for n, f in FACTORS.items() if f.task == "lip_sync"]
VISUAL_FACTORS = [n for n, f in FACTORS.items() if f.task == "visual_quality"]
TEMPORAL_FACTORS = [n for n, f in FACTORS.items() if f.task == "temporal_quality"]
PARAMS = ("offset_frames",) + tuple(FACTORS)
# the puppet benchmark's condition names -> the parameter each one sets (the real-footage
# benchmark names its conditions by the parameter itself)
CONDITION_PARAM = {"offset": "offset_frames", "frozen_mouth": "frozen_mouth",
                   "swap_mix": "swap_mix", "blur": "blur_sigma", "crf": "crf",
                   "noise": "noise_sigma", "shake": "shake_px", "freeze": "freeze_fraction",
                   "flicker": "flicker_amp"}
NEUTRAL = {"offset_frames": 0.0, **{f.param: f.neutral for f in FACTORS.values()}}


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


def compute_labels(params: dict, has_audio: bool = True,
                   source_quality: float = 1.0) -> dict[str, float]:
    """The four task labels in [0, 1] from a full or partial parameter dict (missing = clean).
    `source_quality`: the recording's own visual quality before any degradation
    (`talkface.synth.sources`; 1.0 = as good as the best sources)."""
    p = {**NEUTRAL, **params}
    q = {name: q_factor(name, p[name]) for name in FACTORS}
    visual = source_quality * math.prod(q[n] for n in VISUAL_FACTORS)
    temporal = math.prod(q[n] for n in TEMPORAL_FACTORS)
    lip = q_offset(p["offset_frames"]) * math.prod(q[n] for n in LIP_FACTORS) \
        * q["freeze_fraction"] ** 0.5 if has_audio else float("nan")
    return {"lip_sync": lip, "visual_quality": visual, "temporal_quality": temporal,
            "overall": combine_overall(lip, visual, temporal)}
