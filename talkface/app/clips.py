"""Many clips at once: the per-clip table the Score tab's batch and the Compare tab both show,
batch scoring one clip at a time through the Scorer, and the batch's JSON / CSV export.

The table is built from `ScoreResult`s only (one function, `clip_table`), so the two tabs show
the same columns with the same meaning; the exports are `talkface.results.write_records`, the
format the CLI writes. Files are named by base name, never by a server path.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from ..constants import VIDEO_SUFFIXES
from ..errors import TalkfaceError
from ..leaderboard import RANK_COLUMN, worst
from ..results import ScoreResult, write_records
from ..signals import SIGNALS
from ..spec import TaskSpec
from ..tasks import OVERALL

MAX_BATCH = 100  # clips one batch may hold: about 2-4 minutes of scoring on two cores
Progress = Callable[[int, int, str], None]


def _cell(result: ScoreResult, task: TaskSpec) -> str:
    if not result.ok:
        return ""
    score = result.tasks.get(task.name)
    if score is None:
        return ""
    return f"{score.value:.3f}" if score.judged else "not judged"


def _sync_cells(result: ScoreResult) -> tuple[str, str]:
    """(offset, its confidence) as the cards word them."""
    sync = result.sync
    if not result.ok or sync is None:
        return "", ""
    if not sync.judged:
        return "not judged", ""  # the reason is among the warnings
    return (f"{sync.offset_frames:+d} fr ({sync.offset_ms:+.0f} ms)",
            f"{sync.confidence:.2f} ({'trusted' if sync.reliable else 'not trusted'})")


def _pulled_down(result: ScoreResult) -> str:
    """'temporal quality: frozen frames 0.52; ...': the signals behind each task's score."""
    parts = []
    for name, score in result.tasks.items():
        if score.why:
            items = ", ".join(f"{SIGNALS[s].label.lower()} {result.signals[s].value:.3g}"
                              for s in score.why)
            parts.append(f"{(score.task.label or name).lower()}: {items}")
    return "; ".join(parts)


def _notes(result: ScoreResult, redact: Callable[[str], str]) -> str:
    if not result.ok:  # the row names the file already
        error = redact(result.error or "")
        return "FAILED: " + error.removeprefix(f"{Path(result.file).name}: ")
    return "; ".join(redact(w) for w in result.warnings)


def rank_values(results: list[ScoreResult], tasks: list[TaskSpec]) -> tuple[np.ndarray, bool]:
    """(the value each clip is ranked by, higher is better): the overall score (else the first
    task's), a failed clip at the worst score of the range (as the leaderboard counts it), NaN
    where the task was not judged."""
    task = next((t for t in tasks if t.name == OVERALL), tasks[0])
    values = [worst(task) if not r.ok else
              (r.scores.get(task.name) if r.scores.get(task.name) is not None else np.nan)
              for r in results]
    return np.asarray(values, float), task.higher_is_better


def clip_table(results: list[ScoreResult], tasks: list[TaskSpec],
               groups: Optional[list[str]] = None, ranked: bool = False,
               redact: Callable[[str], str] = lambda text: text) -> pd.DataFrame:
    """One row per clip: file (base name), each task's score ("not judged" where the clip
    allows no verdict), the overall band and percentile, the audio offset and its confidence,
    the signals that pull each score down, and warnings (or why the clip failed). `groups`
    adds a group column; `ranked` adds rank and the value it ranks by (`rank_values`) and
    orders the rows best first, failed clips last."""
    overall = next((t for t in tasks if t.name == OVERALL), None)
    rows = []
    for result in results:
        row = {"file": Path(result.file).name}
        row.update({(t.label or t.name).lower(): _cell(result, t) for t in tasks})
        main = result.tasks.get(overall.name) if overall is not None and result.ok else None
        row["band"] = main.band if main is not None else ("failed" if not result.ok else "")
        share = main.better_than if main is not None else None
        row["better than"] = "" if share is None else f"{min(max(round(share), 1), 99)}%"
        row["offset"], row["sync confidence"] = _sync_cells(result)
        row["pulled down by"] = _pulled_down(result) if result.ok else ""
        row["warnings"] = _notes(result, redact)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["file"])
    if groups is not None:
        table.insert(0, "group", groups)
    if ranked and len(table):
        values, higher = rank_values(results, tasks)
        key = np.nan_to_num(values if higher else -values, nan=-np.inf)
        order = np.argsort(-key, kind="stable")
        ranks = pd.Series(np.where(np.isfinite(values), key, np.nan)).rank(ascending=False,
                                                                           method="min")
        table.insert(0, RANK_COLUMN, [f"{v:.3f}" if np.isfinite(v) else "" for v in values])
        table.insert(0, "rank", ["" if not np.isfinite(r) else str(int(r)) for r in ranks])
        table = table.iloc[order].reset_index(drop=True)
    return table


# --- batches ------------------------------------------------------------------------------------

def check_batch(paths: list[str], limit: int = MAX_BATCH) -> None:
    if not paths:
        raise TalkfaceError("no clips to score: upload videos, or pick a folder")
    if len(paths) > limit:
        raise TalkfaceError(f"{len(paths)} clips given; a batch holds at most {limit}. Score "
                            f"them in parts, or with the command line (`talkface score FOLDER "
                            f"--json out.json --csv out.csv`), which has no such limit")


def score_batch(score: Callable[[str], ScoreResult], paths: list[str], names: list[str],
                progress: Optional[Progress] = None) -> list[ScoreResult]:
    """Score `paths` one by one with `score` (the single-clip path); a clip that fails keeps
    its row with the reason, and the batch goes on. Results are named by `names`."""
    results = []
    for i, (path, name) in enumerate(zip(paths, names)):
        if progress is not None:
            progress(i, len(paths), name)
        try:
            result = score(path)
        except TalkfaceError as err:
            result = ScoreResult.failed(path, str(err))
        except Exception as err:  # noqa: BLE001 - one bad file must not end the batch
            result = ScoreResult.failed(path, f"{name}: unexpected {type(err).__name__}: {err}")
        results.append(replace(result, file=Path(name).name))
    if progress is not None:
        progress(len(paths), len(paths), "done")
    return results


def write_batch(results: list[ScoreResult], folder: Path, stem: str = "batch") -> list[Path]:
    """The batch as `<stem>_talkface.json` (every clip's full `to_dict()`, per-frame detail
    included) and `<stem>_talkface.csv` (one row per clip, `talkface.results.csv_row`)."""
    records = [replace(r, file=Path(r.file).name).to_dict() for r in results]
    json_path, csv_path = folder / f"{stem}_talkface.json", folder / f"{stem}_talkface.csv"
    write_records(records, json_path, csv_path)
    return [json_path, csv_path]


def folder_choices(roots: Iterable[Path]) -> dict[str, Path]:
    """{label: folder}: each --data-root and its sub-folders (one level) that hold videos,
    labelled by name only (`root` or `root/sub`)."""
    found = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            label = root.name if folder == root else f"{root.name}/{folder.name}"
            if label not in found and folder_videos(folder, root, limit=1):
                found[label] = folder
    return found


def folder_videos(folder: Path, root: Path, limit: Optional[int] = None) -> list[Path]:
    """Video files under `folder` (recursive, sorted) that really lie inside `root` (a link
    pointing elsewhere is skipped). Stops after `limit` + 1 when a limit is given."""
    root, out = Path(root).resolve(), []
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() \
                and path.resolve().is_relative_to(root):
            out.append(path)
            if limit is not None and len(out) > limit:
                break
    return out
