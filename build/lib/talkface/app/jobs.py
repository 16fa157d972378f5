"""Background training jobs for the app: one at a time, a subprocess per step, cancellable.

A job is a list of steps (optionally generating a dataset with `talkface.synth`, then
`python -m train ...`), each run as a child process from an argument list (never a shell) in its
own process group, so cancelling stops its workers too. Output goes to `<run>/job.log`; the
training loop writes `<run>/metrics.jsonl` per epoch and a checkpoint folder, which the app reads
while the job runs. The app stays responsive because nothing here blocks the caller.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import TalkfaceError

log = logging.getLogger(__name__)
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def configs_dir() -> Path:
    """The training configs shipped with the `train` package, found without importing it (the
    library never imports `train`; jobs run it as `python -m train`)."""
    spec = importlib.util.find_spec("train")
    if spec is None or not spec.submodule_search_locations:
        raise JobError("the `train` package is not installed (pip install -e . from the "
                       "repository)")
    return Path(spec.submodule_search_locations[0]) / "configs"


def list_configs() -> list[str]:
    try:
        return sorted(p.stem for p in configs_dir().glob("*.yaml"))
    except JobError:
        return []


class JobError(TalkfaceError):
    """A training job cannot be started or acted on (one is already running, bad settings)."""


@dataclass
class JobSpec:
    """What the Train tab asks for. `dataset`: "demo", "generate" (N new clips) or "folder"."""

    config: str
    dataset: str = "demo"
    folder: Optional[str] = None
    n_clips: int = 24
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    extra: list[str] = field(default_factory=list)  # more `--set key=value` overrides


def config_path(name: str) -> Path:
    """A shipped config's name ('optimized') -> its YAML file."""
    path = configs_dir() / f"{name}.yaml"
    if not name.replace("_", "").replace("-", "").isalnum() or not path.exists():
        raise JobError(f"no training config {name!r} (known: {', '.join(list_configs())})")
    return path


def dataset_folder(spec: JobSpec, demo_dir: Path) -> Path:
    folder = demo_dir if spec.dataset == "demo" else Path(spec.folder or "")
    if not (folder / "manifest.csv").exists():
        raise JobError(f"{folder}: no manifest.csv there; a training folder needs clips plus a "
                       f"manifest.csv with a `file` column and one column per task")
    return folder


def build_steps(spec: JobSpec, run_dir: Path, demo_dir: Path,
                python: str = sys.executable) -> list[tuple[str, list[str]]]:
    """(name, argv) per step. Overrides become `--set` items validated by the training config."""
    if spec.dataset not in ("demo", "generate", "folder"):
        raise JobError(f"unknown dataset choice {spec.dataset!r} (demo, generate or folder)")
    steps = []
    if spec.dataset == "generate":
        if not 4 <= int(spec.n_clips) <= 2000:
            raise JobError(f"generate between 4 and 2000 clips (asked for {spec.n_clips})")
        data = run_dir / "data"
        steps.append(("generate", [python, "-m", "talkface", "synth", "--out", str(data),
                                   "--n", str(int(spec.n_clips))]))
    else:
        data = dataset_folder(spec, demo_dir)
    argv = [python, "-m", "train", "--config", str(config_path(spec.config)), "--data",
            str(data), "--output_dir", str(run_dir)]
    if spec.batch_size:
        argv += ["--batch_size", str(int(spec.batch_size))]
    for key, value in (("train.epochs", spec.epochs), ("train.lr", spec.lr)):
        if value:
            argv += ["--set", f"{key}={value}"]
    for item in spec.extra:
        argv += ["--set", item]
    steps.append(("train", argv))
    return steps


class TrainingJob:
    """Runs its steps one after another in a background thread."""

    def __init__(self, steps: list[tuple[str, list[str]]], run_dir: Path) -> None:
        self.steps, self.run_dir = steps, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / "job.log"
        self.status = "pending"  # pending, running, finished, failed, cancelled
        self.message = ""
        self.started = self.ended = None
        self._proc: Optional[subprocess.Popen] = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{self.run_dir.name}",
                                        daemon=True)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def running(self) -> bool:
        return self.status in ("pending", "running")

    def start(self) -> "TrainingJob":
        self.status, self.started = "running", time.time()
        self._thread.start()
        return self

    def _run(self) -> None:
        # the installed `train` and `talkface` packages, run from the run folder
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            with open(self.log_path, "a", buffering=1) as out:
                for name, argv in self.steps:
                    if self._cancel.is_set():
                        break
                    out.write(f"$ {' '.join(argv)}\n")
                    self._proc = subprocess.Popen(argv, cwd=self.run_dir, env=env, stdout=out,
                                                  stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL,
                                                  start_new_session=True)
                    code = self._proc.wait()
                    if self._cancel.is_set():
                        break
                    if code != 0:
                        self.status, self.message = "failed", f"step {name!r} exited with {code}"
                        return
            if self._cancel.is_set():
                self.status, self.message = "cancelled", "cancelled by the user"
            else:
                self.status, self.message = "finished", "done"
        except OSError as err:
            self.status, self.message = "failed", f"could not run the job: {err}"
        finally:
            self.ended = time.time()

    def cancel(self, grace: float = 5.0) -> None:
        """Stop the running step (its whole process group): SIGTERM, then SIGKILL."""
        self._cancel.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: Optional[float] = None) -> str:
        self._thread.join(timeout)
        return self.status

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
        # tqdm redraws with carriage returns: keep the last state of each line
        return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines()[-lines:])

    def metrics(self) -> list[dict]:
        return read_metrics(self.run_dir / "metrics.jsonl")

    def checkpoint(self) -> Optional[Path]:
        """The run's published checkpoint (`<run>/best`), once it exists; the hidden folders of
        an interrupted save are never picked."""
        best = self.run_dir / "best"
        return best if (best / "model.safetensors").exists() and (best / "meta.json").exists() \
            else None

    def summary(self) -> str:
        took = (self.ended or time.time()) - (self.started or time.time())
        return f"job {self.name}: {self.status} after {took:.0f} s" + \
            (f" ({self.message})" if self.message and self.status != "running" else "")


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl -> records; a half-written last line (the job is writing it) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class JobManager:
    """At most one training job at a time; runs live under `runs_root/<name>`."""

    def __init__(self, runs_root: Path, demo_dir: Path = SAMPLES_DIR) -> None:
        self.runs_root, self.demo_dir = Path(runs_root), Path(demo_dir)
        self.current: Optional[TrainingJob] = None
        self._lock = threading.Lock()

    def start(self, spec: JobSpec) -> TrainingJob:
        with self._lock:
            if self.current is not None and self.current.running:
                raise JobError(f"a training job is already running ({self.current.name}); "
                               f"cancel it or wait for it to finish")
            run_dir = self.runs_root / time.strftime("app-%Y%m%d-%H%M%S")
            steps = build_steps(spec, run_dir, self.demo_dir)
            self.current = TrainingJob(steps, run_dir).start()
            log.info("started %s: %s", run_dir, steps[-1][1])
            return self.current

    def cancel(self) -> Optional[TrainingJob]:
        job = self.current
        if job is None or not job.running:
            raise JobError("no training job is running")
        job.cancel()
        return job
