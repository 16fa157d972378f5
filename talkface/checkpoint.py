"""Checkpoints: `model.safetensors` + `meta.json` + `card.md` in one folder, and where they live.

This module is the one owner of checkpoint folders, for both kinds of model talkface ships:
`kind="quality"` (the multi-task scorer, rebuilt with `talkface.models.create_model`) and
`kind="sync"` (the audio-visual sync embedding, `talkface.sync.model.SyncNet`). `meta.json` is a
typed `CheckpointMeta`: format version, package version, model name and options, FeatureSpec,
tasks, metrics, a training data description (with the file -> split map), calibration and the
command that made it; everything needed to rebuild the model without code changes or pickle.
Loading refuses missing or unexpected weights. `load_checkpoint(..., runtime=)` is also the one
place that chooses the runtime (torch, int8 or ONNX: `talkface.runtime`).

ONNX beside the weights: a checkpoint folder may hold `model.onnx` (`talkface.export.add_onnx`;
the shipped ones do), and its meta.json then has an `onnx` entry with the sha256 of the
model.safetensors it was exported from. Scoring (`scoring_runtime`) runs that graph when it is
current, so neither torch nor the model code is imported; a folder without one, or whose graph
was exported from other weights (stale), is scored with torch after a one-line note saying how
to add it. Asking for runtime="onnx" on such a folder is an error with the same advice.

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

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import CheckpointError
from .spec import FeatureSpec, TaskSpec
from .version import __version__

CHECKPOINT_FORMAT = 2
SHIPPED = Path(__file__).resolve().parent / "checkpoints"  # package data, read-only
ACTIVE_FILE, HISTORY_FILE, VERSIONS = "ACTIVE", "HISTORY", "versions"
DEFAULT_NAME = "default"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED = {ACTIVE_FILE.lower(), HISTORY_FILE.lower(), VERSIONS, DEFAULT_NAME}
WEIGHTS, META, CARD = "model.safetensors", "meta.json", "card.md"
FILES = (WEIGHTS, META, CARD)
SYNC_MODEL_NAME = "syncnet"
Kind = Literal["quality", "sync"]
ONNX_FILE = "model.onnx"
log = logging.getLogger(__name__)


class CheckpointMeta(BaseModel):
    """A checkpoint's `meta.json`, typed. `options` is written as `model_config` (the model's
    keyword arguments); a quality checkpoint has a `feature_spec` and `tasks`, a sync checkpoint
    the `fingerprint` of its weights and the confidence below which its offsets are unreliable.
    Unknown keys are refused, like the training configs'."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    format: int = CHECKPOINT_FORMAT
    kind: Kind = "quality"
    talkface_version: str = __version__
    model_name: str
    options: dict = Field(default_factory=dict, alias="model_config")
    feature_spec: Optional[FeatureSpec] = None
    tasks: list[TaskSpec] = Field(default_factory=list)
    metrics: dict = Field(default_factory=dict)
    data: dict = Field(default_factory=dict)  # what the model saw: sources, sizes, split map
    command: str = ""
    calibration: Optional[dict] = None  # `talkface.calibration.Calibration.to_meta()`
    quantization: Optional[dict] = None  # int8 checkpoints (`talkface.runtime`)
    fingerprint: Optional[str] = None  # of the weights (sync checkpoints)
    reliable_confidence: Optional[float] = None  # sync: offsets below this are "not reliable"
    train_seconds: Optional[float] = None
    onnx: Optional[dict] = None  # model.onnx beside the weights: {file, weights_sha256, ...}

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, raw):
        """Sync checkpoints of format 1 (talkface 0.2.0) named their options `options` and had
        no model name; they read as format 2."""
        if isinstance(raw, dict) and raw.get("kind") == "sync" and raw.get("format") == 1:
            raw = {**raw, "format": CHECKPOINT_FORMAT, "model_name": SYNC_MODEL_NAME}
        return raw

    @model_validator(mode="after")
    def _complete(self) -> "CheckpointMeta":
        if self.kind == "quality" and (self.feature_spec is None or not self.tasks):
            raise ValueError("a quality checkpoint needs feature_spec and tasks")
        if self.kind == "sync" and not self.fingerprint:
            raise ValueError("a sync checkpoint needs the fingerprint of its weights")
        return self

    @property
    def split_map(self) -> dict:
        """file -> split of the data the model was trained on ({} when not recorded)."""
        return (self.data.get("split") or {}).get("map") or {}

    @property
    def metrics_split(self) -> str:
        """Which split `metrics` were measured on."""
        return self.data.get("metrics_split", "val")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=1)


