"""Score many files on several workers: local processes, or actors on a Ray cluster.

    results = score_files(scorer, files, workers=4)            # 4 local processes
    results = score_files_ray(scorer, files, address="auto")   # the Ray cluster this node is in

Nearly all of a clip's time goes into its features (decoding, the face stage, the audio features,
the sync model), so that is what the workers do, each with its own `Scorer` built once from the
same `ScorerSettings` (checkpoint folder, extractor settings, cache folder: models are not
pickled). The model runs in the calling process, through `Scorer.score_prepared`, on the batches
a one-process `Scorer.score_many` makes: a clip's score depends on the batch it is padded into
(at the 1e-8 level), so this is what makes the results equal a one-process run's to the last
digit. Every worker runs the same CPU code, and the thread count changes neither the features
(`Extractor.extract` runs numpy's BLAS on one thread) nor the scores: tests/test_parallel.py
compares the JSON byte for byte. A file that fails gives a `ScoreResult.failed` with its
reason, as in one process, and results come back in input order.

- Local (`score_files`, `workers=N`): N spawned processes through
  `talkface.features.batch.run_per_file`, each with cpu_count // N torch and OpenCV threads so
  that N workers do not oversubscribe the cores; meanwhile the model here runs on one thread.
- Ray (`score_files_ray`, `pip install talkface[ray]`): one actor per CPU of the cluster (or
  `actors`), each holding a Scorer and one CPU. A file is sent as its path when the actor's node
  sees a file of the same size at that path (a shared filesystem; checked once per actor, on the
  first file), otherwise as its bytes, which the actor writes to a temporary file of the same
  name. An actor that dies on a file fails that file with the reason and is replaced.

- The app (`FeatureWorkers`, `talkface app --workers N`): N spawned processes, each with its own
  Scorer, making one clip's features at a time for the app's requests through
  `Scorer.features`; the model, the memo and everything drawn from a result stay in the app.

How far one caller goes: the model takes tens of milliseconds a clip on one thread here against
seconds of features in a worker, so one caller keeps dozens of workers busy; beyond that, split
the files between callers with `--shard I/N` (docs/scaling.md).
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import sys
import tempfile
import threading
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from .errors import BackendUnavailable, TalkfaceError

if TYPE_CHECKING:
    from .api import Scorer
    from .features.extract import FeatureBundle, Progress
    from .results import ScoreResult
    from .spec import ExtractorConfig

log = logging.getLogger(__name__)
LOOKAHEAD = 2  # Ray: files in flight or waiting to be handed over in order, per actor


@dataclass(frozen=True)
class ScorerSettings:
    """How each worker builds its Scorer: a checkpoint folder and its runtime, the caller's
    extractor settings (so overrides such as max_seconds carry over) and the feature cache (a
    folder, True for the worker's default one, False for none)."""

    checkpoint: str
    extractor: "ExtractorConfig"
    cache: bool | str = True
    runtime: str = "torch"

    @classmethod
    def of(cls, scorer: "Scorer") -> "ScorerSettings":
        """The settings `scorer` was built with: the folder its checkpoint was loaded from (on
        a cluster, the same path on every node), its extractor settings, its cache."""
        from .cache import default_cache_root
        cache: bool | str = False
        if scorer.cache is not None:
            root = scorer.cache.root
            cache = True if root == default_cache_root() else str(root)
        return cls(str(scorer.loaded.path), scorer.extractor.config, cache, scorer.loaded.runtime)

    def build(self) -> "Scorer":
        """The worker's Scorer (it makes features; its model stays unused)."""
        from .api import Scorer
        from .cache import FeatureCache
        from .checkpoint import load_checkpoint
        from .features.extract import Extractor
        cache = FeatureCache(None if self.cache is True else self.cache) if self.cache else False
        sync_runtime = None if self.runtime == "onnx" else "torch"  # as `load_scorer` pairs them
        return Scorer(load_checkpoint(self.checkpoint, runtime=self.runtime),
                      Extractor(self.extractor, sync_runtime=sync_runtime), cache)


def score_files(scorer: "Scorer", files: Iterable[str | os.PathLike], workers: int = 1,
                settings: Optional[ScorerSettings] = None, batch_size: int = 8,
                progress=None, reference=None) -> list["ScoreResult"]:
    """`scorer.score_many(files, ...)` with the features made by `workers` local processes;
    the same results, in the same order. `progress(done, total, file)` as in `score_many`."""
    paths = [str(f) for f in files]
    if workers <= 1 or len(paths) < 2:
        return scorer.score_many(paths, batch_size, progress, reference)
    from .features.batch import run_per_file
    settings = settings or ScorerSettings.of(scorer)
    made = run_per_file(_features, paths, paths, None, min(workers, len(paths)),
                        make=settings.build, chunksize=1)
    try:
        with _torch_threads(1):
            return scorer.score_prepared(paths, (found if error is None else error
                                                 for found, error in made),
                                         batch_size, progress, reference)
    except BrokenProcessPool as err:
        raise TalkfaceError(f"a scoring worker process died or could not start ({err}); "
                            f"run with --workers 1 to see which file causes it") from None
    finally:
        made.close()  # an early stop ends the pool now, not when the generator is collected


def _features(scorer: "Scorer", path: str) -> "FeatureBundle | str":
    return scorer.features_or_error(path)


@contextmanager
def _torch_threads(count: int):
    """Run the block with `count` torch threads (the workers have the cores), then restore;
    nothing to do when torch is not loaded (the ONNX runtime scores without it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- the app's feature workers ------------------------------------------------------------------

class FeatureWorkers:
    """Processes that make features for a Scorer in another process (the app's): `count`
    spawned workers, each building its own Scorer once from `settings` (so each has its own
    feature cache handle and face models) and making one clip's features at a time.

    `scorer.feature_workers = FeatureWorkers(ScorerSettings.of(scorer), 2)` sends everything
    `scorer.features` does (probe, hash, cache, extraction) to a free worker; the caller's
    thread waits, relaying the worker's progress. The bundle that comes back is the one the
    worker's `Scorer.features` returned, so scores, attention and everything drawn from them are
    those of the one-process path. Each worker is a one-process pool of its own: a worker that
    dies (killed, out of memory) fails only the clip it was making, with a message saying so,
    and a fresh one takes its place. `recycle_after`: a worker is replaced by a fresh one after
    that many clips (None: never), which bounds what a long-lived worker can accumulate.
    """

    def __init__(self, settings: ScorerSettings, count: int,
                 recycle_after: Optional[int] = None) -> None:
        self.settings, self.count, self.recycle_after = settings, max(1, count), recycle_after
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers = [self._new_worker() for _ in range(self.count)]
        for worker in self._workers:
            self._idle.put(worker)
        self._lock = threading.Lock()
        self.closed = False

    def _new_worker(self) -> "_Worker":
        import multiprocessing

        from .features.batch import process_pool
        relay = multiprocessing.get_context("spawn").SimpleQueue()
        pool = process_pool(1, make=functools.partial(_worker_state, self.settings, relay),
                            share=self.count, max_tasks_per_child=self.recycle_after)
        return _Worker(pool, relay)

    def start(self) -> None:
        """Start every worker now (each builds its Scorer, seconds), not on its first clip."""
        from .features.batch import run_job
        for worker in self._workers:
            worker.pool.submit(run_job, _started, None)

    def pids(self) -> list[int]:
        """The worker processes' ids (those started so far)."""
        return [pid for w in self._workers for pid in (w.pool._processes or {})]

    def features(self, video: str | os.PathLike, progress: Optional["Progress"] = None,
                 face: Optional[int] = None, digest: Optional[str] = None) -> "FeatureBundle":
        """`Scorer.features(video, progress, face, digest)` in a free worker (waits for one)."""
        from .features.batch import run_job
        worker = self._take()
        name = Path(video).name
        try:
            future = worker.pool.submit(run_job, _clip_features, (str(video), face, digest))
            return worker.wait(future, progress)
        except BrokenProcessPool:
            log.warning("the feature worker died while making the features of %s; replacing it",
                        name)
            worker = self._replace(worker)
            raise TalkfaceError(f"{name}: the worker process making its features stopped "
                                f"(killed, or out of memory); a new one has taken its place: "
                                f"score the clip again") from None
        finally:
            self._idle.put(worker)

    def _take(self) -> "_Worker":
        while True:
            if self.closed:
                raise TalkfaceError("the model was swapped while this clip waited for a "
                                    "worker: score it again")
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue

    def _replace(self, dead: "_Worker") -> "_Worker":
        dead.pool.shutdown(wait=False, cancel_futures=True)
        fresh = self._new_worker()
        with self._lock:
            self._workers[self._workers.index(dead)] = fresh
        if self.closed:
            fresh.pool.shutdown(wait=False)
        return fresh

    def close(self) -> None:
        """Stop the workers once the clips they are making are done; later calls fail."""
        with self._lock:
            self.closed = True
            for worker in self._workers:
                worker.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Worker:
    """One worker process (a one-process pool, so its death breaks nothing else) and the queue
    its progress reports come back on."""

    pool: "object"  # concurrent.futures.ProcessPoolExecutor
    relay: "object"  # multiprocessing SimpleQueue of (done, total, what)

    def wait(self, future, progress: Optional["Progress"]):
        while True:
            try:
                result = future.result(timeout=0.1)
            except TimeoutError:
                self._relay(progress)
                continue
            self._relay(progress)  # the reports are sent before the result
            return result

    def _relay(self, progress: Optional["Progress"]) -> None:
        while not self.relay.empty():
            done, total, what = self.relay.get()
            if progress is not None:
                progress(done, total, what)


@dataclass
class _WorkerState:
    """What each app worker process holds: its Scorer and the queue its progress goes to."""

    scorer: "Scorer"
    relay: "object"


def _worker_state(settings: ScorerSettings, relay) -> _WorkerState:
    return _WorkerState(settings.build(), relay)


def _started(state: _WorkerState, _) -> int:
    return os.getpid()


def _clip_features(state: _WorkerState, item: tuple) -> "FeatureBundle":
    path, face, digest = item
    try:
        return state.scorer.features(path, lambda *report: state.relay.put(report), face,
                                     digest)
    except TalkfaceError:
        raise  # readable, and it pickles (one message argument)
    except Exception as err:  # the caller gets the reason; the traceback stays in this log
        log.exception("unexpected failure on %s", path)
        raise TalkfaceError(f"{Path(path).name}: unexpected {type(err).__name__}: "
                            f"{err}") from None


# --- Ray -----------------------------------------------------------------------------------------

def import_ray():
    """The `ray` module, or a readable error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("scoring on Ray needs Ray: pip install 'talkface[ray]'") from None
    return ray


def score_files_ray(scorer: "Scorer", files: Iterable[str | os.PathLike],
                    address: Optional[str] = None, actors: Optional[int] = None,
                    settings: Optional[ScorerSettings] = None, batch_size: int = 8,
                    progress=None, reference=None) -> list["ScoreResult"]:
    """`scorer.score_many(files, ...)` with the features made by Ray actors. `address`: None
    starts a local Ray (stopped after), "auto" or "HOST:PORT" / "ray://HOST:PORT" connects to a
    running cluster; when this process already called `ray.init`, that Ray is used. `actors`:
    how many (default: one per CPU of the cluster)."""
    ray = import_ray()
    paths = [str(f) for f in files]
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        count = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = _ActorPool(ray, settings or ScorerSettings.of(scorer), min(count, len(paths)),
                          paths)
        try:
            with _torch_threads(1):
                return scorer.score_prepared(paths, pool.features(), batch_size, progress,
                                             reference)
        finally:
            pool.close()
    finally:
        if started:
            ray.shutdown()


class _RayWorker:
    """What a Ray actor holds: a Scorer, built once, making one file's features at a time."""

    def __init__(self, settings: ScorerSettings) -> None:
        import cv2

        from .runtime import limit_threads
        limit_threads(1)  # the actor holds one CPU
        cv2.setNumThreads(1)
        self.scorer = settings.build()

    def sees(self, path: str, size: int) -> bool:
        """Whether this node sees the caller's file at the same path (a shared filesystem)."""
        return os.path.isfile(path) and os.path.getsize(path) == size

    def features(self, path: str, data: Optional[bytes] = None) -> "FeatureBundle | str":
        if data is None:
            return self.scorer.features_or_error(path)
        with tempfile.TemporaryDirectory(prefix="talkface-") as folder:
            local = os.path.join(folder, os.path.basename(path))
            with open(local, "wb") as handle:
                handle.write(data)
            found = self.scorer.features_or_error(local)
        return found.replace(local, path) if isinstance(found, str) else found


class _ActorPool:
    """Actors fed one file at a time, results handed over in input order; a file whose actor
    fails (or dies: a new one takes its place) fails with the reason, and the others go on."""

    def __init__(self, ray, settings: ScorerSettings, count: int, paths: list[str]) -> None:
        self.ray, self.paths = ray, paths
        self.remote = ray.remote(num_cpus=1)(_RayWorker)
        self.settings_ref = ray.put(settings)
        self.probe = next((p for p in paths if os.path.isfile(p)), None)
        self.actors: dict = {}  # actor handle -> whether it is sent bytes instead of paths
        try:
            self._add_actors(count)
        except ray.exceptions.RayError as err:
            self.close()
            raise TalkfaceError(f"the Ray workers could not start a Scorer: {err}") from None

    def _add_actors(self, count: int) -> list:
        """Start `count` actors (together: each builds its Scorer) and ask each whether its
        node sees the first file."""
        actors = [self.remote.remote(self.settings_ref) for _ in range(count)]
        self.actors.update(dict.fromkeys(actors, False))
        probe, size = self.probe or "", os.path.getsize(self.probe) if self.probe else 0
        sees = self.ray.get([a.sees.remote(probe, size) for a in actors])  # and they started
        self.actors.update({a: self.probe is not None and not s for a, s in zip(actors, sees)})
        return actors

    def _submit(self, actor, path: str):
        data = Path(path).read_bytes() if self.actors[actor] and os.path.isfile(path) else None
        return actor.features.remote(path, data)

    def features(self) -> Iterator["FeatureBundle | str"]:
        """One bundle or failure message per path, in order."""
        ray, paths = self.ray, self.paths
        idle, running, done = list(self.actors), {}, {}
        submitted = handed = 0
        while handed < len(paths):
            while idle and submitted < min(len(paths), handed + LOOKAHEAD * len(self.actors)):
                actor = idle.pop()
                running[self._submit(actor, paths[submitted])] = (submitted, actor)
                submitted += 1
            if handed not in done:
                ready, _ = ray.wait(list(running), num_returns=1)
                index, actor = running.pop(ready[0])
                try:
                    done[index] = ray.get(ready[0])
                except ray.exceptions.RayError as err:  # that file's failure, not the run's
                    log.warning("the Ray worker failed on %s: %s", paths[index], err)
                    done[index] = (f"{Path(paths[index]).name}: the Ray worker making its "
                                   f"features failed ({type(err).__name__})")
                    if isinstance(err, ray.exceptions.RayActorError):  # it died: replace it
                        del self.actors[actor]
                        actor = self._add_actors(1)[0]
                idle.append(actor)
                continue
            yield done.pop(handed)
            handed += 1

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = {}
