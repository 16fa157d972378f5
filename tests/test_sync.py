"""The sync stage: the model's time alignment (one embedding per frame, offsets by index), the
figures (offset sign, LSE-style confidence, curves), "cannot judge" with its reason, the sync
columns in the FeatureSpec, checkpoints that refuse tampered weights, and `train.sync` end to end
on clips the test makes.

A model trained here is a TEST FIXTURE (a few steps on a handful of clips), not a trained model;
the shipped sync model is tested in test_models.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.checkpoint import CheckpointMeta, save_checkpoint, shipped_checkpoint
from talkface.errors import CheckpointError
from talkface.sync.estimate import COLUMNS, SyncEstimator, load_sync_model
from talkface.sync.frontend import crop_input, lip_input, mel_power, normalise_mel, window_valid
from talkface.sync.model import SyncNet, SyncOptions

FIXTURES = Path(__file__).parent / "data" / "fixtures"


def test_one_embedding_per_frame_on_both_sides():
    t = 40
    model = SyncNet().eval()
    lips = torch.from_numpy(lip_input(np.random.rand(t, 40, 2), np.ones(t, bool)).T[None])
    crops = torch.from_numpy(crop_input(np.zeros((t, 48, 96), np.uint8), np.ones(t, bool))[None])
    mel = mel_power(np.random.default_rng(0).normal(0, 0.1, t * 640).astype(np.float32), t)
    assert mel.shape == (40, 4 * t + 1)
    with torch.no_grad():
        v = model.embed_video(lips, crops)
        a = model.embed_audio(torch.from_numpy(normalise_mel(mel)[None]))
    assert v.shape == a.shape == (1, 32, t - 4)  # window t <-> frames t..t+4 <-> mel 4t..4t+19
    assert torch.allclose(v.norm(dim=1), torch.ones(1, t - 4), atol=1e-5)


def test_identity_is_removed_from_the_inputs():
    """The clip's mean mouth shape and crop are subtracted: a constant mouth gives zeros."""
    valid = np.ones(10, bool)
    still = np.repeat(np.random.rand(1, 40, 2), 10, 0)
    assert np.abs(lip_input(still, valid)).max() < 1e-5
    crop = np.repeat(np.random.default_rng(0).integers(0, 255, (1, 48, 96), np.uint8), 10, 0)
    assert np.abs(crop_input(crop, valid)).max() < 1e-4
    gaps = valid.copy()
    gaps[3] = False
    assert not window_valid(gaps)[:4].any() and window_valid(gaps)[4:].all()


