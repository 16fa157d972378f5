"""Paper-standard LSE-D / LSE-C: the original SyncNet, its audio front end and its distance
figures, numerically as syncnet_python computes them, from weights the user supplies.

Reference: Chung & Zisserman, "Out of time: automated lip sync in the wild", ACCV 2016 workshops
(Multi-view Lip-reading); the code every talking-face paper uses, joonson/syncnet_python
(`SyncNetModel.py`: the `S` network; `SyncNetInstance.py`: `evaluate` and `calc_pdist`), also
packaged on PyPI as `syncnet-python`, which the tests compare against. talkface's own sync model
(`talkface.sync.model`) is a different network; its "LSE-style" figures are not these.

- `ReferenceSyncNet` is `S` layer for layer, so `syncnet_v2.model` (VGG's trained weights, never
  downloaded or shipped by talkface) loads into it by name. `load_syncnet(path)` reads that file
  with `torch.load(weights_only=True)`: syncnet_python's `loadParameters` iterates it as a state
  dict (parameter name -> tensor, the legacy pre-1.6 format), which needs no unpickling of code.
  A file holding anything else (a whole pickled module, say) is refused with a message; talkface
  never unpickles arbitrary objects from a file.
- `reference_mfcc` is `python_speech_features.mfcc(audio, 16000)` with its defaults (13
  coefficients, 25 ms windows every 10 ms, 26 mel filters, 512-point FFT, pre-emphasis 0.97,
  lifter 22, log energy as c0) on 16-bit integer samples, re-implemented in numpy so talkface does
  not depend on that unmaintained package (the tests check the two agree).
- `lse(net, crops, audio)` is `SyncNetInstance.evaluate`: one lip window per 5 frames of the
  224 x 224 crop clip (BGR, 0-255, as cv2 read the reference's JPEGs) and one audio window per 20
  MFCC frames (4 per video frame), `min(frames, samples // 640) - 5` windows; distances between
  each video window and the audio windows at -15..+15 frames (zero-padded at the ends, as
  `calc_pdist` pads); their mean per offset; LSE-D = the minimum, LSE-C = median - minimum,
  offset = 15 - argmin. SyncNet's offset sign: positive when the audio leads the video, the
  opposite of talkface's `sync.offset_frames` (positive = audio late).

Speed without changing the numbers beyond float rounding: every layer of the lip stack after the
first has a temporal kernel of 1, so the stack runs as 2-D convolutions on 15-channel windows
(5 frames x 3 colours) in channels-last layout; batch norm is folded into the layer before it in
both streams (`fold_lip_encoder`, `fold_audio_encoder`); crops stream through in batches, so
memory does not grow with the clip.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fftpack import dct
from scipy.signal import medfilt
from torch import nn

from ..constants import FPS, HOP, SAMPLE_RATE
from ..errors import CheckpointError


CROP_SIZE = 224  # the reference's face crop, pixels
WINDOW = 5  # video frames per lip window
MFCC_PER_FRAME = 4  # 100 Hz MFCC frames per 25 fps video frame
MFCC_WINDOW = 20  # MFCC frames per audio window
VSHIFT = 15  # offsets searched: -VSHIFT..+VSHIFT frames (the pipeline's `vshift`)
BATCH = 20  # lip windows per forward pass (the pipeline's `batch_size`)
AUDIO_BATCH = 256  # audio windows per forward pass (small inputs)


def _block(conv: nn.Module, norm: nn.Module, *rest: nn.Module) -> list[nn.Module]:
    return [conv, norm, nn.ReLU(inplace=True), *rest]


class ReferenceSyncNet(nn.Module):
    """syncnet_python's `S`, with its parameter names (netcnnaud, netfcaud, netcnnlip, netfclip).

    forward_aud: MFCC windows (B, 1, 13, 20) -> (B, 1024).
    forward_lip: BGR crops (B, 3, 5, 224, 224), 0-255 floats -> (B, 1024).
    """

    def __init__(self, embedding: int = 1024) -> None:
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_block(nn.Conv2d(1, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.MaxPool2d(1, 1)),
            *_block(nn.Conv2d(64, 192, 3, 1, 1), nn.BatchNorm2d(192), nn.MaxPool2d(3, (1, 2))),
            *_block(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
            *_block(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
            *_block(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256),
                    nn.MaxPool2d(3, (2, 2))),
            nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512), nn.ReLU())
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                      nn.Linear(512, embedding))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                      nn.Linear(512, embedding))
        self.netcnnlip = nn.Sequential(
            *_block(nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2)), nn.BatchNorm3d(96),
                    nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_block(nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.BatchNorm3d(256),
                    nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))),
            *_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256),
                    nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_block(nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512)))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(x).flatten(1))


def _fold(weight: torch.Tensor, bias: Optional[torch.Tensor], norm: nn.Module):
    """A convolution or linear layer followed by batch norm (eval) as one layer's weights."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    b = bias if bias is not None else torch.zeros_like(norm.running_mean)
    return weight * scale.reshape(shape), (b - norm.running_mean) * scale + norm.bias


