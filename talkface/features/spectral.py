"""The few librosa spectral features talkface scores with, computed the way librosa 0.11 does,
without importing librosa's spectral stack.

`librosa.feature` and `librosa.filters` pull in scipy.signal, numba and librosa's jitted
pitch and audio code at first use: about 2.7 s and 220 MB in every scoring process, more than
scoring a short clip takes. The computations talkface needs are small, so they live here in
numpy (and `scipy.fft` for the DCT), each a line-for-line port of librosa's defaults:
centred STFT with zero padding and a periodic Hann window, Slaney mel filters, `power_to_db`,
orthonormal DCT-II MFCCs, `delta` (width 3, nearest), `onset_strength` on a log-mel
spectrogram, `spectral_centroid` and `zero_crossing_rate`. `tests/test_spectral.py` checks each
against librosa itself; training and synthesis keep using librosa directly.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np

_LOG_STEP = np.log(6.4) / 27.0  # Slaney mel scale: log region step
_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0  # linear region width (Hz per mel), log region start


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    mel = hz / _F_SP
    log = hz >= _MIN_LOG_HZ
    return np.where(log, _MIN_LOG_HZ / _F_SP + np.log(np.maximum(hz, 1e-12) / _MIN_LOG_HZ)
                    / _LOG_STEP, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    start = _MIN_LOG_HZ / _F_SP
    return np.where(mel >= start, _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - start)), _F_SP * mel)


@lru_cache(maxsize=8)
def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                fmax: Optional[float] = None) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32 Slaney-normalised mel filter bank
    (`librosa.filters.mel` with its defaults)."""
    fmax = float(sr) / 2 if fmax is None else fmax
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])[:, None]  # as librosa: in float32
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=8)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of win_length, zero-padded to n_fft on both sides (float64)."""
    n = np.arange(win_length)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    out = np.zeros(n_fft)
    out[left:left + win_length] = w
    out.flags.writeable = False
    return out


def stft_power(y: np.ndarray, n_fft: int, hop: int, win_length: Optional[int] = None,
               power: float = 2.0, chunk: int = 2048) -> np.ndarray:
    """(1 + n_fft // 2, frames) float32 |STFT|**power of float32 `y` (`librosa.stft`, centre
    frames, zero padding), computed `chunk` frames at a time so a long clip needs little
    memory."""
    y = np.asarray(y, np.float32)
    window = _window(n_fft, win_length or n_fft)
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop
    out = np.empty((1 + n_fft // 2, n_frames), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    for start in range(0, n_frames, chunk):
        block = np.fft.rfft(window * frames[start:start + chunk], axis=-1).astype(np.complex64)
        out[:, start:start + chunk] = (np.abs(block) ** power).T
    return out


def melspectrogram(y: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int,
                   fmin: float = 0.0, fmax: Optional[float] = None,
                   win_length: Optional[int] = None) -> np.ndarray:
    """(n_mels, frames) float32 mel power spectrogram (`librosa.feature.melspectrogram`)."""
    return mel_filters(sr, n_fft, n_mels, fmin, fmax) @ stft_power(y, n_fft, hop, win_length)


def power_to_db(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """10 log10(power) with power floored at amin (`librosa.power_to_db(ref=1, top_db=None)`)."""
    return 10.0 * np.log10(np.maximum(amin, power))


def mfcc(log_mel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """(n_mfcc, frames): orthonormal DCT-II over the mel bands (`librosa.feature.mfcc(S=...)`)."""
    from scipy.fft import dct
    return dct(log_mel, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]


def delta(x: np.ndarray) -> np.ndarray:
    """First difference over time, width 3, edges repeated (`librosa.feature.delta(width=3,
    mode="nearest")`, a Savitzky-Golay slope)."""
    padded = np.concatenate([x[..., :1], x, x[..., -1:]], axis=-1)
    return (padded[..., 2:] - padded[..., :-2]) / 2.0


def onset_strength(log_mel: np.ndarray) -> np.ndarray:
    """(1, frames) mean positive rise of the log-mel bands over one frame, shifted by librosa's
    centring (`librosa.onset.onset_strength(S=log_mel)` with its defaults: lag 1, a 2048/512
    framing delay of 2)."""
    rise = np.maximum(0.0, log_mel[..., 1:] - log_mel[..., :-1]).mean(axis=-2, keepdims=True)
    return np.pad(rise, [(0, 0), (3, 0)])[..., :log_mel.shape[-1]]


def spectral_centroid(y: np.ndarray, sr: int, n_fft: int, hop: int) -> np.ndarray:
    """(1, frames) magnitude-weighted mean frequency in Hz (`librosa.feature.spectral_centroid`);
    0 for a silent frame."""
    mag = stft_power(y, n_fft, hop, power=1.0)
    total = mag.sum(axis=0, keepdims=True)
    weights = mag / np.where(total < np.finfo(mag.dtype).tiny, 1.0, total)
    freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)[:, None]
    return (freqs * weights).sum(axis=0, keepdims=True)


def zero_crossing_rate(y: np.ndarray, frame_length: int, hop: int,
                       threshold: float = 1e-10) -> np.ndarray:
    """(1, frames) share of sign changes per centred frame, |y| <= threshold counting as
    positive zero (`librosa.feature.zero_crossing_rate`)."""
    y = np.asarray(y, np.float32)
    padded = np.pad(y, frame_length // 2, mode="edge")
    negative = np.signbit(np.where(np.abs(padded) <= np.float32(threshold), 0, padded))
    change = np.concatenate([[False], negative[1:] != negative[:-1]])
    frames = np.lib.stride_tricks.sliding_window_view(change, frame_length)[::hop]
    # the first sample of each frame never counts as a crossing (librosa frames first, then
    # compares within the frame)
    return ((frames[:, 1:].sum(axis=1)) / frame_length)[None, :]
