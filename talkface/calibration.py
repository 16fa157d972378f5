"""What a score means against other clips, and when not to trust it.

A checkpoint may carry three things fitted after training (`train.ship`), all stored in its
`meta.json` as plain numbers:

- `monotone`: per task, an increasing map from the model's raw score to the score users see,
  fitted by isotonic regression on the validation split (the shape of the labels is kept, the
  model's shrinkage towards the middle is undone, so a clean recording can reach the top of the
  scale). `talkface.predict` applies it, so every metric on the card includes it. Maps fitted
  since talkface 0.3 (`"shape": "pchip"`) are smooth and strictly increasing: a monotone cubic
  (Fritsch-Carlson, scipy's PchipInterpolator) through the isotonic fit's knots, made strictly
  increasing, with tails that approach the task's range without reaching it, so two clips the
  model tells apart never share a score. Older maps (no shape) are the isotonic steps as they
  were.
- `reference`: per task, the 101 percentiles of the scores of a reference set (real recordings
  with and without degradations, and generator outputs), so a score can be read as "better than
  72% of reference clips", as DOVER reports it.
- `ood`: the training clips' per-feature centre and spread of clip-mean features; a clip whose
  features lie further from them than 99% of the training clips is flagged as out of the
  training distribution, naming the feature groups that differ most.
- `signals`: per measured signal (`talkface.signals`), the 101 percentiles of its value on clean
  real recordings, so a clip's signal reads as "below 97% of real recordings".
- `penalties`: per task, what measured signals take off the score, fitted on the training split
  (`train.signals`): a signal costs nothing while it stays within the real recordings' typical
  range (their 10th-90th percentile) and up to `weight` as it leaves it,
  weight * (1 - exp(-excess / spread)), with `spread` the distance from their median to that
  edge. Applied after the monotone map, by `talkface.predict`, so card metrics include it.
- `realism`: the generated-look model (`talkface.realism`, fitted by `train.realism`), whose
  probability `talkface.predict` adds to a clip's signals as `generated_look`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .realism import Realism

OOD_QUANTILE = 99.0
Z_CLIP = 10.0


STRICT_STEP = 1e-3  # the smallest rise between two knots of a smooth map (share of the range)
TAIL_RATE = np.log(2) / 0.1  # beyond the end knots, half the room left is used per 0.1 raw


def fit_monotone(raw: np.ndarray, target: np.ndarray, knots: int = 24, low: float = 0.0,
                 high: float = 1.0) -> dict:
    """An increasing map from raw scores to targets in [low, high]: isotonic regression, kept as
    up to `knots` (x, y) points and applied as a smooth, strictly increasing curve."""
    from sklearn.isotonic import IsotonicRegression
    ok = np.isfinite(raw) & np.isfinite(target)
    iso = IsotonicRegression(out_of_bounds="clip", increasing=True)
    iso.fit(raw[ok], target[ok])
    xs = np.unique(np.quantile(raw[ok], np.linspace(0, 1, knots)))
    ys = strictly_increasing(iso.predict(xs), low, high)
    return {"x": [round(float(x), 6) for x in xs], "y": [round(float(y), 6) for y in ys],
            "shape": "pchip", "range": [low, high]}


def strictly_increasing(y: np.ndarray, low: float, high: float) -> np.ndarray:
    """`y` (non-decreasing) with every step at least STRICT_STEP of the range, kept inside
    (low, high): the isotonic fit's flat stretches become gentle slopes."""
    n, span = len(y), high - low
    step = STRICT_STEP * span
    y = np.clip(np.asarray(y, float), low + step, high - step)
    floor = low + step * (1 + np.arange(n))
    ceiling = high - step * (n - np.arange(n))
    return np.clip(np.maximum.accumulate(np.maximum(y, floor) - step * np.arange(n))
                   + step * np.arange(n), floor, ceiling)


