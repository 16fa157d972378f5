"""The one inference path: clips -> padded batches -> model -> scores users see.

The Scorer, training's validation, `train.evaluate`, `train.compare`, `train.ship` and the app
all call `predict`, so every number on a model card is a number a user gets (as nanoGPT evaluates
with its training script's own code). Scores are clipped into each task's range (the `original`
model's linear heads are unbounded) and set to NaN where a task cannot be judged for that clip
(`ClipFeatures.unjudged`, from the features: lip sync without audio or without speech).
Nothing here imports the feature extractor: predict sees arrays and a model. Nor torch: batches
are numpy, and `talkface.runtime.forward` runs whichever runtime the model is (an ONNX session
as it is, a PyTorch module through tensors on `device`).

A clip longer than WINDOW frames is scored in equal windows of at most that length, and its raw
scores are the windows' mean weighted by their face frames (before the calibration map): the
model trains on 64-frame crops, and its attention over a whole 2-minute clip would cost memory
quadratic in the clip's length (about 1 GB at 3000 frames).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .runtime import forward

MAX_CROSS_SIDE = 200  # cross-attention matrices are pooled to at most this size
WINDOW = 750  # frames (30 s at 25 fps): longer clips are scored in windows of at most this many


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


def windows(n_frames: int, size: Optional[int] = None) -> list[tuple[int, int]]:
    """[start, end) spans of (nearly) equal length covering `n_frames`, each at most `size`
    (default WINDOW) frames: one span for a clip that fits."""
    size = size or WINDOW
    count = max(1, -(-n_frames // size))
    edges = np.linspace(0, n_frames, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _window(clip: ClipFeatures, start: int, end: int) -> ClipFeatures:
    if (start, end) == (0, clip.n_frames):
        return clip
    return ClipFeatures(clip.visual[start:end], clip.audio[start:end], clip.valid[start:end],
                        clip.file, clip.unjudged, clip.targets, clip.signals)


@dataclass
class _Raw:
    """One window's model output before calibration."""

    scores: dict[str, float]
    spread: dict[str, float]
    temporal: Optional[np.ndarray] = None  # (n,)
    cross: Optional[np.ndarray] = None  # pooled to this window's share of the clip's side


def _run(model, clips: Sequence[ClipFeatures], batch_size: int, device, attention: bool
         ) -> list[list[_Raw]]:
    """The model's raw output on every window of every clip, batched by similar length."""
    pieces = [(i, a, b) for i, c in enumerate(clips) for a, b in windows(c.n_frames)]
    sides = {}  # each window's block of its clip's pooled cross map (a whole clip: pooled as is)
    for i, a, b in pieces:
        n = clips[i].n_frames
        sides[i, a] = (MAX_CROSS_SIDE if (a, b) == (0, n) else
                       max(1, round(min(n, MAX_CROSS_SIDE) * (b - a) / n)))
    order = sorted(range(len(pieces)), key=lambda k: pieces[k][2] - pieces[k][1])
    raw: dict[int, _Raw] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = [_window(clips[pieces[k][0]], *pieces[k][1:]) for k in chunk]
        result = forward(model, *pad_batch(batch), device=device)
        for b, (k, window) in enumerate(zip(chunk, batch)):
            n = window.n_frames
            out = _Raw({t.name: float(result.scores[t.name][b]) for t in model.tasks},
                       {t: float(v[b]) for t, v in result.spread.items()})
            if attention:
                out.temporal = result.attention["temporal"][b, :n].copy()
                if "cross" in result.attention:
                    out.cross = pool_matrix(result.attention["cross"][b, :n, :n],
                                            sides[pieces[k][0], pieces[k][1]])
            raw[k] = out
    per_clip: list[list[_Raw]] = [[] for _ in clips]
    for k, (i, _, _) in enumerate(pieces):
        per_clip[i].append(raw[k])
    return per_clip


def _combine(clip: ClipFeatures, parts: list[_Raw]) -> _Raw:
    """A clip's windows as one output: scores and spreads weighted by face frames, temporal
    attention joined (each window's share of the weight), cross maps on the diagonal."""
    if len(parts) == 1:
        return parts[0]
    spans = windows(clip.n_frames)
    weights = np.array([clip.valid[a:b].sum() for a, b in spans], float)
    weights = weights / weights.sum() if weights.sum() else np.full(len(parts), 1 / len(parts))
    mean = (lambda key: {t: float(sum(w * getattr(p, key)[t] for w, p in zip(weights, parts)))
                         for t in getattr(parts[0], key)})
    out = _Raw(mean("scores"), mean("spread"))
    if parts[0].temporal is not None:
        out.temporal = np.concatenate([w * p.temporal for w, p in zip(weights, parts)])
    if parts[0].cross is not None:
        side = sum(p.cross.shape[0] for p in parts)
        cross, at = np.zeros((side, side), np.float32), 0
        for p in parts:
            s = p.cross.shape[0]
            cross[at:at + s, at:at + s] = p.cross
            at += s
        out.cross = cross
    return out


def _spread(tasks, raws: list[_Raw], monotone: dict) -> dict[str, np.ndarray]:
    """An ensemble's spread per task, (N,) each, on the scale of the scores users see: half the
    width the calibration map gives the interval mean +- spread (the spread itself without a
    map)."""
    from .calibration import apply_monotone
    out = {}
    for t in tasks:
        if not raws or t.name not in raws[0].spread:
            continue
        mean = np.array([r.scores[t.name] for r in raws])
        width = np.array([r.spread[t.name] for r in raws])
        curve = monotone.get(t.name)
        out[t.name] = np.abs(apply_monotone(curve, mean + width)
                             - apply_monotone(curve, mean - width)) / 2
    return out


def predict(model, clips: Sequence[ClipFeatures], batch_size: int = 8,
            device="cpu", attention: bool = False,
            calibration=None) -> list[Prediction]:
    """Score clips with `model` (its tasks in `model.tasks`), in batches of similar length
    (a clip longer than WINDOW frames in windows, see above). `calibration`
    (`talkface.calibration.Calibration`, from the checkpoint) maps raw scores to the scores
    users see and takes off what the clip's measured signals cost. Returns one Prediction per
    clip, in order. The model's train/eval mode is restored after."""
    from .calibration import apply_monotone
    monotone = calibration.monotone if calibration is not None else {}
    was_training = model.training
    model.eval()
    try:
        per_clip = _run(model, clips, batch_size, device, attention)
    finally:
        model.train(was_training)
    raws = [_combine(clip, parts) for clip, parts in zip(clips, per_clip)]
    calibrated = {t.name: apply_monotone(monotone.get(t.name),
                                         np.array([r.scores[t.name] for r in raws]))
                  for t in model.tasks}
    spread = _spread(model.tasks, raws, monotone)
    out = []
    for k, (clip, raw) in enumerate(zip(clips, raws)):
        _read_realism(calibration, clip)
        scores = {t.name: _finish(t, calibrated[t.name][k] - _penalty(calibration, t.name, clip),
                                  clip.unjudged.get(t.name)) for t in model.tasks}
        maps = {}
        if raw.temporal is not None:
            maps["temporal"] = raw.temporal
        if raw.cross is not None:
            maps["cross"] = raw.cross
        spreads = {t: float(v[k]) if np.isfinite(scores[t]) else float("nan")
                   for t, v in spread.items()}
        out.append(Prediction(scores, maps, spreads))
    return out


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
