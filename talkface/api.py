"""The Python API: `load_scorer()` and `Scorer.score(video) -> ScoreResult`.

A `Scorer` is a loaded checkpoint plus the one `Extractor` whose settings match the checkpoint's
`FeatureSpec` (backend name and options, fps, sample rate), so features are always made the way
the model was trained on. Features go through the `FeatureCache`: rescoring a clip is a lookup.
Besides the scores, a result carries what explains them: warnings about the input, the model's
attention maps and per-frame sync signals (mouth opening, audio energy, the estimated AV offset).

    scorer = talkface.load_scorer()            # the active shipped checkpoint
    result = scorer.score("clip.mp4")
    result.scores                               # {"lip_sync": 0.81, ...} in each task's range
"""
from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from . import media
from .cache import FeatureCache, file_hash
from .checkpoint import LoadedModel, load_checkpoint
from .errors import MediaError, TalkfaceError
from .features.extract import Extractor, FeatureBundle
from .spec import FeatureSpec, TaskSpec

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
MEMO_SIZE = 32  # results kept in memory per Scorer, for rescoring the same clip
MAX_CROSS_SIDE = 200  # the cross-attention matrix in `to_dict` is pooled down to this size

BANDS = [(4.5, "excellent"), (3.5, "good"), (2.5, "fair"), (1.5, "poor"), (-math.inf, "bad")]


@dataclass
class TaskScore:
    """One task's score: `value` in the task's own range, `unit` in [0, 1], `mos` on 1-5."""

    task: TaskSpec
    value: float
    unit: float
    mos: float

    @property
    def band(self) -> str:
        return next(name for low, name in BANDS if self.mos >= low)

    @property
    def meaning(self) -> str:
        """One line a reader can act on, e.g. 'good lip sync (4.1/5): Do the lips move ...'."""
        label = self.task.label or self.task.name
        text = f"{self.band} {label.lower()} ({self.mos:.1f}/5)"
        return f"{text}: {self.task.description}" if self.task.description else text

    def to_dict(self) -> dict:
        t = self.task
        return {"label": t.label or t.name, "score": self.value, "unit": self.unit,
                "mos": self.mos, "range": [t.low, t.high], "higher_is_better": t.higher_is_better,
                "band": self.band, "meaning": self.meaning}


@dataclass
class SyncSignals:
    """Per-frame signals behind the lip-sync score. Arrays are (T,); `mouth_open` is NaN where
    no face was found. `offset_frames` > 0 means the audio lags the video."""

    mouth_open: np.ndarray
    audio_energy: np.ndarray
    offset_frames: int
    offsets: np.ndarray
    correlation: np.ndarray
    fps: float

    @property
    def offset_ms(self) -> float:
        return 1000.0 * self.offset_frames / self.fps

    def to_dict(self) -> dict:
        return {"offset_frames": int(self.offset_frames), "offset_ms": self.offset_ms,
                "mouth_open": _floats(self.mouth_open), "audio_energy": _floats(self.audio_energy),
                "offsets": [int(o) for o in self.offsets],
                "correlation": _floats(self.correlation)}


