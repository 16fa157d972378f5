"""Comparing generators: a leaderboard with 95% confidence intervals and pairwise win rates.

Each generator is a named group of clips. Per task, the leaderboard gives the mean score over
the clips that could be judged, a percentile-bootstrap confidence interval of that mean (which
stays inside the task's score range, unlike a t-interval on a bounded scale) and the number of
clips it rests on. A clip that could not be scored at all (no face, unreadable) counts against
its generator: it is listed as failed, and in the ranking score (`<task>_with_failures`) and the
win rates it counts as the worst score of the range; a generator that fails to produce a face is
worse, not absent. A task a clip does not allow judging (lip sync without audio) is left out of
that task only. The pairwise win rate of A over B is the probability that a random clip of A
scores better than a random clip of B (ties count half): the Mann-Whitney U statistic divided by
n_A * n_B, with the two-sided Mann-Whitney U test (scipy) as its significance test. Used by both
`python -m talkface compare` and the app's Compare tab.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
from scipy import stats

from .spec import TaskSpec
from .tasks import OVERALL


@dataclass
class Comparison:
    """`scores`: one row per clip (group, file, error, one column per task); `leaderboard`: one
    row per group; `pairwise`: one row per (task, group A, group B); `results`: {group:
    [ScoreResult, ...]}, everything known about each clip."""

    scores: pd.DataFrame
    leaderboard: pd.DataFrame
    pairwise: pd.DataFrame
    tasks: list[TaskSpec]
    results: dict[str, list] = field(default_factory=dict)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the leaderboard to `path`, the pairwise table beside it (`*_pairwise.csv`) and
        one row per clip (`*_clips.csv`): its group, then the per-file CSV row every results
        file has (`talkface.results.csv_row`: scores, bands, percentiles, sync, signals, the
        signals behind each task, warnings, error; an empty score is a task not judged), by the
        file's base name."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.leaderboard.to_csv(path, index=False, float_format="%.4f")
        self.pairwise.to_csv(path.with_name(path.stem + "_pairwise.csv"), index=False,
                             float_format="%.4g")
        clips = path.with_name(path.stem + "_clips.csv")
        if self.results:
            from .results import csv_row
            pd.DataFrame([{"group": group, **csv_row(replace(r, file=Path(r.file).name)
                                                     .to_dict(detail=False))}
                          for group, items in self.results.items() for r in items]).to_csv(
                clips, index=False, float_format="%.4f")
        else:
            self.scores.to_csv(clips, index=False, float_format="%.4f")
        return path


def scores_frame(groups: dict[str, list], tasks: list[TaskSpec]) -> pd.DataFrame:
    """{group: [ScoreResult, ...]} -> one row per clip; failed clips keep their error text, a
    task not judged is NaN."""
    rows = []
    for group, results in groups.items():
        for result in results:
            row = {"group": group, "file": Path(result.file).name, "error": result.error}
            for task in tasks:
                value = result.scores.get(task.name) if result.ok else None
                row[task.name] = np.nan if value is None else value
            rows.append(row)
    return pd.DataFrame(rows, columns=["group", "file", "error"] + [t.name for t in tasks])


def mean_ci(values: np.ndarray, confidence: float = 0.95, resamples: int = 2000,
            seed: int = 0) -> tuple[float, float, float]:
    """Mean and its percentile-bootstrap confidence interval (seeded, so a table repeats); the
    bounds lie within the values' own span, hence within the score range. NaN bounds with
    fewer than 2 values."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(min(low, mean)), float(max(high, mean))


def worst(task: TaskSpec) -> float:
    return task.low if task.higher_is_better else task.high


def with_failures(part: pd.DataFrame, task: TaskSpec) -> np.ndarray:
    """A task's values with every failed clip counted as the worst score of the range."""
    values = part[task.name].to_numpy(float).copy()
    values[part["error"].notna().to_numpy()] = worst(task)
    return values


def ranking_text(tasks: list[TaskSpec]) -> str:
    """What the leaderboard and the clip table are ranked by, in words."""
    names = [t.name for t in tasks]
    if OVERALL in names:
        task = tasks[names.index(OVERALL)]
        return (f"{(task.label or task.name).lower()}, each failed clip counted as "
                f"{worst(task):g} (the worst score)")
    return "the mean over tasks (lower-is-better tasks negated), failed clips at the worst score"


