"""`improved`: the multi-task model talkface ships.

    visual (B,T,Dv) -> ModalityEncoder -> visual Transformer -> pools -> visual heads
                                                |                  \
                                                v                   v
    audio  (B,T,Da) -> ModalityEncoder -> cross attention (v<->a) -> AV Transformer -> pools
                                                                    -> audio-visual heads

- Per-modality encoders: 3 Linear-GELU-Dropout layers with a residual linear projection of the
  input and a LayerNorm. Each frame's input is its normalised features and their change from the
  previous frame (zero where either frame is masked): shake, freezes, flicker and mouth motion
  are frame-to-frame changes, which a frame-wise encoder could not otherwise see.
- Two branches. The visual branch (a Transformer over the visual frames only) feeds the tasks
  whose TaskSpec says `inputs="visual"` (visual and temporal quality): no audio reaches them, so
  shifting or swapping the audio cannot move those scores. The audio-visual branch (video frames
  attending to audio frames and back, then a Transformer) feeds the other tasks (lip sync,
  overall) together with the visual branch's summary.
- Temporal attention pooling, masked mean and masked max, concatenated, feed one MLP head per task
  with a sigmoid mapped into the task's [low, high] range.
- Learned task weights: homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018),
  L = sum_i exp(-s_i) L_i + s_i with s_i = log sigma_i^2 learned per task.
- Consistency: when an `overall` task exists, its prediction should agree with a learned affine
  combination of the other tasks' predictions (`consistency_loss`).

Masked frames (padding, face-less frames) are zeroed before the first layer, excluded as attention
keys and from every pooling, so they never change a score.
"""
from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..spec import FeatureSpec, TaskSpec
from ..tasks import OVERALL
from .layers import key_padding_mask, masked_max, masked_mean
from .base import ModelOutput, TalkfaceModel, register_model


class ModalityEncoder(nn.Module):
    """(B, T, D_in) -> (B, T, D): `layers` Linear-GELU-Dropout blocks + residual projection."""

    def __init__(self, in_dim: int, dim: int, layers: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        blocks, width = [], in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, dim), nn.GELU(), nn.Dropout(dropout)]
            width = dim
        self.mlp = nn.Sequential(*blocks)
        self.skip = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(x) + self.skip(x))


class CrossAttention(nn.Module):
    """Queries from one modality attend to keys/values of the other; residual + LayerNorm."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, query, key, padding):
        """query/key (B, T, D), padding (B, T) True = ignore -> (B, T, D), weights (B, T, T)."""
        out, weights = self.attn(query, key, key, key_padding_mask=padding, need_weights=True)
        return self.norm(query + self.drop(out)), weights


def sinusoidal_positions(length: int, dim: int, device, dtype) -> torch.Tensor:
    """(T, D) fixed sine/cosine frame-position code (Vaswani et al. 2017); no length limit."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table.to(dtype)


class AttentionPool(nn.Module):
    """(B, T, D), mask -> pooled (B, D) and weights (B, T) summing to 1 over valid frames."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        logits = self.score(x).squeeze(-1).float().masked_fill(key_padding_mask(mask), -1e9)
        weights = torch.softmax(logits, dim=1).to(x.dtype)
        return (weights.unsqueeze(-1) * x).sum(1), weights


def with_deltas(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, T, 2D): features and x[t] - x[t-1], zeroed unless both frames are valid."""
    both = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1).to(x.dtype)
    delta = torch.zeros_like(x)
    delta[:, 1:] = (x[:, 1:] - x[:, :-1]) * both
    return torch.cat([x, delta], dim=-1)


