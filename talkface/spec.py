"""FeatureSpec and TaskSpec: the two descriptions that travel with data and checkpoints.

A `FeatureSpec` names every column the extractor produced, per modality and per group, with the
frame rate, sample rate and the extractor that made them. Model input sizes are read from it
(`spec.visual_dim`), never typed into a config: the original system crashed because its YAML said
`visual_dim: 163` while the extractor produced 2048 columns.

A `TaskSpec` describes one predicted score (range, direction, label) so that tasks are data.
"""
from __future__ import annotations

import hashlib
import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .constants import DEFAULT_BACKEND, FPS, MAX_SECONDS, MAX_SIDE, MIN_SECONDS, SAMPLE_RATE
from .errors import SpecMismatch
from .tasks import task_row

SPEC_FORMAT = 2
DEFAULT_IDENTITY_FRAMES = 2  # the first and last frame of the face: enough to see a drift


class ExtractorConfig(BaseModel):
    """Every setting that decides how a video becomes features, defined once. It travels inside
    the FeatureSpec into bundles and checkpoints; training, extraction and scoring all take it.

    `options` are the visual backend's own settings (validated by the backend; the spec records
    them with the backend's defaults filled in). `sync` names the sync model whose outputs are the
    audio-side "sync" columns (None: no sync columns). `max_seconds` bounds how much of a clip
    is read; it is part of the cache key but not of the features' meaning (`meaning()`), which is
    what the spec's fingerprint covers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str = DEFAULT_BACKEND
    options: dict = Field(default_factory=dict)
    fps: float = Field(FPS, gt=0)
    sample_rate: int = Field(SAMPLE_RATE, gt=0)
    max_side: int = Field(MAX_SIDE, gt=16)  # frames handed to per-frame backends (not to `mesh`)
    sync: Optional[str] = None
    max_seconds: float = Field(MAX_SECONDS, gt=0)
    min_seconds: float = Field(MIN_SECONDS, ge=0)
    # frames whose face is embedded for the identity signal (not a column; 0 = off). Each costs
    # about 0.12 s; training sets 0, the Scorer uses DEFAULT_IDENTITY_FRAMES.
    identity_frames: int = Field(DEFAULT_IDENTITY_FRAMES, ge=0)

    def meaning(self) -> dict:
        """The settings that change what a column means (not how much of a clip is read, nor the
        identity signal beside the columns)."""
        return self.model_dump(exclude={"max_seconds", "min_seconds", "identity_frames"})


class FeatureSpec(BaseModel):
    """Ordered, named feature columns plus how they were made.

    `visual_groups` / `audio_groups` map a group name (e.g. "landmarks", "face_stats") to a
    half-open column range `[start, end)` into `visual_names` / `audio_names`. Everything that
    changes when only the audio changes is on the audio side (including the "sync" group).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = SPEC_FORMAT
    visual_names: tuple[str, ...]
    audio_names: tuple[str, ...]
    visual_groups: dict[str, tuple[int, int]] = Field(default_factory=dict)
    audio_groups: dict[str, tuple[int, int]] = Field(default_factory=dict)
    extractor: ExtractorConfig
    backend_version: str
    audio_config: dict = Field(default_factory=dict)
    sync_version: Optional[str] = None  # fingerprint of the sync model's weights
    library_versions: dict[str, str] = Field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.extractor.fps

    @property
    def sample_rate(self) -> int:
        return self.extractor.sample_rate

    @property
    def backend(self) -> str:
        return self.extractor.backend

    @property
    def visual_dim(self) -> int:
        return len(self.visual_names)

    @property
    def audio_dim(self) -> int:
        return len(self.audio_names)

    @property
    def fingerprint(self) -> str:
        """Stable hash of everything that changes the numbers in a column.

        Library versions are recorded for provenance but left out: a patch release of librosa must
        not invalidate every checkpoint.
        """
        core = self.model_dump(exclude={"library_versions"})
        core["extractor"] = self.extractor.meaning()
        blob = json.dumps(core, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def visual_index(self, name: str) -> int:
        return self.visual_names.index(name)

    def audio_index(self, name: str) -> int:
        return self.audio_names.index(name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def describe(self) -> str:
        return (f"backend={self.backend} v{self.backend_version}, visual={self.visual_dim}, "
                f"audio={self.audio_dim}, fps={self.fps:g}, fingerprint={self.fingerprint}")

    def check_compatible(self, other: "FeatureSpec", what: str = "checkpoint",
                         other_what: str = "extractor") -> None:
        """Raise `SpecMismatch` naming both specs and the first difference."""
        if self.fingerprint == other.fingerprint:
            return
        diff = _first_difference(self, other)
        raise SpecMismatch(
            f"The {what} expects features [{self.describe()}] but the {other_what} produces "
            f"[{other.describe()}]; first difference: {diff}. Re-extract features with the "
            f"{what}'s backend settings, or retrain on features from this {other_what}.")


def _first_difference(a: FeatureSpec, b: FeatureSpec) -> str:
    da, db = a.model_dump(exclude={"library_versions"}), b.model_dump(exclude={"library_versions"})
    da["extractor"], db["extractor"] = a.extractor.meaning(), b.extractor.meaning()
    for key in ("extractor", *[k for k in da if k != "extractor"]):
        if key == "extractor" and da[key] != db[key]:
            ea, eb = da[key], db[key]
            name = next(k for k in ea if ea[k] != eb[k])
            if name == "options":
                opt = next(k for k in sorted(set(ea[name]) | set(eb[name]))
                           if ea[name].get(k) != eb[name].get(k))
                return f"extractor option {opt} is {ea[name].get(opt)!r} vs {eb[name].get(opt)!r}"
            return f"extractor {name} is {ea[name]!r} vs {eb[name]!r}"
        if da[key] != db[key]:
            if key.endswith("_names"):
                if len(da[key]) != len(db[key]):
                    return f"{key} has {len(da[key])} vs {len(db[key])} columns"
                i = next(i for i, (x, y) in enumerate(zip(da[key], db[key])) if x != y)
                return f"{key}[{i}] is {da[key][i]!r} vs {db[key][i]!r}"
            return f"{key} is {da[key]!r} vs {db[key]!r}"
    return "unknown"


class TaskSpec(BaseModel):
    """One predicted score. Scores live in [low, high]; the app maps them to 1-5 as well.
    `inputs`: "visual" for a task that must not depend on the audio (a model reads only visual
    features for it, so changing the audio cannot move it), "audiovisual" otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    low: float = 0.0
    high: float = 1.0
    higher_is_better: bool = True
    label: str = ""
    description: str = ""
    inputs: Literal["visual", "audiovisual"] = "audiovisual"

    def to_mos(self, value: float) -> float:
        """Map a score in [low, high] to a 1-5 opinion scale."""
        frac = (value - self.low) / (self.high - self.low)
        frac = min(max(frac, 0.0), 1.0)
        return 1.0 + 4.0 * (frac if self.higher_is_better else 1.0 - frac)


def make_task(name: str, low: Optional[float] = None, high: Optional[float] = None) -> TaskSpec:
    """The TaskSpec of task `name` from the task table (`talkface.tasks`); `low`/`high` replace
    the table's default range (e.g. the range a dataset's labels were found in)."""
    row = task_row(name)
    return TaskSpec(name=name, low=row.low if low is None else low,
                    high=row.high if high is None else high,
                    higher_is_better=row.higher_is_better, label=row.label,
                    description=row.description, inputs=row.inputs)


def tasks_from_names(names: list[str], ranges: Optional[dict] = None) -> list[TaskSpec]:
    ranges = ranges or {}
    return [make_task(n, *ranges.get(n, (None, None))) for n in names]
