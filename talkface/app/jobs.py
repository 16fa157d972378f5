"""Background training jobs for the app: one at a time, a subprocess per step, cancellable.

A job is a list of steps (optionally generating a dataset with `talkface.synth` and checking it,
then `python -m train ...` or, where installed, the Optuna search `python -m train.search ...`),
each run as a child process from an argument list (never a shell) in its own process group, so
cancelling stops its workers too, and `NICE` levels below the app (`os.nice` in the child), so
a training job never slows interactive scoring much. Datasets are refused before anything runs
when their manifest names files outside their folder or their validation or test split is too
small to mean anything. Output goes to `<run>/job.log`; the training loop writes
`<run>/metrics.jsonl` per epoch and a checkpoint folder (a search: `trials.jsonl` and
`best.yaml`), which the app reads while the job runs. Nothing here blocks the caller.

Each job keeps `<run>/job.json` current (`talkface.app.runs`): an app restarted after a crash
follows a trainer still running (`AdoptedJob`) or marks a gone one ended, so there is one job
at a time across restarts; old run folders are pruned to the newest `keep_runs`.
"""
from __future__ import annotations

import importlib.machinery
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
from typing import Callable, Optional, Union

from ..errors import TalkfaceError
from .datasets import (BUNDLED, GENERATE, MIN_EVAL_CLIPS, check_manifest, check_split_sizes,
                       split_sizes)
from .runs import (KEEP_RUNS, is_our_trainer, outcome, process_start, prune_runs, unfinished,
                   write_record)

log = logging.getLogger(__name__)
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
NICE = 10  # training steps run this much below interactive scoring
Step = Union[list, Callable[[], object]]  # a child process's argv, or a check run in the job


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
    """What the Train tab asks for. `dataset`: a label from `DatasetRegistry.choices()`, or
    GENERATE (N new clips). `mode`: "train", or "search" (Optuna, `train.search`)."""

    config: str
    dataset: str = BUNDLED
    n_clips: int = 60
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    extra: list[str] = field(default_factory=list)  # more `--set key=value` overrides
    mode: str = "train"
    trials: int = 8


def config_path(name: str) -> Path:
    """A shipped config's name ('optimized') -> its YAML file."""
    path = configs_dir() / f"{name}.yaml"
    if not name.replace("_", "").replace("-", "").isalnum() or not path.exists():
        raise JobError(f"no training config {name!r} (known: {', '.join(list_configs())})")
    return path


def search_available() -> bool:
    """Whether `python -m train.search` exists, found without importing `train`."""
    try:
        train_dir = configs_dir().parent
    except JobError:
        return False
    return importlib.machinery.PathFinder.find_spec("search", [str(train_dir)]) is not None


def check_dataset(folder: Path, config: str, minimum: int) -> dict[str, int]:
    """Refuse a dataset whose manifest leaves its folder or whose splits are too small."""
    frame = check_manifest(folder)
    sizes = split_sizes(frame, config_path(config))
    check_split_sizes(sizes, minimum)
    return sizes


def build_steps(spec: JobSpec, run_dir: Path, data: Optional[Path], min_eval: int = MIN_EVAL_CLIPS,
                python: str = sys.executable) -> list[tuple[str, Step]]:
    """(name, argv or callable) per step. `data`: the dataset folder (None to generate one into
    the run folder). Overrides become `--set` items validated by the training config."""
    if spec.mode not in ("train", "search"):
        raise JobError(f"unknown mode {spec.mode!r} (train or search)")
    if spec.mode == "search" and not search_available():
        raise JobError("hyperparameter search needs `train.search`, which this installation "
                       "does not have")
    steps: list[tuple[str, Step]] = []
    cfg = config_path(spec.config)
    if data is None:
        if not 4 * min_eval <= int(spec.n_clips) <= 2000:
            raise JobError(f"generate between {4 * min_eval} and 2000 clips (asked for "
                           f"{spec.n_clips}); fewer leave under {min_eval} clips to validate "
                           f"and test on")
        data = run_dir / "data"
        steps.append(("generate", [python, "-m", "talkface", "synth", "--out", str(data),
                                   "--n", str(int(spec.n_clips))]))
        steps.append(("check", lambda: check_dataset(data, spec.config, min_eval)))
    else:
        check_dataset(data, spec.config, min_eval)
    if spec.mode == "search":
        argv = [python, "-m", "train.search", "--config", str(cfg), "--data", str(data),
                "--trials", str(max(1, int(spec.trials))), "--storage",
                f"sqlite:///{run_dir / 'study.db'}", "--study", run_dir.name,
                "--output_dir", str(run_dir)]
    else:
        argv = [python, "-m", "train", "--config", str(cfg), "--data", str(data),
                "--output_dir", str(run_dir)]
    if spec.batch_size:
        argv += ["--batch_size", str(int(spec.batch_size))]
    for key, value in (("train.epochs", spec.epochs), ("train.lr", spec.lr)):
        if value:
            argv += ["--set", f"{key}={value}"]
    for item in spec.extra:
        argv += ["--set", item]
    steps.append((spec.mode, argv))
    return steps


