"""Shipped checkpoints: `model.safetensors` + `meta.json` + `card.md` in one folder.

The metadata carries everything needed to rebuild the model without code changes or pickle:
format version, package version, model name and config, FeatureSpec, tasks, metrics, a training
data description and the command that made it. Loading refuses missing or unexpected weights.
Folders are written under a temporary name and renamed into place, so a crash never leaves a
half-written checkpoint; the active checkpoint is named by `checkpoints/ACTIVE`, replaced
atomically on promotion.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from safetensors.torch import load_file, save_file

from . import __version__
from .errors import CheckpointError
from .models import TalkfaceModel, create_model
from .spec import FeatureSpec, TaskSpec

CHECKPOINT_FORMAT = 1
CHECKPOINT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"  # the shipped ones
ACTIVE_FILE = "ACTIVE"
DEFAULT_NAME = "default"


@dataclass
class LoadedModel:
    model: TalkfaceModel
    spec: FeatureSpec
    tasks: list[TaskSpec]
    meta: dict
    path: Path
    card: str = ""
    metrics: dict = field(default_factory=dict)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(folder: str | os.PathLike, model: TalkfaceModel, model_config: dict,
                    metrics: Optional[dict] = None, data: Optional[dict] = None,
                    command: str = "", card: str = "") -> Path:
    """Write a checkpoint folder atomically (replacing an existing one). Returns the folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CHECKPOINT_FORMAT, "talkface_version": __version__,
            "model_name": model.model_name, "model_config": model_config,
            "feature_spec": json.loads(model.spec.to_json()),
            "tasks": [t.model_dump() for t in model.tasks], "metrics": metrics or {},
            "data": data or {}, "command": command}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        (tmp / "card.md").write_text(card or default_card(meta))
        _make_readable(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _make_readable(folder: Path) -> None:
    """mkdtemp makes owner-only folders; a checkpoint is meant to be shared and shipped."""
    folder.chmod(0o755)
    for item in folder.iterdir():
        item.chmod(0o644)


def load_checkpoint(path: str | os.PathLike | None = None,
                    map_location: str = "cpu") -> LoadedModel:
    """Rebuild a model from a checkpoint folder (default: the active shipped checkpoint)."""
    folder = Path(path) if path is not None else active_checkpoint()
    if folder.is_file():
        folder = folder.parent
    weights, meta_path = folder / "model.safetensors", folder / "meta.json"
    if not weights.exists() or not meta_path.exists():
        raise CheckpointError(f"{folder}: not a talkface checkpoint (expected model.safetensors "
                              f"and meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
        spec = FeatureSpec.model_validate(meta["feature_spec"])
        tasks = [TaskSpec.model_validate(t) for t in meta["tasks"]]
        model_name, config = meta["model_name"], meta.get("model_config", {})
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{meta_path}: damaged metadata ({err})") from None
    if meta.get("format", 0) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{folder}: checkpoint format {meta['format']} is newer than this "
                              f"talkface ({CHECKPOINT_FORMAT}); upgrade talkface")
    model = create_model(model_name, spec, tasks, **config)
    try:
        state = load_file(str(weights), device=map_location)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{weights}: unreadable weights ({err})") from None
    missing = sorted(set(model.state_dict()) - set(state))
    unexpected = sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match model {model_name!r}: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights}: {err}") from None
    model.eval()
    card = (folder / "card.md").read_text() if (folder / "card.md").exists() else ""
    return LoadedModel(model, spec, tasks, meta, folder, card, meta.get("metrics", {}))


def checkpoint_root() -> Path:
    """Where checkpoints are looked up and promoted to: $TALKFACE_CHECKPOINTS, else the
    repository's checkpoints/ folder."""
    return Path(os.environ.get("TALKFACE_CHECKPOINTS", CHECKPOINT_ROOT))


def active_checkpoint(root: Optional[Path] = None) -> Path:
    """The checkpoint the app and CLI use by default: named in `root/ACTIVE`, else `default`."""
    root = Path(root) if root is not None else checkpoint_root()
    marker = root / ACTIVE_FILE
    name = marker.read_text().strip() if marker.exists() else DEFAULT_NAME
    folder = root / name
    if not (folder / "model.safetensors").exists():
        raise CheckpointError(f"no checkpoint at {folder}; train one with `python -m train` or "
                              f"pass --checkpoint")
    return folder


def promote(source: str | os.PathLike, name: str, root: Optional[Path] = None) -> Path:
    """Copy a checkpoint into `root/name` and make it the active one (atomic switch)."""
    root = Path(root) if root is not None else checkpoint_root()
    loaded = load_checkpoint(source)  # refuse to promote something that does not load
    target = root / name
    if Path(source).resolve() != target.resolve():
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        for item in ("model.safetensors", "meta.json", "card.md"):
            if (loaded.path / item).exists():
                shutil.copy2(loaded.path / item, tmp / item)
        _make_readable(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    write_text_atomic(root / ACTIVE_FILE, name + "\n")
    return target


def default_card(meta: dict) -> str:
    spec = FeatureSpec.model_validate(meta["feature_spec"])
    lines = [f"# talkface checkpoint: {meta['model_name']}", "",
             f"- talkface {meta['talkface_version']}, checkpoint format {meta['format']}",
             f"- features: {spec.describe()}",
             f"- tasks: {', '.join(t['name'] for t in meta['tasks'])}",
             f"- training data: {json.dumps(meta.get('data', {}))}",
             f"- command: `{meta.get('command', '')}`", "", "## Validation metrics", ""]
    for task, values in meta.get("metrics", {}).items():
        if isinstance(values, dict):
            lines.append(f"- {task}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()
                                                   if isinstance(v, (int, float))))
    return "\n".join(lines) + "\n"