def _fold_stack(convs: nn.Sequential, head: nn.Sequential) -> nn.Sequential:
    """A conv stack and its fully connected head with every batch norm folded into the layer
    before it; 3-D convolutions with a temporal kernel become 2-D ones over time x channels."""
    layers: list[nn.Module] = []
    mods = list(convs)
    with torch.no_grad():
        for i, mod in enumerate(mods):
            if isinstance(mod, (nn.Conv2d, nn.Conv3d)):
                w, b = _fold(mod.weight, mod.bias, mods[i + 1])
                w = w.reshape(w.shape[0], -1, *w.shape[-2:])  # (O, C, T, kh, kw) -> (O, C*T, ..)
                conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], mod.stride[-2:],
                                 mod.padding[-2:])
                conv.weight.copy_(w), conv.bias.copy_(b)
                layers.append(conv)
            elif isinstance(mod, (nn.MaxPool2d, nn.MaxPool3d)):
                two_d = (lambda v: v[-2:] if isinstance(v, tuple) else v)
                layers.append(nn.MaxPool2d(two_d(mod.kernel_size), two_d(mod.stride),
                                           two_d(mod.padding)))
            elif isinstance(mod, nn.ReLU):
                layers.append(nn.ReLU(inplace=True))
        first, norm, _, last = head
        fc = nn.Linear(first.in_features, first.out_features)
        w, b = _fold(first.weight, first.bias, norm)
        fc.weight.copy_(w), fc.bias.copy_(b)
        out = nn.Linear(last.in_features, last.out_features)
        out.load_state_dict(last.state_dict())
    return nn.Sequential(*layers, nn.Flatten(), fc, nn.ReLU(), out).eval()


def fold_lip_encoder(net: ReferenceSyncNet) -> nn.Sequential:
    """`net.forward_lip` as 2-D layers with batch norm folded in: windows (B, 15, 224, 224),
    channel c * 5 + t for colour c of frame t (channels-last for speed) -> (B, 1024)."""
    encoder = _fold_stack(net.netcnnlip, net.netfclip)
    return encoder.to(memory_format=torch.channels_last)


def fold_audio_encoder(net: ReferenceSyncNet) -> nn.Sequential:
    """`net.forward_aud` with batch norm folded in: (B, 1, 13, 20) -> (B, 1024)."""
    return _fold_stack(net.netcnnaud, net.netfcaud)


@dataclass(frozen=True)
class LoadedSyncNet:
    """SyncNet weights ready for `lse`: the reference network, its folded lip and audio
    encoders, and the weights file's name and sha256 (first 24 hex digits) to report beside
    the figures."""

    net: ReferenceSyncNet
    lip: nn.Sequential
    audio: nn.Sequential
    weights: str
    sha256: str


