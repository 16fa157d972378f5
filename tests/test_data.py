"""Datasets: manifests, task selection, group splits, padding/mask collate, random crops.

`write_random_dataset` (also used by test_train.py) writes small feature bundles whose labels are
a known function of the features, so a few training steps can be shown to lower the loss.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from talkface.data import (DataSettings, assign_splits, collate, infer_range, load_dataset,
                           read_manifest, select_tasks)
from talkface.errors import DatasetError, SpecMismatch
from talkface.features.extract import FeatureBundle
from talkface.spec import FeatureSpec

from helpers import make_spec

TASKS = ["lip_sync", "visual_quality", "temporal_quality", "overall"]


def random_spec(dv: int = 6, da: int = 4) -> FeatureSpec:
    return make_spec(dv, da)


def labels_for(visual: np.ndarray, audio: np.ndarray) -> dict[str, float]:
    """Known functions of the features, all in [0, 1]."""
    sig = lambda x: float(1 / (1 + np.exp(-x)))  # noqa: E731
    lip = sig(2 * np.mean(visual[:, 0] * audio[:, 0]))
    vis = sig(2 * np.mean(visual[:, 1]))
    tem = sig(3 * (np.std(np.diff(visual[:, 2])) - 1.0))
    return {"lip_sync": lip, "visual_quality": vis, "temporal_quality": tem,
            "overall": (lip + vis + tem) / 3}


def write_random_dataset(folder: Path, n: int = 40, seed: int = 0, dv: int = 6, da: int = 4,
                         frames: tuple[int, int] = (24, 48), split_column: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    spec, rows = random_spec(dv, da), []
    for i in range(n):
        t = int(rng.integers(*frames))
        shift = rng.normal(0, 0.8)
        visual = (rng.normal(0, 1, (t, dv)) + shift).astype(np.float32)
        visual[:, 2] *= rng.uniform(0.3, 2.0)
        audio = rng.normal(0, 1, (t, da)).astype(np.float32)
        audio[:, 0] = visual[:, 0] * rng.uniform(-1, 1) + rng.normal(0, 0.3, t)
        valid = np.ones(t, bool)
        valid[rng.integers(0, t, 2)] = False  # a couple of face-less frames
        visual[~valid] = 0
        FeatureBundle(visual, audio, valid, spec).save(folder / "bundles" / f"clip{i:03d}.npz")
        row = {"file": f"bundles/clip{i:03d}.npz", "face": f"face{i % 10}", **labels_for(
            visual[valid], audio[valid])}
        if split_column:
            row["split"] = ("train", "train", "train", "val", "test")[i % 5]
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def test_load_dataset_uses_split_column_and_default_tasks(tmp_path):
    write_random_dataset(tmp_path, n=20)
    data = load_dataset(tmp_path)
    assert data.task_names == TASKS
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 12, "val": 4, "test": 4}
    # the split travels with the data: how it was made and which file went where
    split = data.describe()["split"]
    assert split["split_by"] == "auto" and split["map"]["bundles/clip003.npz"] == "val"
    assert data.spec.visual_dim == 6 and data.spec.audio_dim == 4
    assert [t.low for t in data.tasks] == [0.0] * 4 and data.tasks[0].high == 1.0


def test_tasks_come_from_the_manifest(tmp_path):
    write_random_dataset(tmp_path, n=10)
    frame, _ = read_manifest(tmp_path)
    assert [t.name for t in select_tasks(frame, ["overall"])] == ["overall"]
    with pytest.raises(DatasetError, match="sharpness"):
        select_tasks(frame, ["sharpness"])
    with pytest.raises(DatasetError, match="--tasks"):
        select_tasks(frame.drop(columns=TASKS))
    assert infer_range(np.array([1.0, 4.5])) == (1.0, 5.0)


def test_a_split_map_decides_the_split_and_unknown_files_are_test(tmp_path):
    write_random_dataset(tmp_path, n=10, split_column=False)
    mapping = {f"bundles/clip{i:03d}.npz": "train" for i in range(8)}
    data = load_dataset(tmp_path, split_map=mapping)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 8, "val": 0, "test": 2}
    assert {c.file for c in data.splits["test"]} == {"bundles/clip008.npz",
                                                     "bundles/clip009.npz"}


def test_group_split_keeps_each_face_on_one_side():
    frame = pd.DataFrame({"file": [f"f{i}" for i in range(60)],
                          "face": [f"id{i % 12}" for i in range(60)]})
    settings = DataSettings(val_fraction=0.2, test_fraction=0.2, split_seed=3)
    splits = assign_splits(frame, settings)
    for _, group in frame.assign(split=splits).groupby("face"):
        assert group["split"].nunique() == 1
    assert set(splits) == {"train", "val", "test"}
    assert (assign_splits(frame, settings) == splits).all()  # deterministic
    with pytest.raises(DatasetError, match="generator"):
        assign_splits(frame, DataSettings(split_by="generator"))


def test_collate_pads_and_masks():
    from talkface.predict import ClipFeatures
    items = [{"clip": ClipFeatures(np.ones((3, 2), np.float32), np.ones((3, 1), np.float32),
                           np.array([True, False, True]), targets=np.array([0.5])), "index": 0},
             {"clip": ClipFeatures(np.ones((5, 2), np.float32), np.ones((5, 1), np.float32),
                           np.ones(5, bool), targets=np.array([np.nan])), "index": 1}]
    batch = collate(items)
    assert batch.visual.shape == (2, 5, 2) and batch.audio.shape == (2, 5, 1)
    assert batch.mask.tolist() == [[True, False, True, False, False], [True] * 5]
    assert batch.visual[0, 3:].abs().sum() == 0
    assert torch.isnan(batch.targets[1, 0])


def test_training_crops_are_random_and_eval_is_full_length(tmp_path):
    write_random_dataset(tmp_path, n=10, frames=(40, 41))
    data = load_dataset(tmp_path)
    train = data.dataset("train", crop_frames=16, seed=0)
    train.set_epoch(0)
    first = [train[0]["clip"].visual.copy() for _ in range(3)]
    assert all(len(x) == 16 for x in first)
    assert not all(np.array_equal(first[0], x) for x in first[1:])
    train.set_epoch(0)
    assert np.array_equal(train[0]["clip"].visual, first[0])  # reseeding replays the crops
    assert len(data.dataset("val")[0]["clip"].visual) == 40


def test_mixed_feature_specs_are_refused(tmp_path):
    write_random_dataset(tmp_path, n=6)
    other = random_spec(dv=7)
    FeatureBundle(np.zeros((30, 7), np.float32), np.zeros((30, 4), np.float32),
                  np.ones(30, bool), other).save(tmp_path / "bundles" / "clip003.npz")
    with pytest.raises(SpecMismatch, match="clip003"):
        load_dataset(tmp_path)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="manifest"):
        load_dataset(tmp_path)


def test_bundles_load_in_worker_processes_and_name_a_missing_file(tmp_path):
    from talkface.data import load_bundles
    fixtures = Path(__file__).parent / "data" / "fixtures"
    clips = sorted(str(p) for p in fixtures.rglob("*.mp4"))[:2]
    results = load_bundles(clips + [str(tmp_path / "gone.mp4")], cache_dir=str(tmp_path / "c"),
                           workers=2)
    assert all(not isinstance(r, str) and r.n_frames > 0 for r in results[:2])
    assert results[2] == f"{tmp_path / 'gone.mp4'}: file not found"
