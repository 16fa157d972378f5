"""The sync model applied to a clip: offset, LSE-D/LSE-C-style figures, a sync curve over time,
"cannot judge" with a reason, per-frame sync columns for the quality model, and the speaking face.

Figures as syncnet_python computes them: the distance |v_t - a_(t+d)| between the video window at
t and the audio window at t + d, averaged over the clip's windows for each candidate offset d;
the offset is the argmin, `min_dist` the minimum (LSE-D) and `confidence` the median minus the
minimum (LSE-C). The same over one-second stretches (25 windows, every half second) gives the
curve over time. `speech_weights` can make each window count by how much speech its audio holds
(silence a tenth, so pauses, where any offset fits, do not dilute the vote); `train.sync_eval`
measures it (`weighted=True`), and the shipped columns do not use it yet: on the one fold
measured so far it moved the AUC by 0.001-0.004 either way (docs/sync.md). Offsets are searched over +-15 frames (MAX_OFFSET_FRAMES), fewer where a short
clip has no pairs for the larger ones; any clip of 0.5 s (12 frames) or more can be judged.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.ndimage import uniform_filter1d

from ..constants import FPS, HOP, MAX_OFFSET_FRAMES, SAMPLE_RATE
from ..measures import loudness_db, speech_mask
from .frontend import (WINDOW, crop_input, lip_input, mel_power, normalise_mel,
                       window_valid)
from .result import SyncResult

MIN_WINDOWS = 8  # fewer valid windows than this (about 0.5 s of face): too short to judge
LOCAL = 25  # windows per stretch of the curve over time (1 s)
SPEECH_FRACTION = 0.1  # below this share of speech frames: no speech to judge sync on
PROFILE_FRACTION = 0.5  # above this share of profile frames: the mouth cannot be seen
SILENT_WEIGHT = 0.1  # how much a window without speech counts in the clip's offset curve
COLUMNS = ["sync_d0", "sync_dmin", "sync_local_conf", "sync_local_offset", "sync_clip_conf",
           "sync_clip_offset", "sync_clip_score0", "sync_judged"]


def load_sync_model(name_or_path: str | os.PathLike,
                    runtime: Optional[str] = None) -> "SyncEstimator":
    """A `SyncEstimator` from a sync checkpoint: a shipped one by name ('sync') or a folder.
    `runtime`: "onnx" or "torch"; None: its model.onnx when current, else torch
    (`talkface.checkpoint.scoring_runtime`)."""
    from ..checkpoint import load_checkpoint, scoring_runtime
    runtime = scoring_runtime(name_or_path, runtime)
    loaded = load_checkpoint(name_or_path, runtime="onnx" if runtime == "onnx" else "torch",
                             kind="sync")
    return SyncEstimator(loaded.model, loaded.meta, loaded.path)


def speech_weights(audio: np.ndarray, n_windows: int, floor: float = SILENT_WEIGHT) -> np.ndarray:
    """(n_windows,) weight of each sync window's audio: the share of its five frames that are
    speech (`speech_mask`), at least `floor`; uniform where the clip has too little speech."""
    speech = speech_mask(loudness_db(audio, n_windows + WINDOW - 1, HOP)).astype(float)
    share = np.convolve(speech, np.ones(WINDOW) / WINDOW, "valid")[:n_windows]
    if (share > 0.5).sum() < MIN_WINDOWS:
        return np.ones(n_windows)
    return np.maximum(share, floor)


class SyncEstimator:
    """A loaded sync model with its preprocessing; see the module docstring."""

    def __init__(self, model, meta, path: Optional[Path] = None) -> None:
        """`model`: a `talkface.sync.model.SyncNet` or its ONNX session
        (`talkface.runtime.OnnxSyncModel`); `meta`: the checkpoint's
        `talkface.checkpoint.CheckpointMeta` (kind "sync")."""
        self.model, self.meta, self.path = model, meta, path
        self.fingerprint = meta.fingerprint
        self.reliable_confidence = float(meta.reliable_confidence or 0.1)

    def column_names(self) -> list[str]:
        return list(COLUMNS)

    def embed(self, lips: np.ndarray, mouths: np.ndarray, valid: np.ndarray,
              audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(video embeddings (S, D), audio embeddings (S, D), window validity (S,)), S = T - 4."""
        from ..runtime import sync_embed
        n = len(valid)
        o = self.model.options
        mel = normalise_mel(mel_power(audio, n, n_mels=o.n_mels))
        lip = lip_input(lips, valid).T[None] if o.lips else None
        crop = crop_input(mouths, valid)[None] if o.crops else None
        video, sound = sync_embed(self.model, lip, crop, mel[None])
        v, a = video[0].T, sound[0].T
        s = min(len(v), len(a))
        return v[:s], a[:s], window_valid(valid)[:s]

    @staticmethod
    def distances(v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """(S, S) Euclidean distances between unit vectors."""
        return np.sqrt(np.maximum(2.0 - 2.0 * v @ a.T, 0.0))

    @staticmethod
    def offset_range(n_windows: int) -> np.ndarray:
        """Candidate offsets: +-MAX_OFFSET_FRAMES, fewer for a clip too short to pair windows
        that far apart."""
        limit = max(0, min(MAX_OFFSET_FRAMES, n_windows - MIN_WINDOWS // 2))
        return np.arange(-limit, limit + 1)

    @staticmethod
    def curve(dist: np.ndarray, wvalid: np.ndarray, offsets: np.ndarray,
              rows: slice = slice(None), weights: Optional[np.ndarray] = None) -> np.ndarray:
        """Mean distance per offset over the (valid) windows in `rows`; NaN where no pair.
        `weights` (S,): how much each audio window counts (`speech_weights`), the pair (t, t+d)
        weighing as the audio window it uses, so silence does not vote for any offset."""
        s = dist.shape[0]
        t = np.arange(s)[rows]
        cols = t[:, None] + offsets[None]
        ok = (cols >= 0) & (cols < dist.shape[1]) & wvalid[t][:, None]
        safe = np.clip(cols, 0, dist.shape[1] - 1)
        w = ok * (1.0 if weights is None else weights[safe])
        total = w.sum(0)
        values = (w * dist[t[:, None], safe]).sum(0)
        return np.where(total > 1e-9, values / np.maximum(total, 1e-9), np.nan)

    def judge(self, valid: np.ndarray, audio: Optional[np.ndarray], pose: Optional[dict],
              fps: float, sample_rate: int) -> str:
        """'' when the clip can be judged, else the reason it cannot."""
        if audio is None:
            return "no audio track"
        if audio.size == 0 or float(np.abs(audio).max()) < 1e-4:
            return "the audio track is silent"
        if abs(fps - FPS) > 1e-6 or sample_rate != SAMPLE_RATE:
            return f"the sync model needs {FPS:g} fps and {SAMPLE_RATE} Hz features"
        if window_valid(valid).sum() < MIN_WINDOWS:
            return "too short: the face is visible for less than about 0.5 s"
        if speech_mask(loudness_db(audio, len(valid), HOP)[valid]).mean() < SPEECH_FRACTION:
            return "no speech heard while the face is visible"
        if pose and pose.get("profile_fraction", 0.0) > PROFILE_FRACTION:
            return (f"face in profile for {pose['profile_fraction']:.0%} of frames: the mouth "
                    f"cannot be seen")
        return ""

    def analyse(self, lips: np.ndarray, mouths: np.ndarray, valid: np.ndarray,
                audio: Optional[np.ndarray], fps: float = FPS, sample_rate: int = SAMPLE_RATE,
                pose: Optional[dict] = None) -> tuple[SyncResult, np.ndarray]:
        """(SyncResult, per-frame columns (T, len(COLUMNS))) for one face track."""
        n = len(valid)
        cols = np.zeros((n, len(COLUMNS)), np.float32)
        level = loudness_db(audio, n, HOP) if audio is not None else np.full(n, -100.0)
        mouth = self._mouth_curve(lips, valid)
        reason = self.judge(valid, audio, pose, fps, sample_rate)
        base = dict(fps=fps, mouth_open=mouth, audio_level=level, method="syncnet",
                    reliable_confidence=self.reliable_confidence)
        if reason:
            return SyncResult(False, reason, **base), cols
        v, a, wvalid = self.embed(lips, mouths, valid, audio)
        dist = self.distances(v, a)
        offsets = self.offset_range(int(wvalid.sum()))
        whole = self.curve(dist, wvalid, offsets)
        best = int(np.nanargmin(whole))
        conf = float(np.nanmedian(whole) - whole[best])
        zero = int(np.flatnonzero(offsets == 0)[0])
        times, local_offsets, local_conf = self._over_time(dist, wvalid, offsets)
        result = SyncResult(True, "", int(offsets[best]), conf, float(whole[best]),
                            offsets=offsets, curve=whole, window_times=times,
                            window_offsets=local_offsets, window_confidence=local_conf, **base)
        self._columns(cols, dist, wvalid, offsets, result, float(np.nanmedian(whole) - whole[zero]))
        return result, cols

    def _over_time(self, dist, wvalid, offsets):
        s = dist.shape[0]
        times, offs, confs = [], [], []
        for start in range(0, max(s - LOCAL, 0) + 1, LOCAL // 2):
            rows = slice(start, min(start + LOCAL, s))
            if wvalid[rows].sum() < MIN_WINDOWS:
                continue
            c = self.curve(dist, wvalid, offsets, rows)
            if np.isnan(c).all():
                continue
            i = int(np.nanargmin(c))
            times.append((start + (rows.stop - start) / 2 + WINDOW / 2) / FPS)
            offs.append(float(offsets[i]))
            confs.append(float(np.nanmedian(c) - c[i]))
        return np.array(times), np.array(offs), np.array(confs)

    def _columns(self, cols, dist, wvalid, offsets, result: SyncResult, score0: float) -> None:
        """Per-frame evidence for the quality model's lip-sync head; window t -> frame t + 2."""
        s = dist.shape[0]
        t = np.arange(s)
        d0 = np.where(wvalid, dist[t, t], 0.0)
        lo, hi = max(-MAX_OFFSET_FRAMES, int(offsets.min())), int(offsets.max())
        band = np.full((s, hi - lo + 1), np.nan)
        for j, d in enumerate(range(lo, hi + 1)):
            ok = (t + d >= 0) & (t + d < s)
            band[ok, j] = dist[t[ok], t[ok] + d]
        dmin = np.where(wvalid, np.nanmin(np.where(np.isnan(band), np.inf, band), 1), 0.0)
        local = np.full((s, 2), 0.0)
        filled = np.where(np.isnan(band), np.nanmean(band, 0, keepdims=True), band)
        smooth = uniform_filter1d(filled, size=min(LOCAL, s), axis=0, mode="nearest")
        best = smooth.argmin(1)
        local[:, 0] = np.median(smooth, 1) - smooth[t, best]
        local[:, 1] = (best + lo) / MAX_OFFSET_FRAMES
        centre = t + WINDOW // 2
        cols[centre, 0], cols[centre, 1] = d0, dmin
        cols[centre, 2], cols[centre, 3] = local[:, 0] * wvalid, local[:, 1] * wvalid
        cols[:, 4] = result.confidence
        cols[:, 5] = result.offset_frames / MAX_OFFSET_FRAMES
        cols[:, 6] = score0
        cols[:, 7] = 1.0

    @staticmethod
    def _mouth_curve(lips: np.ndarray, valid: np.ndarray) -> np.ndarray:
        from .speaker import lip_gap
        gap = lip_gap(np.nan_to_num(lips)) if len(lips) else np.zeros(0)
        return np.where(valid, gap, np.nan)

    def clip_features(self, visual, audio: Optional[np.ndarray], fps: float = FPS,
                      sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
        """For the extractor: (per-frame sync columns (T, 8), the SyncResult as a dict)."""
        if visual.lips is None:
            from ..errors import ConfigError
            raise ConfigError("the sync model needs lip points and mouth crops: use the 'mesh' "
                              "backend")
        result, cols = self.analyse(visual.lips, visual.mouths, visual.valid, audio, fps,
                                    sample_rate, visual.info.get("pose"))
        return cols, {**result.to_dict(), "reliable_confidence": self.reliable_confidence,
                      "model": self.fingerprint}

    def speaking_score(self, lips: np.ndarray, mouths: np.ndarray, valid: np.ndarray,
                       audio: np.ndarray) -> float:
        """How clearly a face track's mouth goes with the audio: the clip confidence, -inf
        where it cannot be judged."""
        result, _ = self.analyse(lips, mouths, valid, audio)
        return result.confidence if result.judged else -np.inf
