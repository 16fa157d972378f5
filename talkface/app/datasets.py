"""Which datasets the Train tab may use, and keeping server paths out of what clients see.

A client names a dataset by a label from a fixed list, never by a path: the bundled samples,
datasets uploaded through the app (a .zip with `manifest.csv` and the clips, unpacked into the
app's uploads folder), and dataset folders under the roots given at start-up (`--data-root`). A
manifest may only name files inside its own folder. An upload is unpacked against a byte budget
counted as it is written, and whatever refuses it (too large, no manifest, a bad manifest, a
damaged archive) leaves nothing behind. Text shown in the page (messages, the job
log) goes through a `Redactor`, which replaces server folders with short placeholders.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

import pandas as pd
import yaml
from pydantic import ValidationError

from ..errors import DatasetError, TalkfaceError

BUNDLED = "bundled demo set"
GENERATE = "generate new clips"
MIN_EVAL_CLIPS = 8  # fewer validation or test clips than this measure nothing (an R2 of -316)
MAX_ZIP_BYTES = 4 * 1024 ** 3  # unpacked size of one uploaded dataset
MAX_ZIP_FILES = 20000
FREE_MARGIN = 1024 ** 3  # disk space an unpacked upload must leave free
MANIFEST = "manifest.csv"


class DatasetRefused(TalkfaceError):
    """A dataset the Train tab will not use (unknown, outside the allowed folders, too small)."""


@dataclass(frozen=True)
class Dataset:
    label: str  # what the client sees and sends back
    folder: Path  # server side only
    kind: str  # "bundled", "root" or "upload"


def _datasets_under(root: Path) -> list[Path]:
    """`root` itself when it holds a manifest, else its sub-folders that do (one level)."""
    if (root / "manifest.csv").is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "manifest.csv").is_file())


class DatasetRegistry:
    """The datasets a client may pick, found afresh on every call (a new folder appears)."""

    def __init__(self, demo_dir: Path, uploads_dir: Path, data_roots: Iterable[Path] = (),
                 max_upload_bytes: int = MAX_ZIP_BYTES) -> None:
        self.demo_dir, self.uploads_dir = Path(demo_dir), Path(uploads_dir)
        self.data_roots = [Path(r).resolve() for r in data_roots]
        self.max_upload_bytes = int(max_upload_bytes)

    def datasets(self) -> list[Dataset]:
        found = [Dataset(BUNDLED, self.demo_dir, "bundled")]
        for root in self.data_roots:
            found += [Dataset(f"folder: {p.name}", p, "root") for p in _datasets_under(root)]
        found += [Dataset(f"upload: {p.name}", p, "upload")
                  for p in _datasets_under(self.uploads_dir) if p != self.uploads_dir]
        return found

    def choices(self) -> list[str]:
        return [d.label for d in self.datasets()]

    def resolve(self, label: str) -> Dataset:
        for dataset in self.datasets():
            if dataset.label == label:
                return dataset
        raise DatasetRefused(f"unknown dataset {label!r}: pick one from the list (the bundled "
                             f"samples, an uploaded .zip, or a folder the server was started "
                             f"with via --data-root)")

    def add_upload(self, archive: str | os.PathLike, name: str) -> Dataset:
        """Unpack an uploaded .zip (manifest.csv plus clips) into the uploads folder."""
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:40] or "dataset"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        target, n = self.uploads_dir / stem, 1
        while target.exists():
            n += 1
            target = self.uploads_dir / f"{stem}-{n}"
        try:
            unpack_zip(archive, target, self.max_upload_bytes)
            check_manifest(target)
        except BaseException:  # a refused upload leaves nothing behind
            shutil.rmtree(target, ignore_errors=True)
            raise
        return Dataset(f"upload: {target.name}", target, "upload")


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def unpack_zip(archive: str | os.PathLike, target: Path, max_bytes: int = MAX_ZIP_BYTES) -> None:
    """Unpack a dataset .zip under `target`, refusing absolute or `..` names, links, an archive
    without a top-level manifest.csv, more than MAX_ZIP_FILES files, more than `max_bytes`
    unpacked (as declared, and counted as written: the first byte past the budget stops it) or
    more than the disk can hold. A single top folder is stripped. A refusal after writing began
    removes `target`."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise DatasetRefused(f"{Path(archive).name}: not a .zip archive") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_FILES:
            raise DatasetRefused(f"the archive holds {len(members)} files (at most "
                                 f"{MAX_ZIP_FILES})")
        too_big = f"the archive unpacks to more than {_size(max_bytes)}, the limit for a dataset"
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            raise DatasetRefused(too_big)
        names = [_member_path(m) for m in members]
        tops = {n.parts[0] for n in names}
        strip = len(tops) == 1 and all(len(n.parts) > 1 for n in names)
        inside = [PurePosixPath(*n.parts[1:]) if strip else n for n in names]
        if PurePosixPath(MANIFEST) not in inside:
            raise DatasetRefused(f"the archive has no {MANIFEST} at its top (or in its one top "
                                 f"folder); nothing was unpacked")
        target.parent.mkdir(parents=True, exist_ok=True)
        if declared > shutil.disk_usage(target.parent).free - FREE_MARGIN:
            raise DatasetRefused(f"the server has no room for the {_size(declared)} this "
                                 f"archive unpacks to")
        target.mkdir()
        try:
            _write_members(zf, members, [target.joinpath(*n.parts) for n in inside], max_bytes,
                           too_big)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            shutil.rmtree(target, ignore_errors=True)
            raise DatasetRefused(f"the archive is damaged ({err})") from None
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise


