"""The app's guards, without a browser or a model: uploaded dataset archives (a zip bomb, an
archive without a manifest, one whose directory lies, one with a bad manifest) leave nothing on
disk; failed logins are limited per client address; a server reachable from other machines does
not start without a login unless told to; empty tables have real headers; the Model tab opens
its first section."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from talkface.app.datasets import DatasetRefused, DatasetRegistry

BUDGET = 1 << 20  # bytes an upload may unpack to, in these tests
MANIFEST = "file,lip_sync\nclip0.mp4,0.5\n"


def registry(tmp_path: Path) -> DatasetRegistry:
    return DatasetRegistry(tmp_path / "demo", tmp_path / "uploads", max_upload_bytes=BUDGET)


def zip_of(path: Path, files: dict[str, bytes | int]) -> Path:
    """A deflated .zip; an int stands for that many zero bytes (written in chunks)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            if isinstance(content, int):
                with zf.open(name, "w", force_zip64=True) as out:
                    for _ in range(content // (1 << 20)):
                        out.write(bytes(1 << 20))
            else:
                zf.writestr(name, content)
    return path


def left_on_disk(tmp_path: Path) -> list[Path]:
    uploads = tmp_path / "uploads"
    return sorted(uploads.rglob("*")) if uploads.exists() else []


def test_a_zip_bomb_is_refused_and_leaves_nothing(tmp_path):
    bomb = zip_of(tmp_path / "bomb.zip", {"manifest.csv": MANIFEST, "clip0.mp4": 64 << 20})
    assert bomb.stat().st_size < 200_000  # 64 MB of zeros in a small archive
    with pytest.raises(DatasetRefused, match="unpacks to more than 1.0 MB"):
        registry(tmp_path).add_upload(bomb, "bomb.zip")
    assert left_on_disk(tmp_path) == []


def test_an_archive_without_a_manifest_is_refused_before_anything_is_unpacked(tmp_path):
    """It used to be unpacked in full, then refused for having no manifest, and stay on disk."""
    bomb = zip_of(tmp_path / "bomb.zip", {"zeros.bin": 8 << 20})
    big = DatasetRegistry(tmp_path / "demo", tmp_path / "uploads")  # the default budget
    with pytest.raises(DatasetRefused, match="no manifest.csv.*nothing was unpacked"):
        big.add_upload(bomb, "bomb.zip")
    assert left_on_disk(tmp_path) == []


def lie_about_sizes(path: Path) -> Path:
    """Set every uncompressed size in the central directory to 1 byte: a directory that lies."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        struct.pack_into("<I", data, at + 24, 1)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def test_an_archive_whose_directory_lies_is_refused_and_leaves_nothing(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.csv", MANIFEST)
        zf.writestr("clip0.mp4", bytes(2 << 20))
    with pytest.raises(DatasetRefused, match="damaged|more than"):
        registry(tmp_path).add_upload(lie_about_sizes(archive), "liar.zip")
    assert left_on_disk(tmp_path) == []


def test_a_bad_manifest_is_refused_and_its_upload_removed(tmp_path):
    archive = zip_of(tmp_path / "bad.zip", {"manifest.csv": "file,lip_sync\n../../x.mp4,0.5\n"})
    with pytest.raises(DatasetRefused, match="outside its folder"):
        registry(tmp_path).add_upload(archive, "bad.zip")
    assert left_on_disk(tmp_path) == []


def test_a_good_archive_is_unpacked_under_its_budget(tmp_path):
    archive = zip_of(tmp_path / "good.zip", {"data/manifest.csv": MANIFEST,
                                             "data/clip0.mp4": b"x" * 1000})
    added = registry(tmp_path).add_upload(archive, "good.zip")
    assert added.label == "upload: good" and (added.folder / "clip0.mp4").stat().st_size == 1000


