"""Reading a folder of real footage: which clips, which speaker each is, which are in sync.

A footage folder is either a folder of videos (each its own speaker, all assumed in sync with
their own speech), or a folder with a `manifest.csv` (or that CSV itself) with a `file` column
and optionally:

- `speaker_id`: the person in the clip; else `same_speaker_as` (another file of the same person,
  the real-footage pool's convention; " (possibly)" counts as the same); else one speaker per file;
- `kind`: `talking_with_audio` (a person speaking with their own audio: the in-sync material),
  `video_only`, `generated` (generator output); default `talking_with_audio`;
- `in_sync` (0/1), else `sync_note` (non-empty: the source's own audio is offset): whether a
  clip may serve as an in-sync positive;
- `notes`: clips noted `SHORT` or with two faces speaking (`interview`) are not positives.

Speakers are what splits are made of: one person's clips never sit on both sides.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DatasetError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg")


def _union_find(pairs: list[tuple[str, str]], names: list[str]) -> dict[str, str]:
    parent = {n: n for n in names}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        parent[find(a)] = find(b)
    return {n: find(n) for n in names}


def read_footage(source: str | Path) -> pd.DataFrame:
    """-> one row per clip: `path` (absolute), `name`, `speaker`, `kind`, `positive` (usable as
    in sync with its own speech), plus the manifest's own columns."""
    source = Path(source)
    csv = source if source.suffix == ".csv" else source / "manifest.csv"
    if csv.exists():
        frame = pd.read_csv(csv)
        if "file" not in frame.columns:
            raise DatasetError(f"{csv}: no `file` column")
        root = csv.parent
    elif source.is_dir():
        files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                       if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise DatasetError(f"{source}: no videos and no manifest.csv")
        frame, root = pd.DataFrame({"file": files}), source
    else:
        raise DatasetError(f"{source}: not a folder of videos or a manifest")
    frame = frame.copy()
    frame["path"] = [str((root / f).resolve()) for f in frame["file"]]
    frame["name"] = [Path(f).name for f in frame["file"]]
    if "kind" not in frame.columns:
        frame["kind"] = "talking_with_audio"
    frame["speaker"] = _speakers(frame)
    frame["positive"] = _positives(frame)
    return frame


def _speakers(frame: pd.DataFrame) -> list[str]:
    if "speaker_id" in frame.columns:
        return [str(s) if pd.notna(s) else n for s, n in zip(frame["speaker_id"], frame["name"])]
    pairs = []
    if "same_speaker_as" in frame.columns:
        for name, other in zip(frame["name"], frame["same_speaker_as"]):
            if isinstance(other, str) and other.strip():
                pairs.append((name, Path(other.replace("(possibly)", "").strip()).name))
    groups = _union_find(pairs, list(frame["name"]))
    return [groups[n] for n in frame["name"]]


def _positives(frame: pd.DataFrame) -> list[bool]:
    talking = frame["kind"] == "talking_with_audio"
    if "in_sync" in frame.columns:
        ok = frame["in_sync"].fillna(0).astype(bool)
    elif "sync_note" in frame.columns:
        ok = frame["sync_note"].fillna("").astype(str).str.len() == 0
    else:
        ok = pd.Series(True, index=frame.index)
    notes = frame["notes"].fillna("").astype(str) if "notes" in frame.columns else \
        pd.Series("", index=frame.index)
    special = notes.str.contains("SHORT") | frame["name"].str.contains("interview")
    return list(talking & ok & ~special)


SPLIT_SEED = 0  # one split of the footage for the sync model and the quality model alike


def speaker_split(table: pd.DataFrame, seed: int = SPLIT_SEED, val_fraction: float = 0.15,
                  test_fraction: float = 0.15) -> dict[str, str]:
    """speaker -> train/val/test over every speaker of the footage (all kinds), so that the
    sync model and the quality model trained on the same folder hold out the same people."""
    from ..data import split_groups
    return split_groups(sorted(set(table["speaker"])), seed, val_fraction, test_fraction,
                        at_least_one=True)
