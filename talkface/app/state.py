"""The app's state: one Scorer for the whole app (loaded lazily, swapped on promotion), the
training job manager, the datasets a client may train on, whether training is allowed at all,
a scratch folder for downloads and previews, and the Dataset tab's predictions.

The Scorer is safe to share between requests (it keeps no per-call state), so the app's request
threads share it without a lock; loading and swapping it take one. With `workers` > 0 its features
(decoding, the face stage, the audio features, the sync model: nearly all of a clip's time) are
made by that many worker processes (`talkface.parallel.FeatureWorkers`), each with its own Scorer
built from the same settings, so the app uses every core while its own process stays light; the
model, the result memo and what the page draws run here. A swap (promotion) starts new workers
on the new checkpoint. `workers=0` makes the features in the request threads.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Optional

from .. import checkpoint as ckpt
from ..errors import TalkfaceError
from .datasets import MIN_EVAL_CLIPS, DatasetRegistry, Redactor
from .jobs import SAMPLES_DIR, JobManager
from .runs import KEEP_RUNS, mark_promoted

KEEP_REQUESTS = 64  # request folders (downloads, previews) kept in the scratch folder


def default_runs_root() -> Path:
    """Where the app's training jobs write: $TALKFACE_RUNS, else beside the checkpoint root."""
    return Path(os.environ.get("TALKFACE_RUNS") or ckpt.checkpoint_root().parent / "runs")


class TrainingOff(TalkfaceError):
    """Training and promotion are switched off on this server."""


class AppState:
    def __init__(self, checkpoint: Optional[str] = None, checkpoint_root: Optional[Path] = None,
                 runs_root: Optional[Path] = None, demo_dir: Path = SAMPLES_DIR,
                 data_roots: Iterable[Path] = (), scratch: Optional[Path] = None,
                 training_off: str = "", min_eval_clips: int = MIN_EVAL_CLIPS,
                 workers: int = 0, syncnet_weights: Optional[str] = None,
                 keep_runs: int = KEEP_RUNS, recycle_after: Optional[int] = None) -> None:
        self.checkpoint = checkpoint
        self.syncnet_weights = syncnet_weights  # SyncNet's own weights: LSE on the Score tab
        self.root = Path(checkpoint_root) if checkpoint_root else ckpt.checkpoint_root()
        self.demo_dir = Path(demo_dir)
        self.runs_root = Path(runs_root) if runs_root else default_runs_root()
        self.registry = DatasetRegistry(self.demo_dir, self.runs_root / "uploads", data_roots)
        self.jobs = JobManager(self.runs_root, self.registry, min_eval_clips,
                               keep_runs=keep_runs)
        self.min_eval_clips = int(min_eval_clips)
        self.training_off = training_off  # why training is off ("" when it is on)
        self.workers = max(0, int(workers))  # feature worker processes (0: none)
        self.recycle_after = recycle_after  # clips before a worker is replaced by a fresh one
        # requests scored at once: two per worker, so that a worker starts the next clip while
        # the app runs the model and draws the last one (the others wait for a free worker)
        self.concurrency = 2 * self.workers if self.workers else 1
        self._feature_workers = None
        self._owns_scratch = scratch is None
        self.scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="talkface-"))
        self._scorer = None
        self._load_lock = threading.Lock()
        self.predictions: dict[str, dict] = {}  # demo file -> record, filled by the Dataset tab
        self.redact = Redactor({"<runs>": self.runs_root, "<bundled>": self.demo_dir,
                                "<checkpoints>": self.root, "<scratch>": self.scratch,
                                **{f"<data-root {i + 1}>": r for i, r in
                                   enumerate(self.registry.data_roots)},
                                "<talkface>": Path(__file__).resolve().parents[2]})

    @property
    def training_allowed(self) -> bool:
        return not self.training_off

    def require_training(self) -> None:
        if self.training_off:
            raise TrainingOff(self.training_off)

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else ckpt.active_checkpoint(self.root)

    def scorer(self):
        from ..api import load_scorer
        with self._load_lock:
            if self._scorer is None:
                scorer = load_scorer(self.checkpoint_path(), syncnet_weights=self.syncnet_weights)
                if self.workers:
                    from ..parallel import FeatureWorkers, ScorerSettings
                    self._feature_workers = FeatureWorkers(ScorerSettings.of(scorer),
                                                           self.workers, self.recycle_after)
                    self._feature_workers.start()
                    scorer.feature_workers = self._feature_workers
                self._scorer = scorer
            return self._scorer

    def _drop_scorer(self) -> None:
        """Forget the Scorer (the next request loads the active checkpoint); its workers stop
        once the clips they are making are done. Called with the load lock held."""
        if self._feature_workers is not None:
            self._feature_workers.close()
        self._scorer, self._feature_workers = None, None

    def score(self, path: str, progress=None, face=None, reference=None):
        return self.scorer().score(path, progress=progress, face=face, reference=reference)

    def score_many(self, paths: list[str], progress=None) -> list:
        return self.scorer().score_many(paths, progress=progress)

    def promote(self, source: Path, name: str) -> Path:
        """Make `source` the active checkpoint under the app's root and reload the scorer."""
        self.require_training()
        self.root.mkdir(parents=True, exist_ok=True)
        target = ckpt.promote(source, name, root=self.root)
        mark_promoted(source, self.runs_root)  # pruning keeps the run last promoted
        with self._load_lock:
            self.checkpoint = None
            self._drop_scorer()
        self.predictions.clear()
        return target

    def request_folder(self, keep: int = KEEP_REQUESTS) -> Path:
        """A fresh folder under the scratch folder for one request's files; the oldest beyond
        `keep` are removed (Gradio serves its own copy of every file it was handed)."""
        folders = sorted(self.scratch.glob("r-*"), key=lambda p: p.stat().st_mtime
                         if p.exists() else 0)
        for old in folders[:max(0, len(folders) - keep + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="r-", dir=self.scratch))

    def close(self) -> None:
        """Stop a running job and remove the scratch folder (on exit)."""
        self.jobs.shutdown()
        with self._load_lock:
            self._drop_scorer()
        if self._owns_scratch or self.scratch.name.startswith("talkface-app-"):
            shutil.rmtree(self.scratch, ignore_errors=True)
