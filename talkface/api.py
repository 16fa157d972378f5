"""The Python API: `load_scorer()` and `Scorer.score(video) -> ScoreResult`.

A `Scorer` is a loaded checkpoint plus the one `Extractor` whose settings match the checkpoint's
`FeatureSpec` (`ExtractorConfig`: backend and options, fps, sample rate, sync model), so features
are always made the way the model was trained on. Features go through the `FeatureCache`:
rescoring a clip is a lookup. Scores come from `talkface.predict.predict`, the same function that
computes every metric on the model card. Besides the scores, a result carries what explains them:
warnings about the input, the model's attention, the sync figures and curves, which face was
scored, the identity signal and the time course of every signal that has one (`timeline`);
with `syncnet_weights`, SyncNet's paper-standard LSE-D / LSE-C.

    scorer = talkface.load_scorer()            # the active shipped checkpoint
    result = scorer.score("clip.mp4")
    result.scores                               # {"lip_sync": 0.81, ...}; None = not judged

A Scorer keeps no per-call state (the extractor opens a session per clip; remembered results are
handed out as deep copies), so one Scorer can serve several threads. Its features can be made in
other processes (`feature_workers`, the app's: `talkface.parallel.FeatureWorkers`); the model, the
memo and the result stay here, so the results are the same.
"""
from __future__ import annotations

import copy
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from . import media
from .cache import FeatureCache, file_hash
from .checkpoint import LoadedModel, load_checkpoint, scoring_runtime
from .errors import MediaError, TalkfaceError
from .features.extract import Extractor, FeatureBundle, Progress, resolve_config
from .predict import ClipFeatures, predict
from .results import (ScoreResult, SignalValue, TaskScore, in_context, no_face_message,
                      task_score)
from .signals import explain, frame_course
from .spec import DEFAULT_IDENTITY_FRAMES, FeatureSpec, TaskSpec
from .sync.correlation import correlation_sync
from .sync.result import SyncResult

log = logging.getLogger(__name__)
MEMO_BYTES = 64 * 1024 ** 2  # results kept in memory per Scorer, for rescoring the same clip


def extractor_for(spec: FeatureSpec, sync_runtime: Optional[str] = None,
                  **overrides) -> Extractor:
    """The Extractor that reproduces `spec`'s features (its ExtractorConfig), with `overrides`
    (e.g. max_seconds, or a backend option, which then no longer matches the spec). Identity is
    a scoring-time signal, not a feature: scoring embeds DEFAULT_IDENTITY_FRAMES frames whatever
    the checkpoint's training data used. `sync_runtime`: see `Extractor`."""
    overrides.setdefault("identity_frames", DEFAULT_IDENTITY_FRAMES)
    return Extractor(resolve_config(spec.extractor, **overrides), sync_runtime=sync_runtime)


def _result_bytes(result: ScoreResult) -> int:
    arrays = [*result.attention.values(), *result.timeline.values(), result.valid]
    if result.sync is not None:
        arrays += [result.sync.mouth_open, result.sync.audio_level, result.sync.curve]
    return sum(np.asarray(a).nbytes for a in arrays) + 64 * len(result.info.get("boxes") or [])


