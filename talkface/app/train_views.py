"""What the Train tab shows, computed without Gradio: a run's metrics beside the active
checkpoint's, each with the number of clips it was measured on, and a search's trials."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..checkpoint import CheckpointMeta, read_meta
from ..errors import TalkfaceError
from ..metrics import LABELS, SHOWN_METRICS
from .views import metric_rows


def checkpoint_meta(folder: Optional[Path]) -> Optional[CheckpointMeta]:
    """A checkpoint's metadata (without loading its weights); None when there is none or it
    does not read (a run still being written)."""
    if not folder:
        return None
    try:
        return read_meta(folder)
    except (OSError, TalkfaceError):
        return None


def checkpoint_metrics(folder: Optional[Path]) -> dict:
    meta = checkpoint_meta(folder)
    return meta.metrics if meta is not None else {}


def metrics_split(folder: Optional[Path]) -> str:
    meta = checkpoint_meta(folder)
    return meta.metrics_split if meta is not None else "val"


def metrics_side_by_side(new: dict, active: dict, new_split: str = "val",
                         active_split: str = "val") -> pd.DataFrame:
    """Rows (task, metric) with each side's value and the N clips it was computed on."""
    a = {(t, m): (v, n) for t, m, v, n in metric_rows(new) if m in SHOWN_METRICS}
    b = {(t, m): (v, n) for t, m, v, n in metric_rows(active) if m in SHOWN_METRICS}
    keys = list(dict.fromkeys(list(a) + list(b)))
    nan = (np.nan, None)
    return pd.DataFrame({
        "task": [k[0] for k in keys], "metric": [LABELS[k[1]] for k in keys],
        f"this run ({new_split})": [round(a.get(k, nan)[0], 4) for k in keys],
        "N (this run)": [_n(a.get(k, nan)[1]) for k in keys],
        f"active checkpoint ({active_split})": [round(b.get(k, nan)[0], 4) for k in keys],
        "N (active)": [_n(b.get(k, nan)[1]) for k in keys]})


def _n(n: Optional[int]) -> str:
    return "" if n is None else str(n)


def smallest_n(metrics: dict) -> Optional[int]:
    ns = [n for _, _, _, n in metric_rows(metrics) if n is not None]
    return min(ns) if ns else None


def run_verdict(metrics: dict, minimum: int) -> str:
    """Whether a finished run's metrics can be compared with anything."""
    n = smallest_n(metrics)
    if n is None:
        return "This run recorded no clip counts; its metrics cannot be judged."
    if n < minimum:
        return (f"**Too few clips:** some metrics rest on {n} clips (the minimum is {minimum}); "
                f"they are noise, and this run cannot be promoted.")
    return f"Metrics on at least {n} clips per task."


def trials_table(trials: list[dict]) -> pd.DataFrame:
    """A search's trials.jsonl records -> one row per trial, best first (lower value)."""
    if not trials:
        return pd.DataFrame(columns=["trial", "state", "value"])
    rows = [{"trial": t.get("number"), "state": t.get("state"), "value": t.get("value"),
             **{k: v for k, v in (t.get("params") or {}).items()}} for t in trials]
    frame = pd.DataFrame(rows)
    return frame.sort_values("value", na_position="last").reset_index(drop=True).round(5)