def load_syncnet(path: str | os.PathLike) -> LoadedSyncNet:
    """Read SyncNet weights (syncnet_v2.model: a state dict in `S`'s layout). Raises
    `CheckpointError` naming the file when it is missing or is not such weights."""
    from ..cache import file_hash
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise CheckpointError(f"{path}: SyncNet weights file {what}; talkface does not download "
                              f"it: pass the path of syncnet_v2.model (syncnet_python's "
                              f"download_model.sh fetches it)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for a file that is not weights
        what = ("it holds Python objects besides tensors, which talkface does not unpickle; "
                "save `model.state_dict()` instead" if "Weights only load failed" in str(err)
                else f"not a PyTorch weights file ({type(err).__name__})")
        raise CheckpointError(f"{path}: cannot be read as SyncNet weights: {what}") from None
    net = ReferenceSyncNet()
    _check_state(path, state, net.state_dict())
    net.load_state_dict(state, strict=False)  # old files lack num_batches_tracked, unused here
    net.eval()
    return LoadedSyncNet(net, fold_lip_encoder(net), fold_audio_encoder(net), path.name,
                         file_hash(path))


def _check_state(path: Path, state, expected: dict) -> None:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path}: not SyncNet weights (expected a state dict of tensors, "
                              f"found {type(state).__name__})")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = [f"{label} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("wrong shape", wrong)) if keys]
    if problems:
        raise CheckpointError(f"{path}: not SyncNet weights in syncnet_python's layout "
                              f"({'; '.join(problems)})")


# --- audio front end ------------------------------------------------------------------------------

def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16, as FFmpeg writes the reference's pcm_s16le WAV."""
    return np.clip(np.rint(np.asarray(audio, np.float64) * 32768.0), -32768, 32767) \
        .astype(np.int16)


def _mel_filterbank(nfilt: int = 26, nfft: int = 512, rate: int = SAMPLE_RATE) -> np.ndarray:
    """python_speech_features.get_filterbanks: (nfilt, nfft // 2 + 1) triangles on FFT bins."""
    high = 2595 * np.log10(1 + (rate / 2) / 700.0)
    mel = np.linspace(0.0, high, nfilt + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mel / 2595.0) - 1)) / rate)
    bank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(int(bins[j]), int(bins[j + 1])):
            bank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            bank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return bank