@dataclass
class LoadedModel:
    """A checkpoint in memory: the model (a `TalkfaceModel`, its int8 or ONNX runtime, or a
    `SyncNet`), its metadata, folder and card. `spec` and `tasks` are empty for sync models."""

    model: object
    meta: CheckpointMeta
    path: Path
    card: str = ""
    runtime: str = "torch"

    @property
    def spec(self) -> Optional[FeatureSpec]:
        return self.meta.feature_spec

    @property
    def tasks(self) -> list[TaskSpec]:
        return list(self.meta.tasks)

    @property
    def metrics(self) -> dict:
        return self.meta.metrics

    @property
    def calibration(self):
        """The post-training calibration stored with the weights (`talkface.calibration`)."""
        from .calibration import Calibration
        return Calibration.from_meta(self.meta.calibration or {})


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def weights_fingerprint(state: dict) -> str:
    """A short hash of a state dict's names and values."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


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


def write_folder(folder: str | os.PathLike, files: dict[str, "bytes | str | dict"],
                 shipping: bool = False) -> Path:
    """Write the files of one checkpoint-like folder (name -> text, bytes, or a state dict of
    tensors for safetensors) as one atomic step, replacing what `folder` held. Only
    `train.ship` and `train.sync` (`shipping=True`) may write into the shipped checkpoints."""
    folder = Path(folder)
    if SHIPPED in folder.resolve().parents and not shipping:
        raise CheckpointError(f"{folder} is a shipped checkpoint; write to another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, content in files.items():
            if isinstance(content, dict):
                from safetensors.torch import save_file
                save_file(content, str(tmp / name), metadata={"format": "pt"})
            elif isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content)
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


def model_meta(model, options: dict, kind: Kind = "quality", **fields) -> CheckpointMeta:
    """The metadata of `model` (its name, spec and tasks for a quality model) plus `fields`."""
    if kind == "sync":
        return CheckpointMeta(kind="sync", model_name=SYNC_MODEL_NAME, options=options,
                              **fields)
    return CheckpointMeta(model_name=model.model_name, options=options,
                          feature_spec=model.spec, tasks=list(model.tasks), **fields)


def save_checkpoint(folder: str | os.PathLike, model, model_config: dict,
                    metrics: Optional[dict] = None, data: Optional[dict] = None,
                    command: str = "", card: str = "", shipping: bool = False,
                    calibration: Optional[dict] = None, state: Optional[dict] = None,
                    kind: Kind = "quality", **fields) -> Path:
    """Write a checkpoint at `folder` (replacing one there) atomically. Returns `folder`.
    `state` replaces the model's own state dict (e.g. int8 weights, `talkface.export`);
    `fields` are further `CheckpointMeta` fields (`quantization`, `reliable_confidence`, ...).
    A sync checkpoint records the fingerprint of its weights."""
    state = {k: v.detach().cpu().contiguous() for k, v in (
        state if state is not None else model.state_dict()).items()}
    if kind == "sync":
        fields["fingerprint"] = weights_fingerprint(state)
    try:
        meta = model_meta(model, model_config, kind, metrics=metrics or {}, data=data or {},
                          command=command, calibration=calibration or None, **fields)
    except ValidationError as err:
        raise CheckpointError(f"{folder}: cannot describe this checkpoint ({err})") from None
    return write_folder(folder, {WEIGHTS: state, META: meta.to_json(),
                                 CARD: card or default_card(meta)}, shipping)


def resolve(path: str | os.PathLike | None) -> Path:
    """A checkpoint folder: `path` itself, a shipped checkpoint's name ('default', 'sync'), or
    (None) the active checkpoint."""
    if path is None:
        return active_checkpoint()
    folder = Path(path)
    if not folder.exists() and NAME_PATTERN.match(str(path)) and (SHIPPED / str(path)).is_dir():
        return SHIPPED / str(path)
    return folder.parent if folder.is_file() and folder.suffix != ".onnx" else folder


def read_meta(path: str | os.PathLike) -> CheckpointMeta:
    """A checkpoint folder's metadata, validated, without loading its weights."""
    meta_path = Path(path) / META
    if not meta_path.exists():
        raise CheckpointError(f"{path}: not a talkface checkpoint (no {META})")
    try:
        return parse_meta(json.loads(meta_path.read_text()), meta_path)
    except ValueError as err:
        raise CheckpointError(f"{meta_path}: damaged metadata ({err})") from None


