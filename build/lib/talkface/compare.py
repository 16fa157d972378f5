"""Comparing generators: a leaderboard with 95% confidence intervals and pairwise win rates.

Each generator is a named group of scored clips. Per task, the leaderboard gives the mean score,
its t-distribution confidence interval and the number of clips. The pairwise win rate of A over B
is the probability that a random clip of A scores better than a random clip of B (ties count
half): the Mann-Whitney U statistic divided by n_A * n_B, i.e. the common-language effect size,
with the two-sided Mann-Whitney U test (scipy) as its significance test. Used by both
`python -m talkface compare` and the app's Compare tab.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
from scipy import stats

from .spec import TaskSpec


@dataclass
class Comparison:
    """`scores`: one row per clip (group, file, error, one column per task); `leaderboard`: one
    row per group; `pairwise`: one row per (task, group A, group B)."""

    scores: pd.DataFrame
    leaderboard: pd.DataFrame
    pairwise: pd.DataFrame
    tasks: list[TaskSpec]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the leaderboard to `path` and the pairwise table beside it (`*_pairwise.csv`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.leaderboard.to_csv(path, index=False, float_format="%.4f")
        self.pairwise.to_csv(path.with_name(path.stem + "_pairwise.csv"), index=False,
                             float_format="%.4g")
        return path


def scores_frame(groups: dict[str, list], tasks: list[TaskSpec]) -> pd.DataFrame:
    """{group: [ScoreResult, ...]} -> one row per clip; failed clips keep their error text."""
    rows = []
    for group, results in groups.items():
        for result in results:
            row = {"group": group, "file": Path(result.file).name, "error": result.error}
            for task in tasks:
                row[task.name] = result.scores.get(task.name, np.nan) if result.ok else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=["group", "file", "error"] + [t.name for t in tasks])


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the t-distribution confidence interval; NaN bounds with fewer than 2 values."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * stats.sem(values)
    return mean, mean - float(half), mean + float(half)


def leaderboard(frame: pd.DataFrame, tasks: list[TaskSpec],
                confidence: float = 0.95) -> pd.DataFrame:
    """One row per group: n scored, n failed, and per task mean / ci_low / ci_high. Sorted best
    first by `overall` when there is such a task, else by the mean of task means."""
    rows = []
    for group, part in frame.groupby("group", sort=False):
        ok = part["error"].isna()
        row = {"group": group, "n": int(ok.sum()), "failed": int((~ok).sum())}
        for task in tasks:
            row[f"{task.name}_mean"], row[f"{task.name}_ci_low"], row[f"{task.name}_ci_high"] = \
                mean_ci(part.loc[ok, task.name].to_numpy(), confidence)
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    names = [t.name for t in tasks]
    key = "overall_mean" if "overall" in names else None
    signs = {t.name: 1.0 if t.higher_is_better else -1.0 for t in tasks}
    rank = board[key] * signs["overall"] if key else sum(board[f"{n}_mean"] * signs[n]
                                                          for n in names) / len(names)
    board = board.assign(_rank=rank).sort_values("_rank", ascending=False, na_position="last")
    return board.drop(columns="_rank").reset_index(drop=True)


def win_rate(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True) -> tuple[float, float]:
    """P(a clip of A beats a clip of B), ties half, and the two-sided Mann-Whitney U p-value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return np.nan, np.nan
    if not higher_is_better:
        a, b = -a, -b
    if np.ptp(np.concatenate([a, b])) == 0:
        return 0.5, 1.0  # all equal: no evidence either way (scipy would warn and return NaN)
    u, p = stats.mannwhitneyu(a, b, alternative="two-sided")
    return float(u) / (a.size * b.size), float(p)


def pairwise(frame: pd.DataFrame, tasks: list[TaskSpec]) -> pd.DataFrame:
    """Every ordered pair of groups per task: win rate of A over B and the test's p-value."""
    rows = []
    ok = frame[frame["error"].isna()]
    groups = list(dict.fromkeys(frame["group"]))
    for task in tasks:
        for a, b in itertools.permutations(groups, 2):
            rate, p = win_rate(ok.loc[ok["group"] == a, task.name],
                               ok.loc[ok["group"] == b, task.name], task.higher_is_better)
            rows.append({"task": task.name, "group_a": a, "group_b": b,
                         "win_rate": rate, "p_value": p})
    return pd.DataFrame(rows, columns=["task", "group_a", "group_b", "win_rate", "p_value"])


def compare_results(groups: dict[str, list], tasks: list[TaskSpec],
                    confidence: float = 0.95) -> Comparison:
    frame = scores_frame(groups, tasks)
    return Comparison(frame, leaderboard(frame, tasks, confidence), pairwise(frame, tasks), tasks)


def compare_groups(scorer, groups: dict[str, list], confidence: float = 0.95,
                   progress: Optional[Callable[[int, int, str], None]] = None) -> Comparison:
    """Score every clip of every group with `scorer` (failures are kept, not fatal) and compare.
    `groups`: {name: [video paths]}; `progress(done, total, "group: file")` after each clip."""
    total, offset, scored = sum(len(p) for p in groups.values()), 0, {}
    for name, paths in groups.items():
        def step(done, _, file, name=name, offset=offset):
            if progress is not None:
                progress(offset + done, total, f"{name}: {file}")
        scored[name] = scorer.score_many(paths, progress=step)
        offset += len(paths)
    return compare_results(scored, scorer.tasks, confidence)


def format_leaderboard(board: pd.DataFrame, tasks: list[TaskSpec], digits: int = 3) -> pd.DataFrame:
    """Display form: one 'mean [low, high]' text column per task."""
    out = board[["group", "n", "failed"]].copy()
    for task in tasks:
        out[task.label or task.name] = [
            _interval(m, lo, hi, digits) for m, lo, hi in
            zip(board[f"{task.name}_mean"], board[f"{task.name}_ci_low"],
                board[f"{task.name}_ci_high"])]
    return out


def _interval(mean: float, low: float, high: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(low):
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def parse_group(text: str) -> tuple[str, str]:
    """'NAME=PATH' -> (NAME, PATH), for the CLI's --group."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        from .errors import ConfigError
        raise ConfigError(f"--group {text!r}: expected NAME=PATH (a file or folder)")
    return name.strip(), path.strip()
