"""What a score means against other clips, and when not to trust it.

A checkpoint may carry three things fitted after training (`train.ship`), all stored in its
`meta.json` as plain numbers:

- `monotone`: per task, an increasing map from the model's raw score to the score users see,
  fitted by isotonic regression on the validation split (the shape of the labels is kept, the
  model's shrinkage towards the middle is undone, so a clean recording can reach the top of the
  scale). `talkface.predict` applies it, so every metric on the card includes it.
- `reference`: per task, the 101 percentiles of the scores of a reference set (real recordings
  with and without degradations, and generator outputs), so a score can be read as "better than
  72% of reference clips", as DOVER reports it.
- `ood`: the training clips' per-feature centre and spread of clip-mean features; a clip whose
  features lie further from them than 99% of the training clips is flagged as out of the
  training distribution, naming the feature groups that differ most.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

OOD_QUANTILE = 99.0
Z_CLIP = 10.0


def fit_monotone(raw: np.ndarray, target: np.ndarray, knots: int = 24) -> dict:
    """Isotonic (increasing) map from raw scores to targets, as up to `knots` (x, y) points."""
    from sklearn.isotonic import IsotonicRegression
    ok = np.isfinite(raw) & np.isfinite(target)
    iso = IsotonicRegression(out_of_bounds="clip", increasing=True)
    iso.fit(raw[ok], target[ok])
    xs = np.unique(np.quantile(raw[ok], np.linspace(0, 1, knots)))
    return {"x": [round(float(x), 6) for x in xs],
            "y": [round(float(y), 6) for y in iso.predict(xs)]}


def apply_monotone(curve: Optional[dict], values: np.ndarray) -> np.ndarray:
    if not curve:
        return values
    return np.interp(values, curve["x"], curve["y"])


def clip_summary(visual: np.ndarray, audio: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """One vector per clip: the mean of its (face) frames' features."""
    frames = valid if valid.any() else np.ones_like(valid)
    return np.concatenate([visual[frames].mean(0), audio[frames].mean(0)]).astype(np.float64)


@dataclass
class Calibration:
    monotone: dict = field(default_factory=dict)  # task -> {"x", "y"}
    reference: dict = field(default_factory=dict)  # task -> 101 percentiles
    reference_note: str = ""
    ood_centre: Optional[np.ndarray] = None
    ood_scale: Optional[np.ndarray] = None
    ood_threshold: float = np.inf
    ood_groups: dict = field(default_factory=dict)  # group -> [start, end) in the summary

    @classmethod
    def from_meta(cls, c: dict) -> "Calibration":
        """From `to_meta()`'s dict (a checkpoint's `meta.calibration`; {} for none)."""
        ood = c.get("ood") or {}
        return cls(c.get("monotone", {}), c.get("reference", {}), c.get("reference_note", ""),
                   np.asarray(ood["centre"]) if ood else None,
                   np.asarray(ood["scale"]) if ood else None,
                   float(ood.get("threshold", np.inf)), ood.get("groups", {}))

    def to_meta(self) -> dict:
        out = {"monotone": self.monotone, "reference": self.reference,
               "reference_note": self.reference_note}
        if self.ood_centre is not None:
            out["ood"] = {"centre": [round(float(v), 6) for v in self.ood_centre],
                          "scale": [round(float(v), 6) for v in self.ood_scale],
                          "threshold": round(self.ood_threshold, 4), "groups": self.ood_groups}
        return out

    def percentile(self, task: str, value: Optional[float]) -> Optional[float]:
        """Share (0-100) of reference clips that score below `value`."""
        table = self.reference.get(task)
        if value is None or not table:
            return None
        return float(np.interp(value, table, np.linspace(0, 100, len(table))))

    def distance(self, summary: np.ndarray) -> np.ndarray:
        z = (summary - self.ood_centre) / self.ood_scale
        return np.clip(np.abs(z), 0, Z_CLIP)

    def out_of_distribution(self, summary: np.ndarray) -> Optional[str]:
        """None, or why the clip's inputs look unlike the training clips."""
        if self.ood_centre is None:
            return None
        z = self.distance(summary)
        score = float(np.sqrt(np.mean(z ** 2)))
        if score <= self.ood_threshold:
            return None
        worst = sorted(((float(z[a:b].mean()), g) for g, (a, b) in self.ood_groups.items()),
                       reverse=True)[:2]
        named = " and ".join(g.replace("_", " ") for _, g in worst)
        return (f"the clip's features are unlike the training data (distance {score:.1f} vs "
                f"{self.ood_threshold:.1f} for 99% of training clips; most unusual: {named}): "
                f"treat its scores with caution")


def fit_ood(summaries: np.ndarray, groups: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre, scale, threshold) from training clips' summaries (robust: median and MAD)."""
    centre = np.median(summaries, 0)
    scale = 1.4826 * np.median(np.abs(summaries - centre), 0) + 1e-3 * (summaries.std(0) + 1e-3)
    scale = np.maximum(scale, 1e-4)
    z = np.clip(np.abs((summaries - centre) / scale), 0, Z_CLIP)
    scores = np.sqrt(np.mean(z ** 2, 1))
    return centre, scale, float(np.percentile(scores, OOD_QUANTILE))