def parse_meta(raw: dict, where: str | os.PathLike) -> CheckpointMeta:
    fmt = raw.get("format", 0) if isinstance(raw, dict) else 0
    if fmt not in (1, CHECKPOINT_FORMAT) or (fmt == 1 and raw.get("kind") != "sync"):
        raise CheckpointError(
            f"{where}: checkpoint format {fmt} but this talkface reads format "
            f"{CHECKPOINT_FORMAT}; " + ("upgrade talkface" if fmt > CHECKPOINT_FORMAT
                                        else "retrain it"))
    try:
        return CheckpointMeta.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'meta'}: {e['msg']}"
                             for e in err.errors()[:3])
        raise CheckpointError(f"{where}: damaged metadata ({problems})") from None


def build_model(meta: CheckpointMeta):
    """An untrained model of the architecture `meta` describes (the one rebuild used by loading
    and by export)."""
    if meta.kind == "sync":
        from .sync.model import SyncNet, SyncOptions
        return SyncNet(SyncOptions.model_validate(meta.options))
    from .models import create_model
    return create_model(meta.model_name, meta.feature_spec, meta.tasks, **meta.options)


def _load_state(model, state: dict, where: Path, name: str):
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match model {name!r}: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{where}: {err}") from None
    return model.eval()


def load_checkpoint(path: str | os.PathLike | None = None, map_location: str = "cpu",
                    runtime: str = "torch", kind: Kind = "quality") -> LoadedModel:
    """Rebuild a model from a checkpoint (default: the active one; a shipped one by name).

    `runtime` (quality checkpoints): "torch" (as it is; an int8 checkpoint made by `talkface
    export` loads as int8), "int8" (Linear layers quantised on load), or "onnx" (an exported
    `.onnx` file, or a folder holding a current model.onnx, see the module docstring). A
    folder holding only model.onnx loads with onnx whatever `runtime` says."""
    from .runtime import RUNTIMES
    if runtime not in RUNTIMES:
        raise CheckpointError(f"runtime {runtime!r}: use {', '.join(map(repr, RUNTIMES))}")
    folder = resolve(path)
    if runtime == "onnx" or folder.suffix == ".onnx" or (
            not (folder / WEIGHTS).exists() and (folder / ONNX_FILE).exists()):
        if folder.is_dir() and (folder / WEIGHTS).exists():
            problem = onnx_problem(folder)
            if problem:
                raise CheckpointError(problem)
        return _load_onnx(folder, kind)
    weights = folder / WEIGHTS
    if not weights.exists() or not (folder / META).exists():
        what = "talkface checkpoint" if kind == "quality" else f"talkface {kind} checkpoint"
        raise CheckpointError(f"{folder}: not a {what} (expected {WEIGHTS} and {META})")
    meta = read_meta(folder)
    if meta.kind != kind:
        raise CheckpointError(f"{folder}: a {meta.kind} checkpoint, not a {kind} checkpoint")
    from safetensors.torch import load_file
    try:
        state = load_file(str(weights), device=map_location)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{weights}: unreadable weights ({err})") from None
    if meta.fingerprint and weights_fingerprint(state) != meta.fingerprint:
        raise CheckpointError(f"{folder}: weights differ from the ones {META} describes")
    card = (folder / CARD).read_text() if (folder / CARD).exists() else ""
    model = build_model(meta)
    if meta.quantization:
        from .runtime import load_int8_weights
        return LoadedModel(load_int8_weights(model, state, str(weights)), meta, folder, card,
                           "int8")
    loaded = LoadedModel(_load_state(model, state, weights, meta.model_name), meta, folder, card)
    if runtime == "int8":
        from .runtime import quantize_int8
        loaded = replace(loaded, model=quantize_int8(loaded.model), runtime="int8")
    return loaded


