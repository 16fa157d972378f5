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
