"""Run one job per file with an `Extractor`, in worker processes, one error message per file.

Shared by `python -m talkface extract`, dataset loading and `talkface.parallel` (scoring). Each
worker process builds its own extractor once from the `ExtractorConfig` (models cannot be
pickled), or whatever else `make` builds (a `Scorer`), and keeps it for the process's life: that
per-process slot (`_PROCESS`) is only ever filled inside a spawned worker. A failing file becomes
a message naming it and the batch goes on. Workers are spawned, not forked: forking a process
that already runs torch or OpenMP threads can deadlock.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from ..errors import TalkfaceError
from ..spec import ExtractorConfig

Job = Callable[[Any, Any], Any]  # (the process's extractor, what `make` built, or None; item)
_PROCESS: dict = {}  # a worker process's own extractor or `make` result (never in the caller's)


def _init_worker(config: Optional[ExtractorConfig], threads: int,
                 make: Optional[Callable[[], Any]] = None) -> None:
    # N workers x all-core thread pools would fight over the CPUs: give each its share. This
    # runs in a spawned worker process, never in the caller's.
    import cv2

    from ..runtime import limit_threads
    limit_threads(threads)
    cv2.setNumThreads(threads)
    _PROCESS["extractor"] = _build(config, make)


def _build(config: Optional[ExtractorConfig], make: Optional[Callable[[], Any]]):
    if make is not None:
        return make()
    if config is None:
        return None
    from .extract import Extractor
    return Extractor(config)


def _run(job: Job, extractor, item: Any, name: str) -> tuple[Any, Optional[str]]:
    try:
        return job(extractor, item), None
    except TalkfaceError as err:
        message = str(err)
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
        message = f"unexpected {type(err).__name__}: {err}"
    return None, message if name in message else f"{name}: {message}"


def _run_in_worker(args: tuple) -> tuple[Any, Optional[str]]:
    job, item, name = args
    return _run(job, _PROCESS.get("extractor"), item, name)


def process_pool(workers: int, config: Optional[ExtractorConfig] = None,
                 make: Optional[Callable[[], Any]] = None, share: Optional[int] = None,
                 max_tasks_per_child: Optional[int] = None) -> ProcessPoolExecutor:
    """`workers` spawned processes, each building its extractor (or what `make` builds) once,
    with its share of the cores as torch and OpenCV threads: cpu_count // `share` (default:
    `workers`, the pool's own size). `max_tasks_per_child`: a process is replaced by a fresh one
    after that many jobs (None: never). Submit `run_job` (or `run_per_file` maps)."""
    threads = max(1, (os.cpu_count() or 1) // (share or workers))
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(config, threads, make),
                               max_tasks_per_child=max_tasks_per_child)


def run_job(job: Job, item: Any) -> Any:
    """In a `process_pool` worker: `job(the process's extractor or what `make` built, item)`;
    what it raises goes back to the caller (`run_per_file` turns it into a message instead)."""
    return job(_PROCESS.get("extractor"), item)


def run_per_file(job: Job, items: Sequence[Any], names: Sequence[str],
                 config: Optional[ExtractorConfig], workers: int = 1, extractor=None,
                 make: Optional[Callable[[], Any]] = None, chunksize: int = 4
                 ) -> Iterator[tuple[Any, Optional[str]]]:
    """Yield (result, None) or (None, "file: what went wrong") per item, in order.

    `job(extractor, item)` must be a module-level function (it is sent to the workers);
    `config=None` means the job needs no extractor. `make`, a module-level function of no
    arguments (or a `functools.partial` of one), builds the per-process object handed to `job`
    instead of an extractor. In one process, an `extractor` the caller already built is used
    instead of building another. `chunksize` items are sent to a worker at a time.
    """
    labels = [Path(name).name for name in names]
    if workers > 1 and len(items) > 1:
        with process_pool(workers, config, make) as pool:
            try:
                yield from pool.map(_run_in_worker, [(job, item, label) for item, label in
                                                     zip(items, labels)], chunksize=chunksize)
            finally:  # stopped early (an error, Ctrl-C): skip the files no one will read
                pool.shutdown(cancel_futures=True)
        return
    if extractor is None:
        extractor = _build(config, make)
    for item, label in zip(items, labels):
        yield _run(job, extractor, item, label)
