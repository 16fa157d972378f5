"""Run one job per file with an `Extractor`, in worker processes, one error message per file.

Shared by `python -m talkface extract` and dataset loading: each worker builds its extractor once
(dlib and py-feat models cannot be pickled), a failing file becomes a message naming it, and the
batch goes on. Workers are spawned, not forked: forking a process that already runs torch or
OpenMP threads can deadlock.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from ..errors import TalkfaceError

Job = Callable[[Any, Any], Any]  # (extractor or None, item) -> result
_WORKER: dict = {}


def _init(backend: Optional[str], options: dict, threads: Optional[int]) -> None:
    if threads is not None:
        # N workers x all-core thread pools would fight over the CPUs: give each its share
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import cv2
        cv2.setNumThreads(threads)
    from .extract import Extractor
    _WORKER["extractor"] = Extractor(backend, **options) if backend else None


def _run(job: Job, item: Any, name: str) -> tuple[Any, Optional[str]]:
    try:
        return job(_WORKER.get("extractor"), item), None
    except TalkfaceError as err:
        message = str(err)
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
        message = f"unexpected {type(err).__name__}: {err}"
    return None, message if name in message else f"{name}: {message}"


def _run_packed(args: tuple) -> tuple[Any, Optional[str]]:
    return _run(*args)


def run_per_file(job: Job, items: Sequence[Any], names: Sequence[str], backend: Optional[str],
                 options: Optional[dict] = None, workers: int = 1, extractor=None
                 ) -> Iterator[tuple[Any, Optional[str]]]:
    """Yield (result, None) or (None, "file: what went wrong") per item, in order.

    `job(extractor, item)` must be a module-level function (it is sent to the workers);
    `backend=None` means the job needs no extractor. In one process, an `extractor` the caller
    already built is used instead of building another.
    """
    options = dict(options or {})
    packed = [(job, item, Path(name).name) for item, name in zip(items, names)]
    if workers > 1 and len(packed) > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init, initargs=(backend, options, threads)) as pool:
            yield from pool.map(_run_packed, packed, chunksize=4)
        return
    if extractor is not None:
        _WORKER["extractor"] = extractor
    else:
        _init(backend, options, None)
    yield from map(_run_packed, packed)
