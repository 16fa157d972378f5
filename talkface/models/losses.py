"""Multi-task regression loss shared by training and evaluation.

Per task: mean squared error over the samples that have a label (NaN targets are skipped, so a
manifest may leave some scores empty). Tasks are combined by the model's `loss_weights` (equal
weights for `original`, learned uncertainty weights for `improved`), plus the model's
`consistency_loss` when it has one, scaled by `consistency_weight`.

Label smoothing for regression (`smooth_targets`): targets are shrunk toward the training mean,
y' = (1 - eps) * y + eps * mean, the regression analogue of classification label smoothing. It
damps over-confident fits to noisy labels; eps = 0 disables it.
"""
from __future__ import annotations

import torch

from .base import ModelOutput, TalkfaceModel


def smooth_targets(targets: dict[str, torch.Tensor], means: dict[str, float],
                   epsilon: float) -> dict[str, torch.Tensor]:
    """{task: (B,)} -> same, shrunk toward `means[task]` by `epsilon` (NaNs stay NaN)."""
    if epsilon <= 0:
        return targets
    return {k: (1.0 - epsilon) * y + epsilon * means[k] for k, y in targets.items()}


def per_task_mse(scores: dict[str, torch.Tensor],
                 targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{task: (B,)} predictions and targets -> {task: scalar MSE over labelled samples}.
    Tasks with no label in the batch are left out."""
    losses = {}
    for task, target in targets.items():
        labelled = torch.isfinite(target)
        if labelled.any():
            diff = scores[task].float()[labelled] - target.float()[labelled]
            losses[task] = torch.mean(diff * diff)
    return losses


def multitask_loss(model: TalkfaceModel, output: ModelOutput, targets: dict[str, torch.Tensor],
                   consistency_weight: float = 0.0):
    """-> (total scalar loss to back-propagate, {task: MSE}, consistency scalar or None).

    Losses are computed in fp32 outside autocast, so scores made in bf16/fp16 are cast first."""
    output = ModelOutput({t: s.float() for t, s in output.scores.items()}, output.attention)
    per_task = per_task_mse(output.scores, targets)
    total = model.loss_weights(per_task) if per_task else output_zero(output)
    consistency = None
    if consistency_weight > 0 and hasattr(model, "consistency_loss"):
        consistency = model.consistency_loss(output.scores)
        total = total + consistency_weight * consistency
    return total, per_task, consistency


def output_zero(output: ModelOutput) -> torch.Tensor:
    first = next(iter(output.scores.values()))
    return first.sum() * 0.0
