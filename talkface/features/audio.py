"""Per-video-frame speech features, computed as librosa computes them
(`talkface.features.spectral`).

One vector per video frame: the analysis hop is sample_rate / fps (640 samples at 16 kHz, 25 fps)
and frames are centred, so audio frame k describes the instant of video frame k. Columns: log-mel
bands, MFCCs with deltas, loudness (`talkface.measures.loudness_db`), spectral flux (onset
strength), spectral centroid and zero-crossing rate.
"""
from __future__ import annotations

from typing import Optional

import librosa
import numpy as np

from ..measures import loudness_db
from . import spectral

N_MELS = 40
N_MFCC = 13
N_FFT = 1024


def audio_config(fps: float, sample_rate: int) -> dict:
    return {"n_mels": N_MELS, "n_mfcc": N_MFCC, "n_fft": N_FFT,
            "hop": int(round(sample_rate / fps)), "librosa_major": librosa.__version__.split(".")[0]}


def audio_feature_names() -> list[tuple[str, list[str]]]:
    """Ordered (group, column names) of the audio features."""
    return [("logmel", [f"logmel_{i:02d}" for i in range(N_MELS)]),
            ("mfcc", [f"mfcc_{i:02d}" for i in range(N_MFCC)]),
            ("mfcc_delta", [f"mfcc_delta_{i:02d}" for i in range(N_MFCC)]),
            ("energy", ["log_rms", "spectral_flux", "spectral_centroid", "zcr"])]


def extract_audio_features(audio: Optional[np.ndarray], n_frames: int, fps: float,
                           sample_rate: int) -> np.ndarray:
    """(N,) float32 mono -> (n_frames, D) float32. Missing or silent audio gives finite values."""
    width = sum(len(cols) for _, cols in audio_feature_names())
    if audio is None or audio.size == 0:
        return np.zeros((n_frames, width), np.float32)
    hop = int(round(sample_rate / fps))
    y = np.asarray(audio, np.float32)
    y = np.pad(y, (0, max(0, n_frames * hop - y.size)))[: n_frames * hop + N_FFT]
    mel = spectral.melspectrogram(y, sample_rate, N_FFT, hop, N_MELS)
    logmel = np.maximum(spectral.power_to_db(mel), -100.0)
    mfcc = spectral.mfcc(logmel, N_MFCC)
    delta = spectral.delta(mfcc) if mfcc.shape[1] >= 3 else np.zeros_like(mfcc)
    log_rms = loudness_db(y, n_frames, hop)[None, :]
    flux = spectral.onset_strength(logmel)
    centroid = spectral.spectral_centroid(y, sample_rate, N_FFT, hop) / (sample_rate / 2)
    zcr = spectral.zero_crossing_rate(y, N_FFT, hop)
    cols = [logmel, mfcc, delta, log_rms, flux, centroid, zcr]
    n = min(c.shape[1] for c in cols)
    feats = np.concatenate([c[:, :n] for c in cols], axis=0).T
    feats = np.pad(feats, ((0, max(0, n_frames - n)), (0, 0)), mode="edge")[:n_frames]
    return np.nan_to_num(feats.astype(np.float32))
