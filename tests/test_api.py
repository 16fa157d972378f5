"""The Scorer API: scores in range with meanings, warnings, attention, sync signals, batching,
the feature cache, spec mismatches and bad inputs.

The checkpoint here is a TEST FIXTURE with random weights (a tiny `improved` model built in a temp
folder), never a trained model: these tests check plumbing, not score quality. Tests of the
shipped checkpoint's scores live with the model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from talkface.checkpoint import save_checkpoint
from talkface.errors import MediaError, SpecMismatch, TalkfaceError
from talkface.features.extract import Extractor
from talkface.models import create_model
from talkface.spec import tasks_from_names

TASKS = ["lip_sync", "visual_quality", "temporal_quality", "overall"]
SMALL = {"encoder_dim": 32, "num_layers": 1, "num_heads": 2, "encoder_layers": 1,
         "dropout": 0.0}


def make_random_checkpoint(folder: Path, model_name: str = "improved", seed: int = 0,
                           extractor: Extractor | None = None) -> Path:
    """A test fixture: random weights, the default extractor's spec. Not a trained model."""
    import torch
    torch.manual_seed(seed)
    spec = (extractor or Extractor("landmarks")).spec
    options = SMALL if model_name == "improved" else {k: SMALL[k] for k in
                                                       ("encoder_dim", "num_layers", "num_heads")}
    model = create_model(model_name, spec, tasks_from_names(TASKS), **options)
    return save_checkpoint(folder, model, options, data={"note": "test fixture, random weights"})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random")


@pytest.fixture(scope="module")
def scorer(checkpoint, tmp_path_factory):
    from talkface.api import load_scorer
    return load_scorer(checkpoint, cache=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def face_result(scorer, face_video):
    return scorer.score(face_video)


def test_scores_are_in_range_with_a_meaning(face_result):
    assert set(face_result.scores) == set(TASKS)
    for name, score in face_result.tasks.items():
        assert 0.0 <= score.unit <= 1.0 and 1.0 <= score.mos <= 5.0
        assert score.task.low <= score.value <= score.task.high
        assert score.task.label.lower() in score.meaning and "/5" in score.meaning


def test_attention_and_sync_signals_cover_every_frame(face_result):
    t = face_result.n_frames
    assert t == 60  # 2.4 s at 25 fps
    temporal = face_result.attention["temporal"]
    assert temporal.shape == (t,) and np.isclose(temporal[face_result.valid].sum(), 1, atol=1e-3)
    assert face_result.attention["cross"].shape == (t, t)
    s = face_result.signals
    assert s.mouth_open.shape == s.audio_energy.shape == (t,)
    assert len(s.offsets) == len(s.correlation) and s.offset_frames in set(s.offsets)
    most, least = face_result.attended_frames(3), face_result.attended_frames(3, most=False)
    assert temporal[most].min() >= temporal[least].max()


def test_result_is_json_serialisable(face_result):
    data = json.loads(json.dumps(face_result.to_dict()))
    assert data["error"] is None and set(data["scores"]) == set(TASKS)
    assert len(data["attention"]["temporal"]) == face_result.n_frames
    assert data["tasks"]["lip_sync"]["range"] == [0.0, 1.0]
    brief = face_result.to_dict(detail=False)
    assert set(brief) == {"file", "scores", "mos", "warnings", "error"}


def test_rescoring_a_cached_clip_is_fast_and_identical(scorer, face_video, face_result):
    start = time.perf_counter()
    again = scorer.score(face_video)
    assert time.perf_counter() - start < 1.0  # a cache lookup, not a second extraction
    assert again.scores == pytest.approx(face_result.scores)


def test_batched_scores_match_single_scores(scorer, face_video, noface_video, tmp_path):
    short = tmp_path / "short.mp4"
    from talkface import media
    clip = media.load_clip(face_video)
    media.write_video(short, clip.frames[:30], 25, clip.audio[: 16000 * 30 // 25])
    single = scorer.score(short)
    results = scorer.score_many([face_video, noface_video, short, tmp_path / "missing.mp4"])
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[2].scores == pytest.approx(single.scores, abs=1e-5)  # padding changes nothing
    assert "no face" in results[1].error and results[1].to_dict()["scores"] is None
    assert "not found" in results[3].error


def test_warnings_name_the_problem(scorer, face_video, tmp_path):
    from talkface import media
    clip = media.load_clip(face_video)
    silent = tmp_path / "no_audio.mp4"
    media.write_video(silent, clip.frames, 25)
    no_audio = scorer.score(silent)
    assert any("no audio" in w for w in no_audio.warnings)
    assert no_audio.signals is None  # no made-up AV offset without audio
    half = clip.frames.copy()
    half[30:] = 0  # the face disappears half way
    media.write_video(tmp_path / "half.mp4", half, 25, clip.audio)
    result = scorer.score(tmp_path / "half.mp4")
    assert any("no face found in" in w and "%" in w for w in result.warnings)
    assert not result.valid[40:].any()
    assert result.attention["temporal"][40:].max() < 1e-6  # face-less frames get no attention


@pytest.mark.parametrize("content,expected", [
    (b"", "empty"), (b"this is not a video at all\n" * 20, "not a video"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(400), "")])
def test_bad_files_raise_readable_errors(scorer, tmp_path, content, expected):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(TalkfaceError) as info:
        scorer.score(bad)
    assert "bad.mp4" in str(info.value) and expected in str(info.value)


def test_faceless_clip_is_refused(scorer, noface_video):
    with pytest.raises(MediaError, match="no face"):
        scorer.score(noface_video)


def test_mismatched_backend_settings_are_refused_naming_both(checkpoint):
    from talkface.api import load_scorer
    with pytest.raises(SpecMismatch) as info:
        load_scorer(checkpoint, cache=False, detect_every=2)
    text = str(info.value)
    assert "checkpoint expects" in text and "extractor produces" in text
    assert "detect_every" in text


def test_load_scorer_is_exported_lazily():
    import talkface
    from talkface.api import load_scorer
    assert talkface.load_scorer is load_scorer


def test_compare_stats():
    from talkface.compare import leaderboard, mean_ci, pairwise, scores_frame, win_rate
    from talkface.api import ScoreResult, task_score
    from talkface.spec import tasks_from_names as names
    tasks = names(["overall"])

    def fake(value):
        return ScoreResult("x.mp4", {"overall": task_score(tasks[0], value)}, [], {}, None,
                           np.ones(1, bool), 25.0)

    rng = np.random.default_rng(0)
    good = [fake(v) for v in np.clip(rng.normal(0.8, 0.05, 20), 0, 1)]
    bad = [fake(v) for v in np.clip(rng.normal(0.4, 0.05, 20), 0, 1)]
    frame = scores_frame({"bad": bad, "good": good}, tasks)
    board = leaderboard(frame, tasks)
    assert list(board["group"]) == ["good", "bad"]
    low, high = board.loc[0, "overall_ci_low"], board.loc[0, "overall_ci_high"]
    assert low < board.loc[0, "overall_mean"] < high and high - low < 0.1
    pairs = pairwise(frame, tasks).set_index(["group_a", "group_b"])
    assert pairs.loc[("good", "bad"), "win_rate"] == 1.0
    assert pairs.loc[("good", "bad"), "p_value"] < 1e-4
    assert win_rate([1, 2, 3], [1, 2, 3]) == pytest.approx((0.5, 1.0))
    assert mean_ci([0.5])[1] != mean_ci([0.5])[1]  # NaN bound with one value