def _load_onnx(path: Path, kind: Kind = "quality") -> LoadedModel:
    """An ONNX graph with its metadata: a folder's meta.json and card.md where it has them (they
    may have changed since the export without the weights changing, e.g. a new calibration from
    `train.signals`), else the copies embedded in the `.onnx` file."""
    from .runtime import OnnxModel, OnnxSyncModel, onnx_file, read_onnx
    folder = path if path.is_dir() else None
    path = onnx_file(path)
    # the sync model makes features: on one thread, so that they do not depend on the machine's
    # cores or a worker's share of them (its convolutions' last bits do, at 3e-7)
    session, raw, card = read_onnx(path, threads=1 if kind == "sync" else None)
    if folder is not None and (folder / META).exists():
        meta = read_meta(folder)
        card = (folder / CARD).read_text() if (folder / CARD).exists() else card
    else:
        meta = parse_meta(raw, path)
    if meta.kind != kind:
        raise CheckpointError(f"{path}: a {meta.kind} checkpoint, not a {kind} checkpoint")
    if kind == "sync":
        from .sync.options import SyncOptions
        model = OnnxSyncModel(session, SyncOptions.model_validate(meta.options), path)
    else:
        model = OnnxModel(session, meta.feature_spec, meta.tasks, path)
    return LoadedModel(model, meta, path.parent, card, "onnx")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_entry(folder: Path) -> dict:
    """meta.json's `onnx` entry for a graph exported now from `folder`'s weights."""
    from .version import __version__ as version
    return {"file": ONNX_FILE, "weights_sha256": file_sha256(folder / WEIGHTS),
            "talkface_version": version}


def onnx_problem(folder: Path) -> Optional[str]:
    """Why `folder`'s model.onnx cannot stand in for its model.safetensors (None: it can)."""
    fix = (f"add it with `talkface export --checkpoint {folder} --format onnx --out {folder}`")
    if not (folder / ONNX_FILE).exists():
        return f"{folder} has no {ONNX_FILE}; {fix}"
    entry = read_meta(folder).onnx or {}
    if entry.get("weights_sha256") != file_sha256(folder / WEIGHTS):
        return (f"{folder / ONNX_FILE} was not exported from this {WEIGHTS} (stale: the weights "
                f"changed since); re-export it: {fix.replace('add it with ', '')}")
    return None


def scoring_runtime(path: str | os.PathLike | None, runtime: Optional[str] = None,
                    device: str = "cpu") -> str:
    """The runtime to score `path`'s checkpoint with: `runtime` when given, else "onnx" where the
    folder holds a current model.onnx (or is an ONNX export) and the device is the CPU, else
    "torch", with a one-line note saying why."""
    if runtime is not None:
        return runtime
    folder = resolve(path)
    if str(device).split(":")[0] != "cpu":
        return "torch"
    if folder.suffix == ".onnx" or not (folder / WEIGHTS).exists():
        return "onnx" if onnx_exists(folder) else "torch"
    if read_meta(folder).quantization:
        return "torch"  # an int8 export: its own runtime
    problem = onnx_problem(folder)
    if problem:
        log.warning("scoring with torch (slower to start): %s", problem)
        return "torch"
    return "onnx"


def onnx_exists(path: Path) -> bool:
    return path.suffix == ".onnx" and path.is_file() or (path / ONNX_FILE).is_file()


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


def default_card(meta: CheckpointMeta) -> str:
    """A plain card for a checkpoint saved without one (training runs; `train.ship` writes the
    full card of a shipped model)."""
    data = {k: v for k, v in meta.data.items() if k != "split"}
    features = meta.feature_spec.describe() if meta.feature_spec is not None else "(sync model)"
    lines = [f"# talkface checkpoint: {meta.model_name}", "",
             f"- talkface {meta.talkface_version}, checkpoint format {meta.format}",
             f"- features: {features}",
             f"- tasks: {', '.join(t.name for t in meta.tasks)}",
             f"- training data: {json.dumps(data)}",
             f"- command: `{meta.command}`", "", "## Validation metrics", ""]
    for task, values in meta.metrics.items():
        if isinstance(values, dict):
            lines.append(f"- {task}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()
                                                   if isinstance(v, (int, float))))
    return "\n".join(lines) + "\n"