class Scorer:
    """A checkpoint and its matching extractor. Build once (`load_scorer`), score many clips."""

    def __init__(self, loaded: LoadedModel, extractor: Optional[Extractor] = None,
                 cache: FeatureCache | None | bool = True, device: str = "cpu",
                 syncnet=None) -> None:
        """`syncnet`: a `talkface.sync.syncnet.LoadedSyncNet` for paper-standard LSE figures
        (`result.lse`), or None."""
        self.loaded = loaded
        self.extractor = extractor if extractor is not None else extractor_for(loaded.spec)
        loaded.spec.check_compatible(self.extractor.spec, "checkpoint", "extractor")
        self.cache: Optional[FeatureCache] = FeatureCache() if cache is True else (cache or None)
        self.device = device
        loaded.model.to(self.device)
        self._memo: OrderedDict[tuple, ScoreResult] = OrderedDict()
        self._memo_bytes = 0
        self._lock = threading.Lock()
        self._references: dict[str, Optional[np.ndarray]] = {}
        self.calibration = loaded.calibration
        self.syncnet = syncnet
        # where `features` makes them: here (None), or the app's worker processes
        # (`talkface.parallel.FeatureWorkers`, each with a Scorer built like this one)
        self.feature_workers = None

    def clear_memory(self) -> None:
        """Forget results kept in memory (the feature cache on disk is kept)."""
        with self._lock:
            self._memo.clear()
            self._memo_bytes = 0

    @property
    def tasks(self) -> list[TaskSpec]:
        return list(self.loaded.tasks)

    @property
    def spec(self) -> FeatureSpec:
        return self.loaded.spec

    def features(self, video: str | os.PathLike, progress: Optional[Progress] = None,
                 face: Optional[int] = None, digest: Optional[str] = None) -> FeatureBundle:
        """Features of `video` (from the cache when the same bytes were seen before). The file
        is probed once and hashed once; with `feature_workers`, all of this happens in one of
        them."""
        if self.feature_workers is not None:
            bundle = self.feature_workers.features(video, progress, face, digest)
            self.spec.check_compatible(bundle.spec, "checkpoint", "the worker's features")
            return bundle
        info = media.probe(video)  # readable errors for missing, empty or non-video files
        if self.cache is not None:
            bundle = self.cache.get_or_extract(self.extractor, video, progress,
                                               digest or file_hash(video), info, face)
        else:
            bundle = self.extractor.extract(video, progress=progress, info=info, face=face)
        self.spec.check_compatible(bundle.spec, "checkpoint", "cached features")
        return bundle

    def score(self, video: str | os.PathLike, progress: Optional[Progress] = None,
              face: Optional[int] = None, reference=None) -> ScoreResult:
        """Score one clip. Raises a `TalkfaceError` (with a readable message) when it cannot.
        `face`: score that face track (see `result.face_summary()`) instead of the speaking
        one; `reference`: a portrait (path or RGB array) of the person the clip should show."""
        digest = file_hash(video)  # names a missing file or a folder before anything else
        key = (digest, face)
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                result = copy.deepcopy(self._memo[key])
                return self._with_reference(_renamed(result, str(video)), reference)
        bundle = self.features(video, progress, face, digest)
        result = self._with_lse(self.score_bundles([bundle], [str(video)])[0], video)
        self._remember(key, result)
        return self._with_reference(copy.deepcopy(result), reference)

    def _remember(self, key: tuple, result: ScoreResult) -> None:
        size = _result_bytes(result)
        with self._lock:
            if key in self._memo:
                return
            self._memo[key] = result
            self._memo_bytes += size
            while self._memo_bytes > MEMO_BYTES and len(self._memo) > 1:
                _, old = self._memo.popitem(last=False)
                self._memo_bytes -= _result_bytes(old)

    def score_many(self, paths: Iterable[str | os.PathLike], batch_size: int = 8,
                   progress: Optional[Progress] = None, reference=None) -> list[ScoreResult]:
        """Score several clips, the model running on padded batches. A clip that fails gives a
        result with `error` set (and no scores) instead of stopping the batch.
        `progress(done, total, file)` is called after each clip's features are ready."""
        paths = [str(p) for p in paths]
        return self.score_prepared(paths, map(self.features_or_error, paths), batch_size,
                                   progress, reference)

    def features_or_error(self, video: str | os.PathLike) -> FeatureBundle | str:
        """`features(video)`, or the readable reason it cannot be had: one bad file must not
        stop a batch."""
        try:
            return self.features(video)
        except TalkfaceError as err:
            return str(err)
        except Exception as err:  # noqa: BLE001 - an unreadable file is that file's failure
            log.exception("unexpected failure on %s", video)
            return f"{Path(video).name}: unexpected {type(err).__name__}: {err}"

    def score_prepared(self, paths: list[str], prepared: Iterable[FeatureBundle | str],
                       batch_size: int = 8, progress: Optional[Progress] = None,
                       reference=None) -> list[ScoreResult]:
        """Score clips whose features (or failure messages) `prepared` yields, one per path in
        order, made by this Scorer (`score_many`) or by other processes (`talkface.parallel`).
        The model runs on batches of `batch_size` consecutive clips that have a face, as they
        fill: a clip's score depends on the batch it is padded into (at the 1e-8 level), so the
        same files give the same batches, and the same scores to the last digit, however their
        features were made. Only one batch of features is held at a time."""
        results: list[Optional[ScoreResult]] = [None] * len(paths)
        waiting: list[tuple[int, FeatureBundle]] = []
        for i, (path, item) in enumerate(zip(paths, prepared)):
            if isinstance(item, str):
                results[i] = ScoreResult.failed(path, item)
            elif not item.valid.any():
                results[i] = ScoreResult.failed(path, no_face_message(path, item.info))
            else:
                self.spec.check_compatible(item.spec, "checkpoint", "features")
                waiting.append((i, item))
            if progress is not None:
                progress(i + 1, len(paths), Path(path).name)
            if len(waiting) == batch_size or (waiting and i == len(paths) - 1):
                scored = self.score_bundles([b for _, b in waiting], [paths[j] for j, _ in waiting])
                for (j, _), result in zip(waiting, scored):
                    results[j] = self._with_reference(self._with_lse(result, paths[j]), reference)
                waiting = []
        return results

    def score_bundles(self, bundles: list[FeatureBundle], names: list[str]) -> list[ScoreResult]:
        """Run the model on already extracted bundles (through `talkface.predict.predict`)."""
        for bundle, name in zip(bundles, names):
            if not bundle.valid.any():
                raise MediaError(no_face_message(name, bundle.info))
        clips = [ClipFeatures.from_bundle(b, n) for b, n in zip(bundles, names)]
        preds = predict(self.loaded.model, clips, batch_size=len(clips), device=self.device,
                        attention=True, calibration=self.calibration)
        return [self._result(b, n, c, p) for b, n, c, p in zip(bundles, names, clips, preds)]

    def _result(self, bundle: FeatureBundle, name: str, clip: ClipFeatures, pred) -> ScoreResult:
        from .calibration import clip_summary
        cal = self.calibration
        # the clip's signals were measured once, when its features became a ClipFeatures
        signals = {signal: SignalValue(signal, value, cal.signal_percentile(signal, value))
                   for signal, value in clip.signals.items()}
        standings = {signal: s.standing for signal, s in signals.items()}
        tasks = {}
        for t in self.tasks:
            spread = pred.spread.get(t.name)
            score = task_score(t, pred.scores[t.name], clip.unjudged.get(t.name, ""),
                               spread=spread if spread is not None and np.isfinite(spread)
                               else None)
            why = (explain(t.name, standings, costs=cal.costs(t.name, clip.signals))
                   if score.judged else ())
            tasks[t.name] = _replace(score, percentile=cal.percentile(t.name, score.value),
                                     why=why)
        info = copy.deepcopy(bundle.info)
        identity = {k: v for k, v in (info.get("identity") or {}).items() if k != "descriptors"}
        unusual = cal.out_of_distribution(clip_summary(clip.visual, clip.audio, clip.valid))
        warnings = tuple(bundle.warnings) + ((f"out of the training distribution: {unusual}",)
                                             if unusual else ()) + self._disagreement(tasks)
        sync = sync_result(bundle)
        return ScoreResult(str(name), in_context(tasks, sync), warnings, pred.attention, sync,
                           bundle.valid.copy(), bundle.spec.fps, info, identity=identity,
                           out_of_distribution=unusual, signals=signals,
                           timeline=frame_course(bundle))

    def _disagreement(self, tasks: dict[str, TaskScore]) -> tuple[str, ...]:
        """A warning when an ensemble's members disagree: a task's spread above the
        checkpoint's `disagreement` share of the task's range."""
        limit = self.loaded.meta.options.get("disagreement")
        if limit is None:
            return ()
        wide = [f"{s.task.label or name} {s.value:.2f} +- {s.spread:.2f}"
                for name, s in tasks.items() if s.spread is not None
                and s.spread > limit * (s.task.high - s.task.low)]
        if not wide:
            return ()
        return (f"the ensemble's members disagree (spread over {limit:g} of the range): "
                f"{', '.join(wide)}; treat these scores with caution",)

    def reference_descriptor(self, reference) -> Optional[np.ndarray]:
        """Identity embedding of a portrait (image path or RGB array), remembered per file."""
        from .faces.reference import portrait_descriptor
        key = file_hash(reference) if isinstance(reference, (str, os.PathLike)) else None
        if key is not None and key in self._references:
            return self._references[key]
        vector = portrait_descriptor(reference, self.extractor)
        if key is not None:
            self._references[key] = vector
        return vector

    def _with_reference(self, result: ScoreResult, reference) -> ScoreResult:
        if reference is None or not result.ok:
            return result
        from .faces.identity import cosine
        ref = self.reference_descriptor(reference)
        vectors = (result.info.get("identity") or {}).get("descriptors") or []
        identity = dict(result.identity)
        if ref is None:
            identity["reference_similarity"] = None
            identity["reference_note"] = "no face found in the reference portrait"
        elif vectors:
            similarity = float(np.mean([cosine(ref, np.asarray(v)) for v in vectors]))
            identity["reference_similarity"] = round(similarity, 4)
            # dlib's decision rule: same person when the distance is below 0.6 (cosine > 0.82)
            identity["reference_same_person"] = bool(np.sqrt(max(2 - 2 * similarity, 0)) < 0.6)
        return _replace(result, identity=identity)

    def _with_lse(self, result: ScoreResult, video: str | os.PathLike) -> ScoreResult:
        """`result` with SyncNet's LSE figures of its scored face (a second decode of the clip,
        `talkface.sync.lse`), when the Scorer has SyncNet weights."""
        if self.syncnet is None or not result.ok:
            return result
        from .sync.lse import video_lse
        figures = video_lse(self.syncnet, self.extractor, video, result.boxes, self.device)
        return _replace(result, lse=figures.to_dict())


