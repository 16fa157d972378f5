"""`ensemble`: several trained models scored together, mean and spread per task.

    model = create_model("ensemble", spec, tasks, members=[
        {"name": "improved", "options": {...}}, {"name": "improved", "options": {...}}])

Each member is a registered model with its own options, weights and input normalisation (its
state lives under `members.<k>.` in the checkpoint); members may differ in architecture (e.g. the
top trials of a search). The forward pass runs every member on the same inputs and returns the
members' mean score per task, their standard deviation (n - 1 in the denominator) in
`ModelOutput.spread`, and the mean of the attention maps every member has. `disagreement` is the
spread, as a share of a task's range, above which the Scorer warns that the members disagree.
Built by `python -m train.ensemble`; not trained as one model.
"""
from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ..spec import FeatureSpec, TaskSpec
from .base import ModelOutput, TalkfaceModel, create_model, register_model


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    options: dict = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_nested(cls, name: str) -> str:
        if name == "ensemble":
            raise ValueError("an ensemble member cannot itself be an ensemble")
        return name


@register_model("ensemble")
class EnsembleModel(TalkfaceModel):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        members: list[Member] = Field(min_length=2)
        disagreement: float = Field(0.1, gt=0, le=1)

    def __init__(self, spec: FeatureSpec, tasks: list[TaskSpec], members: list[dict],
                 disagreement: float = 0.1) -> None:
        super().__init__(spec, tasks)
        self.members = nn.ModuleList(create_model(m["name"], spec, tasks, **m.get("options", {}))
                                     for m in members)
        self.disagreement = disagreement

    def set_normalization(self, *stats) -> None:
        super().set_normalization(*stats)
        for member in self.members:
            member.set_normalization(*stats)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor,
                mask: torch.Tensor) -> ModelOutput:
        """visual (B, T, Dv), audio (B, T, Da), mask (B, T) bool -> scores {task: (B,)} (the
        members' mean), spread {task: (B,)} (their standard deviation), attention: the members'
        mean of each map they all have ("temporal" (B, T), "cross" (B, T, T), ...)."""
        outputs = [member(visual, audio, mask) for member in self.members]
        scores, spread = {}, {}
        for name in self.task_names:
            stacked = torch.stack([out.scores[name] for out in outputs])  # (K, B)
            scores[name], spread[name] = stacked.mean(0), stacked.std(0, correction=1)
        shared = set.intersection(*(set(out.attention) for out in outputs))
        attention = {key: torch.stack([out.attention[key] for out in outputs]).mean(0)
                     for key in sorted(shared)}
        return ModelOutput(scores, attention, spread)
