"""No-learning baselines: the offset estimator and the quality measures on the fixture clips."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from talkface.baselines import baseline_measures, baseline_scores, baseline_signals
from talkface.sync.correlation import correlation_curve
from talkface.synth.degrade import shift_audio


def estimate_offset(mouth, env):
    offsets, curve = correlation_curve(mouth, env)
    return int(offsets[int(np.argmax(curve))]), offsets, curve

FIXTURES = Path(__file__).parent / "data" / "fixtures"


@pytest.fixture(scope="module")
def bundles():
    from talkface.features.extract import Extractor
    extractor = Extractor(backend="landmarks")
    rows = list(csv.DictReader(open(FIXTURES / "manifest.csv")))
    return {Path(r["file"]).stem: (r, extractor.extract(FIXTURES / r["file"])) for r in rows}


@pytest.mark.parametrize("true", [-12, -5, -1, 0, 2, 7, 15])
def test_offset_estimator_recovers_a_shift_of_smooth_signals(true):
    rng = np.random.default_rng(abs(true) + 1)
    mouth = np.convolve(rng.random(160), np.ones(4) / 4, "same")
    env = np.roll(mouth, true)  # positive: the envelope comes `true` frames after the mouth
    best, offsets, curve = estimate_offset(mouth, env)
    assert best == true
    assert offsets.shape == curve.shape == (31,) and curve.max() > 0.9


def test_offset_sign_matches_the_degradation():
    """shift_audio(+d) delays the audio; the estimator must call that +d."""
    rng = np.random.default_rng(0)
    hop = 640
    loud = np.repeat(np.convolve(rng.random(100), np.ones(3) / 3, "same"), hop)
    audio = (loud * rng.normal(size=loud.size)).astype(np.float32)
    env = np.abs(shift_audio(audio, 4.0)).reshape(100, hop).mean(1)
    mouth = np.abs(audio).reshape(100, hop).mean(1)
    assert estimate_offset(mouth, env)[0] == 4


def test_offset_is_recovered_on_generated_clips(bundles):
    for name, (row, bundle) in bundles.items():
        if row["condition"] in ("clean", "offset"):
            measured = baseline_measures(bundle)["offset_frames"]
            assert measured == pytest.approx(float(row["offset_frames"]), abs=0.51), name


def test_measures_rank_their_own_degradation(bundles):
    m = {name: baseline_measures(b) for name, (_, b) in bundles.items()}
    clean = m["00_clean"]
    assert m["03_blur"]["sharpness"] < clean["sharpness"] - 1.0
    assert m["05_crf"]["blockiness"] > clean["blockiness"]
    assert m["05_crf"]["sharpness"] < clean["sharpness"]
    assert m["04_frozen_mouth"]["sync_peak"] < clean["sync_peak"] - 0.3


def test_scores_are_in_range_and_follow_the_labels(bundles):
    scores = {name: baseline_scores(b) for name, (_, b) in bundles.items()}
    for name, s in scores.items():
        for task, v in s.items():
            assert math.isnan(v) or 0.0 <= v <= 1.0, (name, task, v)
    clean = scores["00_clean"]
    assert scores["03_blur"]["visual_quality"] < clean["visual_quality"]
    assert scores["04_frozen_mouth"]["lip_sync"] < clean["lip_sync"]
    assert scores["02_offset"]["lip_sync"] < clean["lip_sync"]  # audio 4 frames early
    assert math.isnan(scores["06_no_audio"]["lip_sync"])
    assert not math.isnan(scores["06_no_audio"]["visual_quality"])
    assert all(math.isnan(v) for v in scores["07_no_face"].values())


def test_signals_hold_the_curves_the_app_plots(bundles):
    _, bundle = bundles["01_offset"]
    s = baseline_signals(bundle)
    t = bundle.n_frames
    for key in ("mouth_open", "audio_env", "sharpness", "noise", "blockiness", "shake",
                "frame_diff", "flicker", "valid"):
        assert s[key].shape == (t,), key
    assert s["offsets"].shape == s["correlation"].shape == (31,)
    assert s["offset_frames"] == 6


def test_columns_are_found_by_name_not_position(bundles):
    """Reordering the visual columns (and the spec with them) must not change any measure."""
    _, bundle = bundles["03_blur"]
    from talkface.features.extract import FeatureBundle
    order = np.random.default_rng(0).permutation(bundle.spec.visual_dim)
    names = tuple(bundle.spec.visual_names[i] for i in order)
    spec = bundle.spec.model_copy(update={"visual_names": names, "visual_groups": {}})
    shuffled = FeatureBundle(bundle.visual[:, order], bundle.audio, bundle.valid, spec,
                             bundle.info)
    assert baseline_measures(shuffled) == pytest.approx(baseline_measures(bundle), nan_ok=True)