def sync_result(bundle: FeatureBundle) -> SyncResult:
    """The clip's sync figures: the sync model's (stored with the features), else the
    mouth-opening / loudness correlation."""
    stored = bundle.info.get("sync")
    if stored:
        return SyncResult.from_dict(stored, bundle.spec.fps)
    return correlation_sync(bundle)


def _replace(result: ScoreResult, **changes) -> ScoreResult:
    from dataclasses import replace
    return replace(result, **changes)


def _renamed(result: ScoreResult, file: str) -> ScoreResult:
    return _replace(result, file=file)


def read_frames(video: str | os.PathLike, indices: Iterable[int], fps: float,
                max_side: int = 192, max_seconds: float = media.MAX_SECONDS) \
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


def load_scorer(path: str | os.PathLike | None = None,
                cache: FeatureCache | str | os.PathLike | bool = True, device: str = "cpu",
                runtime: Optional[str] = None,
                syncnet_weights: str | os.PathLike | None = None, **overrides) -> Scorer:
    """Load a checkpoint (default: the active one) and the extractor it was trained with.

    `overrides` change the checkpoint's feature settings (ExtractorConfig fields such as
    `max_seconds`, or backend options); if that changes the features the model expects, this
    raises `SpecMismatch` naming both specs. `cache`: True for the default feature cache, a folder
    for another one, False for none. `device`: "cpu", "cuda", or "auto" (CUDA when there is one).
    `runtime`: None (the default) runs the quality and sync models with onnxruntime where their
    folders hold a current model.onnx (the shipped checkpoints do; see `talkface.checkpoint`),
    so scoring imports no torch, and with PyTorch otherwise or on CUDA; "onnx" insists on it;
    "torch" (the checkpoint as it is) and "int8" (its Linear layers quantised to int8 on load,
    or an int8 export as it is) run both models with PyTorch.
    `syncnet_weights`: SyncNet's own weights (syncnet_v2.model, supplied by the user): every
    result then carries paper-standard LSE-D / LSE-C / offset (`result.lse`).
    """
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    syncnet = None
    if syncnet_weights is not None:  # first: a wrong path fails before the slow loading
        from .sync.syncnet import load_syncnet
        syncnet = load_syncnet(syncnet_weights)
    chosen = scoring_runtime(path, runtime, device)
    loaded = load_checkpoint(path, runtime=chosen)
    # the sync model follows: torch beside a torch model, ONNX (where it can) beside an ONNX one
    sync_runtime = "torch" if chosen != "onnx" else runtime
    extractor = extractor_for(loaded.spec, sync_runtime, **overrides)
    if isinstance(cache, (str, os.PathLike)):
        cache = FeatureCache(cache)
    return Scorer(loaded, extractor, cache, device, syncnet)


__all__ = ["Scorer", "ScoreResult", "TaskScore", "load_scorer", "read_frames", "task_score"]
