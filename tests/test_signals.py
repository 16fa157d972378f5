"""Measured signals (`talkface.signals`): declared once, each moved the right way by the failure
it names on clips these tests make from a real face clip, the others left alone; and the
calibration pieces that read them (percentiles, penalties, the smooth monotone map)."""
from __future__ import annotations

import numpy as np
import pytest

from talkface import media
from talkface.calibration import (Calibration, apply_monotone, excess, fit_monotone,
                                  fit_penalties, penalty_term, percentiles)
from talkface.signals import SIGNAL_LIST, SIGNALS, explain, standing
from talkface.synth import degrade
from talkface.tasks import TASKS

VISUAL = ("face_detail", "noise", "blockiness")


# --- the table --------------------------------------------------------------------------------

def test_every_signal_is_declared_once_with_a_task_range_and_direction():
    assert len(SIGNALS) == len(SIGNAL_LIST)
    for s in SIGNAL_LIST:
        assert s.task in TASKS and s.low < s.high and s.label and s.description
        assert s.direction in ("higher", "lower", "typical")


def test_standing_puts_the_good_side_at_100_and_explain_names_the_worst_first():
    assert standing(SIGNALS["face_detail"], 3.0) == 3.0  # higher is better
    assert standing(SIGNALS["freeze_share"], 98.0) == pytest.approx(2.0)  # lower is better
    assert standing(SIGNALS["blink_rate"], 50.0) == 100.0  # typical: the median is best
    assert standing(SIGNALS["blink_rate"], 1.0) == pytest.approx(2.0)
    standings = {"face_detail": 5.0, "noise": 1.0, "blockiness": 60.0, "freeze_share": 0.0}
    assert explain("visual_quality", standings) == ("noise", "face_detail")
    assert explain("temporal_quality", standings) == ("freeze_share",)
    assert explain("temporal_quality", {"freeze_share": 50.0}) == ()
    # a signal whose penalty costs the task is named, the costliest first, before it is a concern
    costs = {"generated_look": 0.15, "noise": 0.01, "face_detail": 0.05}
    assert explain("overall", {"generated_look": 20.0, **standings}, costs=costs) == (
        "generated_look", "face_detail")


# --- calibration ------------------------------------------------------------------------------

def test_the_smooth_map_keeps_every_order_the_model_gives():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.2, 0.9, 300)
    target = np.clip((raw - 0.2) / 0.7 + rng.normal(0, 0.1, 300), 0, 1)  # saturates at 0 and 1
    from sklearn.isotonic import IsotonicRegression
    curve = fit_monotone(raw, target)
    steps = {"x": curve["x"], "y": IsotonicRegression().fit(raw, target).predict(curve["x"])}
    assert len(np.unique(apply_monotone(steps, raw))) < len(raw) - 10  # steps tie clips...
    assert len(np.unique(apply_monotone(curve, raw))) == len(raw)  # ...the smooth map none
    x = np.linspace(-0.5, 1.5, 4001)
    y = apply_monotone(curve, x)
    assert np.all(np.diff(y) > 0) and y.min() > 0 and y.max() < 1
    assert np.corrcoef(apply_monotone(curve, raw), target)[0, 1] > 0.9


def test_percentiles_and_penalties_read_against_real_recordings():
    table = percentiles(np.linspace(0.0, 0.1, 101))  # a lower-is-better signal
    cal = Calibration(signals={"freeze_share": table})
    assert cal.signal_percentile("freeze_share", 0.05) == pytest.approx(50, abs=1)
    assert cal.signal_percentile("freeze_share", 0.5) == 100.0
    assert cal.signal_percentile("freeze_share", None) is None
    term = penalty_term("freeze_share", "lower", table)
    assert excess(term, 0.05) == 0.0 and excess(term, 0.09) == 0.0  # typical: free
    assert 0 < excess(term, 0.2) < excess(term, 0.4) < 1  # beyond: rising, bounded
    cal.penalties = {"temporal_quality": [{**term, "weight": 0.5}]}
    assert cal.penalty("temporal_quality", {"freeze_share": 0.05}) == 0.0
    assert cal.penalty("temporal_quality", {"freeze_share": 0.4}) == pytest.approx(
        0.5 * excess(term, 0.4))
    assert cal.penalty("visual_quality", {"freeze_share": 0.4}) == 0.0
    assert Calibration.from_meta(cal.to_meta()).penalties == cal.penalties


