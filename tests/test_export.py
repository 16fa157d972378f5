"""CPU deployment (`talkface export`) and the default scoring runtime: the shipped checkpoint
exported as ONNX and as int8 scores the bundled fixture clips within 0.01 of fp32, through
`load_scorer(..., runtime=...)`; the shipped checkpoints carry a current model.onnx, which
scoring runs by default without importing torch; a missing or stale model.onnx is noticed."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from talkface.api import load_scorer
from talkface.checkpoint import load_checkpoint, onnx_problem, scoring_runtime
from talkface.cli import main
from talkface.errors import TalkfaceError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "talkface" / "checkpoints" / "default"
SHIPPED_SYNC = ROOT / "talkface" / "checkpoints" / "sync"
FIXTURES = ROOT / "tests" / "data" / "fixtures"
# clean, audio late, blurred, no audio track (lip sync not judged)
CLIPS = ["00_clean.mp4", "01_offset.mp4", "03_blur.mp4", "06_no_audio.mp4"]
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One feature cache for every runtime: the clips are extracted once."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def fp32(cache) -> list[dict]:
    scorer = load_scorer(SHIPPED, cache=cache, runtime="torch")
    return [scorer.score(FIXTURES / name).scores for name in CLIPS]


def largest_difference(a: list[dict], b: list[dict]) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for task, value in x.items():
            assert (value is None) == (y[task] is None), task  # not judged stays not judged
            if value is not None:
                worst = max(worst, abs(value - y[task]))
    return worst


def test_int8_export_scores_within_tolerance_of_fp32(fp32, cache, tmp_path, capsys):
    out = tmp_path / "int8"
    assert main(["export", "--checkpoint", str(SHIPPED), "--format", "int8",
                 "--out", str(out)]) == 0
    assert "int8" in capsys.readouterr().out
    loaded = load_checkpoint(out)
    assert loaded.meta.quantization["scheme"] == "dynamic-int8"
    assert (out / "model.safetensors").stat().st_size < \
        0.8 * (SHIPPED / "model.safetensors").stat().st_size
    scorer = load_scorer(out, cache=cache, runtime="int8")
    int8 = [scorer.score(FIXTURES / name).scores for name in CLIPS]
    worst = largest_difference(fp32, int8)
    assert 0 < worst < TOLERANCE  # the weights did change, the scores barely
    # quantising on load gives the same model as the exported folder
    on_load = load_scorer(SHIPPED, cache=cache, runtime="int8")
    assert largest_difference(int8, [on_load.score(FIXTURES / n).scores for n in CLIPS]) < 1e-6
    # an int8 folder is not exported again
    assert main(["export", "--checkpoint", str(out), "--format", "int8",
                 "--out", str(tmp_path / "again")]) == 2


@pytest.mark.slow  # the dynamo ONNX exporter takes about 20 s
def test_onnx_export_scores_within_tolerance_of_fp32(fp32, cache, tmp_path):
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(SHIPPED), "--format", "onnx",
                 "--out", str(out)]) == 0
    scorer = load_scorer(out, cache=cache, runtime="onnx")
    assert type(scorer.loaded.model).__name__ == "OnnxModel"
    shipped = json.loads((SHIPPED / "meta.json").read_text())
    assert scorer.loaded.meta.model_name == shipped["model_name"]  # metadata travelled
    onnx = [scorer.score(FIXTURES / name).scores for name in CLIPS]
    assert largest_difference(fp32, onnx) < TOLERANCE
    with pytest.raises(TalkfaceError, match="CUDA"):
        load_scorer(out, cache=cache, runtime="onnx", device="cuda")


def test_the_shipped_checkpoints_carry_a_current_onnx_graph():
    """model.onnx beside each shipped model.safetensors, exported from those very weights
    (re-export after retraining: `talkface.export.add_onnx(folder, shipping=True)`)."""
    for folder in (SHIPPED, SHIPPED_SYNC):
        assert onnx_problem(folder) is None, onnx_problem(folder)
        assert scoring_runtime(folder) == "onnx"
    assert scoring_runtime(SHIPPED, device="cuda") == "torch"  # onnx runs on the CPU only


def test_default_scoring_runs_onnx_within_tolerance_of_torch(fp32, tmp_path):
    """The default runtime (both models on onnxruntime, features made afresh: the sync columns
    come from the ONNX sync model) gives the fp32 PyTorch scores within the export tolerance."""
    scorer = load_scorer(SHIPPED, cache=tmp_path / "onnx-cache")
    assert scorer.loaded.runtime == "onnx"
    assert type(scorer.extractor.sync.model).__name__ == "OnnxSyncModel"
    onnx = [scorer.score(FIXTURES / name).scores for name in CLIPS]
    assert largest_difference(fp32, onnx) < TOLERANCE


NO_TORCH = """
import json, sys
from talkface import load_scorer
from talkface.cli import main
scorer = load_scorer(cache=False)
scorer.score(sys.argv[1])
assert main(["score", sys.argv[1], "--no-cache", "--json", sys.argv[2]]) == 0
heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "numba")
         or m.startswith(("librosa.core", "librosa.feature", "librosa.filters"))]
