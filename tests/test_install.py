"""`pip install .` gives a working talkface outside the checkout: the console script scores a clip
with the shipped checkpoint, and the package data (checkpoints, face models, samples, training
configs) is installed with it.

The running interpreter's own pip and setuptools build the wheel (`pip wheel --no-build-isolation`:
no download; setuptools>=70.1 builds wheels without the `wheel` package, see
requirements-dev.txt). The wheel goes into a fresh virtualenv that reuses this environment's
installed dependencies (torch alone is several GB) through a `.pth` file naming this environment's
site-packages. `--system-site-packages` would not do: inside a virtualenv it exposes the *base*
interpreter's packages, not this environment's. The console script then runs from a folder
outside the checkout, so nothing can come from the source tree.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# what the installed package sees: no PYTHONPATH pointing back into a checkout
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def build_wheel(out: Path) -> Path:
    """The repository as a wheel, built by this interpreter's pip and setuptools."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--quiet", "--wheel-dir", str(out), str(ROOT)],
                           capture_output=True, text=True, cwd=out)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob("talkface-*.whl")
    return wheel


def venv_over_this_environment(venv: Path) -> Path:
    """A virtualenv without pip whose Python also sees this environment's site-packages (their
    .pth files included), after its own. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True,
                             env=CLEAN_ENV).stdout.strip()
    ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]])
    lines = [f"import site; site.addsitedir({str(p)!r})" for p in ours if Path(p).is_dir()]
    (Path(purelib) / "_this_environment.pth").write_text("\n".join(lines) + "\n")
    return python


@pytest.mark.slow
def test_pip_install_gives_a_working_talkface(tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = build_wheel(dist)
    venv = tmp_path / "venv"
    python = venv_over_this_environment(venv)
    # this environment's pip, run by the venv's python, installs into the venv; an editable
    # talkface of this environment (`pip install -e .`) is left where it is
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                              "--force-reinstall", "--quiet", str(wheel)],
                             capture_output=True, text=True, cwd=tmp_path, env=CLEAN_ENV)
    assert install.returncode == 0, install.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import talkface, train; "
                            "print(talkface.__file__); print(train.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=CLEAN_ENV)
    installed = [Path(p) for p in where.stdout.split()]
    assert len(installed) == 2 and all(str(venv) in str(p) for p in installed), \
        where.stdout + where.stderr
    package = installed[0].parent
    for data in ("checkpoints/default/model.safetensors", "faces/weights/face_landmark.tflite",
                 "faces/mesh_template.npy", "app/style.css", "app/samples/manifest.csv",
                 "synth/faces.json"):
        assert (package / data).exists(), data
    assert (installed[1].parent / "configs" / "tiny.yaml").exists()
    clip = ROOT / "tests" / "data" / "fixtures" / "00_clean.mp4"
    out = tmp_path / "scores.json"
    run = subprocess.run([str(venv / "bin" / "talkface"), "score", str(clip), "--json", str(out),
                          "--no-cache"], capture_output=True, text=True, cwd=tmp_path,
                         env=CLEAN_ENV)
    assert run.returncode == 0, run.stderr[-2000:]
    (record,) = json.loads(out.read_text())
    assert record["error"] is None and set(record["scores"]) == {
        "lip_sync", "visual_quality", "temporal_quality", "overall"}
    assert "00_clean.mp4" in run.stdout
