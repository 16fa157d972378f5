"""Legacy pickle import: both layouts convert, dims are inferred, bad pickles are refused with a
message naming the problem, and nothing is unpickled without --trust."""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest

from talkface.cli import main as cli_main
from talkface.data import DataSettings, load_dataset
from talkface.errors import DatasetError
from talkface.features.extract import FeatureBundle
from talkface.legacy import as_samples, convert, read_pickle


def samples(n=4, dv=9, da=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"name": f"clip_{i}.mp4", "visual": rng.normal(size=(20 + i, dv)),
             "audio": rng.normal(size=(20 + i, da)).tolist(), "lip_sync": float(rng.random()),
             "overall": np.float64(rng.random())} for i in range(n)]


def dump(path, obj):
    path.write_bytes(pickle.dumps(obj))
    return path


def test_list_of_dicts_imports_through_the_cli(tmp_path, capsys):
    src = dump(tmp_path / "old.pkl", samples())
    assert cli_main(["import-pickle", str(src), "--out", str(tmp_path / "ds"), "--trust"]) == 0
    assert "imported 4 samples" in capsys.readouterr().out
    manifest = pd.read_csv(tmp_path / "ds" / "manifest.csv")
    assert list(manifest.columns) == ["file", "lip_sync", "overall"]
    assert manifest["file"][0] == "features/clip_0.npz"
    bundle = FeatureBundle.load(tmp_path / "ds" / manifest["file"][1])
    assert bundle.visual.shape == (21, 9) and bundle.audio.shape == (21, 3)
    assert bundle.spec.backend == "legacy" and bundle.spec.visual_names[0] == "v0000"
    data = load_dataset(tmp_path / "ds", DataSettings(split_by="row", val_fraction=0.25,
                                                      test_fraction=0.25))
    assert data.task_names == ["lip_sync", "overall"] and data.spec.visual_dim == 9


def test_dict_of_lists_with_missing_frames(tmp_path):
    items = samples(3)
    items[0]["visual"][5] = np.nan  # a frame without a face in the old extractor
    columns = OrderedDict((k, [s[k] for s in items]) for k in items[0])
    manifest = convert(as_samples(read_pickle(dump(tmp_path / "d.pkl", columns), True)),
                       tmp_path / "out")
    bundle = FeatureBundle.load(tmp_path / "out" / manifest["file"][0])
    assert not bundle.valid[5] and bundle.valid.sum() == 19 and np.isfinite(bundle.visual).all()


def test_inconsistent_dimensions_name_the_sample(tmp_path):
    items = samples(4)
    items[2]["visual"] = np.zeros((20, 8))
    with pytest.raises(DatasetError, match=r"sample 2 \(clip_2\) has Dv=8.*Dv=9"):
        convert(items, tmp_path)
    items = samples(2)
    items[1]["audio"] = np.zeros((5, 3))
    with pytest.raises(DatasetError, match="sample 1 .* 21 visual frames but 5 audio"):
        convert(items, tmp_path)


def test_bad_layouts_are_refused():
    with pytest.raises(DatasetError, match="dict of lists"):
        as_samples({"features": []})
    with pytest.raises(DatasetError, match="different lengths"):
        as_samples({"visual": [1, 2], "audio": [1]})
    with pytest.raises(DatasetError, match="sample 1 is a str"):
        as_samples([{"visual": 1}, "oops"])
    with pytest.raises(DatasetError, match="no `audio`"):
        convert([{"visual": np.zeros((3, 2))}], None)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickling_needs_trust_a_local_file_and_plain_data(tmp_path, capsys):
    src = dump(tmp_path / "old.pkl", samples())
    with pytest.raises(DatasetError, match="--trust"):
        read_pickle(src, trust=False)
    assert cli_main(["import-pickle", str(src), "--out", str(tmp_path / "x")]) == 2
    assert "--trust" in capsys.readouterr().err and not (tmp_path / "x" / "manifest.csv").exists()
    with pytest.raises(DatasetError, match="only local files"):
        read_pickle("https://example.com/old.pkl", trust=True)
    with pytest.raises(DatasetError, match="posix.system|nt.system"):
        read_pickle(dump(tmp_path / "evil.pkl", [Exploit()]), trust=True)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        read_pickle(tmp_path / "junk.pkl", trust=True)


class Huge:
    """Pickles as `bytearray(6_400_000_000)`: a few dozen bytes that ask for 6.4 GB."""

    def __reduce__(self):
        return (bytearray, (6_400_000_000,))


class HugeArray:
    def __reduce__(self):
        return (np.ndarray, ((80_000, 80_000),))


class HugeReconstruct:
    def __reduce__(self):
        return (np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (80_000, 80_000), "d"))


def _inflating_pickle() -> bytes:
    """A list of 10 000 items, then tuple(list) called 20 000 times through the memo: 200 M
    items built from a ~100 kB file."""
    body = bytearray(pickle.PROTO + b"\x02" + pickle.EMPTY_LIST + pickle.BINPUT + b"\x00"
                     + pickle.MARK + pickle.NONE * 10_000 + pickle.APPENDS)
    body += pickle.MARK
    for _ in range(20_000):
        body += pickle.GLOBAL + b"builtins\ntuple\n" + pickle.BINGET + b"\x00" \
            + pickle.TUPLE1 + pickle.REDUCE
    body += pickle.LIST + pickle.STOP
    return bytes(body)


@pytest.mark.parametrize("make,expected", [
    (lambda: pickle.dumps([Huge()], protocol=2), "bytearray"),
    (lambda: pickle.dumps([HugeArray()], protocol=2), "ndarray"),
    (lambda: pickle.dumps([HugeReconstruct()], protocol=2), "more than the file could hold"),
    # BINBYTES8 claiming 6.4 GB of data that is not there
    (lambda: pickle.PROTO + b"\x05" + b"\x8e" + (6_400_000_000).to_bytes(8, "little") + b"xy",
     "not a readable pickle"),
    (_inflating_pickle, "more than the file could hold"),
])
def test_a_small_pickle_cannot_allocate_gigabytes(tmp_path, make, expected):
    import time
    import tracemalloc
    src = tmp_path / "bomb.pkl"
    src.write_bytes(make())
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DatasetError, match=expected) as info:
            read_pickle(src, trust=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 64 * 1024 ** 2, f"{peak / 1e6:.0f} MB allocated"
    assert str(src) in str(info.value)


def test_the_87_byte_bytearray_pickle_from_the_report_fails_with_a_message(tmp_path, capsys):
    data = pickle.dumps(Huge(), protocol=2)
    assert len(data) < 100
    src = tmp_path / "small.pkl"
    src.write_bytes(data)
    assert cli_main(["import-pickle", str(src), "--out", str(tmp_path / "o"), "--trust"]) == 2
    err = capsys.readouterr().err
    assert "bytearray" in err and "Traceback" not in err


@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_pickles_of_every_protocol_still_import(tmp_path, protocol):
    items = samples(3)
    src = tmp_path / "old.pkl"
    src.write_bytes(pickle.dumps(items, protocol=protocol))
    loaded = read_pickle(src, trust=True)
    assert np.array_equal(loaded[1]["visual"], items[1]["visual"])
    assert loaded[2]["overall"] == items[2]["overall"]
