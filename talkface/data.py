"""Datasets for training and evaluation: a manifest CSV plus one feature bundle per row.

A manifest has a `file` column (a video, or an already extracted `.npz` bundle, relative to the
manifest's folder) and one numeric column per task. Tasks come from the manifest (`--tasks`, or
the default four when present), never from code. Videos go through the feature pipeline and its
content-hash cache (`talkface.cache.FeatureCache`), so a second run is a lookup.

Splits: the manifest's `split` column when it has one, otherwise whole groups (face, speaker,
voice, generator) are kept on one side so that no identity leaks from train to test, otherwise
rows are split at random. Training samples are random temporal crops (augmentation); evaluation
samples are full length. `collate` pads a batch and returns the validity mask.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from .errors import DatasetError
from .features.batch import run_per_file
from .features.extract import FeatureBundle
from .predict import ClipFeatures, pad_batch
from .spec import ExtractorConfig, FeatureSpec, TaskSpec, tasks_from_names
from .tasks import TASKS

log = logging.getLogger(__name__)

GROUP_COLUMNS = ("speaker", "face", "voice", "generator")
SPLITS = ("train", "val", "test")


class DataSettings(BaseModel):
    """How a manifest becomes a dataset, with every default defined once: which tasks, how
    features are extracted and cached, and how clips are split. `load_dataset` takes it whole;
    the training config's `data` section is one (plus the manifest path and the crop length).

    `split_by`: "auto" (the manifest's `split` column, else the first group column present,
    else rows), "split", a group column name, or "row".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: Optional[list[str]] = None  # None: the default tasks the manifest has columns for
    features: ExtractorConfig = Field(default_factory=ExtractorConfig)
    cache_dir: Optional[str] = None
    split_by: str = "auto"
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    split_seed: int = 0
    workers: int = Field(1, ge=1)  # processes extracting features


# --- manifest and tasks --------------------------------------------------------------------------

def read_manifest(path: str | os.PathLike) -> tuple[pd.DataFrame, Path]:
    """A folder (holding manifest.csv) or a CSV file -> (table, folder files are relative to)."""
    path = Path(path)
    csv = path / "manifest.csv" if path.is_dir() else path
    if not csv.exists():
        raise DatasetError(f"{csv}: no manifest (a CSV with a `file` column and one numeric "
                           f"column per task)")
    frame = pd.read_csv(csv)
    if "file" not in frame.columns:
        raise DatasetError(f"{csv}: no `file` column (columns: {', '.join(frame.columns)})")
    return frame, csv.parent


