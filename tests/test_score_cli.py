"""`python -m talkface score` and `compare`: JSON/CSV outputs, a batch that survives bad files,
exit codes. Uses a random-weight TEST FIXTURE checkpoint (see test_api.py), not a trained one."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from talkface.cli import main
from test_api import TASKS, make_random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random")


@pytest.fixture(scope="module")
def clips(tmp_path_factory, face_video, noface_video):
    """A folder with a good clip (twice, different names), a face-less one and a broken one."""
    folder = tmp_path_factory.mktemp("clips")
    shutil.copy(face_video, folder / "a.mp4")
    shutil.copy(face_video, folder / "b.mp4")
    shutil.copy(noface_video, folder / "empty_room.mp4")
    (folder / "broken.mp4").write_bytes(b"definitely not a video\n" * 50)
    return folder


def test_score_writes_json_and_csv_and_goes_on_after_failures(checkpoint, clips, tmp_path,
                                                              capsys):
    out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
    code = main(["score", str(clips), "--json", str(out_json), "--csv", str(out_csv),
                 "--checkpoint", str(checkpoint)])
    assert code == 1  # some files failed
    records = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(out_json.read_text())}
    assert set(records) == {"a.mp4", "b.mp4", "empty_room.mp4", "broken.mp4"}
    for name in ("a.mp4", "b.mp4"):
        assert records[name]["error"] is None and set(records[name]["scores"]) == set(TASKS)
        assert all(0 <= v <= 1 for v in records[name]["scores"].values())
    assert records["a.mp4"]["scores"] == records["b.mp4"]["scores"]
    assert records["broken.mp4"]["scores"] is None
    assert "not a video file" in records["broken.mp4"]["error"]
    assert "no face" in records["empty_room.mp4"]["error"]
    table = pd.read_csv(out_csv)
    assert len(table) == 4 and set(TASKS) <= set(table.columns)
    printed = capsys.readouterr().out
    assert "broken.mp4: FAILED" in printed and "Traceback" not in printed


def test_score_exit_code_zero_when_all_succeed(checkpoint, clips):
    assert main(["score", str(clips / "a.mp4"), "--checkpoint", str(checkpoint)]) == 0


def test_two_shards_merged_give_what_one_run_gives(checkpoint, clips, tmp_path, capsys):
    whole = tmp_path / "whole.json"
    main(["score", str(clips), "--json", str(whole), "--checkpoint", str(checkpoint)])
    parts = [tmp_path / f"part_{i}.json" for i in (1, 2)]
    for i, part in enumerate(parts, 1):
        main(["score", str(clips), "--shard", f"{i}/2", "--json", str(part),
              "--checkpoint", str(checkpoint)])
    names = [{r["file"] for r in json.loads(p.read_text())} for p in parts]
    assert len(names[0]) == len(names[1]) == 2 and not names[0] & names[1]
    merged = tmp_path / "all.json"
    assert main(["merge", *map(str, parts), "--json", str(merged), "--csv",
                 str(tmp_path / "all.csv")]) == 1  # the broken and face-less clips failed
    def summary(records):  # what a user reads off: file, scores, bands, failures
        return [(r["file"], {k: round(v, 4) for k, v in (r.get("scores") or {}).items()
                             if v is not None}, r.get("band"), r.get("error"))
                for r in records]
    expected = sorted(json.loads(whole.read_text()), key=lambda r: r["file"])
    got = json.loads(merged.read_text())
    assert [r["file"] for r in got] == [r["file"] for r in expected]
    assert summary(got) == summary(expected)
    assert len(pd.read_csv(tmp_path / "all.csv")) == 4
    # the same part twice is an error, not a silent duplicate
    capsys.readouterr()
    assert main(["merge", str(parts[0]), str(parts[0]), "--json", str(merged)]) == 2
    assert "in both" in capsys.readouterr().err


def test_a_shard_out_of_range_is_rejected(checkpoint, clips):
    with pytest.raises(SystemExit):
        main(["score", str(clips), "--shard", "3/2", "--checkpoint", str(checkpoint)])


def test_missing_checkpoint_is_a_readable_error(tmp_path, clips, capsys):
    code = main(["score", str(clips / "a.mp4"), "--checkpoint", str(tmp_path / "nope")])
    assert code == 2 and "not a talkface checkpoint" in capsys.readouterr().err


def test_compare_prints_a_leaderboard_and_writes_csv(checkpoint, clips, tmp_path, capsys):
    board = tmp_path / "board.csv"
    code = main(["compare", "--group", f"first={clips / 'a.mp4'}",
                 "--group", f"second={clips / 'b.mp4'}", "--group", f"bad={clips / 'broken.mp4'}",
                 "--csv", str(board), "--checkpoint", str(checkpoint)])
    assert code == 1  # the broken clip failed, and the comparison still ran
    table = pd.read_csv(board)
    assert set(table["group"]) == {"first", "second", "bad"}
    assert {"overall_mean", "overall_ci_low", "overall_ci_high", "n"} <= set(table.columns)
    assert table.set_index("group").loc["bad", "failed"] == 1
    pairs = pd.read_csv(tmp_path / "board_pairwise.csv")
    assert {"task", "group_a", "group_b", "win_rate", "p_value"} <= set(pairs.columns)
    assert "first" in capsys.readouterr().out


def test_compare_rejects_a_malformed_group(checkpoint, capsys):
    assert main(["compare", "--group", "no-equals-sign", "--checkpoint", str(checkpoint)]) == 2
    assert "NAME=PATH" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point(checkpoint, clips, tmp_path):
    """The real `python -m talkface score` in a fresh process (progress bar on stderr)."""
    out = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, "-m", "talkface", "score", str(clips / "a.mp4"),
                           "--json", str(out), "--checkpoint", str(checkpoint)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())[0]["error"] is None


HEAVY = ("torch", "gradio", "cv2", "librosa", "av", "pandas", "numpy")


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["export", "--help"]])
def test_help_imports_no_heavy_library(argv):
    """`talkface --help` and `talkface score --help` build the whole parser, so every command
    module keeps torch, gradio, cv2, librosa, av (and numpy, pandas) inside its functions."""
    code = ("import sys, runpy\n"
            f"sys.argv = ['talkface', *{argv!r}]\n"
            "try:\n    runpy.run_module('talkface', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: talkface" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "LOADED []"
