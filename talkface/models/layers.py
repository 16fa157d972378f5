"""Masked pooling and attention masks shared by the model variants: padded or face-less frames
(mask False) never change a result."""
from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) bool -> (B, D) mean over frames where mask is True (0 if none)."""
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


def key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) valid mask -> (B, T) padding mask for nn attention (True = ignore).

    A clip with no valid frame at all would make attention softmax over nothing (NaN); its
    frames are all zero after `normalize`, so attending to them is harmless and keeps it finite.
    """
    return ~(mask | ~mask.any(1, keepdim=True))


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D) max over valid frames (0 for a clip with none)."""
    filled = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)
    return torch.where(mask.any(1, keepdim=True), filled.max(1).values, torch.zeros_like(x[:, 0]))
