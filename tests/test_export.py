"""CPU deployment (`talkface export`): the shipped checkpoint exported as ONNX and as int8 scores
the bundled fixture clips within 0.01 of fp32, through `load_scorer(..., runtime=...)`."""
from __future__ import annotations

import json

from pathlib import Path

import pytest

from talkface.api import load_scorer
from talkface.checkpoint import load_checkpoint
from talkface.cli import main
from talkface.errors import TalkfaceError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "talkface" / "checkpoints" / "default"
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
    scorer = load_scorer(SHIPPED, cache=cache)
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
