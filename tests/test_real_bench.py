"""The real-footage benchmark (`synth --from-real`) on a footage folder the test makes from
bundled clips: speakers split whole, every factor rendered with its label, the offset made from
the recording's own neighbouring audio, the artifacts confined to the lower face, and the same
seed giving the same plan."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from talkface import media
from talkface.synth import labels
from talkface.synth.footage import read_footage, speaker_split

FIXTURES = Path(__file__).parent / "data" / "fixtures"


@pytest.fixture(scope="module")
def footage(tmp_path_factory, face_video) -> Path:
    folder = tmp_path_factory.mktemp("footage")
    rows = []
    for i, name in enumerate(("00_clean", "03_blur", "05_crf")):
        shutil.copy(FIXTURES / f"{name}.mp4", folder / f"{name}.mp4")
        rows.append({"file": f"{name}.mp4", "kind": "talking_with_audio",
                     "speaker_id": f"puppet{i}"})
    shutil.copy(face_video, folder / "real.mp4")
    rows.append({"file": "real.mp4", "kind": "talking_with_audio", "speaker_id": "woman",
                 "sync_note": "offset in the source"})
    shutil.copy(FIXTURES / "06_no_audio.mp4", folder / "silent.mp4")
    rows.append({"file": "silent.mp4", "kind": "video_only", "speaker_id": "puppet0"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def test_footage_reading_speakers_and_positives(footage, tmp_path):
    table = read_footage(footage)
    assert list(table["positive"]) == [True, True, True, False, False]  # sync_note, video only
    split = speaker_split(table)
    assert set(split) == {"puppet0", "puppet1", "puppet2", "woman"}
    # same_speaker_as links files into one speaker
    linked = tmp_path / "linked.csv"
    pd.DataFrame({"file": ["a.mp4", "b.mp4", "c.mp4"],
                  "same_speaker_as": ["", "a.mp4 (possibly)", ""]}).to_csv(linked, index=False)
    speakers = read_footage(linked)["speaker"].tolist()
    assert speakers[0] == speakers[1] != speakers[2]


@pytest.mark.slow
def test_benchmark_from_real_footage(footage, tmp_path):
    from talkface.synth.real import build_from_real, plan, analyse_sources
    out = tmp_path / "bench"
    manifest = pd.read_csv(build_from_real(footage, out, seed=3, segments=1, seconds=1.0,
                                           steps=2, progress=False))
    assert (manifest["label_version"] == labels.REAL_LABEL_VERSION).all()
    # one side per speaker
    assert manifest.groupby("speaker")["split"].nunique().max() == 1
    # every row's labels are the formulas' for its parameters
    for _, row in manifest.iterrows():
        params = {k: row[k] for k in labels.PARAMS}
        expected = labels.compute_labels(params, has_audio=bool(row["has_audio"]))
        for task, value in expected.items():
            assert (np.isnan(value) and np.isnan(row[task])) or row[task] == pytest.approx(
                value, abs=1e-5)
    # the video-only source gets no lip-sync factor and no audio
    silent = manifest[manifest["source"] == "silent.mp4"]
    assert (silent["has_audio"] == 0).all() and silent["lip_sync"].isna().all()
    assert not set(silent["condition"]) & set(labels.LIP_FACTORS + ["offset_frames"])
    for f in manifest["file"]:
        clip = media.load_clip(out / f)
        assert len(clip.frames) == 25
    # the same seed plans the same benchmark
    sources = analyse_sources(footage, out / ".sources")
    assert [j.params for j in plan(sources, 3, 1, 1.0, 2)] == \
        [j.params for j in plan(sources, 3, 1, 1.0, 2)]
    # a lip-sync-only benchmark: only those factors, only recordings with their own speech
    lip = plan(sources, 3, 2, 1.0, 2, factors=["offset_frames", "mouth_time"])
    assert {j.condition for j in lip} == {"clean", "offset_frames", "mouth_time"}
    assert all(j.has_audio for j in lip)
    with pytest.raises(Exception, match="unknown factors"):
        plan(sources, 3, 1, 1.0, 2, factors=["sharpen"])


def test_an_offset_uses_the_recordings_own_neighbouring_audio():
    from talkface.synth.real import _audio
    audio = np.arange(100 * 640, dtype=np.float32)
    late = _audio(audio, start=20, n=10, offset=3)  # audio late by 3 frames
    assert late[0] == audio[17 * 640] and late[-1] == audio[27 * 640 - 1]
    early = _audio(audio, start=20, n=10, offset=-2)
    assert early[0] == audio[22 * 640]
    assert not (late == 0).any()  # no silence inserted


def test_artifacts_stay_on_the_lower_face():
    from talkface.synth import degrade
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (6, 120, 100, 3), np.uint8)
    boxes = np.tile([20.0, 10.0, 80.0, 110.0], (6, 1))
    x0, y0, x1, y1 = degrade.lower_face(boxes[0])
    for out in (degrade.paste_lowres(frames, boxes, 2.0),
                degrade.colour_mismatch(frames, boxes, 0.2, rng),
                degrade.region_jitter(frames, boxes, 3.0, rng),
                degrade.freeze_lower_face(frames, boxes, 1.0, rng),
                degrade.mouth_from_elsewhere(frames, boxes, 1.0, frames[::-1], boxes, rng)):
        changed = np.any(out != frames, axis=(0, 3))
        assert changed.any()
        assert not changed[:y0].any() and not changed[:, :x0].any() and \
            not changed[:, x1:].any() and not changed[y1:].any()


def test_generator_like_artifacts_change_only_what_they_name():
    """Issue 19's factors: each changes its own region (or, for frame-level ones, its own
    frames), and a strength of 0 changes nothing."""
    from talkface.synth import degrade
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 120, 100, 3), np.uint8)
    boxes = np.tile([20.0, 10.0, 80.0, 110.0], (12, 1))

    def changed_rows_cols(out):
        changed = np.any(out != frames, axis=(0, 3))
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        return (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) if changed.any() \
            else None

    lx0, ly0, lx1, ly1 = degrade.lower_face(boxes[0])
    y0, y1 = changed_rows_cols(degrade.mouth_blur(frames, boxes, 3.0))[:2]
    assert y0 >= ly0 and y1 <= ly1  # the mouth only
    for region, out in ((degrade.upper_face(boxes[0]), degrade.stiff_head(frames, boxes, 1.0,
                                                                           rng)),
                        (degrade.eye_band(boxes[0]), degrade.no_blinks(frames, boxes, 1.0, rng))):
        x0, y0, x1, y1 = region
        r0, r1, c0, c1 = changed_rows_cols(out)
        assert r0 >= y0 and r1 <= y1 and c0 >= x0 and c1 <= x1
        assert ly0 >= y1 - 0.1 * (boxes[0][3] - boxes[0][1])  # the mouth keeps moving
    for out in (degrade.face_smoothing(frames, boxes, 0.8),
                degrade.texture_flicker(frames, boxes, 0.5, rng)):
        r0, r1, c0, c1 = changed_rows_cols(out)
        assert r0 >= 10 and r1 <= 110 and c0 >= 20 and c1 <= 80  # inside the face box
    repeated = degrade.frame_repeats(frames, 0.25)  # every 4th frame repeats the one before
    same = [i for i in range(1, 12) if (repeated[i] == repeated[i - 1]).all()]
    assert same == [3, 7, 11]
    still = np.repeat(frames[:1], 12, 0)
    assert (degrade.over_smooth(still, 2.0) == still).all()  # nothing moving: nothing to smooth
    assert np.abs(degrade.over_smooth(frames, 2.0).astype(int) - frames).mean() > 10
    for fn in (lambda: degrade.mouth_blur(frames, boxes, 0.0),
               lambda: degrade.stiff_head(frames, boxes, 0.0, rng),
               lambda: degrade.frame_repeats(frames, 0.0),
               lambda: degrade.over_smooth(frames, 0.0)):
        assert (fn() == frames).all()


def test_new_factors_lower_only_their_own_task():
    from talkface.synth import labels
    clean = labels.compute_labels({})
    for name in ("mouth_blur", "face_smoothing", "texture_flicker", "frame_repeat",
                 "stiff_head", "no_blinks", "over_smooth"):
        f = labels.FACTORS[name]
        out = labels.compute_labels({name: labels.strength_for(name, 0.5)})
        assert out[f.task] == pytest.approx(0.5, abs=1e-6)
        others = {"visual_quality", "temporal_quality"} - {f.task}
        assert all(out[t] == clean[t] for t in others) and out["lip_sync"] == clean["lip_sync"]


def test_source_quality_terms():
    from talkface.synth.sources import source_quality
    anchors = {"sharpness": 5.0}
    assert source_quality({"sharpness": 5.5}, anchors) == 1.0  # at least as sharp
    soft = source_quality({"sharpness": 4.0}, anchors)
    softer = source_quality({"sharpness": 3.0}, anchors)
    assert 1.0 > soft > softer > 0
    assert source_quality({"sharpness": None}, anchors) == 1.0  # unmeasured


@pytest.mark.slow
def test_rated_sources_rank_a_soft_recording_below_a_sharp_one(footage, tmp_path):
    """A benchmark whose sources include a blurred copy of a clean recording: rating the
    sources labels the blurred source's clean segment below the sharp one's, keeps every
    family's order and the lip-sync labels, and gives the same labels when run again."""
    from talkface.synth.real import build_from_real
    from talkface.synth.sources import RATED_LABEL_VERSION, rate_sources
    out = tmp_path / "bench"
    before = pd.read_csv(build_from_real(footage, out, seed=3, segments=1, seconds=1.0,
                                         steps=1, progress=False,
                                         factors=["blur_sigma", "noise_sigma"]))
    rated = pd.read_csv(rate_sources(out, progress=False))
    assert (rated["label_version"] == RATED_LABEL_VERSION).all()
    clean = rated[rated["condition"] == "clean"].set_index("source")
    assert clean.loc["03_blur.mp4", "visual_quality"] < clean.loc["00_clean.mp4",
                                                                  "visual_quality"]
    assert clean["visual_quality"].max() == pytest.approx(1.0)
    for _, family in rated.groupby(["source", "start_s"]):
        assert family["visual_quality"].max() == family.loc[
            family["condition"] == "clean", "visual_quality"].iloc[0]
    np.testing.assert_allclose(rated["lip_sync"], before["lip_sync"])
    again = pd.read_csv(rate_sources(out, progress=False))
    np.testing.assert_allclose(again["visual_quality"], rated["visual_quality"])
    assert (out / "sources.json").exists()