def smooth_monotone(curve: dict, low: float = 0.0, high: float = 1.0) -> dict:
    """An isotonic map stored as steps (talkface 0.2) as the smooth, strictly increasing curve
    through the same knots (what `fit_monotone` now returns)."""
    if curve.get("shape") == "pchip":
        return curve
    ys = strictly_increasing(np.asarray(curve["y"], float), low, high)
    return {"x": list(curve["x"]), "y": [round(float(y), 6) for y in ys], "shape": "pchip",
            "range": [low, high]}


def apply_monotone(curve: Optional[dict], values: np.ndarray) -> np.ndarray:
    """The score users see for raw scores `values` (unchanged without a map)."""
    if not curve:
        return values
    if curve.get("shape") != "pchip":  # maps fitted before talkface 0.3: isotonic steps
        return np.interp(values, curve["x"], curve["y"])
    from scipy.interpolate import PchipInterpolator
    x, y = np.asarray(curve["x"], float), np.asarray(curve["y"], float)
    low, high = curve.get("range", (0.0, 1.0))
    values = np.asarray(values, float)
    if len(x) < 2:
        return np.full_like(values, y[0] if len(y) else (low + high) / 2)
    inside = PchipInterpolator(x, y, extrapolate=False)(np.clip(values, x[0], x[-1]))
    # tails: leave the end knots with the end slopes and bend towards the range's bounds
    slope_lo = max((y[1] - y[0]) / max(x[1] - x[0], 1e-9), 1e-6)
    slope_hi = max((y[-1] - y[-2]) / max(x[-1] - x[-2], 1e-9), 1e-6)
    room_lo, room_hi = max(y[0] - low, 1e-9), max(high - y[-1], 1e-9)
    rate_lo = min(slope_lo / room_lo, TAIL_RATE)  # never faster than half the room per 0.1
    rate_hi = min(slope_hi / room_hi, TAIL_RATE)
    below = y[0] - room_lo * -np.expm1(-rate_lo * np.maximum(x[0] - values, 0))
    above = y[-1] + room_hi * -np.expm1(-rate_hi * np.maximum(values - x[-1], 0))
    return np.where(values < x[0], below, np.where(values > x[-1], above, inside))


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
    signals: dict = field(default_factory=dict)  # signal -> 101 percentiles on real recordings
    signals_note: str = ""
    penalties: dict = field(default_factory=dict)  # task -> [{signal, weight, ...}]
    realism: Optional["Realism"] = None  # `talkface.realism`: the generated-look model

    @classmethod
    def from_meta(cls, c: dict) -> "Calibration":
        """From `to_meta()`'s dict (a checkpoint's `meta.calibration`; {} for none)."""
        ood = c.get("ood") or {}
        return cls(c.get("monotone", {}), c.get("reference", {}), c.get("reference_note", ""),
                   np.asarray(ood["centre"]) if ood else None,
                   np.asarray(ood["scale"]) if ood else None,
                   float(ood.get("threshold", np.inf)), ood.get("groups", {}),
                   c.get("signals", {}), c.get("signals_note", ""), c.get("penalties", {}),
                   Realism.from_meta(c["realism"]) if c.get("realism") else None)

    def to_meta(self) -> dict:
        out = {"monotone": self.monotone, "reference": self.reference,
               "reference_note": self.reference_note}
        if self.signals:
            out["signals"], out["signals_note"] = self.signals, self.signals_note
        if self.penalties:
            out["penalties"] = self.penalties
        if self.realism is not None:
            out["realism"] = self.realism.to_meta()
        if self.ood_centre is not None:
            out["ood"] = {"centre": [round(float(v), 6) for v in self.ood_centre],
                          "scale": [round(float(v), 6) for v in self.ood_scale],
                          "threshold": round(self.ood_threshold, 4), "groups": self.ood_groups}
        return out

    def percentile(self, task: str, value: Optional[float]) -> Optional[float]:
        """Share (0-100) of reference clips that score below `value` (`share_below`: ties
        count half; exactly 0 or 100 only outside the reference clips' range)."""
        return share_below(self.reference.get(task), value)

    def signal_percentile(self, name: str, value: Optional[float]) -> Optional[float]:
        """Share (0-100) of the clean real recordings whose signal `name` is below `value`
        (ties count half, so a signal that is 0 on most recordings reads as typical)."""
        return share_below(self.signals.get(name), value)

    def penalty(self, task: str, signals: dict) -> float:
        """What the measured `signals` ({name: value}) take off `task`'s score (0 without
        penalties for that task)."""
        return float(sum(self.costs(task, signals).values()))

    def costs(self, task: str, signals: dict) -> dict[str, float]:
        """{signal: what it takes off `task`'s score}, every penalty term of the task."""
        return {term["signal"]: float(term["weight"] * excess(term, signals.get(term["signal"])))
                for term in self.penalties.get(task, ())}

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


