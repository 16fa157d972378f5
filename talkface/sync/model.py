"""`SyncNet`: a small two-stream audio-visual embedding, and loading it from a checkpoint folder.

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

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .frontend import CROP_SIZE, N_MELS

SYNC_FORMAT = 1


class SyncOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dim: int = Field(32, gt=0)  # embedding size
    visual_channels: int = Field(64, gt=0)
    audio_channels: int = Field(32, gt=0)
    crop_channels: int = Field(8, gt=0)
    crop_features: int = Field(96, gt=0)
    lips: bool = True
    crops: bool = True
    dropout: float = Field(0.3, ge=0, lt=1)
    n_mels: int = N_MELS


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


def weights_fingerprint(state: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_sync_model(folder: str | os.PathLike, model: SyncNet, meta: dict, card: str,
                    shipping: bool = False) -> Path:
    """A sync checkpoint folder: model.safetensors + meta.json + card.md (atomic)."""
    import tempfile

    from safetensors.torch import save_file

    from ..checkpoint import SHIPPED, _make_readable, _publish
    from ..errors import CheckpointError
    folder = Path(folder)
    if SHIPPED in folder.resolve().parents and not shipping:
        raise CheckpointError(f"{folder} is a shipped checkpoint; write to another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    full = {"format": SYNC_FORMAT, "kind": "sync", "options": model.options.model_dump(),
            "fingerprint": weights_fingerprint(state), **meta}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    save_file(state, str(tmp / "model.safetensors"))
    (tmp / "meta.json").write_text(json.dumps(full, indent=1))
    (tmp / "card.md").write_text(card)
    _make_readable(tmp)
    if shipping:
        import shutil
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    else:
        _publish(tmp, folder)
    return folder


def load_sync_model(name_or_path: str | os.PathLike):
    """A `SyncEstimator` from a sync checkpoint: a shipped one by name ('sync') or a folder."""
    from safetensors.torch import load_file

    from ..checkpoint import SHIPPED
    from ..errors import CheckpointError
    from .estimate import SyncEstimator
    folder = Path(name_or_path)
    if not folder.exists() and (SHIPPED / str(name_or_path)).exists():
        folder = SHIPPED / str(name_or_path)
    meta_path = folder / "meta.json"
    if not meta_path.exists() or not (folder / "model.safetensors").exists():
        raise CheckpointError(f"{name_or_path}: not a sync checkpoint (a shipped name such as "
                              f"'sync', or a folder with model.safetensors and meta.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != "sync" or meta.get("format") != SYNC_FORMAT:
        raise CheckpointError(f"{folder}: not a format-{SYNC_FORMAT} sync checkpoint")
    model = SyncNet(SyncOptions.model_validate(meta["options"]))
    state = load_file(str(folder / "model.safetensors"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{folder}: weights do not match the sync model ({err})") from None
    model.eval()
    if weights_fingerprint(state) != meta["fingerprint"]:
        raise CheckpointError(f"{folder}: weights differ from the ones meta.json describes")
    return SyncEstimator(model, meta, folder)
