"""What the sync model sees: log-mel audio at 100 Hz, pose-free lip shapes and mouth crops.

Time alignment (talkface's 25 fps grid and 16 kHz audio, which the model is defined on): sync
window t covers video frames t..t+4 (0.2 s) and mel frames
4t..4t+19 (10 ms hop, centred), i.e. the same 0.2 s of sound; the audio encoder's receptive field
is exactly those 20 mel frames with a stride of 4, so there is one audio embedding per video
frame. An offset d > 0 (audio late) pairs video window t with audio window t + d.

Identity is removed before the network sees anything, which is what lets a model trained on
about 50 people generalise to others: lip points are taken relative to the mouth's centre in each
frame and relative to the clip's mean mouth shape; mouth crops are z-scored per frame and the
clip's mean crop is subtracted. What remains is how the mouth moves.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..constants import HOP, SAMPLE_RATE
from ..features.spectral import melspectrogram

WINDOW = 5  # video frames per sync window (0.2 s at 25 fps)
MEL_HOP = 160  # 10 ms at 16 kHz: 4 mel frames per video frame
MEL_PER_FRAME = 4
MEL_WINDOW = 20  # mel frames per sync window
N_MELS = 40
CROP_SIZE = (48, 24)  # (w, h) the mouth crop is reduced to
LIP_SCALE, DELTA_SCALE = 10.0, 3.0  # template units (inter-ocular distance 1) to about unit size


def mel_power(audio: np.ndarray, n_frames: int, sample_rate: int = SAMPLE_RATE,
              n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 4 * n_frames + 1) mel power spectrogram of the audio under n_frames video
    frames (zero-padded or cut to that length), 10 ms hop."""
    n = n_frames * HOP
    y = np.zeros(n, np.float32)
    y[:min(n, len(audio))] = audio[:n]
    return melspectrogram(y, SAMPLE_RATE, 512, MEL_HOP, n_mels, fmin=55, fmax=7600, win_length=400)


def normalise_mel(power: np.ndarray) -> np.ndarray:
    """Mel power (..., n_mels, N) -> log-mel standardised per band over the given span."""
    log = np.log(power + 1e-6)
    return ((log - log.mean(-1, keepdims=True)) / (log.std(-1, keepdims=True) + 1e-3)).astype(
        np.float32)


def lip_input(lips: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, 40, 2) pose-free lip points (NaN or anything where not valid) -> (T, 160) float32:
    shape relative to the frame's mouth centre and to the clip's mean shape, and its change
    from the previous frame; zero where the face is missing."""
    x = np.where(valid[:, None, None], np.nan_to_num(lips), 0.0).astype(np.float32)
    keep = valid if valid.any() else np.ones_like(valid)
    x = x - x.mean(1, keepdims=True)
    x = (x - x[keep].mean(0, keepdims=True)) * LIP_SCALE
    x = x.reshape(len(x), -1)
    x[~valid] = 0
    delta = np.zeros_like(x)
    delta[1:] = x[1:] - x[:-1]
    delta[1:][~(valid[1:] & valid[:-1])] = 0
    return np.concatenate([x, delta * DELTA_SCALE], 1).astype(np.float32)


def crop_input(mouths: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, 48, 96) uint8 canonical mouth crops -> (T, 24, 48) float32: reduced, z-scored per
    frame, minus the clip's mean crop; zero where the face is missing."""
    c = np.stack([cv2.resize(m, CROP_SIZE, interpolation=cv2.INTER_AREA) for m in mouths]) \
        if len(mouths) else np.zeros((0, CROP_SIZE[1], CROP_SIZE[0]), np.uint8)
    c = c.astype(np.float32)
    c = (c - c.mean((1, 2), keepdims=True)) / (c.std((1, 2), keepdims=True) + 1.0)
    keep = valid if valid.any() else np.ones_like(valid)
    if len(c):
        c = c - c[keep].mean(0, keepdims=True)
    c[~valid] = 0
    return c


def window_valid(valid: np.ndarray) -> np.ndarray:
    """(T - 4,) bool: sync windows whose five frames all have the face."""
    if len(valid) < WINDOW:
        return np.zeros(0, bool)
    return np.convolve(valid.astype(float), np.ones(WINDOW), "valid") >= WINDOW - 0.5
