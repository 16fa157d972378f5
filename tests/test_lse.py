"""Paper-standard LSE-D / LSE-C (`talkface.sync.syncnet`) against
syncnet-python, the reference implementation (tests/syncnet_reference.py).

The SyncNet weights here are RANDOM, in the reference's layout and file format (VGG's trained
syncnet_v2.model is not shipped or downloaded): these tests check that talkface computes what
the reference computes on the same crops, audio and weights, not what trained weights say about
a clip. Covered: the MFCC front end, the distance figures and the offset's sign, the folded
encoders, the window count on crop clips shorter or longer than their audio, and the weights
loader's errors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.constants import HOP
from talkface.errors import CheckpointError
from talkface.sync.syncnet import (ReferenceSyncNet, lse, load_syncnet, offset_distances,
                                   reference_mfcc, summarise)

from syncnet_reference import (random_syncnet_weights, reference_lse, reference_modules,
                               write_crop_folder)


@pytest.fixture(scope="module")
def reference():
    try:
        return reference_modules()
    except ImportError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def weights(reference, tmp_path_factory) -> Path:
    return random_syncnet_weights(tmp_path_factory.mktemp("syncnet") / "syncnet_random.model")


@pytest.fixture(scope="module")
def net(weights):
    return load_syncnet(weights)


def test_layout_is_the_reference_s(reference):
    ours, theirs = ReferenceSyncNet().state_dict(), reference[0].S().state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_mfcc_is_python_speech_features(reference):
    import python_speech_features as psf  # syncnet-python's MFCC (requirements-reference.txt)
    rng = np.random.default_rng(0)
    for n in (100, 400, 401, 16000 + 37):
        pcm = (rng.standard_normal(n) * 4000).astype(np.int16)
        np.testing.assert_allclose(reference_mfcc(pcm), psf.mfcc(pcm, 16000).T, rtol=0,
                                   atol=1e-9)
    silence = np.zeros(3200, np.int16)  # zero energy: the reference's eps floor
    np.testing.assert_allclose(reference_mfcc(silence), psf.mfcc(silence, 16000).T, rtol=0,
                               atol=1e-9)


def test_figures_are_calc_pdists_and_the_offset_has_syncnets_sign(reference):
    """Audio 4 frames late: the reference's offset is -4 (it counts audio leading as
    positive), and LSE-D / LSE-C are its formulas on calc_pdist's table."""
    rng = np.random.default_rng(1)
    video = torch.from_numpy(rng.standard_normal((40, 64)).astype(np.float32))
    audio = torch.from_numpy(rng.standard_normal((40, 64)).astype(np.float32))
    audio[4:] = video[:-4] + 0.1 * audio[4:]
    ref = reference[1].calc_pdist(video, audio, vshift=15)
    mdist = torch.mean(torch.stack(ref, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    ours = summarise(offset_distances(video, audio))
    assert ours["offset_frames"] == int(15 - minidx) == -4
    assert ours["lse_d"] == pytest.approx(float(minval), abs=1e-5)
    assert ours["lse_c"] == pytest.approx(float(torch.median(mdist) - minval), abs=1e-5)


def test_folded_encoders_are_the_reference_streams(net):
    x = torch.rand(2, 3, 5, 224, 224) * 255
    mfcc = torch.randn(4, 1, 13, 20) * 10
    with torch.inference_mode():
        pairs = [(net.lip(x.reshape(2, 15, 224, 224).contiguous(
                     memory_format=torch.channels_last)), net.net.forward_lip(x)),
                 (net.audio(mfcc), net.net.forward_aud(mfcc))]
    for folded, expected in pairs:
        scale = float(expected.abs().max())
        torch.testing.assert_close(folded, expected, rtol=0, atol=1e-4 * scale)


@pytest.mark.slow
def test_window_count_and_batching_follow_the_reference(net, weights, tmp_path):
    """min(frames, samples // 640) - 5 windows whichever side is shorter; crops streamed in
    small batches give the figures of the whole array."""
    rng = np.random.default_rng(3)
    crops = (rng.random((10, 224, 224, 3)) * 255).astype(np.uint8)
    for frames_of_audio in (8, 12):
        pcm = (rng.standard_normal(frames_of_audio * HOP) * 3000).astype(np.int16)
        ref = reference_lse(weights, write_crop_folder(crops, pcm, tmp_path / str(
            frames_of_audio)))
        ours = lse(net, iter(crops), pcm, batch=2)
        assert ours.windows == min(10, frames_of_audio) - 5
        assert ours.offset_frames == ref["offset"]
        assert abs(ours.lse_d - ref["lse_d"]) < 1e-3 and abs(ours.lse_c - ref["lse_c"]) < 1e-3
        whole = lse(net, crops, pcm)
        assert (whole.lse_d, whole.offset_frames) == pytest.approx((ours.lse_d,
                                                                    ours.offset_frames))


def test_weights_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.model.*not found"):
        load_syncnet(tmp_path / "nowhere.model")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_syncnet(tmp_path)
    text = tmp_path / "notes.model"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.model.*not a PyTorch weights file"):
        load_syncnet(text)
    module = tmp_path / "whole_module.model"
    torch.save(torch.nn.Linear(2, 2), module)
    with pytest.raises(CheckpointError, match="whole_module.model.*does not unpickle"):
        load_syncnet(module)
    other = tmp_path / "other_net.pth"
    torch.save({"netcnnaud.0.weight": torch.zeros(3), "head.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="other_net.pth.*missing.*unexpected head.weight"
                                              ".*wrong shape netcnnaud.0.weight"):
        load_syncnet(other)


def test_weights_load_as_saved(net, weights):
    saved = torch.load(weights, weights_only=True)
    loaded = net.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())
    assert net.weights == "syncnet_random.model" and len(net.sha256) == 24


def test_too_short_is_a_reason_not_numbers(net):
    crops = np.zeros((5, 224, 224, 3), np.uint8)
    short = lse(net, crops, np.zeros(5 * HOP, np.int16))
    assert short.lse_d is None and "too short" in short.reason
    assert short.to_dict()["weights"] == "syncnet_random.model"