def _transformer(dim: int, heads: int, dropout: float, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, batch_first=True,
                                       activation="gelu", norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


@register_model("improved")
class ImprovedModel(TalkfaceModel):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        encoder_dim: int = Field(512, gt=0)
        num_layers: int = Field(4, gt=0)  # audio-visual Transformer
        visual_layers: int = Field(2, gt=0)  # visual-only Transformer
        num_heads: int = Field(8, gt=0)
        dropout: float = Field(0.1, ge=0.0, lt=1.0)
        encoder_layers: int = Field(3, gt=0)

    def __init__(self, spec: FeatureSpec, tasks: list[TaskSpec], encoder_dim: int = 512,
                 num_layers: int = 4, visual_layers: int = 2, num_heads: int = 8,
                 dropout: float = 0.1, encoder_layers: int = 3) -> None:
        super().__init__(spec, tasks)
        dim = encoder_dim
        self.visual_encoder = ModalityEncoder(2 * spec.visual_dim, dim, encoder_layers, dropout)
        self.audio_encoder = ModalityEncoder(2 * spec.audio_dim, dim, encoder_layers, dropout)
        self.visual_context = _transformer(dim, num_heads, dropout, visual_layers)
        self.visual_norm = nn.LayerNorm(dim)
        self.visual_pool = AttentionPool(dim)
        self.video_to_audio = CrossAttention(dim, num_heads, dropout)
        self.audio_to_video = CrossAttention(dim, num_heads, dropout)
        self.fuse = nn.Linear(2 * dim, dim)
        self.encoder = _transformer(dim, num_heads, dropout, num_layers)
        self.final_norm = nn.LayerNorm(dim)
        self.pool = AttentionPool(dim)
        self.visual_only = [t.inputs == "visual" for t in tasks]
        self.heads = nn.ModuleDict({t.name: nn.Sequential(
            nn.Linear((3 if t.inputs == "visual" else 6) * dim, dim // 2), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(dim // 2, 1)) for t in tasks})
        # log sigma^2 per task (Kendall et al. 2018); 0 = weight 1 at the start
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))
        others = [t.name for t in tasks if t.name != OVERALL]
        self.has_consistency = OVERALL in self.task_names and len(others) > 0
        self.consistency_tasks = others if self.has_consistency else []
        self.consistency = nn.Linear(len(others), 1) if self.has_consistency else None
        self.register_buffer("task_low", torch.tensor([t.low for t in tasks]))
        self.register_buffer("task_high", torch.tensor([t.high for t in tasks]))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor,
                mask: torch.Tensor) -> ModelOutput:
        """visual (B, T, Dv), audio (B, T, Da), mask (B, T) bool (True = real frame with a face)
        -> scores {task: (B,)} in [low, high], attention {"temporal": (B, T) visual pooling,
        "av_temporal": (B, T) audio-visual pooling, "cross": (B, T, T)} where cross[b, i, j] is
        how much video frame i attends to audio frame j. Visual tasks never see the audio."""
        visual, audio = self.normalize(visual, audio, mask)
        padding, keep = key_padding_mask(mask), mask.unsqueeze(-1)
        v = self.visual_encoder(with_deltas(visual, mask)) * keep
        positions = sinusoidal_positions(v.shape[1], v.shape[2], v.device, v.dtype)
        v = self.visual_norm(self.visual_context((v + positions) * keep,
                                                 src_key_padding_mask=padding))
        v_attended, temporal = self.visual_pool(v, mask)
        v_pooled = torch.cat([v_attended, masked_mean(v, mask), masked_max(v, mask)], dim=-1)
        a = self.audio_encoder(with_deltas(audio, mask)) * keep
        v2, cross = self.video_to_audio(v, a, padding)
        a2, _ = self.audio_to_video(a, v, padding)
        x = self.fuse(torch.cat([v2, a2], dim=-1)) + positions
        x = self.final_norm(self.encoder(x * keep, src_key_padding_mask=padding))
        attended, av_temporal = self.pool(x, mask)
        av_pooled = torch.cat([v_pooled, attended, masked_mean(x, mask), masked_max(x, mask)],
                              dim=-1)
        scores = {}
        for i, (name, head) in enumerate(self.heads.items()):
            pooled = v_pooled if self.visual_only[i] else av_pooled
            unit = torch.sigmoid(head(pooled).squeeze(-1).float()).to(pooled.dtype)
            scores[name] = self.task_low[i] + (self.task_high[i] - self.task_low[i]) * unit
        return ModelOutput(scores, {"temporal": temporal, "av_temporal": av_temporal,
                                    "cross": cross})

    def loss_weights(self, per_task: dict[str, torch.Tensor]) -> torch.Tensor:
        """Uncertainty weighting: sum_i exp(-s_i) * L_i + s_i over the tasks present."""
        total = self.log_vars.new_zeros(())
        for i, name in enumerate(self.task_names):
            if name in per_task:
                total = total + torch.exp(-self.log_vars[i]) * per_task[name] + self.log_vars[i]
        return total

    def task_weights(self) -> dict[str, float]:
        """Current effective weight exp(-s_i) per task (logged each epoch)."""
        return {n: float(torch.exp(-s)) for n, s in zip(self.task_names, self.log_vars.detach())}

    def consistency_loss(self, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared gap between `overall` and a learned affine combination of the other
        tasks' scores, (B,) each -> scalar (0 when there is no `overall` task)."""
        if not self.has_consistency:
            return next(self.parameters()).new_zeros(())
        others = torch.stack([scores[n] for n in self.consistency_tasks], dim=-1)
        return torch.mean((scores[OVERALL] - self.consistency(others).squeeze(-1)) ** 2)
