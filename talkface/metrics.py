"""Regression and ranking metrics for quality scores, defined once for training, evaluation,
comparison and the app: MSE, MAE, R2, Pearson (PLCC), Spearman (SRCC) and Kendall tau-b (KRCC).

`METRICS` is the one table of them: function, whether higher is better (as in pyiqa), whether
summary tables show it, and its label. Implemented in numpy (no scipy at runtime) and checked
against `scipy.stats` in tests/test_metrics.py. It lives in `talkface` (not `train`) because the
app shows metrics too, and `talkface` never imports `train`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, np.float64).ravel(), np.asarray(true, np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"pred has {pred.size} values, true has {true.size}")
    # unlabelled samples (NaN targets) and clips the scorer does not judge (NaN predictions, e.g.
    # lip sync without speech) are left out; `n` in `regression_metrics` says how many remain
    keep = np.isfinite(true) & np.isfinite(pred)
    return pred[keep], true[keep]


def mse(pred, true) -> float:
    pred, true = _pair(pred, true)
    return float(np.mean((pred - true) ** 2)) if pred.size else math.nan


def mae(pred, true) -> float:
    pred, true = _pair(pred, true)
    return float(np.mean(np.abs(pred - true))) if pred.size else math.nan


def r2(pred, true) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (can be negative; NaN if true is constant)."""
    pred, true = _pair(pred, true)
    total = float(np.sum((true - true.mean()) ** 2)) if true.size else 0.0
    if total == 0.0:
        return math.nan
    return 1.0 - float(np.sum((pred - true) ** 2)) / total


def pearson(pred, true) -> float:
    pred, true = _pair(pred, true)
    if pred.size < 2:
        return math.nan
    a, b = pred - pred.mean(), true - true.mean()
    denom = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return float(np.sum(a * b)) / denom if denom > 0 else math.nan


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy's 'average' method)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def srcc(pred, true) -> float:
    """Spearman rank correlation: Pearson of average ranks."""
    pred, true = _pair(pred, true)
    return pearson(rankdata(pred), rankdata(true)) if pred.size >= 2 else math.nan


def krcc(pred, true, chunk: int = 2048) -> float:
    """Kendall tau-b, counted over all pairs in row chunks (O(n^2) time, O(chunk * n) memory)."""
    pred, true = _pair(pred, true)
    n = pred.size
    if n < 2:
        return math.nan
    concordant = tied_pred = tied_true = total = 0.0
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        dp = np.sign(pred[rows, None] - pred[None, :])
        dt = np.sign(true[rows, None] - true[None, :])
        upper = np.arange(start, rows.stop)[:, None] < np.arange(n)[None, :]  # each pair once
        concordant += float(np.sum((dp * dt)[upper]))
        tied_pred += float(np.sum((dp == 0)[upper]))
        tied_true += float(np.sum((dt == 0)[upper]))
        total += float(upper.sum())
    denom = math.sqrt((total - tied_pred) * (total - tied_true))
    return concordant / denom if denom > 0 else math.nan


def auc(positive, negative) -> float:
    """ROC AUC of two samples: the chance that a value of `positive` is above one of `negative`
    (ties count half); NaN when either is empty."""
    p, n = np.asarray(positive, float), np.asarray(negative, float)
    if not len(p) or not len(n):
        return float("nan")
    return float((p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean())


@dataclass(frozen=True)
class Metric:
    """One row of the metric table. `shown`: a column of the summary tables (comparisons,
    ensembles, the shipped card, the app's Train tab); every metric is still computed and stored."""

    name: str
    function: Callable[..., float]
    higher_is_better: bool
    shown: bool
    label: str


METRICS: tuple[Metric, ...] = (
    Metric("mse", mse, higher_is_better=False, shown=True, label="MSE"),
    Metric("mae", mae, higher_is_better=False, shown=False, label="MAE"),
    Metric("r2", r2, higher_is_better=True, shown=True, label="R2"),
    Metric("pearson", pearson, higher_is_better=True, shown=True, label="PLCC"),
    Metric("srcc", srcc, higher_is_better=True, shown=True, label="SRCC"),
    Metric("krcc", krcc, higher_is_better=True, shown=False, label="KRCC"),
)
METRIC_NAMES = tuple(m.name for m in METRICS)
SHOWN_METRICS = tuple(m.name for m in METRICS if m.shown)
HIGHER_IS_BETTER = {m.name: m.higher_is_better for m in METRICS}
LABELS = {m.name: m.label for m in METRICS}


def regression_metrics(pred, true) -> dict[str, float]:
    """All six metrics for one task, and `n`: the number of clips they were computed on."""
    return {**{m.name: m.function(pred, true) for m in METRICS},
            "n": int(_pair(pred, true)[0].size)}


def task_metrics(preds: dict[str, np.ndarray], trues: dict[str, np.ndarray]) -> dict[str, dict]:
    """{task: metrics} plus "mean": the average of each metric over tasks (NaNs skipped)."""
    out = {task: regression_metrics(preds[task], trues[task]) for task in trues}
    out["mean"] = {name: _nanmean([m[name] for m in out.values()]) for name in METRIC_NAMES}
    out["mean"]["n"] = max((m["n"] for t, m in out.items() if t != "mean"), default=0)
    return out


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
