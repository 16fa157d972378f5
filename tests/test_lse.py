"""Paper-standard LSE-D / LSE-C (`talkface.sync.syncnet`, `talkface.sync.lse`) against
syncnet-python, the reference implementation (tests/syncnet_reference.py).

The SyncNet weights here are RANDOM, in the reference's layout and file format (VGG's trained
syncnet_v2.model is not shipped or downloaded): these tests check that talkface computes what
the reference computes on the same crops, audio and weights, not what trained weights say about
a clip. Covered: the MFCC front end, the distance figures and the offset's sign, the folded
encoders, the window count, the 224 px crop, the whole computation on a crop clip cut from a
bundled fixture with talkface's own face track, the weights loader's errors, and `talkface score
--syncnet-weights` end to end (JSON, CSV, printed line) and the app's Score tab line.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from talkface import media
from talkface.constants import HOP
from talkface.errors import CheckpointError
from talkface.sync.lse import clip_lse, crop_geometry, face_crops, syncnet_crop, track_span
from talkface.sync.syncnet import (ReferenceSyncNet, lse, load_syncnet, offset_distances,
                                   reference_mfcc, summarise, to_pcm16)

from syncnet_reference import (random_syncnet_weights, reference_lse, reference_modules,
                               write_crop_folder)

CLIP = Path(__file__).parent / "data" / "fixtures" / "00_clean.mp4"


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


def _reference_crop(img: np.ndarray, s: float, x: float, y: float) -> np.ndarray:
    """syncnet_python's SyncNetPipeline._crop for one frame, line for line."""
    cs = 0.40
    pad = int(s * (1 + 2 * cs))
    img_p = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                               value=(110, 110, 110))
    my, mx = y + pad, x + pad
    y1, y2 = int(my - s), int(my + s * (1 + 2 * cs))
    x1, x2 = int(mx - s * (1 + cs)), int(mx + s * (1 + cs))
    return cv2.resize(img_p[y1:y2, x1:x2], (224, 224))


@pytest.mark.parametrize("s,x,y", [(30.0, 80.0, 60.0), (41.7, 12.3, 9.8), (25.2, 150.4, 111.9),
                                   (90.0, 80.0, 60.0), (8.4, 79.5, 61.2)])