@dataclass
class ScoreResult:
    """Everything `Scorer.score` found out about one clip."""

    file: str
    tasks: dict[str, TaskScore]
    warnings: list[str]
    attention: dict[str, np.ndarray]  # "temporal": (T,), "cross": (T, T) where the model has one
    signals: Optional[SyncSignals]
    valid: np.ndarray  # (T,) bool: a face was found
    fps: float
    info: dict = field(default_factory=dict)
    error: Optional[str] = None  # set instead of scores by `score_many` for a file that failed

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def scores(self) -> dict[str, float]:
        return {name: s.value for name, s in self.tasks.items()}

    @property
    def n_frames(self) -> int:
        return int(self.valid.shape[0])

    def attended_frames(self, k: int = 3, most: bool = True) -> list[int]:
        """Indices of the k most (or least) attended frames among frames with a face."""
        weights = self.attention.get("temporal")
        candidates = np.flatnonzero(self.valid)
        if weights is None or candidates.size == 0:
            return []
        order = candidates[np.argsort(weights[candidates], kind="stable")]
        picked = order[::-1][:k] if most else order[:k]
        return [int(i) for i in picked]

    def to_dict(self, detail: bool = True) -> dict:
        """JSON-able. `detail=False` keeps only file, scores, mos, warnings and error."""
        out = {"file": self.file, "scores": self.scores if self.ok else None,
               "mos": {n: s.mos for n, s in self.tasks.items()} if self.ok else None,
               "warnings": list(self.warnings), "error": self.error}
        if detail and self.ok:
            out["tasks"] = {name: s.to_dict() for name, s in self.tasks.items()}
            out["fps"] = self.fps
            out["n_frames"] = self.n_frames
            out["valid"] = [bool(v) for v in self.valid]
            out["attention"] = {"temporal": _floats(self.attention.get("temporal"))}
            if "cross" in self.attention:
                out["attention"]["cross"] = pool_matrix(self.attention["cross"]).tolist()
            out["signals"] = self.signals.to_dict() if self.signals is not None else None
            out["info"] = {k: v for k, v in self.info.items() if k != "warnings"}
        return out

    @classmethod
    def failed(cls, file: str, error: str) -> "ScoreResult":
        return cls(file, {}, [], {}, None, np.zeros(0, bool), 0.0, error=error)


def _floats(values) -> Optional[list]:
    """Array -> list of floats with NaN as None (JSON has no NaN)."""
    if values is None:
        return None
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float).ravel()]


def pool_matrix(matrix: np.ndarray, side: int = MAX_CROSS_SIDE) -> np.ndarray:
    """Average-pool a (T, T) matrix to at most (side, side) for display and JSON."""
    t = matrix.shape[0]
    if t <= side:
        return np.asarray(matrix, float)
    edges = np.linspace(0, t, side + 1).astype(int)
    rows = np.add.reduceat(matrix, edges[:-1], axis=0) / np.diff(edges)[:, None]
    return np.add.reduceat(rows, edges[:-1], axis=1) / np.diff(edges)[None, :]


def extractor_for(spec: FeatureSpec, max_seconds: float = media.DEFAULT_MAX_SECONDS,
                  **backend_options) -> Extractor:
    """The Extractor that reproduces `spec` (backend, its options, fps, sample rate, max side)."""
    backend = backend_options.pop("backend", None) or spec.backend
    config = dict(spec.backend_config) if backend == spec.backend else {}
    max_side = config.pop("max_side", spec.backend_config.get("max_side",
                                                              media.DEFAULT_MAX_SIDE))
    config.update(backend_options)
    max_side = config.pop("max_side", max_side)
    return Extractor(backend, fps=spec.fps, sample_rate=spec.sample_rate, max_side=max_side,
                     max_seconds=max_seconds, **config)


