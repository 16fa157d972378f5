"""`pip install .` gives a working talkface outside the checkout: the console script scores a clip
with the shipped checkpoint, and the package data (checkpoints, face models, samples, training
configs) is installed with it.

The virtualenv reuses this environment's installed dependencies (`--system-site-packages`; torch
alone is several GB) but gets its own copy of talkface, built from the repository as a wheel, and
runs from a folder outside the checkout, so nothing can come from the source tree.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_pip_install_gives_a_working_talkface(tmp_path):
    venv = tmp_path / "venv"
    # without its own pip: the environment's pip and setuptools build the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    build = subprocess.run([str(python), "-m", "pip", "install", "--no-deps",
                            "--no-build-isolation", "--quiet", str(ROOT)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import talkface, train; "
                            "print(talkface.__file__); print(train.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    installed = [Path(p) for p in where.stdout.split()]
    assert all(str(venv) in str(p) for p in installed), where.stdout + where.stderr
    package = installed[0].parent
    for data in ("checkpoints/default/model.safetensors", "faces/weights/face_landmark.tflite",
                 "faces/mesh_template.npy", "app/style.css", "app/samples/manifest.csv",
                 "synth/faces.json"):
        assert (package / data).exists(), data
    assert (installed[1].parent / "configs" / "tiny.yaml").exists()
    clip = ROOT / "tests" / "data" / "fixtures" / "00_clean.mp4"
    out = tmp_path / "scores.json"
    run = subprocess.run([str(venv / "bin" / "talkface"), "score", str(clip), "--json", str(out),
                          "--no-cache"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    (record,) = json.loads(out.read_text())
    assert record["error"] is None and set(record["scores"]) == {
        "lip_sync", "visual_quality", "temporal_quality", "overall"}
    assert "00_clean.mp4" in run.stdout
