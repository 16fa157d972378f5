"""Scoring on several workers (`talkface score --workers N`, `--ray`; talkface.parallel): the
JSON of a one-process run, byte for byte, with failures reported per file. Uses the shipped
checkpoint (its extractor runs the sync model, whose distances are where thread counts once
showed) on fixture clips, features extracted fresh (--no-cache) so that the workers make them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from talkface.cli import main
from talkface.score_cli import ray_address

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "talkface" / "checkpoints" / "default"
FIXTURES = ROOT / "tests" / "data" / "fixtures"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four fixture clips (one without a face) and a file that is not a video."""
    folder = tmp_path_factory.mktemp("clips")
    for name in ("00_clean.mp4", "01_offset.mp4", "03_blur.mp4", "07_no_face.mp4"):
        shutil.copy(FIXTURES / name, folder / name)
    (folder / "broken.mp4").write_bytes(b"definitely not a video\n" * 50)
    return folder


def score(folder: Path, out: Path, *options: str) -> tuple[int, str]:
    code = main(["score", *options, str(folder), "--json", str(out), "--no-cache",
                 "--checkpoint", str(SHIPPED)])
    return code, out.read_text()


@pytest.fixture(scope="module")
def one_process(folder, tmp_path_factory) -> tuple[int, str]:
    return score(folder, tmp_path_factory.mktemp("one") / "one.json")


def test_two_workers_give_the_json_of_one_process(folder, one_process, tmp_path, capsys):
    code, text = score(folder, tmp_path / "two.json", "--workers", "2")
    assert (code, text) == one_process  # byte for byte: scores to the last digit, same order
    records = {Path(r["file"]).name: r for r in json.loads(text)}
    assert list(records) == ["00_clean.mp4", "01_offset.mp4", "03_blur.mp4", "07_no_face.mp4",
                             "broken.mp4"]
    assert code == 1  # some files failed, the others were scored
    assert "not a video file" in records["broken.mp4"]["error"]
    assert records["broken.mp4"]["scores"] is None
    assert "no face" in records["07_no_face.mp4"]["error"]
    for name in ("00_clean.mp4", "01_offset.mp4", "03_blur.mp4"):
        assert records[name]["error"] is None and records[name]["scores"]["lip_sync"] is not None
    err = capsys.readouterr().err
    assert "scored 3 of 5 file(s)" in err and "clips/min (2 worker processes)" in err


@pytest.mark.slow
def test_features_do_not_depend_on_the_blas_thread_count(folder, one_process, tmp_path):
    """A process whose BLAS and OpenMP have one thread (as in a 1-CPU Ray actor) scores like
    this one, whatever this machine's core count."""
    out = tmp_path / "omp1.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "talkface", "score", str(folder), "--json",
                           str(out), "--no-cache", "--checkpoint", str(SHIPPED)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    assert out.read_text() == one_process[1]


@pytest.mark.slow
def test_ray_gives_the_json_of_one_process(folder, one_process, tmp_path):
    import ray
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        result = score(folder, tmp_path / "ray.json", "--ray")
    finally:
        ray.shutdown()
    assert result == one_process


def test_an_actor_is_sent_the_bytes_of_a_file_its_node_cannot_see(folder, tmp_path):
    """A Ray actor on a node without the caller's filesystem gets the file's bytes and makes
    the same features, and the same failure message as the file would give here."""
    import cv2
    import numpy as np
    import torch

    from talkface.api import load_scorer
    from talkface.parallel import ScorerSettings, _RayWorker
    scorer = load_scorer(SHIPPED, cache=False)
    threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        worker = _RayWorker(ScorerSettings.of(scorer))  # not as an actor: the class itself
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    clip = folder / "00_clean.mp4"
    elsewhere = str(tmp_path / "not-on-this-node" / "00_clean.mp4")
    assert worker.sees(str(clip), clip.stat().st_size)
    assert not worker.sees(elsewhere, clip.stat().st_size)
    sent = worker.features(elsewhere, clip.read_bytes())
    here = scorer.features(clip)
    assert np.array_equal(sent.visual, here.visual) and np.array_equal(sent.audio, here.audio)
    assert sent.info == here.info
    broken = folder / "broken.mp4"
    message = worker.features(str(tmp_path / "broken.mp4"), broken.read_bytes())
    assert "not a video file" in message and message == scorer.features_or_error(broken)


def test_ray_address_is_told_apart_from_a_path(folder):
    assert ray_address("", ["a.mp4"]) == (None, ["a.mp4"])  # `--ray` alone: a local Ray
    assert ray_address("auto", ["a.mp4"]) == ("auto", ["a.mp4"])
    assert ray_address("10.1.2.3:6379", []) == ("10.1.2.3:6379", [])
    assert ray_address("ray://head:10001", []) == ("ray://head:10001", [])
    assert ray_address(str(folder), []) == (None, [str(folder)])  # `--ray FOLDER`


def test_ray_missing_is_a_readable_error_naming_the_extra(folder, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["score", "--ray", str(folder), "--checkpoint", str(SHIPPED)]) == 2
    assert "pip install 'talkface[ray]'" in capsys.readouterr().err


def test_workers_below_one_are_refused(folder, capsys):
    assert main(["score", str(folder), "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err


def test_the_sync_model_makes_its_features_on_one_thread():
    """Its convolutions' last bits depend on ONNX Runtime's thread count (3e-7 on a real clip
    between a 2-core process and a worker with one core), and its output is a feature: one
    thread everywhere keeps --workers, --ray and one process byte for byte the same."""
    from talkface.sync.estimate import load_sync_model
    sync = load_sync_model("sync", "onnx")
    assert type(sync.model).__name__ == "OnnxSyncModel"
    assert sync.model.session.get_session_options().intra_op_num_threads == 1