class Scorer:
    """A checkpoint and its matching extractor. Build once (`load_scorer`), score many clips."""

    def __init__(self, loaded: LoadedModel, extractor: Optional[Extractor] = None,
                 cache: FeatureCache | None | bool = True) -> None:
        self.loaded = loaded
        self.extractor = extractor if extractor is not None else extractor_for(loaded.spec)
        loaded.spec.check_compatible(self.extractor.spec, "checkpoint", "extractor")
        if cache is True:
            cache = FeatureCache()
        self.cache: Optional[FeatureCache] = cache or None
        self._memo: OrderedDict[str, ScoreResult] = OrderedDict()  # file hash -> result (LRU)

    def clear_memory(self) -> None:
        """Forget results kept in memory (the feature cache on disk is kept)."""
        self._memo.clear()

    @property
    def tasks(self) -> list[TaskSpec]:
        return list(self.loaded.tasks)

    @property
    def spec(self) -> FeatureSpec:
        return self.loaded.spec

    def features(self, video: str | os.PathLike,
                 progress: Optional[Progress] = None) -> FeatureBundle:
        """Features of `video` (from the cache when the same bytes were seen before)."""
        media.probe(video)  # readable errors for missing, empty or non-video files, before hashing
        if self.cache is not None:
            bundle = self.cache.get_or_extract(self.extractor, video, progress=progress)
        else:
            bundle = self.extractor.extract(video, progress=progress)
        self.spec.check_compatible(bundle.spec, "checkpoint", "cached features")
        return bundle

    def score(self, video: str | os.PathLike, progress: Optional[Progress] = None) -> ScoreResult:
        """Score one clip. Raises a `TalkfaceError` (with a readable message) when it cannot.
        The same bytes scored again by this Scorer come from memory (same model, same result)."""
        media.probe(video)
        key = file_hash(video)
        if key in self._memo:
            self._memo.move_to_end(key)
            return replace(self._memo[key], file=str(video))
        bundle = self.features(video, progress)
        result = self.score_bundles([bundle], [str(video)])[0]
        self._memo[key] = result
        if len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return result

    def score_many(self, paths: Iterable[str | os.PathLike], batch_size: int = 8,
                   progress: Optional[Callable[[str], None]] = None) -> list[ScoreResult]:
        """Score several clips, the model running on padded batches. A clip that fails gives a
        result with `error` set (and no scores) instead of stopping the batch. `progress(file)` is
        called after each clip's features are ready."""
        paths = [str(p) for p in paths]
        results: dict[int, ScoreResult] = {}
        ready: list[tuple[int, FeatureBundle]] = []
        for i, path in enumerate(paths):
            try:
                ready.append((i, self.features(path)))
            except TalkfaceError as err:
                results[i] = ScoreResult.failed(path, str(err))
            except Exception as err:  # one unreadable file must not stop a batch
                log.exception("unexpected failure on %s", path)
                results[i] = ScoreResult.failed(path, f"{Path(path).name}: unexpected "
                                                      f"{type(err).__name__}: {err}")
            if progress is not None:
                progress(path)
        ready.sort(key=lambda item: item[1].n_frames)  # similar lengths share a batch
        for start in range(0, len(ready), batch_size):
            chunk = ready[start:start + batch_size]
            for (i, _), result in zip(chunk, self._score_safely([b for _, b in chunk],
                                                                [paths[i] for i, _ in chunk])):
                results[i] = result
        return [results[i] for i in range(len(paths))]

    def _score_safely(self, bundles: list[FeatureBundle], names: list[str]) -> list[ScoreResult]:
        good = [(b, n) for b, n in zip(bundles, names) if b.valid.any()]
        scored = iter(self.score_bundles([b for b, _ in good], [n for _, n in good])) \
            if good else iter(())
        return [next(scored) if b.valid.any() else ScoreResult.failed(n, no_face_message(n))
                for b, n in zip(bundles, names)]

    @torch.inference_mode()
    def score_bundles(self, bundles: list[FeatureBundle], names: list[str]) -> list[ScoreResult]:
        """Run the model on already extracted bundles (one padded batch)."""
        for bundle, name in zip(bundles, names):
            if not bundle.valid.any():
                raise MediaError(no_face_message(name))
        visual, audio, mask = pad_batch(bundles)
        out = self.loaded.model(visual, audio, mask)
        results = []
        for b, (bundle, name) in enumerate(zip(bundles, names)):
            t = bundle.n_frames
            scores = {task.name: task_score(task, float(out.scores[task.name][b]))
                      for task in self.tasks}
            attention = {"temporal": out.attention["temporal"][b, :t].float().numpy()}
            if "cross" in out.attention:
                attention["cross"] = out.attention["cross"][b, :t, :t].float().numpy()
            results.append(ScoreResult(str(name), scores, bundle.warnings, attention,
                                       sync_signals(bundle), bundle.valid.copy(),
                                       bundle.spec.fps, dict(bundle.info)))
        return results