def share_below(table: Optional[list], value: Optional[float]) -> Optional[float]:
    """Share (0-100) of a set, given as its 101 percentiles `table`, that lies below `value`;
    values equal to it count half (a score tied with the top quarter of the set is better than
    87.5% of it, not 100%). 0 below the set's smallest value, 100 above its largest, and only
    there. None without a table or a value."""
    if value is None or not table:
        return None
    table = np.asarray(table, float)
    if value < table[0]:
        return 0.0
    if value > table[-1]:
        return 100.0
    grid = np.linspace(0, 100, len(table))
    below = np.interp(value - 1e-12, table, grid, left=0.0, right=100.0)
    above = np.interp(value + 1e-12, table, grid, left=0.0, right=100.0)
    return float(min(max((below + above) / 2, 1e-6), 100 - 1e-6))


def fit_ood(summaries: np.ndarray, groups: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre, scale, threshold) from training clips' summaries (robust: median and MAD)."""
    centre = np.median(summaries, 0)
    scale = 1.4826 * np.median(np.abs(summaries - centre), 0) + 1e-3 * (summaries.std(0) + 1e-3)
    scale = np.maximum(scale, 1e-4)
    z = np.clip(np.abs((summaries - centre) / scale), 0, Z_CLIP)
    scores = np.sqrt(np.mean(z ** 2, 1))
    return centre, scale, float(np.percentile(scores, OOD_QUANTILE))


def percentiles(values) -> list[float]:
    """The 101 percentiles (0, 1, ..., 100) of `values` (finite ones), rounded for meta.json."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    return [round(float(v), 6) for v in np.percentile(values, np.arange(101))] if values.size \
        else []


def penalty_term(name: str, direction: str, table: list[float], edge: int = 10) -> dict:
    """A penalty term for signal `name` from its real-recording percentiles (weight 0 until
    fitted): the typical range ends at the `edge`-th / (100 - edge)-th percentile, `spread` is
    the distance from the median to that edge."""
    p10, p50, p90 = table[edge], table[50], table[100 - edge]
    spread = max(abs(p90 - p50), abs(p50 - p10), 1e-6)
    return {"signal": name, "direction": direction, "weight": 0.0, "low": round(p10, 6),
            "high": round(p90, 6), "spread": round(spread, 6)}


def excess(term: dict, value: Optional[float]) -> float:
    """0 inside the real recordings' typical range, rising towards 1 beyond it."""
    if value is None or not np.isfinite(value):
        return 0.0
    over = 0.0
    if term["direction"] in ("lower", "typical"):
        over = max(over, value - term["high"])
    if term["direction"] in ("higher", "typical"):
        over = max(over, term["low"] - value)
    return float(-np.expm1(-over / term["spread"]))


def fit_penalties(terms: list[dict], signals: list[dict], residual: np.ndarray) -> list[dict]:
    """Non-negative weights (scipy's NNLS) so that the penalties explain how far labels lie
    below the calibrated scores: min |E w + residual|, E the clips' excesses, residual = label -
    score (negative where the score is too high). Terms left at weight 0 are dropped."""
    from scipy.optimize import nnls
    if not terms or not len(residual):
        return []
    design = np.array([[excess(t, s.get(t["signal"])) for t in terms] for s in signals])
    weights, _ = nnls(design, -np.asarray(residual, float))
    return [{**t, "weight": round(float(w), 6)} for t, w in zip(terms, weights) if w > 1e-4]
