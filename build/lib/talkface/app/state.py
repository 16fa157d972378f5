"""The app's state: one Scorer for the whole app (loaded lazily, swapped on promotion), the
training job manager, a scratch folder for downloads and the Dataset tab's predictions.

The Scorer is safe to share between requests (it keeps no per-call state), so scoring needs no
lock here; loading and swapping it do.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Optional

from .. import checkpoint as ckpt
from .jobs import SAMPLES_DIR, JobManager


def default_runs_root() -> Path:
    """Where the app's training jobs write: $TALKFACE_RUNS, else beside the checkpoint root."""
    return Path(os.environ.get("TALKFACE_RUNS") or ckpt.checkpoint_root().parent / "runs")


class AppState:
    def __init__(self, checkpoint: Optional[str] = None, checkpoint_root: Optional[Path] = None,
                 runs_root: Optional[Path] = None, demo_dir: Path = SAMPLES_DIR) -> None:
        self.checkpoint = checkpoint
        self.root = Path(checkpoint_root) if checkpoint_root else ckpt.checkpoint_root()
        self.demo_dir = Path(demo_dir)
        self.jobs = JobManager(Path(runs_root) if runs_root else default_runs_root(), demo_dir)
        self._scorer = None
        self._load_lock = threading.Lock()
        self._scratch = tempfile.TemporaryDirectory(prefix="talkface-app-")
        self.predictions: dict[str, dict] = {}  # demo file -> scores, filled by the Dataset tab

    @property
    def scratch(self) -> Path:
        return Path(self._scratch.name)

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else ckpt.active_checkpoint(self.root)

    def scorer(self):
        from ..api import load_scorer
        with self._load_lock:
            if self._scorer is None:
                self._scorer = load_scorer(self.checkpoint_path())
            return self._scorer

    def score(self, path: str, progress=None, face=None, reference=None):
        return self.scorer().score(path, progress=progress, face=face, reference=reference)

    def score_many(self, paths: list[str], progress=None) -> list:
        return self.scorer().score_many(paths, progress=progress)

    def promote(self, source: Path, name: str) -> Path:
        """Make `source` the active checkpoint under the app's root and reload the scorer."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = ckpt.promote(source, name, root=self.root)
        with self._load_lock:
            self.checkpoint, self._scorer = None, None
        self.predictions.clear()
        return target

    def close(self) -> None:
        self._scratch.cleanup()
