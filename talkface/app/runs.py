"""Training runs on disk: each run folder's job record, finding a job's trainer again after the
app restarted, and pruning old run folders.

A job writes `<run>/job.json` (status, the step running, its process id and that process's start
time, and the app's) whenever it changes, so an app killed with `kill -9` leaves behind what the next start
needs: if the recorded process is still alive and is that run's trainer (the same start time,
and its command line names the run folder, so a reused process id is never taken for it), the
new app follows it and can cancel or promote it; if it is gone, the record is marked ended.
Process checks read Linux's /proc; elsewhere a recorded trainer is taken as gone.

Runs are pruned to the newest `keep` (by start time), never removing the running one nor the run
last promoted (marked by a `PROMOTED` file): about 400 MB each would otherwise pile up.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

from ..checkpoint import write_text_atomic

log = logging.getLogger(__name__)
RECORD = "job.json"
PROMOTED = "PROMOTED"
KEEP_RUNS = 5
RUN_PREFIXES = ("app-", "search-")  # the folders JobManager makes; "uploads" is not a run


def write_record(run_dir: Path, record: dict) -> None:
    """`<run>/job.json`, written atomically (a kill mid-write leaves the previous one)."""
    write_text_atomic(Path(run_dir) / RECORD, json.dumps(record, indent=1) + "\n")


def read_record(run_dir: Path) -> Optional[dict]:
    try:
        record = json.loads((Path(run_dir) / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def process_start(pid: int) -> Optional[int]:
    """The process's start time (clock ticks after boot, /proc/PID/stat field 22), or None when
    there is no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: fields follow the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_our_trainer(record: dict, run_dir: Path) -> bool:
    """Whether the record's process is alive and is this run's step: the start time it was
    recorded with, and a command line that names the run folder."""
    pid, started = record.get("pid"), record.get("pid_start")
    if not pid or started is None or process_start(pid) != started:
        return False
    try:
        argv = Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":  # a zombie: ended, waiting for a parent that is gone
        return False
    folder = os.fsencode(str(Path(run_dir).resolve()))
    return any(folder in arg for arg in argv)


def run_folders(runs_root: Path) -> list[Path]:
    """The app's run folders under `runs_root`, oldest first (by the recorded start, else the
    folder's time)."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(RUN_PREFIXES)]

    def started(path: Path) -> float:
        record = read_record(path) or {}
        value = record.get("started")
        return float(value) if isinstance(value, (int, float)) else path.stat().st_mtime
    return sorted(runs, key=lambda p: (started(p), p.name))


def unfinished(runs_root: Path) -> list[tuple[Path, dict]]:
    """(run, record) of the runs whose record still says pending or running (the app stopped
    without recording their end), newest first."""
    found = []
    for run in reversed(run_folders(runs_root)):
        record = read_record(run)
        if record is not None and record.get("status") in ("pending", "running"):
            found.append((run, record))
    return found


def outcome(run_dir: Path, record: dict) -> tuple[str, str]:
    """(status, message) of a job whose trainer ended out of the app's sight: finished when its
    last step wrote its closing file (a training run's metrics.json, a search's best.yaml)."""
    closing = "best.yaml" if record.get("mode") == "search" else "metrics.json"
    step = record.get("step") or "?"
    if (Path(run_dir) / closing).exists() and step == record.get("last_step"):
        return "finished", "done; its end was seen after the app restarted"
    return "ended", (f"the app stopped during step {step!r} and the step's process has ended "
                     f"too (exit status unknown; see the log); later steps did not run")


def mark_promoted(source: Path, runs_root: Path) -> Optional[Path]:
    """Mark the run holding `source` (a run's checkpoint) as the one last promoted, and only it;
    None when `source` is not under `runs_root`."""
    root, source = Path(runs_root).resolve(), Path(source).resolve()
    if not source.is_relative_to(root) or source == root:
        return None
    run = root / source.relative_to(root).parts[0]
    for other in run_folders(root):
        if other != run:
            (other / PROMOTED).unlink(missing_ok=True)
    (run / PROMOTED).write_text(source.name + "\n")
    return run


def prune_runs(runs_root: Path, keep: int = KEEP_RUNS, protect: Iterable[Path] = ()) -> list[Path]:
    """Remove all but the newest `keep` run folders, sparing `protect` (the running job's) and
    the promoted run; returns what was removed."""
    spared = {Path(p).resolve() for p in protect}
    runs = run_folders(runs_root)
    older = runs[:max(0, len(runs) - max(0, int(keep)))]
    removed = []
    for run in older:
        if run.resolve() in spared or (run / PROMOTED).exists():
            continue
        shutil.rmtree(run, ignore_errors=True)
        removed.append(run)
        log.info("pruned the run folder %s", run.name)
    return removed
