"""Checkpoints: `model.safetensors` + `meta.json` + `card.md` in one folder, and where they live.

The metadata carries everything needed to rebuild the model without code changes or pickle:
format version, package version, model name and options, FeatureSpec, tasks, metrics, a training
data description (with the file -> split map) and the command that made it. Loading refuses
missing or unexpected weights.

Where checkpoints live:
- shipped ones are package data (`talkface/checkpoints/<name>`), read-only: nothing here ever
  writes there;
- the user's own are under the checkpoint root (`$TALKFACE_CHECKPOINTS`, else
  `~/.local/share/talkface/checkpoints`): `promote` copies a checkpoint into
  `versions/<name>-<time>/` and then names it in the one-line file `ACTIVE`, replaced atomically;
  `HISTORY` keeps the previously active ones for `rollback`.

Every write is one atomic step: a checkpoint folder is written in full under a hidden temporary
name and then published by atomically replacing a symlink (`save_checkpoint`), or by atomically
replacing `ACTIVE` (`promote`). A kill at any moment leaves either the old or the new checkpoint
in place, never neither; leftover temporary folders are ignored and cleared by the next save.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from safetensors.torch import load_file, save_file

from . import __version__
from .errors import CheckpointError
from .models import TalkfaceModel, create_model
from .spec import FeatureSpec, TaskSpec

CHECKPOINT_FORMAT = 2
SHIPPED = Path(__file__).resolve().parent / "checkpoints"  # package data, read-only
ACTIVE_FILE, HISTORY_FILE, VERSIONS = "ACTIVE", "HISTORY", "versions"
DEFAULT_NAME = "default"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED = {ACTIVE_FILE.lower(), HISTORY_FILE.lower(), VERSIONS, DEFAULT_NAME}
FILES = ("model.safetensors", "meta.json", "card.md")


@dataclass
class LoadedModel:
    model: TalkfaceModel
    spec: FeatureSpec
    tasks: list[TaskSpec]
    meta: dict
    path: Path
    card: str = ""
    metrics: dict = field(default_factory=dict)

    @property
    def calibration(self):
        """The post-training calibration stored with the weights (`talkface.calibration`)."""
        from .calibration import Calibration
        return Calibration.from_meta(self.meta)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def _make_readable(folder: Path) -> None:
    """mkdtemp makes owner-only folders; a checkpoint is meant to be shared and shipped."""
    folder.chmod(0o755)
    for item in folder.iterdir():
        item.chmod(0o644)


def _publish(tmp: Path, folder: Path) -> None:
    """Make `folder` show the finished folder `tmp` in one atomic step: `folder` becomes (or is
    replaced as) a symlink to `tmp`; the folder it pointed to before is removed afterwards."""
    old = folder.resolve() if folder.is_symlink() else None
    if folder.exists() and not folder.is_symlink():
        # a plain folder (written by an older talkface, or by hand): move it aside first
        aside = folder.with_name(f".{folder.name}.replaced.{os.getpid()}")
        os.replace(folder, aside)
        old = aside
    link = folder.with_name(f".{folder.name}.link.{os.getpid()}")
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(tmp.name, link)
    os.replace(link, folder)
    if old is not None and old != tmp.resolve():
        shutil.rmtree(old, ignore_errors=True)


def _clear_leftovers(parent: Path, name: str, keep: Path) -> None:
    """Temporary folders of earlier, interrupted saves of `name`."""
    for item in parent.glob(f".{name}.*"):
        if item.is_symlink():
            item.unlink(missing_ok=True)  # a link an interrupted save never published
        elif item.resolve() != keep.resolve() and item.is_dir():
            shutil.rmtree(item, ignore_errors=True)


def save_checkpoint(folder: str | os.PathLike, model: TalkfaceModel, model_config: dict,
                    metrics: Optional[dict] = None, data: Optional[dict] = None,
                    command: str = "", card: str = "", shipping: bool = False,
                    calibration: Optional[dict] = None, state: Optional[dict] = None,
                    extra_meta: Optional[dict] = None) -> Path:
    """Write a checkpoint at `folder` (replacing one there) atomically. Returns `folder`.
    Only `train.ship` (`shipping=True`) may write into the package's shipped checkpoints.
    `state` replaces the model's own state dict (e.g. int8 weights, `talkface.export`);
    `extra_meta` entries are added to meta.json."""
    folder = Path(folder)
    if SHIPPED in folder.resolve().parents and not shipping:
        raise CheckpointError(f"{folder} is a shipped checkpoint; write to another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CHECKPOINT_FORMAT, "talkface_version": __version__,
            "model_name": model.model_name, "model_config": model_config,
            "feature_spec": json.loads(model.spec.to_json()),
            "tasks": [t.model_dump() for t in model.tasks], "metrics": metrics or {},
            "data": data or {}, "command": command}
    if calibration:
        meta["calibration"] = calibration
    meta.update(extra_meta or {})
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in (
            state if state is not None else model.state_dict()).items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        (tmp / "card.md").write_text(card or default_card(meta))
        _make_readable(tmp)
        if shipping:  # package data must be a plain folder (no symlink in a wheel or in git)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        else:
            _publish(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _clear_leftovers(folder.parent, folder.name, tmp)
    return folder


def load_checkpoint(path: str | os.PathLike | None = None,
                    map_location: str = "cpu") -> LoadedModel:
    """Rebuild a model from a checkpoint folder (default: the active checkpoint). An int8
    folder or an `.onnx` file made by `talkface export` loads too."""
    folder = Path(path) if path is not None else active_checkpoint()
    if folder.suffix == ".onnx" or (not (folder / "model.safetensors").exists()
                                    and (folder / "model.onnx").exists()):
        from .export import load_onnx
        return load_onnx(folder)
    if folder.is_file():
        folder = folder.parent
    weights, meta_path = folder / "model.safetensors", folder / "meta.json"
    if not weights.exists() or not meta_path.exists():
        raise CheckpointError(f"{folder}: not a talkface checkpoint (expected model.safetensors "
                              f"and meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format", 0) != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{folder}: checkpoint format {meta.get('format')} but this talkface reads "
                f"format {CHECKPOINT_FORMAT}; " + ("upgrade talkface" if meta.get("format", 0) >
                                                   CHECKPOINT_FORMAT else "retrain it"))
        spec = FeatureSpec.model_validate(meta["feature_spec"])
        tasks = [TaskSpec.model_validate(t) for t in meta["tasks"]]
        model_name, config = meta["model_name"], meta.get("model_config", {})
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{meta_path}: damaged metadata ({err})") from None
    try:
        state = load_file(str(weights), device=map_location)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{weights}: unreadable weights ({err})") from None
    card = (folder / "card.md").read_text() if (folder / "card.md").exists() else ""
    if meta.get("quantization"):
        from .export import int8_model
        model = int8_model(meta, state, str(weights))
        return LoadedModel(model, spec, tasks, meta, folder, card, meta.get("metrics", {}))
    model = create_model(model_name, spec, tasks, **config)
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
    return LoadedModel(model, spec, tasks, meta, folder, card, meta.get("metrics", {}))


def checkpoint_root() -> Path:
    """The user's checkpoint root: $TALKFACE_CHECKPOINTS, else
    $XDG_DATA_HOME/talkface/checkpoints (~/.local/share/talkface/checkpoints)."""
    if os.environ.get("TALKFACE_CHECKPOINTS"):
        return Path(os.environ["TALKFACE_CHECKPOINTS"])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "talkface" / "checkpoints"


def shipped_checkpoint(name: str = DEFAULT_NAME) -> Path:
    """A checkpoint that ships inside the package (e.g. 'default', 'sync')."""
    folder = SHIPPED / name
    if not (folder / "model.safetensors").exists() and not (folder / "meta.json").exists():
        known = sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) if SHIPPED.exists() \
            else []
        raise CheckpointError(f"no shipped checkpoint {name!r} (shipped: "
                              f"{', '.join(known) or 'none'})")
    return folder


def active_checkpoint(root: Optional[Path] = None) -> Path:
    """The checkpoint the app and CLI use by default: the version named in `root/ACTIVE`, else
    the shipped default."""
    root = Path(root) if root is not None else checkpoint_root()
    marker = root / ACTIVE_FILE
    if marker.is_file():
        name = marker.read_text().strip()
        folder = root / VERSIONS / name
        if name and "/" not in name and not name.startswith(".") and \
                (folder / "model.safetensors").exists():
            return folder
    elif marker.exists():
        raise CheckpointError(f"{marker} should be a one-line file naming the active checkpoint;"
                              f" remove it to use the shipped default")
    return shipped_checkpoint(DEFAULT_NAME)


def check_name(name: str) -> str:
    """A promote name: letters, digits, '-' and '_', not a reserved word."""
    name = (name or "").strip()
    if not NAME_PATTERN.match(name) or name.lower() in RESERVED:
        raise CheckpointError(f"checkpoint name {name!r}: use 1-64 letters, digits, '-' and '_' "
                              f"(starting with a letter or digit), not one of "
                              f"{', '.join(sorted(RESERVED))}")
    return name


def promote(source: str | os.PathLike, name: str, root: Optional[Path] = None) -> Path:
    """Copy a checkpoint into `root/versions/<name>-<time>` and make it the active one (one
    atomic write of `ACTIVE`); the previous active version is kept and listed in `HISTORY`."""
    root = Path(root) if root is not None else checkpoint_root()
    name = check_name(name)
    loaded = load_checkpoint(source)  # refuse to promote something that does not load
    versions = root / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    version = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    while (versions / version).exists():
        version += "x"
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=versions))
    for item in FILES:
        if (loaded.path / item).exists():
            shutil.copy2(loaded.path / item, tmp / item)
    _make_readable(tmp)
    os.replace(tmp, versions / version)  # a new name: nothing is replaced
    previous = (root / ACTIVE_FILE).read_text().strip() if (root / ACTIVE_FILE).is_file() else ""
    if previous:
        with open(root / HISTORY_FILE, "a") as handle:
            handle.write(previous + "\n")
    write_text_atomic(root / ACTIVE_FILE, version + "\n")
    for item in versions.glob(".*"):  # folders of promotions that were interrupted
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
    return versions / version


def rollback(root: Optional[Path] = None) -> Path:
    """Make the previously active version active again (the shipped default when none)."""
    root = Path(root) if root is not None else checkpoint_root()
    history = root / HISTORY_FILE
    names = history.read_text().split() if history.exists() else []
    while names and not (root / VERSIONS / names[-1] / "model.safetensors").exists():
        names.pop()
    if names:
        write_text_atomic(root / ACTIVE_FILE, names.pop() + "\n")
    elif (root / ACTIVE_FILE).exists():
        (root / ACTIVE_FILE).unlink()
    write_text_atomic(history, "".join(n + "\n" for n in names))
    return active_checkpoint(root)


def default_card(meta: dict) -> str:
    spec = FeatureSpec.model_validate(meta["feature_spec"])
    data = {k: v for k, v in meta.get("data", {}).items() if k != "split"}
    lines = [f"# talkface checkpoint: {meta['model_name']}", "",
             f"- talkface {meta['talkface_version']}, checkpoint format {meta['format']}",
             f"- features: {spec.describe()}",
             f"- tasks: {', '.join(t['name'] for t in meta['tasks'])}",
             f"- training data: {json.dumps(data)}",
             f"- command: `{meta.get('command', '')}`", "", "## Validation metrics", ""]
    for task, values in meta.get("metrics", {}).items():
        if isinstance(values, dict):
            lines.append(f"- {task}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()
                                                   if isinstance(v, (int, float))))
    return "\n".join(lines) + "\n"