def infer_range(values: np.ndarray) -> tuple[float, float]:
    """Score range of a label column: [0, 1] or [1, 5] when the labels fit, else their span."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    for low, high in ((0.0, 1.0), (1.0, 5.0), (0.0, 5.0), (0.0, 100.0)):
        if low <= lo and hi <= high:
            return low, high
    return float(np.floor(lo)), float(np.ceil(hi))


def select_tasks(frame: pd.DataFrame, names: Optional[Sequence[str]] = None) -> list[TaskSpec]:
    """Tasks named by `names`, else the default four present in the manifest."""
    if names:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DatasetError(f"task column(s) {missing} not in the manifest (columns: "
                               f"{', '.join(frame.columns)})")
    else:
        names = [n for n in TASKS if n in frame.columns]
        if not names:
            raise DatasetError(f"the manifest has none of the default task columns "
                               f"{list(TASKS)}; name them with --tasks")
    ranges = {}
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise DatasetError(f"task column {name!r} is not numeric")
        if frame[name].notna().sum() == 0:
            raise DatasetError(f"task column {name!r} has no labels")
        ranges[name] = infer_range(frame[name].to_numpy(float))
    return tasks_from_names(list(names), ranges)


def assign_splits(frame: pd.DataFrame, settings: DataSettings = DataSettings()) -> np.ndarray:
    """(N,) array of "train"/"val"/"test", as `settings.split_by` says (see `DataSettings`)."""
    split_by = settings.split_by
    if split_by == "auto":
        split_by = "split" if "split" in frame.columns else next(
            (c for c in GROUP_COLUMNS if c in frame.columns), "row")
    if split_by == "split":
        splits = frame["split"].astype(str).str.lower().to_numpy()
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise DatasetError(f"`split` column has values {bad}; expected train/val/test")
        return splits
    if split_by != "row" and split_by not in frame.columns:
        raise DatasetError(f"cannot split by {split_by!r}: no such manifest column")
    keys = np.arange(len(frame)) if split_by == "row" else frame[split_by].astype(str).to_numpy()
    side = split_groups(keys.tolist(), settings.split_seed, settings.val_fraction,
                        settings.test_fraction)
    return np.array([side[k] for k in keys.tolist()])


def split_groups(keys, seed: int, val_fraction: float, test_fraction: float,
                 at_least_one: bool = False) -> dict:
    """Group key -> "train"/"val"/"test" for whole groups (speakers, faces, voices), shuffled
    by `seed`. `at_least_one`: val and test get a group each when there are three or more."""
    groups = sorted(set(keys), key=str)
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    n = len(order)
    n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
    if at_least_one:
        n_test = max(n_test, 1) if n >= 2 and test_fraction > 0 else n_test
        n_val = max(n_val, 1) if n >= 3 and val_fraction > 0 else n_val
    return {g: "test" if i < n_test else "val" if i < n_test + n_val else "train"
            for i, g in enumerate(order)}


# --- feature bundles -----------------------------------------------------------------------------

def _load_one(extractor, item: tuple[str, Optional[str]]) -> FeatureBundle:
    path, cache_dir = item
    if path.endswith(".npz"):
        return FeatureBundle.load(path)
    from .cache import FeatureCache
    return FeatureCache(cache_dir).get_or_extract(extractor, path)


def load_bundles(paths: Sequence[str], extractor: Optional[ExtractorConfig] = None,
                 cache_dir: Optional[str] = None, workers: int = 1, progress: bool = False
                 ) -> list[FeatureBundle | str]:
    """One bundle (or an error message naming the file) per path, in order; videos are
    extracted with `extractor` (default settings when None) through the cache."""
    needs_extractor = any(not p.endswith(".npz") for p in paths)
    config = (extractor or ExtractorConfig()) if needs_extractor else None
    results = run_per_file(_load_one, [(p, cache_dir) for p in paths], paths, config,
                           workers=workers)
    return [bundle if error is None else error
            for bundle, error in _progress(results, len(paths), progress)]


def _progress(items, total: int, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, total=total, desc="features", unit="clip")


# --- the dataset ---------------------------------------------------------------------------------

class ClipDataset(torch.utils.data.Dataset):
    """Clips of one split. With `crop_frames`, each item is a random crop of that many frames;
    with `augment` (`talkface.augment.FeatureAugmenter`), a label-preserving augmentation of it.
    The random draws of item i come from a generator seeded by (seed, epoch, i, how many times
    i was read this epoch), so they do not depend on the order items are read in: a resumed run,
    and a DDP run whose ranks read different shards, see the crops one process would."""

    def __init__(self, clips: list[ClipFeatures], crop_frames: Optional[int] = None, seed: int = 0,
                 augment=None):
        self.clips, self.crop_frames, self.seed, self.augment = clips, crop_frames, seed, augment
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.reads = epoch, {}

    def __len__(self) -> int:
        return len(self.clips)

    def _rng(self, index: int) -> np.random.Generator:
        count = self.reads.get(index, 0)
        self.reads[index] = count + 1
        return np.random.default_rng([self.seed, self.epoch, index, count])

    def __getitem__(self, index: int) -> dict:
        clip, rng = self.clips[index], self._rng(index)
        if self.augment is not None:
            clip = self.augment.stretch(clip, rng)
        start, stop = 0, len(clip.valid)
        if self.crop_frames and stop > self.crop_frames:
            start = int(rng.integers(0, stop - self.crop_frames + 1))
            stop = start + self.crop_frames
        clip = ClipFeatures(clip.visual[start:stop], clip.audio[start:stop], clip.valid[start:stop],
                    clip.file, clip.unjudged, clip.targets)
        if self.augment is not None:
            clip = self.augment(clip, rng)
        return {"clip": clip, "index": index}


@dataclass
class Batch:
    visual: torch.Tensor  # (B, T, Dv) float32, zero-padded
    audio: torch.Tensor  # (B, T, Da)
    mask: torch.Tensor  # (B, T) bool: True = real frame with a face
    targets: torch.Tensor  # (B, n_tasks), NaN = no label
    index: torch.Tensor  # (B,) positions in the dataset

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in
                       (self.visual, self.audio, self.mask, self.targets, self.index)))


def collate(items: list[dict]) -> Batch:
    """Pad clips of different lengths to the longest (`talkface.predict.pad_batch`); padded
    frames are masked out."""
    clips = [it["clip"] for it in items]
    visual, audio, mask = map(torch.from_numpy, pad_batch(clips))
    targets = torch.from_numpy(np.stack([c.targets for c in clips]).astype(np.float32))
    return Batch(visual, audio, mask, targets, torch.tensor([it["index"] for it in items]))


@dataclass
class TalkfaceData:
    """A loaded dataset: the spec its features share, its tasks, its clips per split and how the
    split was made (`split`: split_by, seed, fractions and the file -> split map, which travels
    into the checkpoint so evaluation never re-derives it)."""

    spec: FeatureSpec
    tasks: list[TaskSpec]
    splits: dict[str, list[ClipFeatures]]
    source: str
    skipped: list[str]
    split: dict = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def dataset(self, split: str, crop_frames: Optional[int] = None, seed: int = 0,
                augment=None) -> ClipDataset:
        """`augment`: a `talkface.augment.AugmentConfig` (training only)."""
        if augment is not None and augment.enabled:
            from .augment import FeatureAugmenter
            return ClipDataset(self.splits[split], crop_frames, seed,
                               FeatureAugmenter(augment, self.spec))
        return ClipDataset(self.splits[split], crop_frames, seed)

    def normalization(self, split: str = "train") -> tuple[np.ndarray, ...]:
        """Per-column mean and std over the valid frames of a split: (vm, vs, am, as)."""
        clips = self.splits[split]
        visual = np.concatenate([c.visual[c.valid] for c in clips])
        audio = np.concatenate([c.audio[c.valid] for c in clips])
        if len(visual) == 0:
            raise DatasetError(f"the {split} split has no frame with a face")
        return visual.mean(0), visual.std(0), audio.mean(0), audio.std(0)

    def target_means(self, split: str = "train") -> dict[str, float]:
        targets = np.stack([c.targets for c in self.splits[split]])
        return {t: float(np.nanmean(targets[:, i])) for i, t in enumerate(self.task_names)}

    def describe(self, split_map: bool = True) -> dict:
        """What the data was: source, tasks, split sizes and how the split was made (with the
        file -> split map unless `split_map=False`)."""
        split = self.split if split_map else {k: v for k, v in self.split.items() if k != "map"}
        return {"source": self.source, "tasks": self.task_names,
                "sizes": {s: len(c) for s, c in self.splits.items()},
                "skipped": len(self.skipped), "features": self.spec.describe(), "split": split}


def load_dataset(path: str | os.PathLike, settings: DataSettings = DataSettings(),
                 split_map: Optional[dict[str, str]] = None, progress: bool = False
                 ) -> TalkfaceData:
    """Manifest folder or CSV -> TalkfaceData with train/val/test clips (features cached).

    `split_map` (file -> split, e.g. from a checkpoint) overrides `settings.split_by`: files it
    does not name were never seen by that checkpoint and go to "test"."""
    s = settings
    frame, root = read_manifest(path)
    task_specs = select_tasks(frame, s.tasks)
    names = frame["file"].astype(str).tolist()
    if split_map is not None:
        splits = np.array([split_map.get(f, "test") for f in names])
        split = {"split_by": "checkpoint", "map": dict(zip(names, splits.tolist()))}
    else:
        splits = assign_splits(frame, s)
        split = {"split_by": s.split_by, "seed": s.split_seed, "val_fraction": s.val_fraction,
                 "test_fraction": s.test_fraction, "map": dict(zip(names, splits.tolist()))}
    files = [str(root / f) for f in names]
    bundles = load_bundles(files, s.features, s.cache_dir, s.workers, progress)
    skipped = [b for b in bundles if isinstance(b, str)]
    for message in skipped:
        log.warning("skipped %s", message)
    good = [b for b in bundles if not isinstance(b, str)]
    if not good:
        raise DatasetError(f"{path}: not one clip could be loaded (first error: "
                           f"{skipped[0] if skipped else 'empty manifest'})")
    spec = good[0].spec
    labels = frame[[t.name for t in task_specs]].to_numpy(np.float32)
    out: dict[str, list[ClipFeatures]] = {s: [] for s in SPLITS}
    for i, bundle in enumerate(bundles):
        if isinstance(bundle, str):
            continue
        spec.check_compatible(bundle.spec, "first clip", f"clip {names[i]!r}")
        out[splits[i]].append(ClipFeatures.from_bundle(bundle, names[i], labels[i]))
    return TalkfaceData(spec, task_specs, out, str(path), skipped, split)
