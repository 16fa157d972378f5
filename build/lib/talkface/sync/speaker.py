"""Which of several faces is speaking: the one whose lips move with the speech.

With the learned sync model, each face track's sync confidence on the clip's audio decides; without
one (or where it cannot judge), the correlation of the lip gap with the loudness does, which is
enough to tell a talking face from a listening or still one. No decision (None: the caller falls
back to the largest face) when there is no speech or no face stands out.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..constants import HOP
from ..faces.mesh import LIPS, LOWER_LIP_INNER, UPPER_LIP_INNER
from ..measures import loudness_db, speech_mask
from .correlation import best_lag

MARGIN = 0.05  # a speaker must beat the next face by this much


def lip_gap(lips: np.ndarray) -> np.ndarray:
    """Inner lip gap per frame from (T, 40, 2) pose-free lip points (NaN where absent)."""
    upper, lower = LIPS.index(UPPER_LIP_INNER), LIPS.index(LOWER_LIP_INNER)
    return np.linalg.norm(lips[:, upper] - lips[:, lower], axis=1)


def choose_speaker(candidates: list[tuple[int, tuple[np.ndarray, np.ndarray]]],
                   audio: Optional[np.ndarray], fps: float, sample_rate: int,
                   sync_model=None) -> Optional[int]:
    """candidates: (track id, (lips (T, 40, 2), mouth crops (T, h, w))) -> the speaker's id."""
    if audio is None or not candidates:
        return None
    n = len(candidates[0][1][0])
    hop = int(round(sample_rate / fps)) if sample_rate else HOP
    level = loudness_db(audio, n, hop)
    if speech_mask(level).mean() < 0.1:
        return None
    scores = []
    for track_id, (lips, mouths) in candidates:
        valid = np.isfinite(lips).all(axis=(1, 2))
        if valid.sum() < 0.25 * fps:
            scores.append((-np.inf, track_id))
            continue
        if sync_model is not None:
            score = sync_model.speaking_score(lips, mouths, valid, audio)
        else:
            gap = np.where(valid, lip_gap(np.nan_to_num(lips)), 0.0)
            score = best_lag(gap, level, max_lag=3, valid=valid)[1]
        scores.append((float(score), track_id))
    scores.sort(reverse=True)
    if len(scores) == 1 or scores[0][0] - scores[1][0] >= MARGIN:
        return scores[0][1] if np.isfinite(scores[0][0]) else None
    return None