class Shifted(SyncNet):
    """A stand-in model whose audio embedding at window t equals the video embedding at t - d:
    a clip `d` frames out of sync by construction (audio late by d)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    def embed_video(self, lips, crops):
        t = lips.shape[2] - 4
        codes = torch.nn.functional.one_hot(torch.arange(t) % 32, 32).float().T
        return codes[None]

    def embed_audio(self, mel):
        t = (mel.shape[2] - 1) // 4 - 4
        codes = torch.nn.functional.one_hot((torch.arange(t) - self.d) % 32, 32).float().T
        return codes[None]


def _estimator(model) -> SyncEstimator:
    meta = CheckpointMeta(kind="sync", model_name="syncnet", fingerprint="test",
                          reliable_confidence=0.1)
    return SyncEstimator(model, meta)


def _speech(t: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    envelope = np.repeat(rng.uniform(0.05, 0.5, t), 640)
    return (envelope * rng.normal(0, 1, t * 640)).astype(np.float32)


@pytest.mark.parametrize("d", [-6, 0, 4, 11])
def test_offset_sign_and_figures(d):
    t = 100
    est = _estimator(Shifted(d))
    result, cols = est.analyse(np.random.rand(t, 40, 2), np.zeros((t, 48, 96), np.uint8),
                               np.ones(t, bool), _speech(t))
    assert result.judged and result.offset_frames == d  # > 0: audio late
    assert result.min_dist == pytest.approx(0.0, abs=1e-6)
    assert result.confidence > 1.0 and result.reliable
    assert list(result.offsets) == list(range(-15, 16))
    assert cols.shape == (t, len(COLUMNS)) and (cols[:, COLUMNS.index("sync_judged")] == 1).all()
    assert cols[0, COLUMNS.index("sync_clip_offset")] == pytest.approx(d / 15)
    assert len(result.window_times) >= 4 and set(result.window_offsets) == {d}


def test_cannot_judge_states_say_why():
    t = 100
    est = _estimator(Shifted(0))
    lips, mouths, valid = np.random.rand(t, 40, 2), np.zeros((t, 48, 96), np.uint8), \
        np.ones(t, bool)
    cases = {"no audio track": (valid, None, None),
             "silent": (valid, np.zeros(t * 640, np.float32), None),
             "too short": (np.r_[np.ones(8, bool), np.zeros(t - 8, bool)], _speech(t), None),
             "no speech": (valid, 1e-3 * np.ones(t * 640, np.float32) *
                           np.r_[np.ones(640), np.zeros(t * 640 - 640)], None),
             "profile": (valid, _speech(t), {"profile_fraction": 0.8})}
    for reason, (v, audio, pose) in cases.items():
        result, cols = est.analyse(lips, mouths, v, audio, pose=pose)
        assert not result.judged and reason in result.reason, (reason, result.reason)
        assert result.offset_frames is None and not cols.any()


def test_short_clips_search_fewer_offsets():
    est = _estimator(Shifted(2))
    t = 14  # 0.56 s
    result, _ = est.analyse(np.random.rand(t, 40, 2), np.zeros((t, 48, 96), np.uint8),
                            np.ones(t, bool), _speech(t))
    assert result.judged and result.offset_frames == 2 and max(result.offsets) < 15


def test_sync_checkpoint_round_trip_and_tamper_refusal(tmp_path):
    model = SyncNet(SyncOptions(dim=8, crops=False))
    folder = save_checkpoint(tmp_path / "sync", model, model.options.model_dump(), card="# card\n",
                             kind="sync")
    loaded = load_sync_model(folder)
    assert loaded.model.options.dim == 8 and loaded.fingerprint
    from safetensors.torch import load_file, save_file
    state = load_file(str(folder / "model.safetensors"))
    key = next(iter(state))
    state[key] = state[key] + 1
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="differ"):
        load_sync_model(folder)
    with pytest.raises(CheckpointError, match="not a talkface sync checkpoint"):
        load_sync_model(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="a quality checkpoint, not a sync checkpoint"):
        load_sync_model(shipped_checkpoint("default"))


@pytest.mark.slow
def test_train_sync_end_to_end_writes_a_loadable_model(tmp_path):
    """`python -m train.sync` on a folder of made clips: extraction, speaker split, training,
    evaluation, a sync checkpoint with a card, and an extractor that uses it."""
    import shutil

    from talkface.features import Extractor
    from train.sync import main
    folder = tmp_path / "footage"
    folder.mkdir()
    for name in ("00_clean", "01_offset", "02_offset", "03_blur", "04_frozen_mouth", "05_crf"):
        shutil.copy(FIXTURES / f"{name}.mp4", folder / f"{name}.mp4")
    out = tmp_path / "sync"
    assert main(["--real", str(folder), "--out", str(out), "--steps", "3"]) == 0
    est = load_sync_model(out)
    assert "speakers" in (out / "card.md").read_text()
    assert set(est.meta.data["split"]) == {f"{n}.mp4" for n in (
        "00_clean", "01_offset", "02_offset", "03_blur", "04_frozen_mouth", "05_crf")}
    extractor = Extractor(sync=str(out), identity_frames=0)
    bundle = extractor.extract(FIXTURES / "00_clean.mp4")
    a, b = extractor.spec.audio_groups["sync"]
    assert list(extractor.spec.audio_names[a:b]) == COLUMNS
    assert bundle.info["sync"]["judged"] and extractor.spec.sync_version == est.fingerprint


def test_silent_windows_do_not_vote_for_the_offset():
    """Windows whose audio is silence (where every offset fits about equally, here a little
    better at +5) count a tenth: the speech windows' offset 0 wins the whole-clip curve."""
    from talkface.sync.estimate import speech_weights
    s, offsets = 200, np.arange(-15, 16)
    t = np.arange(s)
    gap = t[None, :] - t[:, None]  # column - row: the offset each pair stands for
    speech = np.zeros(s, bool)
    speech[:40] = True  # 40 windows of speech, then 160 of silence
    dist = np.where(speech[:, None], 0.5 + 0.5 * (gap != 0), 1.0 - 0.2 * (gap == 5))
    audio = np.r_[_speech(44), np.zeros(160 * 640, np.float32)]
    weights = speech_weights(audio, s)
    assert weights[:30].min() == 1.0 and weights[60:].max() == pytest.approx(0.1)
    valid = np.ones(s, bool)
    plain = SyncEstimator.curve(dist, valid, offsets)
    weighted = SyncEstimator.curve(dist, valid, offsets, weights=weights)
    assert offsets[np.argmin(plain)] == 5 and offsets[np.argmin(weighted)] == 0
    assert (SyncEstimator.curve(dist, valid, offsets, weights=np.ones(s)) == plain).all()