def test_crop_is_the_reference_crop(s, x, y):
    """Centred, at each corner, larger than the frame, smaller than the output; and the same
    pixels from a NativeFrame (cut from its planes) as from its RGB conversion."""
    rgb = (np.random.default_rng(2).random((120, 160, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(syncnet_crop(rgb, s, x, y), _reference_crop(rgb, s, x, y))
    native = media.NativeFrame.from_rgb(rgb)
    np.testing.assert_array_equal(syncnet_crop(native, s, x, y),
                                  syncnet_crop(native.to_rgb(), s, x, y))


def test_track_span_interpolates_gaps_and_geometry_smooths():
    boxes = np.full((10, 4), np.nan)
    boxes[2] = [10, 20, 50, 80]
    boxes[6] = [30, 20, 70, 80]
    first, last, filled = track_span(boxes)
    assert (first, last) == (2, 6)
    np.testing.assert_allclose(filled[:, 0], [10, 15, 20, 25, 30])
    geometry = crop_geometry(filled)
    assert geometry.shape == (5, 3)
    assert track_span(np.full((4, 4), np.nan)) is None


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


def test_too_short_no_audio_and_no_face_are_reasons_not_numbers(net):
    crops = np.zeros((5, 224, 224, 3), np.uint8)
    short = lse(net, crops, np.zeros(5 * HOP, np.int16))
    assert short.lse_d is None and "too short" in short.reason
    assert clip_lse(net, [], [None] * 3, None).reason == "no audio track"
    assert clip_lse(net, [], [None] * 3, np.zeros(3 * HOP, np.float32)).reason == "no face"
    assert short.to_dict()["weights"] == "syncnet_random.model"


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


# --- a crop clip cut from a bundled fixture with talkface's face track ----------------------------

@pytest.fixture(scope="module")
def crop_clip():
    """(crops (T, 224, 224, 3) RGB, 16-bit audio) of the fixture's scored face."""
    from talkface.features.extract import Extractor
    extractor = Extractor()
    bundle = extractor.extract(CLIP)
    boxes = np.array([[np.nan] * 4 if b is None else b for b in bundle.info["boxes"]])
    first, last, filled = track_span(boxes)
    crops = np.stack(list(face_crops(extractor.frames(CLIP), first, crop_geometry(filled))))
    pcm = to_pcm16(media.load_audio(CLIP))[first * HOP:(last + 1) * HOP]
    return crops, pcm


@pytest.fixture(scope="module")
def reference_figures(crop_clip, weights, tmp_path_factory) -> dict:
    return reference_lse(weights, write_crop_folder(*crop_clip, tmp_path_factory.mktemp("crops")))


@pytest.mark.slow
def test_lse_is_syncnet_pythons_on_a_fixture_crop_clip(net, crop_clip, reference_figures):
    crops, pcm = crop_clip
    assert len(crops) == 60 and crops.std() > 20  # the whole clip, a picture not a grey fill
    ours = lse(net, crops, pcm)
    assert ours.windows == len(crops) - 5
    assert abs(ours.lse_d - reference_figures["lse_d"]) < 1e-3
    assert abs(ours.lse_c - reference_figures["lse_c"]) < 1e-3
    assert ours.offset_frames == reference_figures["offset"]


@pytest.mark.slow
def test_score_cli_puts_lse_in_the_json_and_csv(weights, reference_figures, tmp_path, capsys):
    from helpers import make_random_checkpoint
    from talkface.cli import main
    checkpoint = make_random_checkpoint(tmp_path / "ckpt")
    out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
    assert main(["score", str(CLIP), "--checkpoint", str(checkpoint), "--no-cache",
                 "--syncnet-weights", str(weights), "--json", str(out_json),
                 "--csv", str(out_csv)]) == 0
    (record,) = json.loads(out_json.read_text())
    figures = record["lse"]
    assert figures["weights"] == "syncnet_random.model" and figures["reason"] is None
    assert abs(figures["lse_d"] - reference_figures["lse_d"]) < 1e-3
    assert abs(figures["lse_c"] - reference_figures["lse_c"]) < 1e-3
    assert figures["offset_frames"] == reference_figures["offset"]
    row = pd.read_csv(out_csv).iloc[0]
    assert row["lse_d"] == pytest.approx(figures["lse_d"], abs=1e-4)
    assert row["lse_offset_frames"] == figures["offset_frames"]
    assert "SyncNet LSE (syncnet_random.model): LSE-D" in capsys.readouterr().out


def test_score_cli_names_a_missing_weights_file(tmp_path, capsys):
    from talkface.cli import main
    assert main(["score", str(CLIP), "--checkpoint", str(tmp_path / "unused"),
                 "--syncnet-weights", str(tmp_path / "syncnet_v2.model")]) == 2
    assert "syncnet_v2.model: SyncNet weights file not found" in capsys.readouterr().err


def test_score_tab_shows_one_lse_line():
    from talkface.app.views import warnings_markdown
    from talkface.results import ScoreResult
    figures = {"lse_d": 7.1234, "lse_c": 6.5, "offset_frames": -1, "windows": 195,
               "weights": "syncnet_v2.model", "weights_sha256": "0" * 24, "reason": None}
    result = ScoreResult("clip.mp4", {}, (), {}, None, np.zeros(0, bool), 25.0, lse=figures)
    text = warnings_markdown(result)
    assert "SyncNet LSE (syncnet_v2.model): LSE-D 7.123, LSE-C 6.500, offset -1 frames" in text
    assert result.to_dict(detail=False)["lse"] == figures
    assert "SyncNet" not in warnings_markdown(ScoreResult("clip.mp4", {}, (), {}, None,
                                                          np.zeros(0, bool), 25.0))
