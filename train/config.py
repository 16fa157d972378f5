"""Typed training configs: YAML -> `Config`, validated strictly (unknown keys and wrong types are
errors, not silently ignored), with command-line overrides applied *before* validation.

    cfg = load_config("optimized", overrides=["train.lr=3e-4"],
                      data="data/synth", output_dir="runs/a")

Input sizes are not configurable here: they come from the data's FeatureSpec.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from talkface.augment import AugmentConfig
from talkface.data import DataSettings
from talkface.errors import ConfigError
from talkface.metrics import METRIC_NAMES
from talkface.models.base import model_options

STRICT = ConfigDict(extra="forbid", strict=True)


class ModelConfig(BaseModel):
    """`name` of a registered model plus its options, validated against that model's own
    `Options` (an option another model has, or a typo, is an error); unset options take the
    model's defaults."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: str = "improved"

    @model_validator(mode="after")
    def _check_options(self) -> "ModelConfig":
        try:
            model_options(self.name, self.options())
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self

    def options(self) -> dict:
        """The options set here; `null` means "the model's default" (e.g. to drop an option of
        another model from a shared config)."""
        return {k: v for k, v in (self.model_extra or {}).items() if v is not None}

    def kwargs(self) -> dict:
        """Keyword arguments for `create_model`: every option, defaults filled in."""
        return model_options(self.name, self.options())


class DataConfig(DataSettings):
    """The data section: `talkface.data.DataSettings` (tasks, features, cache, split, workers;
    `load_dataset(cfg.data.path, cfg.data)` takes it whole) plus the manifest's path and the
    length of the random training crops."""

    model_config = STRICT  # merged with DataSettings' frozen=True
    path: Optional[str] = None
    crop_frames: Optional[int] = Field(100, gt=0)


class TrainConfig(BaseModel):
    model_config = STRICT
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999])
    scheduler: Literal["none", "onecycle"] = "onecycle"
    pct_start: float = Field(0.3, gt=0, lt=1)
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(16, gt=0)
    grad_clip: Optional[float] = Field(1.0, gt=0)
    patience: Optional[int] = Field(8, gt=0)
    select_metric: Literal[METRIC_NAMES] = "mse"  # one of the metric table's names
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    consistency_weight: float = Field(0.0, ge=0)
    task_weight_lr_scale: float = Field(1.0, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: Optional[int] = Field(None, gt=0)  # CPU threads for torch (None: torch's default)
    seed: int = 0
    eval_batch_size: int = Field(8, gt=0)
    stop_after_epochs: Optional[int] = Field(None, gt=0)  # simulate a kill (tests) / time boxes


class Config(BaseModel):
    model_config = STRICT
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)  # label-preserving, training only
    output_dir: Optional[str] = None
    resume: bool = False


def parse_value(text: str):
    """`--set` value: YAML scalar/list, with `3e-4` read as a number (YAML 1.1 reads it as text)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_override(raw: dict, item: str) -> None:
    """`train.lr=3e-4` -> raw["train"]["lr"] = 0.0003 (in place)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    dotted, text = item.split("=", 1)
    *sections, key = dotted.strip().split(".")
    node = raw
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {section!r} is not a section")
    node[key] = parse_value(text)


def build_config(raw: dict, overrides: Optional[list[str]] = None, source: str = "config",
                 **shortcuts) -> Config:
    """Apply `--set` overrides and shortcuts (data, output_dir, model, batch_size, epochs,
    resume) to a raw dict, then validate."""
    raw = copy.deepcopy(raw or {})
    for item in overrides or []:
        apply_override(raw, item)
    places = {"data": "data.path", "model": "model.name", "batch_size": "train.batch_size",
              "epochs": "train.epochs", "output_dir": "output_dir", "resume": "resume",
              "lr": "train.lr", "seed": "train.seed"}
    for name, value in shortcuts.items():
        if value is not None:
            *sections, key = places[name].split(".")
            node = raw
            for section in sections:
                node = node.setdefault(section, {})
            node[key] = value
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_explain(err)}") from None


CONFIGS = Path(__file__).with_name("configs")  # the shipped configs


def config_file(name: str | Path) -> Path:
    """A YAML path, or the name of a shipped config ('optimized', 'tiny', ...)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = CONFIGS / f"{name}.yaml"
    if path.suffix == "" and shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
    raise ConfigError(f"{name}: no such config file, and not a shipped config ({known})")


def load_config(path: str | Path, overrides: Optional[list[str]] = None, **shortcuts) -> Config:
    """Read a YAML config (a path or a shipped config's name), apply overrides and shortcuts,
    validate."""
    path = config_file(path)
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return build_config(raw, overrides, str(path), **shortcuts)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        else:
            parts.append(f"{where}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(parts)