def leaderboard(frame: pd.DataFrame, tasks: list[TaskSpec],
                confidence: float = 0.95) -> pd.DataFrame:
    """One row per group: rank, the value it ranks by (`rank_value`, see `ranking_text`), clips
    given, n scored, n failed, and per task mean / ci_low / ci_high / n (judged clips) /
    with_failures (failed clips at the worst score). Sorted best first by
    `overall_with_failures` when there is an `overall` task, else by the mean over tasks."""
    rows = []
    for group, part in frame.groupby("group", sort=False):
        ok = part["error"].isna()
        row = {"group": group, "clips": int(len(part)), "n": int(ok.sum()),
               "failed": int((~ok).sum())}
        for task in tasks:
            values = part.loc[ok, task.name].to_numpy(float)
            row[f"{task.name}_mean"], row[f"{task.name}_ci_low"], row[f"{task.name}_ci_high"] = \
                mean_ci(values, confidence)
            row[f"{task.name}_n"] = int(np.isfinite(values).sum())
            penalised = with_failures(part, task)
            row[f"{task.name}_with_failures"] = float(np.nanmean(penalised)) \
                if np.isfinite(penalised).any() else np.nan
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    names = [t.name for t in tasks]
    signs = {t.name: 1.0 if t.higher_is_better else -1.0 for t in tasks}
    rank = board[f"{OVERALL}_with_failures"] * signs[OVERALL] if OVERALL in names else \
        sum(board[f"{n}_with_failures"] * signs[n] for n in names) / len(names)
    board = board.assign(rank_value=rank).sort_values("rank_value", ascending=False,
                                                      na_position="last").reset_index(drop=True)
    board.insert(0, "rank", board["rank_value"].rank(ascending=False, method="min"))
    return board


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
    """Every ordered pair of groups per task: win rate of A over B and the test's p-value;
    a failed clip loses to every scored one (it counts as the worst score)."""
    rows = []
    groups = list(dict.fromkeys(frame["group"]))
    for task in tasks:
        values = {g: with_failures(frame[frame["group"] == g], task) for g in groups}
        for a, b in itertools.permutations(groups, 2):
            rate, p = win_rate(values[a], values[b], task.higher_is_better)
            rows.append({"task": task.name, "group_a": a, "group_b": b,
                         "win_rate": rate, "p_value": p})
    return pd.DataFrame(rows, columns=["task", "group_a", "group_b", "win_rate", "p_value"])


def compare_results(groups: dict[str, list], tasks: list[TaskSpec],
                    confidence: float = 0.95) -> Comparison:
    frame = scores_frame(groups, tasks)
    return Comparison(frame, leaderboard(frame, tasks, confidence), pairwise(frame, tasks), tasks,
                      {group: list(items) for group, items in groups.items()})


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
    """Display form: rank, the value it ranks by (`ranked by`, see `ranking_text`), scored / failed
    counts, then per task 'mean [low, high]' over the judged
    clips ("not judged" where none could be), with N where it differs from the scored count."""
    if board.empty:
        return pd.DataFrame(columns=["rank", "group", RANK_COLUMN, "scored", "failed"])
    out = pd.DataFrame({"rank": [_int(r) for r in board["rank"]], "group": board["group"],
                        RANK_COLUMN: [f"{v:.{digits}f}" if np.isfinite(v) else "" for v in
                                      board["rank_value"]],
                        "scored": [f"{n} of {c}" for n, c in zip(board["n"], board["clips"])],
                        "failed": board["failed"]})
    for task in tasks:
        out[task.label or task.name] = [
            _interval(m, lo, hi, digits, n, scored) for m, lo, hi, n, scored in
            zip(board[f"{task.name}_mean"], board[f"{task.name}_ci_low"],
                board[f"{task.name}_ci_high"], board[f"{task.name}_n"], board["n"])]
    return out


RANK_COLUMN = "ranked by"


def _int(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{int(value)}"


def failures(comparison: "Comparison") -> pd.DataFrame:
    """The clips that could not be scored: group, file and why."""
    frame = comparison.scores
    return frame.loc[frame["error"].notna(), ["group", "file", "error"]].reset_index(drop=True)


def _interval(mean: float, low: float, high: float, digits: int, n: int = 0,
              scored: int = 0) -> str:
    if not np.isfinite(mean):
        return "not judged" if scored else "no scored clip"
    count = f" (n={n})" if n != scored else ""
    if not np.isfinite(low):
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]{count}"


def parse_group(text: str) -> tuple[str, str]:
    """'NAME=PATH' -> (NAME, PATH), for the CLI's --group."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        from .errors import ConfigError
        raise ConfigError(f"--group {text!r}: expected NAME=PATH (a file or folder)")
    return name.strip(), path.strip()
