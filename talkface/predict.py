"""The one inference path: clips -> padded batches -> model -> scores users see.

The Scorer, training's validation, `train.evaluate`, `train.compare`, `train.ship` and the app
all call `predict`, so every number on a model card is a number a user gets (as nanoGPT evaluates
with its training script's own code). Scores are clipped into each task's range (the `original`
model's linear heads are unbounded) and set to NaN where a task cannot be judged for that clip
(`ClipFeatures.unjudged`, from the features: lip sync without audio or without speech).
Nothing here imports the feature extractor: predict sees arrays and a model. Nor torch: batches
are numpy, and `talkface.runtime.forward` runs whichever runtime the model is (an ONNX session
as it is, a PyTorch module through tensors on `device`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .runtime import forward

MAX_CROSS_SIDE = 200  # cross-attention matrices are pooled to at most this size


@dataclass
class ClipFeatures:
    """A clip's features as the model sees them. `unjudged` maps a task to why it cannot be
    judged for this clip; `targets` (n_tasks,) are labels where known (NaN = none)."""

    visual: np.ndarray  # (T, Dv) float32
    audio: np.ndarray  # (T, Da) float32
    valid: np.ndarray  # (T,) bool
    file: str = ""
    unjudged: dict[str, str] = field(default_factory=dict)
    targets: Optional[np.ndarray] = None
    signals: dict[str, Optional[float]] = field(default_factory=dict)  # `talkface.signals`

    @property
    def n_frames(self) -> int:
        return int(self.valid.shape[0])

    @classmethod
    def from_bundle(cls, bundle, file: str = "", targets=None) -> "ClipFeatures":
        """From a `talkface.features.FeatureBundle` (which says what the clip allows judging),
        with the clip's measured signals (which the checkpoint's penalties read)."""
        from .signals import measure_signals
        return cls(bundle.visual, bundle.audio, bundle.valid, file, bundle.unjudged, targets,
                   measure_signals(bundle))


@dataclass
class Prediction:
    """One clip's output: `scores[task]` in the task's range (NaN = not judged), attention maps
    for display: "temporal" (T,), "cross" (at most MAX_CROSS_SIDE square) where the model has
    one; `spread[task]` the ensemble members' standard deviation on the same scale as the score
    (empty for a single model, NaN = not judged)."""

    scores: dict[str, float]
    attention: dict[str, np.ndarray] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)


def pad_batch(clips: Sequence[ClipFeatures]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clips -> visual (B, T, Dv), audio (B, T, Da), mask (B, T) bool, zero-padded to the longest;
    the mask is False on padding and on frames without a face."""
    t = max(c.n_frames for c in clips)
    n, dv, da = len(clips), clips[0].visual.shape[1], clips[0].audio.shape[1]
    visual, audio = np.zeros((n, t, dv), np.float32), np.zeros((n, t, da), np.float32)
    mask = np.zeros((n, t), bool)
    for i, c in enumerate(clips):
        visual[i, :c.n_frames], audio[i, :c.n_frames], mask[i, :c.n_frames] = \
            c.visual, c.audio, c.valid
    return visual, audio, mask


def pool_matrix(matrix: np.ndarray, side: int = MAX_CROSS_SIDE) -> np.ndarray:
    """Average-pool a (T, T) matrix to at most (side, side)."""
    t = matrix.shape[0]
    if t <= side:
        return np.asarray(matrix, np.float32)
    edges = np.linspace(0, t, side + 1).astype(int)
    rows = np.add.reduceat(matrix, edges[:-1], axis=0) / np.diff(edges)[:, None]
    return (np.add.reduceat(rows, edges[:-1], axis=1) / np.diff(edges)[None, :]).astype(
        np.float32)


def _finish(task, value: float, reason: Optional[str]) -> float:
    if reason is not None or not np.isfinite(value):
        return float("nan")
    return float(min(max(value, task.low), task.high))


def _read_realism(calibration, clip: ClipFeatures) -> None:
    """Add the checkpoint's generated look (`talkface.realism`) to the clip's signals, once."""
    realism = getattr(calibration, "realism", None)
    if realism is not None and clip.signals.get("generated_look") is None:
        clip.signals["generated_look"] = realism.probability(clip.visual, clip.valid)


def _penalty(calibration, task: str, clip: ClipFeatures) -> float:
    """What the clip's measured signals take off `task` (the checkpoint's fitted penalties)."""
    return calibration.penalty(task, clip.signals) if calibration is not None else 0.0


def _spread(tasks, result, monotone: dict) -> dict[str, np.ndarray]:
    """An ensemble's spread per task, (B,) each, on the scale of the scores users see: half the
    width the calibration map gives the interval mean +- spread (the spread itself without a
    map)."""
    from .calibration import apply_monotone
    out = {}
    for t in tasks:
        if t.name not in result.spread:
            continue
        mean, width = result.scores[t.name], result.spread[t.name]
        curve = monotone.get(t.name)
        out[t.name] = np.abs(apply_monotone(curve, mean + width)
                             - apply_monotone(curve, mean - width)) / 2
    return out


def predict(model, clips: Sequence[ClipFeatures], batch_size: int = 8,
            device="cpu", attention: bool = False,
            calibration=None) -> list[Prediction]:
    """Score clips with `model` (its tasks in `model.tasks`), in batches of similar length.
    `calibration` (`talkface.calibration.Calibration`, from the checkpoint) maps raw scores to
    the scores users see and takes off what the clip's measured signals cost. Returns one
    Prediction per clip, in order. The model's train/eval mode is restored after."""
    from .calibration import apply_monotone
    monotone = calibration.monotone if calibration is not None else {}
    was_training = model.training
    model.eval()
    order = sorted(range(len(clips)), key=lambda i: clips[i].n_frames)
    out: dict[int, Prediction] = {}
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = [clips[i] for i in chunk]
            result = forward(model, *pad_batch(batch), device=device)
            raw = {t.name: apply_monotone(monotone.get(t.name), result.scores[t.name])
                   for t in model.tasks}
            spread = _spread(model.tasks, result, monotone)
            for b, (i, clip) in enumerate(zip(chunk, batch)):
                _read_realism(calibration, clip)
                scores = {t.name: _finish(t, raw[t.name][b] - _penalty(calibration, t.name, clip),
                                          clip.unjudged.get(t.name)) for t in model.tasks}
                maps = {}
                if attention:
                    n = clip.n_frames
                    maps["temporal"] = result.attention["temporal"][b, :n].copy()
                    if "cross" in result.attention:
                        maps["cross"] = pool_matrix(result.attention["cross"][b, :n, :n])
                spreads = {t: float(v[b]) if np.isfinite(scores[t]) else float("nan")
                           for t, v in spread.items()}
                out[i] = Prediction(scores, maps, spreads)
    finally:
        model.train(was_training)
    return [out[i] for i in range(len(clips))]


def predict_arrays(model, clips: Sequence[ClipFeatures], batch_size: int = 8,
                   device="cpu", calibration=None) -> tuple[np.ndarray, np.ndarray]:
    """(predictions (N, K), targets (N, K)) in task order, NaN where not judged / unlabelled:
    the arrays every metric is computed from."""
    preds = predict(model, clips, batch_size, device, calibration=calibration)
    names = [t.name for t in model.tasks]
    p = np.array([[pr.scores[n] for n in names] for pr in preds], np.float64).reshape(-1,
                                                                                      len(names))
    targets = np.array([c.targets if c.targets is not None else np.full(len(names), np.nan)
                        for c in clips], np.float64).reshape(-1, len(names))
    return p, targets
