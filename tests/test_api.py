"""The Scorer API: one inference path, "not judged" instead of numbers, warnings, attention, sync
figures, batching, the disk cache, results that callers cannot corrupt, thread safety, spec
mismatches and bad inputs.

The checkpoint here is a TEST FIXTURE with random weights (a tiny model built in a temp folder),
never a trained model: these tests check plumbing, not score quality. Tests of the shipped
checkpoint's scores live with the model (test_models.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from talkface.errors import MediaError, NotAMediaFile, SpecMismatch, TalkfaceError

from helpers import TASKS, make_random_checkpoint

FIXTURES = Path(__file__).parent / "data" / "fixtures"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def scorer(checkpoint, cache_dir):
    from talkface.api import load_scorer
    return load_scorer(checkpoint, cache=cache_dir)


@pytest.fixture(scope="module")
def face_result(scorer, face_video):
    return scorer.score(face_video)


def test_scores_are_what_the_one_inference_path_gives(scorer, face_video, face_result):
    """The Scorer's numbers are `talkface.predict.predict`'s, the function every metric on a
    model card is computed with."""
    from talkface.predict import ClipFeatures, predict
    bundle = scorer.features(face_video)
    (pred,) = predict(scorer.loaded.model, [ClipFeatures.from_bundle(bundle)])
    assert face_result.scores == pytest.approx(pred.scores)
    assert set(face_result.scores) == set(TASKS)
    for score in face_result.tasks.values():
        assert score.task.label.lower() in score.meaning and "/5" in score.meaning


def test_unbounded_heads_are_clipped_the_same_for_users_and_for_metrics(tmp_path, face_video):
    """`original` has linear heads: a score outside [0, 1] must be clipped identically in what a
    user gets and in what training's validation metrics see."""
    import torch

    from talkface.api import load_scorer
    from talkface.predict import ClipFeatures, predict_arrays
    ck = make_random_checkpoint(tmp_path / "orig", "original")
    scorer = load_scorer(ck, cache=False)
    with torch.no_grad():
        for head in scorer.loaded.model.heads.values():
            head.bias.fill_(5.0)  # far above the task range
    result = scorer.score(face_video)
    assert all(v == 1.0 for v in result.scores.values())
    clip = ClipFeatures.from_bundle(scorer.features(face_video))
    preds, _ = predict_arrays(scorer.loaded.model, [clip])
    assert preds.tolist() == [[1.0] * 4]


def test_sync_figures_recover_the_offset_of_a_shifted_clip(scorer):
    """The fixture's audio is 6 frames late; the sync figures say so, with the sign convention
    the app and JSON use (> 0 = audio late), and the curves cover every frame."""
    result = scorer.score(FIXTURES / "01_offset.mp4")
    sync = result.sync
    assert sync.judged and sync.offset_frames == 6 and sync.offset_ms == pytest.approx(240)
    assert sync.mouth_open.shape == sync.audio_level.shape == (result.n_frames,)
    assert sync.curve.shape == sync.offsets.shape and int(sync.offsets[np.argmin(sync.curve)]) == 6
    early = scorer.score(FIXTURES / "02_offset.mp4").sync
    assert early.offset_frames == -4


def test_a_clip_without_audio_gets_lip_sync_not_judged(scorer):
    result = scorer.score(FIXTURES / "06_no_audio.mp4")
    lip = result.tasks["lip_sync"]
    assert lip.value is None and not lip.judged and lip.band == "not judged"
    assert "no audio" in lip.reason and "not judged" in lip.meaning
    assert all(result.tasks[t].judged for t in ("visual_quality", "temporal_quality", "overall"))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["scores"]["lip_sync"] is None and data["tasks"]["lip_sync"]["judged"] is False
    assert data["sync"]["judged"] is False and data["sync"]["offset_frames"] is None
    assert any("no audio" in w for w in result.warnings)


def test_result_is_json_serialisable_in_one_schema(face_result):
    data = json.loads(json.dumps(face_result.to_dict()))
    assert data["error"] is None and set(data["scores"]) == set(TASKS)
    assert len(data["attention"]["temporal"]) == face_result.n_frames
    assert data["tasks"]["lip_sync"]["range"] == [0.0, 1.0]
    assert data["face"]["scored_track"] == 0 and data["identity"]["consistency"] > 0.8
    brief = face_result.to_dict(detail=False)
    assert set(brief) == {"file", "scores", "mos", "band", "percentile", "sync", "identity",
                          "face", "out_of_distribution", "signals", "why", "lse", "warnings",
                          "error"}
    from talkface.signals import SIGNALS
    assert set(brief["signals"]) == set(SIGNALS) and set(brief["why"]) == set(TASKS)
    assert brief["signals"]["face_detail"] > 0 and brief["signals"]["freeze_share"] < 0.1
    assert data["signal_detail"]["freeze_share"]["better"] == "lower"
    assert set(brief["sync"]) >= {"offset_frames", "offset_ms", "confidence", "min_dist",
                                  "judged", "reliable"}


def test_a_new_scorer_reads_the_disk_cache_instead_of_extracting(checkpoint, cache_dir,
                                                                  face_video, face_result,
                                                                  monkeypatch):
    from talkface.api import load_scorer
    fresh = load_scorer(checkpoint, cache=cache_dir)  # an empty memory, the same disk cache
    monkeypatch.setattr(fresh.extractor, "extract",
                        lambda *a, **k: pytest.fail("extracted again instead of reading the cache"))
    assert fresh.score(face_video).scores == pytest.approx(face_result.scores)