print(json.dumps({"runtime": scorer.loaded.runtime, "heavy": sorted(heavy)[:5]}))
"""


def test_scoring_with_the_api_and_the_cli_never_imports_torch(tmp_path):
    """`load_scorer()` + `score` and `talkface score` on a fixture clip, in a fresh process where
    torch is installed: torch is never imported, nor librosa's spectral stack and numba (2.7 s
    and 220 MB at first use; `talkface.features.spectral` computes the same features)."""
    out = subprocess.run([sys.executable, "-c", NO_TORCH, str(FIXTURES / "00_clean.mp4"),
                          str(tmp_path / "scores.json")], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"runtime": "onnx", "heavy": []}
    (row,) = json.loads((tmp_path / "scores.json").read_text())
    assert row["error"] is None and row["scores"]["lip_sync"] is not None


def test_sync_model_on_onnx_gives_torch_s_columns():
    """The sync model's ONNX graph and its PyTorch weights give the same sync figures."""
    from talkface.sync.estimate import load_sync_model
    rng = np.random.default_rng(0)
    t = 60
    lips, mouths = rng.random((t, 40, 2)), rng.integers(0, 255, (t, 48, 96), np.uint8)
    audio = (np.repeat(rng.uniform(0.05, 0.5, t), 640) * rng.normal(0, 1, t * 640)).astype(
        np.float32)
    runs = {}
    for runtime in ("onnx", "torch"):
        estimator = load_sync_model("sync", runtime)
        runs[runtime] = estimator.analyse(lips, mouths, np.ones(t, bool), audio)
    assert type(load_sync_model("sync").model).__name__ == "OnnxSyncModel"
    (onnx, onnx_cols), (torch_result, torch_cols) = runs["onnx"], runs["torch"]
    assert onnx.judged and onnx.offset_frames == torch_result.offset_frames
    assert np.abs(onnx_cols - torch_cols).max() < 1e-4


def test_a_missing_or_stale_onnx_graph_falls_back_to_torch_with_a_note(tmp_path, caplog):
    """No model.onnx, or one exported from other weights: scoring runs torch and says how to
    make a current one; asking for runtime="onnx" then is an error saying the same."""
    from talkface.sync.estimate import load_sync_model
    folder = tmp_path / "sync"
    shutil.copytree(SHIPPED_SYNC, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["onnx"]["weights_sha256"] = "0" * 64  # as if the weights changed after the export
    (folder / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="talkface.checkpoint"):
        assert type(load_sync_model(folder).model).__name__ == "SyncNet"
    assert "stale" in caplog.text and "talkface export" in caplog.text
    with pytest.raises(TalkfaceError, match="stale"):
        load_sync_model(folder, "onnx")
    (folder / "model.onnx").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="talkface.checkpoint"):
        assert type(load_sync_model(folder).model).__name__ == "SyncNet"
    assert "has no model.onnx" in caplog.text
    with pytest.raises(TalkfaceError, match="has no model.onnx"):
        load_sync_model(folder, "onnx")


@pytest.mark.slow  # the dynamo ONNX exporter takes about 10 s on the sync model
def test_export_beside_the_weights_makes_a_current_graph(tmp_path):
    """`talkface export --out` naming the checkpoint's own folder adds model.onnx and records the
    weights it came from; scoring then runs it."""
    from talkface.sync.estimate import load_sync_model
    folder = tmp_path / "sync"
    shutil.copytree(SHIPPED_SYNC, folder)
    (folder / "model.onnx").unlink()
    assert onnx_problem(folder) is not None
    assert main(["export", "--checkpoint", str(folder), "--format", "onnx",
                 "--out", str(folder)]) == 0
    assert onnx_problem(folder) is None
    assert type(load_sync_model(folder).model).__name__ == "OnnxSyncModel"
    assert main(["export", "--checkpoint", str(folder), "--format", "int8",
                 "--out", str(tmp_path / "int8")]) == 2  # a sync model has no int8 export


def test_a_folder_s_onnx_graph_reads_the_folder_s_current_metadata(tmp_path):
    """meta.json may change without the weights changing (`train.signals` writes a new
    calibration): the ONNX runtime then scores with the folder's meta.json, as torch does, not
    with the copy embedded at export time."""
    from talkface.checkpoint import load_checkpoint
    folder = tmp_path / "default"
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["calibration"]["penalties"] = {}
    meta["data"] = {**(meta.get("data") or {}), "note": "recalibrated"}
    (folder / "meta.json").write_text(json.dumps(meta))
    assert onnx_problem(folder) is None  # same weights: the graph is still current
    onnx, torch_loaded = load_checkpoint(folder, runtime="onnx"), load_checkpoint(folder)
    assert onnx.meta.calibration == torch_loaded.meta.calibration
    assert onnx.meta.calibration["penalties"] == {}
    assert onnx.meta.data["note"] == "recalibrated"


def test_refitting_the_signal_reference_keeps_the_folder_s_onnx_graph(tmp_path):
    """`train.signals` writes the checkpoint folder anew (new calibration, same weights): the
    shipped folder must still hold a current model.onnx afterwards, or scoring falls back to
    torch (scripts/reproduce.sh step 3b once left the shipped checkpoint without one)."""
    import numpy as np
    import pandas as pd
    from talkface.signals import SIGNAL_LIST
    from train.signals import store_reference
    folder = tmp_path / "default"
    shutil.copytree(SHIPPED, folder)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({s.name: rng.normal(size=20) for s in SIGNAL_LIST})
    table["kind"], table["split"] = "talking_with_audio", "train"
    out = store_reference(str(folder), str(folder), table, "footage")
    assert (out / "model.onnx").exists() and onnx_problem(out) is None
    assert json.loads((out / "meta.json").read_text())["calibration"]["signals"]
