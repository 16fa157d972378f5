"""The model base class (`TalkfaceModel`), its output (`ModelOutput`) and the model registry (as in
timm): variants are registered by name and built from a FeatureSpec.

    @register_model("improved")
    class ImprovedModel(TalkfaceModel): ...

    model = create_model("improved", spec, tasks, dropout=0.2)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pydantic import ValidationError
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from ..spec import FeatureSpec, TaskSpec


@dataclass
class ModelOutput:
    """`scores[task]` is (B,) in the task's range; `attention` holds maps for display:
    "temporal" (B, T) weights over frames summing to 1 over valid frames, and "cross" (B, T, T)
    video-to-audio attention where the model has one; `spread[task]` (B,) is how much an
    ensemble's members disagree (their standard deviation), empty for a single model."""

    scores: dict[str, torch.Tensor]
    attention: dict[str, torch.Tensor] = field(default_factory=dict)
    spread: dict[str, torch.Tensor] = field(default_factory=dict)


class TalkfaceModel(nn.Module):
    """Base class: input sizes from the spec, one head per task, inputs normalised by buffers
    that training fills from the training set (`set_normalization`)."""

    def __init__(self, spec: FeatureSpec, tasks: list[TaskSpec]) -> None:
        super().__init__()
        self.spec, self.tasks = spec, list(tasks)
        self.register_buffer("visual_mean", torch.zeros(spec.visual_dim))
        self.register_buffer("visual_std", torch.ones(spec.visual_dim))
        self.register_buffer("audio_mean", torch.zeros(spec.audio_dim))
        self.register_buffer("audio_std", torch.ones(spec.audio_dim))

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @torch.no_grad()
    def set_normalization(self, visual_mean, visual_std, audio_mean, audio_std) -> None:
        for name, value in (("visual_mean", visual_mean), ("visual_std", visual_std),
                            ("audio_mean", audio_mean), ("audio_std", audio_std)):
            buf = getattr(self, name)
            buf.copy_(torch.as_tensor(value, dtype=buf.dtype))
        self.visual_std.clamp_(min=1e-4)
        self.audio_std.clamp_(min=1e-4)

    def normalize(self, visual: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor):
        """Standardise inputs and zero masked frames so they carry no information."""
        keep = mask.unsqueeze(-1)
        # where, not multiply: a NaN or inf in a masked frame must not leak through as NaN * 0
        visual = torch.where(keep, (visual - self.visual_mean) / self.visual_std, 0.0)
        audio = torch.where(keep, (audio - self.audio_mean) / self.audio_std, 0.0)
        return visual, audio

    def loss_weights(self, per_task: dict[str, torch.Tensor]) -> torch.Tensor:
        """Combine per-task losses; fixed equal weights unless a variant learns them."""
        return torch.stack(list(per_task.values())).mean()


MODELS = Registry("model")


def register_model(name: str):
    """Class decorator: register a TalkfaceModel under `name` (a second model of the same name
    is an error). A model may declare its keyword arguments as a pydantic `Options` class, which
    `create_model` and the training config validate against."""
    def wrap(cls):
        cls.model_name = name
        return MODELS.register(name)(cls)
    return wrap


def list_models() -> list[str]:
    return MODELS.names()


def model_options(name: str, overrides: dict) -> dict:
    """Validate `overrides` against model `name`'s Options; returns the full option set."""
    cls = MODELS.get(name)
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(MODELS.names())}")
    options = getattr(cls, "Options", None)
    if options is None:
        return dict(overrides)
    try:
        return options.model_validate(overrides).model_dump()
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}"
                             for e in err.errors())
        raise ConfigError(f"model {name!r}: {problems}") from None


def create_model(name: str, spec: FeatureSpec, tasks: list[TaskSpec], **overrides) -> TalkfaceModel:
    """Build model `name` for `spec`'s inputs and `tasks`' heads; `overrides` are its Options."""
    options = model_options(name, overrides)
    return MODELS.get(name)(spec, tasks, **options)