def lowered(argv: list[str], nice: int, python: str = sys.executable) -> list[str]:
    """`argv` run at a lower CPU priority: a tiny Python that calls os.nice and then execs it
    (the niceness is inherited by the step's own workers and threads)."""
    if nice <= 0:
        return list(argv)
    return [python, "-c", "import os, sys; os.nice(int(sys.argv[1])); "
            "os.execvp(sys.argv[2], sys.argv[2:])", str(int(nice)), *argv]


class TrainingJob:
    """Runs its steps one after another in a background thread; child processes run `nice`
    levels below the app, so interactive scoring keeps the CPU it needs."""

    def __init__(self, steps: list[tuple[str, Step]], run_dir: Path, nice: int = NICE,
                 mode: str = "train", settings: Optional[dict] = None) -> None:
        self.steps, self.run_dir, self.nice, self.mode = steps, Path(run_dir), nice, mode
        # what the job was started with (config, dataset), for a page opened while it runs
        self.settings = dict(settings or {})
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
        self._record()
        self._thread.start()
        return self

    def _record(self, step: str = "", proc: Optional[subprocess.Popen] = None) -> None:
        """What a restarted app needs to find this job again (`talkface.app.runs`)."""
        try:
            write_record(self.run_dir, {
                "run": self.name, "mode": self.mode, "settings": self.settings,
                "status": self.status,
                "message": self.message, "started": self.started, "ended": self.ended,
                "step": step, "last_step": self.steps[-1][0] if self.steps else "",
                "pid": proc.pid if proc is not None else None,
                "pid_start": process_start(proc.pid) if proc is not None else None,
                "app_pid": os.getpid(), "app_start": process_start(os.getpid())})
        except OSError as err:  # the job goes on; only a restart could not find it
            log.warning("could not write the job record of %s: %s", self.name, err)

    def _run(self) -> None:
        try:
            with open(self.log_path, "a", buffering=1) as out:
                for name, step in self.steps:
                    if self._cancel.is_set():
                        break
                    code = self._step(name, step, out)
                    if self._cancel.is_set():
                        break
                    if code != 0:
                        self.status = "failed"
                        self.message = self.message or f"step {name!r} exited with {code}"
                        return
            if self._cancel.is_set():
                self.status, self.message = "cancelled", "cancelled by the user"
            else:
                self.status, self.message = "finished", "done"
        except OSError as err:
            self.status, self.message = "failed", f"could not run the job: {err}"
        finally:
            self.ended = time.time()
            self._record()

    def _step(self, name: str, step: Step, out) -> int:
        if callable(step):
            try:
                step()
                return 0
            except TalkfaceError as err:
                out.write(f"{name}: {err}\n")
                self.message = str(err)
                return 1
        out.write(f"$ {' '.join(step)}\n")
        # the installed `train` and `talkface` packages, run from the run folder
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(lowered(step, self.nice), cwd=self.run_dir, env=env,
                                      stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self._record(name, self._proc)
        return self._proc.wait()

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
        return read_jsonl(self.run_dir / "metrics.jsonl")

    def trials(self) -> list[dict]:
        """A search's finished trials (`trials.jsonl`: number, value, params, state)."""
        return read_jsonl(self.run_dir / "trials.jsonl")

    def best_params(self) -> str:
        best = self.run_dir / "best.yaml"
        return best.read_text() if best.exists() else ""

    def checkpoint(self) -> Optional[Path]:
        """The run's published checkpoint (`<run>/best`), once it exists; the hidden folders of
        an interrupted save are never picked."""
        best = self.run_dir / "best"
        return best if (best / "model.safetensors").exists() and (best / "meta.json").exists() \
            else None

    def summary(self) -> str:
        took = (self.ended or time.time()) - (self.started or time.time())
        kind = "search" if self.mode == "search" else "job"
        what = ", ".join(f"{k} {v}" for k, v in self.settings.items() if v)
        return f"{kind} {self.name}{f' ({what})' if what else ''}: {self.status} after " \
            f"{took:.0f} s" + \
            (f" ({self.message})" if self.message and self.status != "running" else "")


class AdoptedJob(TrainingJob):
    """A job an earlier run of the app started, found running after a restart: its trainer is
    not this process's child, so it is followed (every `poll` seconds) rather than waited on,
    and cancelled through its process group, as `TrainingJob.cancel` does."""

    def __init__(self, run_dir: Path, record: dict, poll: float = 1.0) -> None:
        super().__init__([], run_dir, mode=record.get("mode") or "train",
                         settings=record.get("settings") or {})
        self.record, self.pid, self.poll = record, int(record["pid"]), poll
        self.steps = [(record.get("last_step") or "", [])]  # what its record says
        self.started = record.get("started") or time.time()
        self.message = "followed again after the app restarted"

    def start(self) -> "AdoptedJob":
        self.status = "running"
        self._thread.start()
        return self

    def orphaned(self) -> bool:
        """Whether the app that started it is gone (else this app only watches it: a second
        app on the same runs folder, say one that could not bind its port)."""
        pid, start = self.record.get("app_pid"), self.record.get("app_start")
        return not pid or start is None or process_start(pid) != start

    def _run(self) -> None:
        while is_our_trainer(self.record, self.run_dir):
            time.sleep(self.poll)
        self.ended = time.time()
        self.status, self.message = ("cancelled", "cancelled by the user") \
            if self._cancel.is_set() else outcome(self.run_dir, self.record)
        self._record()

    def cancel(self, grace: float = 5.0) -> None:
        self._cancel.set()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not is_our_trainer(self.record, self.run_dir):
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            self._thread.join(grace)


def ended_job(run_dir: Path, record: dict, nice: int = NICE) -> TrainingJob:
    """The job of a record left 'running' whose trainer is gone, marked ended on disk."""
    job = TrainingJob([], run_dir, nice, record.get("mode") or "train",
                      record.get("settings") or {})
    job.status, job.message = outcome(run_dir, record)
    job.started, job.ended = record.get("started"), time.time()
    job.steps = [(record.get("last_step") or "", [])]
    job._record(record.get("step") or "")
    return job


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per line -> records; a half-written last line (the job is writing it)
    is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


read_metrics = read_jsonl


class JobManager:
    """At most one training job at a time; runs live under `runs_root/<name>`. Datasets are
    picked by label from `registry` (never by a path a client sends)."""

    def __init__(self, runs_root: Path, registry, min_eval_clips: int = MIN_EVAL_CLIPS,
                 nice: int = NICE, keep_runs: int = KEEP_RUNS) -> None:
        self.runs_root, self.registry = Path(runs_root), registry
        self.min_eval_clips, self.nice = int(min_eval_clips), nice
        self.keep_runs = max(1, int(keep_runs))
        self._lock = threading.Lock()
        self.current: Optional[TrainingJob] = self.recover()
        self.prune()

    def recover(self) -> Optional[TrainingJob]:
        """The job an earlier app left running: followed when its trainer still runs, else
        marked ended (older such records too). None when every recorded job had ended."""
        current = None
        for run, record in unfinished(self.runs_root):  # newest first
            if current is None and record.get("pid") and is_our_trainer(record, run):
                current = AdoptedJob(run, record).start()
                log.info("following %s, still running after the app restarted", run.name)
            else:
                job = ended_job(run, record, self.nice)
                current = current or job
                log.info("%s: %s", run.name, job.message)
        return current

    def prune(self, protect: tuple = ()) -> list[Path]:
        """Remove run folders beyond the newest `keep_runs`, sparing the current job's and the
        promoted one (`talkface.app.runs.prune_runs`)."""
        running = [self.current.run_dir] if self.current is not None else []
        return prune_runs(self.runs_root, self.keep_runs, [*running, *protect])

    def start(self, spec: JobSpec) -> TrainingJob:
        with self._lock:
            if self.current is not None and self.current.running:
                raise JobError(f"a training job is already running ({self.current.name}); "
                               f"cancel it or wait for it to finish")
            data = None if spec.dataset == GENERATE else self.registry.resolve(spec.dataset).folder
            prefix = "search" if spec.mode == "search" else "app"
            run_dir = self.runs_root / time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
            steps = build_steps(spec, run_dir, data, self.min_eval_clips)
            settings = {"config": spec.config, "dataset": spec.dataset}
            self.current = TrainingJob(steps, run_dir, self.nice, spec.mode, settings).start()
            self.prune()
            log.info("started %s: %s", run_dir, steps[-1][1])
            return self.current

    def cancel(self) -> Optional[TrainingJob]:
        job = self.current
        if job is None or not job.running:
            raise JobError("no training job is running")
        job.cancel()
        return job

    def shutdown(self) -> None:
        """Stop a running job (the app is exiting; nobody could watch or promote it)."""
        job = self.current
        if isinstance(job, AdoptedJob) and not job.orphaned():
            return  # its own app is alive and will stop it
        if job is not None and job.running:
            job.cancel(grace=3.0)