def test_frame_rate_augmentation_holds_frames_without_shifting_them():
    from train.sync import resample_frames
    frames = np.arange(10, 30)
    assert (resample_frames(frames, 25.0) == frames).all()
    held = resample_frames(frames, 12.5)
    assert len(np.unique(held)) <= 11 and held[0] == 10 and np.abs(held - frames).max() <= 1
    assert abs(np.mean(held - frames)) <= 0.5  # no systematic lag of the video


def test_resolution_and_jpeg_augmentation_change_crops_not_their_layout():
    from train.sync import SyncTrainConfig, degrade_crops
    from train.sync_data import SyncClip
    rng = np.random.default_rng(0)
    t = 40
    mouths = np.clip(rng.normal(128, 40, (t, 48, 96)), 0, 255).astype(np.uint8)
    valid = np.ones(t, bool)
    clip = SyncClip("a", "a", lip_input(rng.random((t, 40, 2)), valid), crop_input(mouths, valid),
                    np.zeros((40, 4 * t + 1), np.float32), valid, window_valid(valid),
                    np.zeros(t), np.zeros(t * 640, np.float32), mouths)
    frames = np.arange(5, 25)
    off = degrade_crops(clip, frames, rng, SyncTrainConfig())
    assert (off == clip.crops[frames]).all()
    for fields in ({"resolution_probability": 1.0}, {"jpeg_probability": 1.0}):
        out = degrade_crops(clip, frames, rng, SyncTrainConfig(**fields))
        assert out.shape == off.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert 0.05 < np.abs(out - off).mean() < np.abs(off).mean()


def test_reliable_threshold_keeps_95_percent_of_shown_offsets_right():
    from train.sync_eval import fit_reliable
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 400)
    right = rng.uniform(0, 1, 400) < conf  # the more confident, the more often right
    fit = fit_reliable(list(zip(conf, right)), other=[0.1, 0.2, 0.3])
    assert fit["reliable_precision"] >= 0.95 and 0.02 < fit["reliable_coverage"] < 0.5
    assert fit_reliable(list(zip(conf, right)), other=[0.99])["reliable_threshold"] >= 0.99
    never = fit_reliable(list(zip(conf, conf < 0.5)), other=list(np.linspace(0, 0.4, 21)))
    assert not never["reliable_target_met"] and never["reliable_threshold"] == pytest.approx(0.38)


def test_clips_whose_track_may_not_be_own_speech_are_not_positives():
    import pandas as pd

    from train.sync import sync_positives
    table = pd.DataFrame({"name": ["a", "b", "c", "d", "e"], "positive": [True] * 4 + [False],
                          "notes": ["own speech", "DOUBTFUL own-speech: dubbed",
                                    "a MIXTURE of both voices", None, "SHORT"]})
    assert sync_positives(table) == {"a", "d"}