def test_a_cold_score_probes_and_hashes_the_file_once(checkpoint, tmp_path, face_video,
                                                      monkeypatch):
    from talkface import api, cache, media
    from talkface.api import load_scorer
    scorer = load_scorer(checkpoint, cache=tmp_path / "c")
    probes, hashes = [], []
    real_probe, real_hash = media.probe, cache.file_hash
    monkeypatch.setattr(media, "probe", lambda p: probes.append(p) or real_probe(p))
    monkeypatch.setattr(api, "file_hash", lambda p: hashes.append(p) or real_hash(p))
    monkeypatch.setattr(cache, "file_hash", lambda p: hashes.append(p) or real_hash(p))
    scorer.score(face_video)
    assert len(probes) == 1 and len(hashes) == 1


def test_results_are_copies_a_caller_cannot_corrupt(scorer, face_video, face_result):
    first = scorer.score(face_video)
    first.info["tracks"].append("garbage")
    first.attention["temporal"][:] = 0
    with pytest.raises(AttributeError):
        first.warnings.append("mine")  # a tuple
    again = scorer.score(face_video)
    assert "garbage" not in again.info["tracks"]
    assert again.attention["temporal"].sum() == pytest.approx(1.0, abs=1e-3)


def test_one_scorer_serves_several_threads(checkpoint, tmp_path):
    """No lock in the app: concurrent clips give exactly the sequential results."""
    from talkface.api import load_scorer
    clips = [FIXTURES / n for n in ("00_clean.mp4", "01_offset.mp4", "03_blur.mp4",
                                    "04_frozen_mouth.mp4")]
    sequential = [load_scorer(checkpoint, cache=False).score(c).scores for c in clips]
    shared = load_scorer(checkpoint, cache=False)
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda c: shared.score(c).scores, clips))
    for a, b in zip(sequential, concurrent):
        assert a == pytest.approx(b, abs=1e-6)


def test_batched_scores_match_single_scores(scorer, face_video, noface_video, tmp_path):
    short = tmp_path / "short.mp4"
    from talkface import media
    clip = media.load_clip(face_video)
    media.write_video(short, clip.frames[:30], 25, clip.audio[: 16000 * 30 // 25])
    single = scorer.score(short)
    seen = []
    results = scorer.score_many([face_video, noface_video, short, tmp_path / "missing.mp4"],
                                progress=lambda done, total, what: seen.append((done, total)))
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[2].scores == pytest.approx(single.scores, abs=1e-5)  # padding changes nothing
    assert "no face" in results[1].error and results[1].to_dict()["scores"] is None
    assert "not found" in results[3].error
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # one progress shape: (done, total, what)


def test_warnings_name_the_problem(scorer, face_video, tmp_path):
    from talkface import media
    clip = media.load_clip(face_video)
    half = clip.frames.copy()
    half[30:] = 0  # the face disappears half way
    media.write_video(tmp_path / "half.mp4", half, 25, clip.audio)
    result = scorer.score(tmp_path / "half.mp4")
    assert any("no face found in" in w and "%" in w for w in result.warnings)
    assert not result.valid[40:].any()
    assert result.attention["temporal"][40:].max() < 1e-6  # face-less frames get no attention


@pytest.mark.parametrize("content,expected", [
    (b"", "the file is empty"), (b"this is not a video at all\n" * 20, "not a video file"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(400), "not a video file FFmpeg can read")])
def test_bad_files_raise_readable_errors(scorer, tmp_path, content, expected):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(NotAMediaFile) as info:
        scorer.score(bad)
    assert str(info.value).startswith("bad.mp4: ") and expected in str(info.value)


def test_faceless_clip_is_refused(scorer, noface_video):
    with pytest.raises(MediaError, match="no face was found in any frame"):
        scorer.score(noface_video)


def test_mismatched_backend_settings_are_refused_naming_both(checkpoint):
    from talkface.api import load_scorer
    with pytest.raises(SpecMismatch) as info:
        load_scorer(checkpoint, cache=False, detect_every=2)
    text = str(info.value)
    assert "checkpoint expects" in text and "extractor produces" in text
    assert "detect_every is 10 vs 2" in text


def test_importing_talkface_is_light():
    """`import talkface` loads neither torch nor gradio; `talkface.load_scorer` is the API's."""
    code = ("import sys, talkface; assert 'torch' not in sys.modules, 'torch'; "
            "assert 'gradio' not in sys.modules, 'gradio'; "
            "from talkface.api import load_scorer; assert talkface.load_scorer is load_scorer; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.gpu
def test_auto_device_scores_on_cuda_as_the_cpu_does(checkpoint, face_video):
    """With CUDA, `device="auto"` runs the model there, and a user gets the CPU's scores."""
    import torch

    from talkface.api import load_scorer
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    on_cuda = load_scorer(checkpoint, cache=False, device="auto")
    assert next(on_cuda.loaded.model.parameters()).device.type == "cuda"
    on_cpu = load_scorer(checkpoint, cache=False, device="cpu")
    assert on_cuda.score(face_video).scores == pytest.approx(
        on_cpu.score(face_video).scores, abs=1e-4)


def test_compare_stats():
    from talkface.leaderboard import leaderboard, mean_ci, pairwise, scores_frame, win_rate
    from talkface.results import ScoreResult, task_score
    from talkface.spec import tasks_from_names as names
    tasks = names(["overall"])

    def fake(value):
        return ScoreResult("x.mp4", {"overall": task_score(tasks[0], value)}, (), {}, None,
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


def test_errors_are_talkface_errors(scorer, tmp_path):
    with pytest.raises(TalkfaceError, match="file not found"):
        scorer.score(tmp_path / "nope.mp4")
    with pytest.raises(TalkfaceError, match="is a folder"):
        scorer.score(tmp_path)