def _write_members(zf: zipfile.ZipFile, members: list, dests: list[Path], max_bytes: int,
                   too_big: str) -> None:
    written = 0
    for member, dest in zip(members, dests):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:  # whatever the directory declared
                    raise DatasetRefused(too_big)
                out.write(chunk)


def _member_path(member: zipfile.ZipInfo) -> PurePosixPath:
    name = PurePosixPath(member.filename.replace("\\", "/"))
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DatasetRefused(f"the archive holds a link ({member.filename}); only files are "
                             f"unpacked")
    if name.is_absolute() or ".." in name.parts or re.match(r"^[A-Za-z]:", member.filename):
        raise DatasetRefused(f"the archive names {member.filename!r}, outside its own folder")
    return name


def check_manifest(folder: Path) -> pd.DataFrame:
    """The manifest of a dataset folder, refusing file entries that leave the folder."""
    from ..data import read_manifest
    frame, base = read_manifest(folder)
    base = base.resolve()
    bad = []
    for row, value in enumerate(frame["file"].astype(str), start=2):  # row 1 is the header
        path = PurePosixPath(value.replace("\\", "/"))
        inside = not path.is_absolute() and ".." not in path.parts and not value.startswith("~")
        if inside:
            try:
                (base / value).resolve().relative_to(base)
            except ValueError:
                inside = False  # a link that points out of the folder
        if not inside:
            bad.append(f"row {row}: {value!r}")
    if bad:
        raise DatasetRefused(f"manifest.csv names files outside its folder ({'; '.join(bad[:3])}"
                             f"{'; ...' if len(bad) > 3 else ''}); use paths relative to the "
                             f"dataset folder")
    return frame


def split_sizes(frame: pd.DataFrame, config_file: Optional[Path] = None) -> dict[str, int]:
    """How many labelled clips the training run will put in each split, computed the way
    `talkface.data.load_dataset` does with the config's split settings (`DataSettings`' own
    defaults for those the config does not set)."""
    from ..data import DataSettings, assign_splits
    from ..tasks import TASKS
    data = {}
    if config_file is not None and Path(config_file).exists():
        data = (yaml.safe_load(Path(config_file).read_text()) or {}).get("data") or {}
    split_keys = ("split_by", "val_fraction", "test_fraction", "split_seed")
    try:
        settings = DataSettings(**{k: data[k] for k in split_keys if k in data})
        splits = assign_splits(frame, settings)
    except (DatasetError, ValidationError) as err:
        raise DatasetRefused(str(err)) from None
    tasks = [t for t in TASKS if t in frame.columns]
    labelled = frame[tasks].notna().any(axis=1).to_numpy() if tasks else frame["file"].notna()
    return {s: int(((splits == s) & labelled).sum()) for s in ("train", "val", "test")}


def check_split_sizes(sizes: dict[str, int], minimum: int = MIN_EVAL_CLIPS) -> None:
    """Refuse a run whose train, validation or test split is below `minimum` labelled clips."""
    short = [s for s in ("train", "val", "test") if sizes.get(s, 0) < minimum]
    if short:
        counts = ", ".join(f"{s} {sizes.get(s, 0)}" for s in ("train", "val", "test"))
        raise DatasetRefused(f"too few labelled clips to measure anything ({counts}): the "
                             f"minimum is {minimum} in each of train, val and test "
                             f"({' and '.join(short)} {'is' if len(short) == 1 else 'are'} "
                             f"short)")


class Redactor:
    """Replaces server folders in text shown to clients with placeholders (`<runs>/...`)."""

    def __init__(self, folders: dict[str, Optional[Path]]) -> None:
        pairs = []
        for label, folder in folders.items():
            if folder is None:
                continue
            for form in {str(Path(folder)), str(Path(folder).resolve())}:
                if len(form) > 1:
                    pairs.append((form, label))
        home = str(Path.home())
        pairs += [(sys.prefix, "<python>"), (sys.base_prefix, "<python>")]
        if len(home) > 1:
            pairs.append((home, "~"))
        self.pairs = sorted(set(pairs), key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> str:
        for folder, label in self.pairs:
            text = text.replace(folder, label)
        return text