def test_fitted_penalties_recover_the_weight_that_made_the_labels():
    rng = np.random.default_rng(1)
    term = penalty_term("freeze_share", "lower", percentiles(np.linspace(0, 0.1, 101)))
    other = penalty_term("noise", "lower", percentiles(np.linspace(0, 2, 101)))
    signals = [{"freeze_share": f, "noise": n} for f, n in zip(rng.uniform(0, 0.8, 200),
                                                               rng.uniform(0, 1.5, 200))]
    residual = np.array([-0.6 * excess(term, s["freeze_share"]) for s in signals])
    fitted = fit_penalties([term, other], signals, residual)
    assert [t["signal"] for t in fitted] == ["freeze_share"]  # noise explains nothing: dropped
    assert fitted[0]["weight"] == pytest.approx(0.6, abs=1e-3)


# --- signals on made clips --------------------------------------------------------------------

@pytest.fixture(scope="module")
def source(face_video):
    return media.load_clip(face_video)


@pytest.fixture(scope="module")
def extractor():
    from talkface.features import Extractor
    return Extractor(identity_frames=0)


def _signals(tmp_path, extractor, source, frames, name, fps=None, crf=18):
    from talkface.signals import measure_signals
    path = tmp_path / f"{name}.mp4"
    media.write_video(path, frames, fps or source.fps, audio=source.audio,
                      sample_rate=source.sample_rate, crf=crf)
    return measure_signals(extractor.extract(path))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, extractor, source):
    return _signals(tmp_path_factory.mktemp("clean"), extractor, source, source.frames, "clean")


@pytest.mark.slow
def test_freezes_raise_the_freeze_signals_and_leave_the_picture_alone(tmp_path, extractor,
                                                                       source, clean):
    frames = degrade.freeze_frames(source.frames, 0.5, np.random.default_rng(0))
    frozen = _signals(tmp_path, extractor, source, frames, "frozen")
    assert clean["freeze_share"] < 0.1 < 0.35 < frozen["freeze_share"]
    assert frozen["longest_freeze"] >= 0.12 > clean["longest_freeze"]
    for name in VISUAL:
        assert frozen[name] == pytest.approx(clean[name], rel=0.15), name


@pytest.mark.slow
def test_a_low_frame_rate_source_is_not_frozen(tmp_path, extractor, source, clean):
    """Every other frame at half the rate: the 25 fps grid holds each frame twice, which is the
    source's cadence, not a freeze."""
    half = _signals(tmp_path, extractor, source, source.frames[::2], "half", fps=source.fps / 2)
    assert half["freeze_share"] < 0.1


@pytest.mark.slow
def test_blur_lowers_face_detail_only(tmp_path, extractor, source, clean):
    blurred = _signals(tmp_path, extractor, source,
                       degrade.gaussian_blur(source.frames, 3.0), "blur")
    assert blurred["face_detail"] < clean["face_detail"] - 1.0
    assert blurred["freeze_share"] < 0.1 and blurred["flicker"] < 2 * clean["flicker"] + 1e-3


@pytest.mark.slow
def test_the_same_face_smaller_keeps_its_detail_and_a_soft_one_does_not(tmp_path, extractor,
                                                                         source, clean):
    """Half the resolution: the crop becomes an enlargement and the resolution loss is added
    back; the same number of pixels blurred is still read as soft."""
    import cv2
    small = np.stack([cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
                      for f in source.frames])
    half = _signals(tmp_path, extractor, source, small, "small")
    soft = _signals(tmp_path, extractor, source, degrade.gaussian_blur(small, 3.0), "soft")
    assert abs(half["face_detail"] - clean["face_detail"]) < 0.8
    assert soft["face_detail"] < half["face_detail"] - 1.0


