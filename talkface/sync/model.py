"""`SyncNet`: a small two-stream audio-visual embedding (saved and loaded by `talkface.checkpoint`,
kind "sync"; `talkface.sync.estimate.load_sync_model` wraps it for use).

After Chung & Zisserman, "Out of time: automated lip sync in the wild" (ACCV workshops 2016):
a visual stream over a 0.2 s window of the mouth and an audio stream over the matching 0.2 s of
sound are embedded so that in-sync pairs are close; trained (`train.sync`) with the multi-way
matching loss of Chung et al., "Perfect match" (ICASSP 2019): for each video window, a
cross-entropy over the audio windows at 31 offsets of the same clip and the windows of other
clips in the batch.

    visual: lip input (B, 160, T) + mouth crops (B, T, 24, 48)
            -> per-frame crop CNN (96) ++ lips -> Conv1d k3, k3 (5-frame receptive field) -> 32-d
    audio:  log-mel (B, 40, 4T + 1) -> Conv1d k5, k4/2, k3, k3/2, k2 (20 mel frames, stride 4)
            -> 32-d
    both L2-normalised; distance = |v - a| (as syncnet_python).

One visual embedding per window t (frames t..t+4) and one audio embedding per video frame, so
`visual[:, :, t]` pairs with `audio[:, :, t + d]` at offset d (> 0 = audio late).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .frontend import CROP_SIZE
from .options import SyncOptions  # noqa: F401  (re-exported: the model's settings)

def _block1d(i: int, o: int, k: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(i, o, k, s), nn.BatchNorm1d(o), nn.ReLU(inplace=True))


class CropEncoder(nn.Module):
    """(N, 24, 48) mouth crops -> (N, features)."""

    def __init__(self, channels: int, features: int) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(*[nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o),
                                                  nn.ReLU(inplace=True))
                                    for i, o, s in ((1, c, 1), (c, 2 * c, 2), (2 * c, 4 * c, 2),
                                                    (4 * c, 4 * c, 2))])
        w, h = CROP_SIZE
        self.fc = nn.Linear(4 * c * math.ceil(h / 8) * math.ceil(w / 8), features)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(crops[:, None]).flatten(1))


class SyncNet(nn.Module):
    def __init__(self, options: Optional[SyncOptions] = None) -> None:
        super().__init__()
        self.options = o = options or SyncOptions()
        width = (160 if o.lips else 0) + (o.crop_features if o.crops else 0)
        self.crops = CropEncoder(o.crop_channels, o.crop_features) if o.crops else None
        c = o.visual_channels
        self.visual = nn.Sequential(nn.Dropout(o.dropout), _block1d(width, c, 3), _block1d(c, c, 3),
                                    nn.Conv1d(c, c, 1), nn.ReLU(inplace=True),
                                    nn.Conv1d(c, o.dim, 1))
        a = o.audio_channels
        self.audio = nn.Sequential(_block1d(o.n_mels, a, 5), _block1d(a, a, 4, 2),
                                   _block1d(a, 2 * a, 3), _block1d(2 * a, 2 * a, 3, 2),
                                   _block1d(2 * a, 2 * a, 2), nn.Conv1d(2 * a, 2 * a, 1),
                                   nn.ReLU(inplace=True), nn.Conv1d(2 * a, o.dim, 1))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # training's temperature

    def embed_video(self, lips: Optional[torch.Tensor],
                    crops: Optional[torch.Tensor]) -> torch.Tensor:
        """lips (B, 160, T), crops (B, T, 24, 48) -> (B, dim, T - 4), unit length."""
        parts = []
        if self.options.lips:
            parts.append(lips)
        if self.crops is not None:
            b, t = crops.shape[:2]
            parts.append(self.crops(crops.reshape(b * t, *crops.shape[2:])).reshape(b, t, -1)
                         .transpose(1, 2))
        return F.normalize(self.visual(torch.cat(parts, 1)), dim=1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel (B, n_mels, 4T + 1) -> (B, dim, T - 4), unit length."""
        return F.normalize(self.audio(mel), dim=1)
