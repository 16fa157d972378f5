"""`SyncOptions`: the sync model's settings as stored in its checkpoint (`talkface.sync.model.SyncNet`
is built from them). Apart from the model so that an ONNX sync model, which needs to know which
inputs it takes and how many mel bands, is described without importing torch."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .frontend import N_MELS


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
