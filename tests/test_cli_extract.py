"""`python -m talkface extract`: folders, skipping finished files, a summary of failures."""
from __future__ import annotations

import shutil
import subprocess
import sys

from talkface import media
from talkface.cli import main
from talkface.features import FeatureBundle

from conftest import ROOT, index_frames, tone


def test_extract_folder_recursively_with_failure_summary(tmp_path, face_video, capsys):
    src = tmp_path / "videos"
    (src / "sub").mkdir(parents=True)
    shutil.copy(face_video, src / "sub" / "face.mp4")
    media.write_video(src / "plain.mkv", index_frames(25), 25, tone(1.0))
    (src / "broken.mp4").write_text("not a video")
    (src / "notes.txt").write_text("ignored: not a video suffix")
    out = tmp_path / "features"
    assert main(["extract", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "broken.mp4: not a video file" in err and "notes.txt" not in err
    bundle = FeatureBundle.load(out / "sub" / "face.npz")
    assert bundle.n_frames == 60 and bundle.valid.all()
    assert (out / "plain.npz").exists()
    # the second run skips what is done and only retries the broken file
    assert main(["extract", str(src), "--out", str(out)]) == 1
    assert "extracted 0, skipped 2" in capsys.readouterr().out


def test_extract_with_two_workers_as_a_subprocess(tmp_path, face_video, noface_video):
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "talkface", "extract", str(face_video),
                           str(noface_video), "--out", str(out), "--workers", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "extracted 2" in proc.stdout
    assert not FeatureBundle.load(out / "no_face.npz").valid.any()


def test_unknown_backend_exits_with_message(tmp_path, capsys):
    assert main(["extract", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--backend", "nope"]) == 2
    assert "unknown visual backend 'nope'" in capsys.readouterr().err