def _blocks(frames: np.ndarray, q: float = 60.0) -> np.ndarray:
    """JPEG-like coding damage: each 8x8 block's DCT coefficients quantised with step `q`."""
    import cv2
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        ycc = cv2.cvtColor(frame, cv2.COLOR_RGB2YCrCb).astype(np.float32)
        h, w = (ycc.shape[0] // 8) * 8, (ycc.shape[1] // 8) * 8
        for y in range(0, h, 8):
            for x in range(0, w, 8):
                block = cv2.dct(ycc[y:y + 8, x:x + 8, 0])
                ycc[y:y + 8, x:x + 8, 0] = cv2.idct(np.round(block / q) * q)
        out[i] = cv2.cvtColor(np.clip(ycc, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)
    return out


@pytest.mark.slow
def test_noise_and_compression_raise_their_own_signals(tmp_path, extractor, source, clean):
    noisy = _signals(tmp_path, extractor, source,
                     degrade.additive_noise(source.frames, 12.0, np.random.default_rng(0)),
                     "noisy")
    blocky = _signals(tmp_path, extractor, source, _blocks(source.frames), "blocky")
    assert noisy["noise"] > 2 * clean["noise"]
    assert blocky["blockiness"] > clean["blockiness"] + 0.1
    assert noisy["freeze_share"] < 0.1 and blocky["freeze_share"] < 0.1


@pytest.mark.slow
def test_flicker_and_shake_raise_their_own_signals(tmp_path, extractor, source, clean):
    rng = np.random.default_rng(0)
    flickering = _signals(tmp_path, extractor, source,
                          degrade.colour_flicker(source.frames, 0.08, rng), "flicker")
    shaking = _signals(tmp_path, extractor, source, degrade.shake(source.frames, 4.0, rng),
                       "shake")
    assert flickering["flicker"] > 3 * clean["flicker"]
    assert flickering["head_jitter"] < 2 * clean["head_jitter"] + 1e-3
    assert shaking["head_jitter"] > 2 * clean["head_jitter"]
    assert shaking["face_detail"] == pytest.approx(clean["face_detail"], abs=1.0)


@pytest.mark.slow
def test_a_pasted_low_resolution_mouth_lowers_mouth_detail(tmp_path, extractor, source, clean,
                                                           face_video):
    bundle = extractor.extract(face_video)
    boxes = np.array([b if b else [np.nan] * 4 for b in bundle.info["boxes"]], float)
    # boxes are in the file's pixels on the 25 fps grid; load_clip's frames are on the same grid,
    # downscaled to at most 512 px
    boxes *= source.frames.shape[2] / bundle.info["width"]
    pasted = degrade.paste_lowres(source.frames, boxes[:len(source.frames)], 2.0)
    mouth = _signals(tmp_path, extractor, source, pasted, "pasted")
    assert mouth["mouth_detail"] < clean["mouth_detail"] - 0.5


@pytest.mark.slow
def test_a_pasted_mouth_of_the_wrong_colour_and_a_jittering_one(tmp_path, extractor, source,
                                                                 clean, face_video):
    bundle = extractor.extract(face_video)
    boxes = np.array([b if b else [np.nan] * 4 for b in bundle.info["boxes"]], float)
    boxes = boxes[:len(source.frames)] * source.frames.shape[2] / bundle.info["width"]
    rng = np.random.default_rng(0)
    tinted = _signals(tmp_path, extractor, source,
                      degrade.colour_mismatch(source.frames, boxes, 0.3, rng), "tinted")
    jittering = _signals(tmp_path, extractor, source,
                         degrade.region_jitter(source.frames, boxes, 6.0, rng, 2.0), "jitter")
    assert tinted["colour_step"] > 1.25 * clean["colour_step"]  # the mouth region stands out
    assert jittering["mouth_jitter"] > 1.5 * clean["mouth_jitter"]
    assert jittering["head_jitter"] < 2 * clean["head_jitter"] + 1e-3  # the head stays put


@pytest.mark.slow
def test_a_frozen_picture_has_no_head_motion(tmp_path, extractor, source,
                                                                  clean):
    still = _signals(tmp_path, extractor, source, np.repeat(source.frames[:1], len(source.frames),
                                                            0), "still")
    assert clean["head_motion"] > 0.2 and still["head_motion"] < 0.5 * clean["head_motion"]
    assert still["freeze_share"] > 0.9  # a still picture throughout: every frame repeats


def _bundle(ear: np.ndarray, consistency: float = 0.99):
    """A FeatureBundle with eye-aspect-ratio columns and an identity entry, nothing else."""
    from talkface.features.extract import FeatureBundle
    from tests.helpers import make_spec
    spec = make_spec(2, 1).model_copy(update={"visual_names": ("ear_right", "ear_left")})
    visual = np.stack([ear, ear], 1).astype(np.float32)
    return FeatureBundle(visual, np.zeros((len(ear), 1), np.float32), np.ones(len(ear), bool),
                         spec, {"identity": {"consistency": consistency}})


def test_a_mouth_that_stops_while_the_speech_goes_on_stalls():
    from talkface.features.extract import FeatureBundle
    from talkface.signals import mouth_stall
    from tests.helpers import make_spec
    n = 100
    spec = make_spec(1, 1).model_copy(update={"visual_names": ("mouth_velocity",),
                                              "audio_names": ("log_rms",)})
    moving = np.where(np.arange(n) % 2, 0.03, -0.03)  # the lip gap changes every frame
    stalled = moving.copy()
    stalled[40:70] = 0.0  # 1.2 s of still lips
    speech = np.full((n, 1), -20.0, np.float32)  # loud throughout (dB)

    def stall(mouth, audio=speech):
        return mouth_stall(FeatureBundle(mouth[:, None].astype(np.float32), audio,
                                         np.ones(n, bool), spec, {}))
    assert stall(moving) == 0.0
    assert stall(stalled) == pytest.approx(0.3)
    assert stall(stalled, np.full((n, 1), -100.0, np.float32)) is None  # no speech: no verdict


def test_blinks_are_counted_from_dips_of_the_eyes_and_identity_drift_from_the_descriptors():
    from talkface.signals import blink_rate, identity_drift
    open_eyes = np.full(250, 0.26) + np.random.default_rng(0).normal(0, 0.002, 250)  # 10 s
    blinking = open_eyes.copy()
    for start in (30, 100, 170, 230):  # four blinks of 3 frames, the lids closing part way
        blinking[start:start + 3] = 0.21
    assert blink_rate(_bundle(open_eyes)) == 0.0
    assert blink_rate(_bundle(blinking)) == pytest.approx(24.0)  # 4 in 10 s
    assert identity_drift(_bundle(open_eyes, 0.6)) == pytest.approx(0.4)


def test_audio_offset_reads_only_a_confident_sync_estimate_and_costs_lip_sync_alone():
    from talkface.signals import audio_offset
    ear = np.full(50, 0.26)

    def offset(**sync):
        bundle = _bundle(ear)
        bundle.info["sync"] = {"judged": True, "reliable_confidence": 0.1, **sync}
        return audio_offset(bundle)
    assert offset(offset_frames=-8, confidence=0.3) == 8.0  # confident: its size, either way
    assert offset(offset_frames=8, confidence=0.05) == 0.0  # not trusted: no evidence
    assert offset(offset_frames=0, confidence=0.3) == 0.0
    assert offset(judged=False, offset_frames=None) is None  # lip sync not judged
    assert audio_offset(_bundle(ear)) is None  # no sync model
    term = penalty_term("audio_offset", "lower", percentiles(np.r_[np.zeros(80), np.ones(21)]))
    cal = Calibration(penalties={"lip_sync": [{**term, "weight": 0.6}]})
    assert cal.penalty("lip_sync", {"audio_offset": 0.0}) == 0.0
    assert cal.penalty("lip_sync", {"audio_offset": 1.0}) == 0.0  # within real recordings' range
    assert 0.3 < cal.penalty("lip_sync", {"audio_offset": 8.0}) <= 0.6
    assert cal.penalty("visual_quality", {"audio_offset": 8.0}) == 0.0
