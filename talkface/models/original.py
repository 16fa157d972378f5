"""`original`: the baseline the product improves on.

One linear layer per modality into `encoder_dim`, concatenation, a Transformer encoder, masked
mean pooling over frames, one linear head per task, fixed equal task weights. Kept as it was
described in the original report (linear heads, so scores are not bounded to the task range);
`improved` is the model that ships.
"""
from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..spec import FeatureSpec, TaskSpec
from .layers import key_padding_mask, masked_mean
from .base import ModelOutput, TalkfaceModel, register_model


@register_model("original")
class OriginalModel(TalkfaceModel):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        encoder_dim: int = Field(256, gt=0)
        num_layers: int = Field(3, gt=0)
        num_heads: int = Field(4, gt=0)
        dropout: float = Field(0.1, ge=0.0, lt=1.0)

    def __init__(self, spec: FeatureSpec, tasks: list[TaskSpec], encoder_dim: int = 256,
                 num_layers: int = 3, num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__(spec, tasks)
        self.visual_proj = nn.Linear(spec.visual_dim, encoder_dim)
        self.audio_proj = nn.Linear(spec.audio_dim, encoder_dim)
        layer = nn.TransformerEncoderLayer(2 * encoder_dim, num_heads, 4 * encoder_dim, dropout,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.heads = nn.ModuleDict({t.name: nn.Linear(2 * encoder_dim, 1) for t in tasks})

    def forward(self, visual: torch.Tensor, audio: torch.Tensor,
                mask: torch.Tensor) -> ModelOutput:
        """visual (B, T, Dv), audio (B, T, Da), mask (B, T) bool (True = real frame with a face)
        -> scores {task: (B,)}, attention {"temporal": (B, T)} (uniform over valid frames)."""
        visual, audio = self.normalize(visual, audio, mask)
        x = torch.cat([self.visual_proj(visual), self.audio_proj(audio)], dim=-1)
        x = self.encoder(x, src_key_padding_mask=key_padding_mask(mask))
        pooled = masked_mean(x, mask)
        scores = {name: head(pooled).squeeze(-1) for name, head in self.heads.items()}
        weights = mask.to(x.dtype) / mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
        return ModelOutput(scores, {"temporal": weights})