def reference_mfcc(pcm: np.ndarray) -> np.ndarray:
    """(N,) 16 kHz samples in 16-bit units -> (13, F) float64 MFCCs at 100 Hz, F = 1 +
    ceil((N - 400) / 160): `python_speech_features.mfcc(pcm, 16000)`, transposed."""
    x = np.asarray(pcm, np.float64)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    length, step, nfft = 400, 160, 512
    n = 1 if len(x) <= length else 1 + int(np.ceil((len(x) - length) / step))
    x = np.concatenate([x, np.zeros((n - 1) * step + length - len(x))])
    frames = np.lib.stride_tricks.sliding_window_view(x, length)[::step][:n]
    power = 1.0 / nfft * np.square(np.absolute(np.fft.rfft(frames, nfft)))
    energy = power.sum(1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    bands = power @ _mel_filterbank().T
    bands = np.where(bands == 0, np.finfo(float).eps, bands)
    ceps = dct(np.log(bands), type=2, axis=1, norm="ortho")[:, :13]
    ceps = ceps * (1 + 11.0 * np.sin(np.pi * np.arange(13) / 22))
    ceps[:, 0] = np.log(energy)
    return ceps.T


# --- figures --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LSEResult:
    """SyncNet's figures for one crop clip. `distances` (2 * VSHIFT + 1,): mean distance per
    candidate offset; `framewise` (windows,): per-window confidence at the best offset, median
    filtered (the reference's "framewise conf"). `reason` says why there are no figures."""

    lse_d: Optional[float] = None
    lse_c: Optional[float] = None
    offset_frames: Optional[int] = None  # SyncNet's sign: positive = audio leads the video
    windows: int = 0
    weights: str = ""
    sha256: str = ""
    reason: str = ""
    distances: np.ndarray = field(default_factory=lambda: np.zeros(0))
    framewise: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        """The JSON entry: the figures, the windows they rest on and the weights file."""
        r4 = (lambda v: None if v is None else round(float(v), 4))
        return {"lse_d": r4(self.lse_d), "lse_c": r4(self.lse_c),
                "offset_frames": self.offset_frames, "windows": self.windows,
                "weights": self.weights, "weights_sha256": self.sha256,
                "reason": self.reason or None}


def offset_distances(video: torch.Tensor, audio: torch.Tensor,
                     vshift: int = VSHIFT) -> torch.Tensor:
    """`calc_pdist`, vectorised over windows: video, audio (N, D) -> (2 vshift + 1, N), entry
    [j, i] = |video_i - audio_(i + j - vshift)| (zeros beyond the ends)."""
    n = video.shape[0]
    padded = F.pad(audio, (0, 0, vshift, vshift))
    return torch.stack([F.pairwise_distance(video, padded[j:j + n])
                        for j in range(2 * vshift + 1)])


def reference_medfilt(values: np.ndarray, size: int) -> np.ndarray:
    """`scipy.signal.medfilt`, zero-padded at the ends, as the reference smooths (without
    scipy's warning when the signal is shorter than the filter, which the reference allows)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "kernel_size exceeds volume extent")
        return medfilt(np.asarray(values, np.float64), size)


def summarise(dists: torch.Tensor, vshift: int = VSHIFT) -> dict:
    """The reference's figures from `offset_distances`' (2 vshift + 1, N) table."""
    mdist = dists.mean(1)
    minval, minidx = torch.min(mdist, 0)
    median = torch.median(mdist)
    framewise = reference_medfilt((median - dists[int(minidx)]).numpy(), 9)
    return {"lse_d": float(minval), "lse_c": float(median - minval),
            "offset_frames": int(vshift - minidx), "windows": int(dists.shape[1]),
            "distances": mdist.numpy(), "framewise": framewise}


def _lip_windows(frames: list[np.ndarray], count: int) -> torch.Tensor:
    """`count` windows from RGB crops (count + 4 of them) -> (count, 15, 224, 224) BGR,
    channels-last."""
    clip = np.stack(frames[:count + WINDOW - 1])[..., ::-1]  # RGB -> BGR, as cv2 reads them
    windows = np.lib.stride_tricks.sliding_window_view(clip, WINDOW, axis=0)  # (n, H, W, 3, 5)
    x = torch.from_numpy(np.ascontiguousarray(windows)).float()
    return x.reshape(count, CROP_SIZE, CROP_SIZE, 3 * WINDOW).permute(0, 3, 1, 2)


def _video_embeddings(lip: nn.Module, crops: Iterable[np.ndarray], limit: int,
                      batch: int, device) -> torch.Tensor:
    """Embeddings of lip windows 0..n-1, n = min(frames - 5, limit): window i only once frame
    i + 5 exists, as the reference counts. Crops are consumed in batches."""
    out, buffer, done = [], [], 0
    for crop in crops:
        if done >= limit:
            break
        if crop.shape != (CROP_SIZE, CROP_SIZE, 3):
            raise ValueError(f"SyncNet crops are ({CROP_SIZE}, {CROP_SIZE}, 3) uint8 RGB, "
                             f"got {crop.shape}")
        buffer.append(crop)
        if len(buffer) - WINDOW >= batch:
            count = min(batch, limit - done)
            out.append(lip(_lip_windows(buffer, count).to(device)).cpu())
            buffer, done = buffer[count:], done + count
    count = min(len(buffer) - WINDOW, limit - done)
    if count > 0:
        out.append(lip(_lip_windows(buffer, count).to(device)).cpu())
    return torch.cat(out) if out else torch.zeros(0, 1024)


def _audio_embeddings(encoder: nn.Module, mfcc: np.ndarray, count: int,
                      device) -> torch.Tensor:
    """Embeddings of audio windows 0..count-1: MFCC frames 4i..4i+19."""
    cc = torch.from_numpy(mfcc.astype(np.float32))
    starts = range(0, count * MFCC_PER_FRAME, MFCC_PER_FRAME)
    windows = torch.stack([cc[:, s:s + MFCC_WINDOW] for s in starts])[:, None]
    return torch.cat([encoder(windows[i:i + AUDIO_BATCH].to(device)).cpu()
                      for i in range(0, count, AUDIO_BATCH)])


@torch.inference_mode()
def lse(net: LoadedSyncNet, crops: Iterable[np.ndarray], audio: np.ndarray,
        vshift: int = VSHIFT, batch: int = BATCH, device: str | torch.device = "cpu"
        ) -> LSEResult:
    """LSE-D, LSE-C and the offset of a crop clip, as `SyncNetInstance.evaluate`.

    crops: (T, 224, 224, 3) uint8 RGB at 25 fps (an array, or any iterable of frames, consumed
    in batches); audio: the same stretch at 16 kHz, int16 samples or floats in [-1, 1].
    """
    pcm = audio if np.issubdtype(np.asarray(audio).dtype, np.integer) else to_pcm16(audio)
    device = torch.device(device)
    net.lip.to(device), net.audio.to(device)
    limit = len(pcm) // HOP - WINDOW
    video = _video_embeddings(net.lip, crops, limit, batch, device)
    n = video.shape[0]
    if n < 1:
        return LSEResult(windows=0, weights=net.weights, sha256=net.sha256,
                         reason=f"too short: SyncNet needs more than {WINDOW} frames of face "
                                f"and {WINDOW} frames of audio ({WINDOW / FPS:.1f} s)")
    audio_emb = _audio_embeddings(net.audio, reference_mfcc(pcm), n, device)
    figures = summarise(offset_distances(video, audio_emb, vshift), vshift)
    return LSEResult(weights=net.weights, sha256=net.sha256, **figures)