def no_face_message(name: str) -> str:
    return (f"{Path(name).name}: no face was found in any frame, so the clip cannot be scored "
            f"(talkface needs one visible, roughly frontal face)")


def task_score(task: TaskSpec, value: float) -> TaskScore:
    """Clip the model's output into the task's range and map it to [0, 1] and 1-5."""
    value = min(max(value, task.low), task.high)
    unit = (value - task.low) / (task.high - task.low)
    return TaskScore(task, value, unit, task.to_mos(value))


def pad_batch(bundles: list[FeatureBundle]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bundles -> visual (B, T, Dv), audio (B, T, Da), mask (B, T) bool, zero-padded to the
    longest clip; the mask is False on padding and on frames without a face."""
    t = max(b.n_frames for b in bundles)
    n, dv, da = len(bundles), bundles[0].visual.shape[1], bundles[0].audio.shape[1]
    visual, audio = np.zeros((n, t, dv), np.float32), np.zeros((n, t, da), np.float32)
    mask = np.zeros((n, t), bool)
    for i, b in enumerate(bundles):
        visual[i, :b.n_frames], audio[i, :b.n_frames], mask[i, :b.n_frames] = \
            b.visual, b.audio, b.valid
    return torch.from_numpy(visual), torch.from_numpy(audio), torch.from_numpy(mask)


def sync_signals(bundle: FeatureBundle) -> Optional[SyncSignals]:
    """Mouth opening vs audio energy and the AV offset that best aligns them (baselines); None
    without audio or without a mouth-opening column."""
    from .baselines import estimate_offset
    spec = bundle.spec
    if "mouth_open" not in spec.visual_names or "log_rms" not in spec.audio_names:
        return None
    if not bundle.info.get("has_audio", True) or bundle.info.get("silent_audio", False):
        return None  # nothing to align the mouth with; the warnings say so
    mouth = bundle.visual_column("mouth_open").astype(float)
    level_db = bundle.audio_column("log_rms").astype(float)
    # the same inputs as the baseline's lip-sync score, so the app shows the offset it used
    offset, offsets, curve = estimate_offset(mouth, level_db, valid=bundle.valid)
    energy = np.power(10.0, level_db / 20.0)  # plotted on a linear scale
    shown = np.where(bundle.valid, mouth, np.nan)
    return SyncSignals(shown, energy, int(offset), np.asarray(offsets),
                       np.asarray(curve, float), spec.fps)


def read_frames(video: str | os.PathLike, indices: Iterable[int], fps: float,
                max_side: int = 192, max_seconds: float = media.DEFAULT_MAX_SECONDS) \
        -> dict[int, np.ndarray]:
    """Decode only the frames at `indices` on the fps grid: {index: (H, W, 3) uint8}."""
    wanted = set(int(i) for i in indices)
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    for i, frame in enumerate(media.iter_frames(video, fps, max_side, max_seconds)):
        if i in wanted:
            found[i] = frame
            if len(found) == len(wanted):
                break
    return found


def load_scorer(path: str | os.PathLike | None = None, backend: Optional[str] = None,
                cache: FeatureCache | str | os.PathLike | bool = True,
                max_seconds: float = media.DEFAULT_MAX_SECONDS,
                **backend_options) -> Scorer:
    """Load a checkpoint (default: the active shipped one) and the extractor it was trained with.

    `backend` / `backend_options` override the checkpoint's feature settings; if that changes the
    features the model expects, this raises `SpecMismatch` naming both specs. `cache`: True for
    the default feature cache, a folder for another one, False for none.
    """
    loaded = load_checkpoint(path)
    if backend is not None:
        backend_options["backend"] = backend
    extractor = extractor_for(loaded.spec, max_seconds=max_seconds, **backend_options)
    if isinstance(cache, (str, os.PathLike)):
        cache = FeatureCache(cache)
    return Scorer(loaded, extractor, cache)
