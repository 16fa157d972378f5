"""Generated look: how much a clip's face behaves like a generator output rather than a real
recording, as a logistic model on time-pooled face features reads it.

The measured signals (`talkface.signals`) each look at one thing a generator can get wrong; taken
one by one, none of them separates the footage pool's generator outputs from its real recordings
(the best single signal reaches an AUC of about 0.63: generator outputs are on median *sharper*
and less noisy than real recordings). What does separate them is the joint pattern of the face
stage's per-frame columns over time: how sharpness, noise, colour, pose and the mouth's shape
sit and move together. This module turns a clip's valid frames into a fixed vector of such
statistics (per non-landmark visual column: its mean, its spread, the spread of its frame-to-
frame change and the mean size of its second difference) and a checkpoint's `Realism` into the
probability that the clip is a generator output.

`Realism` is plain numbers stored with the checkpoint (`meta.json`, calibration `realism`): per
statistic the 101 percentiles of the clips it was fitted on (each value is read as a rank, then
as a normal score, so one long-tailed column cannot dominate) and the logistic weights. It is
fitted by `train.realism` on real recordings and generator outputs, and measured there with
whole generators and whole real sources held out. `talkface.predict` adds its probability to a
clip's signals as `generated_look`, where the checkpoint's penalties (`overall`) read it like
any other signal.

    realism = Realism.from_meta(meta["calibration"]["realism"])
    p = realism.probability(visual, valid)      # 0..1, None for too few face frames
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Optional, Sequence

import numpy as np

MIN_FRAMES = 8
STATS = ("mean", "std", "dstd", "d2")  # per column: level, spread, change, roughness of change
LANDMARK_PREFIXES = ("face_x", "face_y", "lip_x", "lip_y")  # identity- and pose-specific: left out
RANK_EDGE = 0.005  # ranks are clipped to [0.5%, 99.5%] before the normal score
_NORMAL = NormalDist()


def pooled_columns(visual_names: Sequence[str]) -> list[int]:
    """Indices of the visual columns the statistics are taken over (all but raw landmarks)."""
    return [i for i, n in enumerate(visual_names) if not n.startswith(LANDMARK_PREFIXES)]


def statistic_names(visual_names: Sequence[str]) -> list[str]:
    return [f"{visual_names[i]}_{s}" for i in pooled_columns(visual_names) for s in STATS]


def clip_statistics(visual: np.ndarray, valid: np.ndarray, columns: Sequence[int]
                    ) -> Optional[np.ndarray]:
    """(len(columns) * 4,) statistics of the face frames, column-major in `STATS` order; None
    with fewer than MIN_FRAMES face frames."""
    frames = np.asarray(visual, np.float64)[np.asarray(valid, bool)][:, list(columns)]
    if frames.shape[0] < MIN_FRAMES:
        return None
    change = np.diff(frames, axis=0)
    stats = np.stack([frames.mean(0), frames.std(0), change.std(0),
                      np.abs(np.diff(change, axis=0)).mean(0)], axis=1)
    return stats.reshape(-1)


def normal_scores(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each column of `values` (N, D) as a normal score of its rank among the fitted clips
    (`quantiles`, (D, 101) percentiles); NaN becomes the median (score 0)."""
    values = np.atleast_2d(np.asarray(values, np.float64))
    grid = np.linspace(0.0, 1.0, quantiles.shape[1])
    out = np.zeros_like(values)
    for j in range(values.shape[1]):
        q = quantiles[j]
        rank = (np.interp(values[:, j], q, grid, left=0.0, right=1.0)
                + 1.0 - np.interp(-values[:, j], -q[::-1], grid, left=0.0, right=1.0)) / 2
        rank = np.clip(np.where(np.isfinite(rank), rank, 0.5), RANK_EDGE, 1 - RANK_EDGE)
        out[:, j] = [_NORMAL.inv_cdf(float(r)) for r in rank]
    return out


@dataclass
class Realism:
    """A fitted generated-look model (see the module docstring)."""

    columns: list[int]  # visual column indices the statistics are taken over
    names: list[str]  # statistic names, for people reading meta.json
    quantiles: np.ndarray  # (D, 101)
    coef: np.ndarray  # (D,)
    intercept: float
    note: str = ""
    report: dict = field(default_factory=dict)  # held-out figures from train.realism

    def probability_of(self, stats: np.ndarray) -> np.ndarray:
        """Probabilities for statistics (N, D) (clip_statistics rows)."""
        z = normal_scores(stats, self.quantiles) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def probability(self, visual: np.ndarray, valid: np.ndarray) -> Optional[float]:
        """The clip's generated look, 0 (like real recordings) .. 1 (like generator outputs);
        None with too few face frames."""
        stats = clip_statistics(visual, valid, self.columns)
        if stats is None:
            return None
        return round(float(self.probability_of(stats[None])[0]), 6)

    def to_meta(self) -> dict:
        return {"columns": list(map(int, self.columns)), "names": list(self.names),
                "quantiles": [[round(float(v), 6) for v in row] for row in self.quantiles],
                "coef": [round(float(v), 6) for v in self.coef],
                "intercept": round(float(self.intercept), 6), "note": self.note,
                "report": self.report}

    @classmethod
    def from_meta(cls, m: dict) -> "Realism":
        return cls(list(m["columns"]), list(m["names"]), np.asarray(m["quantiles"], np.float64),
                   np.asarray(m["coef"], np.float64), float(m["intercept"]), m.get("note", ""),
                   m.get("report", {}))
