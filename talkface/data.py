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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import DatasetError
from .features.batch import run_per_file
from .features.extract import FeatureBundle
from .spec import FeatureSpec, TaskSpec, tasks_from_names

log = logging.getLogger(__name__)

DEFAULT_TASKS = ("lip_sync", "visual_quality", "temporal_quality", "overall")
GROUP_COLUMNS = ("face", "speaker", "voice", "generator")
SPLITS = ("train", "val", "test")


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
        names = [n for n in DEFAULT_TASKS if n in frame.columns]
        if not names:
            raise DatasetError(f"the manifest has none of the default task columns "
                               f"{list(DEFAULT_TASKS)}; name them with --tasks")
    ranges = {}
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise DatasetError(f"task column {name!r} is not numeric")
        if frame[name].notna().sum() == 0:
            raise DatasetError(f"task column {name!r} has no labels")
        ranges[name] = infer_range(frame[name].to_numpy(float))
    return tasks_from_names(list(names), ranges)


def assign_splits(frame: pd.DataFrame, split_by: str = "auto", val_fraction: float = 0.15,
                  test_fraction: float = 0.15, seed: int = 0) -> np.ndarray:
    """(N,) array of "train"/"val"/"test". `split_by`: "auto" (the `split` column, else the
    first group column present, else rows), "split", a group column name, or "row"."""
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
    groups = np.array(sorted(set(keys.tolist())), dtype=object)
    np.random.default_rng(seed).shuffle(groups)
    n_test = int(round(test_fraction * len(groups)))
    n_val = int(round(val_fraction * len(groups)))
    side = {g: "test" if i < n_test else "val" if i < n_test + n_val else "train"
            for i, g in enumerate(groups.tolist())}
    return np.array([side[k] for k in keys.tolist()])


# --- feature bundles -----------------------------------------------------------------------------

def _load_one(extractor, item: tuple[str, Optional[str]]) -> FeatureBundle:
    path, cache_dir = item
    if path.endswith(".npz"):
        return FeatureBundle.load(path)
    from .cache import FeatureCache
    return FeatureCache(cache_dir).get_or_extract(extractor, path)


def load_bundles(paths: Sequence[str], backend: str = "landmarks",
                 cache_dir: Optional[str] = None, workers: int = 1, progress: bool = False
                 ) -> list[FeatureBundle | str]:
    """One bundle (or an error message naming the file) per path, in order; videos are
    extracted through the cache."""
    needs_extractor = any(not p.endswith(".npz") for p in paths)
    results = run_per_file(_load_one, [(p, cache_dir) for p in paths], paths,
                           backend if needs_extractor else None, workers=workers)
    return [bundle if error is None else error
            for bundle, error in _progress(results, len(paths), progress)]


def _progress(items, total: int, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, total=total, desc="features", unit="clip")


# --- the dataset ---------------------------------------------------------------------------------

@dataclass
class Clip:
    visual: np.ndarray  # (T, Dv)
    audio: np.ndarray  # (T, Da)
    valid: np.ndarray  # (T,) bool
    targets: np.ndarray  # (n_tasks,) NaN = no label
    file: str


class ClipDataset(torch.utils.data.Dataset):
    """Clips of one split. With `crop_frames`, each item is a random crop of that many frames,
    drawn from a generator reseeded by `set_epoch` (so a resumed run sees the same crops)."""

    def __init__(self, clips: list[Clip], crop_frames: Optional[int] = None, seed: int = 0):
        self.clips, self.crop_frames, self.seed = clips, crop_frames, seed
        self.rng = np.random.default_rng(seed)

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng([self.seed, epoch])

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        start, stop = 0, len(clip.valid)
        if self.crop_frames and stop > self.crop_frames:
            start = int(self.rng.integers(0, stop - self.crop_frames + 1))
            stop = start + self.crop_frames
        return {"visual": clip.visual[start:stop], "audio": clip.audio[start:stop],
                "valid": clip.valid[start:stop], "targets": clip.targets, "index": index}


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
    """Pad clips of different lengths to the longest; padded frames are masked out."""
    length = max(len(it["valid"]) for it in items)
    dv, da = items[0]["visual"].shape[1], items[0]["audio"].shape[1]
    visual = torch.zeros(len(items), length, dv)
    audio = torch.zeros(len(items), length, da)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, it in enumerate(items):
        n = len(it["valid"])
        visual[i, :n] = torch.from_numpy(np.asarray(it["visual"], np.float32))
        audio[i, :n] = torch.from_numpy(np.asarray(it["audio"], np.float32))
        mask[i, :n] = torch.from_numpy(np.asarray(it["valid"], bool))
    targets = torch.from_numpy(np.stack([it["targets"] for it in items]).astype(np.float32))
    return Batch(visual, audio, mask, targets, torch.tensor([it["index"] for it in items]))


@dataclass
class TalkfaceData:
    """A loaded dataset: the spec its features share, its tasks and its clips per split."""

    spec: FeatureSpec
    tasks: list[TaskSpec]
    splits: dict[str, list[Clip]]
    source: str
    skipped: list[str]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def dataset(self, split: str, crop_frames: Optional[int] = None, seed: int = 0) -> ClipDataset:
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

    def describe(self) -> dict:
        return {"source": self.source, "tasks": self.task_names,
                "sizes": {s: len(c) for s, c in self.splits.items()},
                "skipped": len(self.skipped), "features": self.spec.describe()}


def load_dataset(path: str | os.PathLike, tasks: Optional[Sequence[str]] = None,
                 backend: str = "landmarks", cache_dir: Optional[str] = None,
                 split_by: str = "auto", val_fraction: float = 0.15, test_fraction: float = 0.15,
                 seed: int = 0, workers: int = 1, progress: bool = False) -> TalkfaceData:
    """Manifest folder or CSV -> TalkfaceData with train/val/test clips (features cached)."""
    frame, root = read_manifest(path)
    task_specs = select_tasks(frame, tasks)
    splits = assign_splits(frame, split_by, val_fraction, test_fraction, seed)
    files = [str(root / f) for f in frame["file"].astype(str)]
    bundles = load_bundles(files, backend, cache_dir, workers, progress)
    skipped = [b for b in bundles if isinstance(b, str)]
    for message in skipped:
        log.warning("skipped %s", message)
    good = [b for b in bundles if not isinstance(b, str)]
    if not good:
        raise DatasetError(f"{path}: not one clip could be loaded (first error: "
                           f"{skipped[0] if skipped else 'empty manifest'})")
    spec = good[0].spec
    labels = frame[[t.name for t in task_specs]].to_numpy(np.float32)
    out: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for i, bundle in enumerate(bundles):
        if isinstance(bundle, str):
            continue
        spec.check_compatible(bundle.spec, "first clip", f"clip {frame['file'].iloc[i]!r}")
        out[splits[i]].append(Clip(bundle.visual.astype(np.float32),
                                   bundle.audio.astype(np.float32), bundle.valid.astype(bool),
                                   labels[i], str(frame["file"].iloc[i])))
    return TalkfaceData(spec, task_specs, out, str(path), skipped)
