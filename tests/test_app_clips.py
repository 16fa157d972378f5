"""Many clips at once (`talkface.app.clips`) and the timeline (`talkface.signals.frame_course`,
`talkface.plots.timeline_plot`): the per-clip table the Score tab's batch and Compare both show,
the batch's exports, its bounds, and the per-frame courses the clip-level signals are read from.
Tables from hand-made results; courses from the real face clip the tests already use."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from talkface import media
from talkface.app import clips
from talkface.errors import TalkfaceError
from talkface.results import ScoreResult, SignalValue, in_context, task_score
from talkface.spec import tasks_from_names
from talkface.sync.result import SyncResult

TASKS = tasks_from_names(["lip_sync", "visual_quality", "temporal_quality", "overall"])


def result(name: str, values: dict, sync=None, why: dict = {}, reasons: dict = {},
           warnings=()) -> ScoreResult:
    tasks = {t.name: task_score(t, values.get(t.name, np.nan), reasons.get(t.name, ""),
                                percentile=None if values.get(t.name) is None else 50.0,
                                why=why.get(t.name, ()))
             for t in TASKS}
    signals = {"freeze_share": SignalValue("freeze_share", 0.52, 99.0)}
    return ScoreResult(f"/srv/tmp/gradio/1234/{name}", in_context(tasks, sync), tuple(warnings),
                       {}, sync, np.ones(4, bool), 25.0, signals=signals)


SYNC = SyncResult(True, offset_frames=2, confidence=0.5, min_dist=7.0)
GOOD = result("good.mp4", {"lip_sync": 0.9, "visual_quality": 0.8, "temporal_quality": 0.7,
                           "overall": 0.81}, SYNC)
FROZEN = result("a3f9c2e1b7d84f60a3f9c2e1b7d84f60.mp4",
                {"visual_quality": 0.6, "temporal_quality": 0.2, "overall": 0.45},
                why={"temporal_quality": ("freeze_share",)},
                reasons={"lip_sync": "the clip has no audio track"}, warnings=("no audio",))
FAILED = ScoreResult.failed("/srv/tmp/gradio/99/broken.mp4",
                            "broken.mp4: not a video file FFmpeg can read")


def test_the_clip_table_says_everything_per_clip_by_base_name():
    table = clips.clip_table([GOOD, FROZEN, FAILED], TASKS)
    assert list(table.columns) == ["file", "lip sync", "visual quality", "temporal quality",
                                   "overall", "band", "better than", "offset",
                                   "sync confidence", "pulled down by", "warnings"]
    rows = table.set_index("file")
    assert list(rows.index) == ["good.mp4", FROZEN.file.rsplit("/", 1)[1], "broken.mp4"]
    assert "/srv" not in table.to_csv()
    good, frozen, failed = (rows.iloc[i] for i in range(3))
    assert good["overall"] == "0.810" and good["band"] == GOOD.tasks["overall"].band
    assert good["better than"] == "50%"
    assert good["offset"] == "+2 fr (+80 ms)" and "not trusted" in good["sync confidence"]
    assert frozen["lip sync"] == "not judged" and frozen["offset"] == ""
    assert frozen["pulled down by"] == "temporal quality: frozen frames 0.52"
    assert frozen["warnings"] == "no audio"
    assert failed["overall"] == "" and failed["band"] == "failed"
    assert failed["warnings"] == "FAILED: not a video file FFmpeg can read"


def test_ranked_the_table_shows_the_value_it_ranks_by_and_puts_failures_last():
    table = clips.clip_table([FAILED, FROZEN, GOOD], TASKS, groups=["b", "a", "a"], ranked=True)
    assert list(table.columns[:4]) == ["rank", "ranked by", "group", "file"]
    assert list(table["file"]) == ["good.mp4", FROZEN.file.rsplit("/", 1)[1], "broken.mp4"]
    assert list(table["rank"]) == ["1", "2", "3"]
    assert list(table["ranked by"]) == ["0.810", "0.450", "0.000"]  # failed = the worst score
    assert list(table["group"]) == ["a", "a", "b"]


def test_the_leaderboard_shows_its_ranking_value(tmp_path):
    from talkface.leaderboard import compare_results, format_leaderboard, ranking_text
    comparison = compare_results({"b": [FAILED, FROZEN], "a": [GOOD]}, TASKS)
    shown = format_leaderboard(comparison.leaderboard, TASKS)
    assert list(shown.columns[:3]) == ["rank", "group", "ranked by"]
    assert list(shown["group"]) == ["a", "b"] and list(shown["rank"]) == ["1", "2"]
    assert list(shown["ranked by"]) == ["0.810", "0.225"]  # (0.45 + 0) / 2: the failure counts
    assert "failed clip counted as 0" in ranking_text(TASKS)
    path = comparison.to_csv(tmp_path / "board.csv")
    per_clip = pd.read_csv(path.with_name("board_clips.csv"))
    assert list(per_clip["file"]) == ["broken.mp4", FROZEN.file.rsplit("/", 1)[1], "good.mp4"]
    assert {"group", "lip_sync", "band_overall", "percentile_overall", "sync_offset_frames",
            "sync_confidence", "signal_freeze_share", "why_temporal_quality", "warnings",
            "error"} <= set(per_clip.columns)
    assert per_clip.loc[1, "why_temporal_quality"] == "freeze_share"


def test_a_batch_keeps_failures_and_exports_json_and_csv(tmp_path):
    def score(path):
        if path.endswith("broken.mp4"):
            raise TalkfaceError("broken.mp4: not a video file FFmpeg can read")
        if path.endswith("crash.mp4"):
            raise RuntimeError("boom")
        return GOOD
    seen = []
    results = clips.score_batch(score, ["/up/1/good.mp4", "/up/2/broken.mp4", "/up/3/crash.mp4"],
                                ["good.mp4", "broken.mp4", "crash.mp4"],
                                progress=lambda done, total, what: seen.append((done, total)))
    assert [r.ok for r in results] == [True, False, False]
    assert [r.file for r in results] == ["good.mp4", "broken.mp4", "crash.mp4"]
    assert "unexpected RuntimeError: boom" in results[2].error
    assert seen[-1] == (3, 3)
    json_path, csv_path = clips.write_batch(results, tmp_path)
    records = json.loads(json_path.read_text())
    assert [r["file"] for r in records] == ["good.mp4", "broken.mp4", "crash.mp4"]
    assert records[0]["tasks"]["overall"]["band"] and records[1]["error"]
    table = pd.read_csv(csv_path)
    assert len(table) == 3 and "/up/" not in csv_path.read_text() + json_path.read_text()
    assert {"lip_sync", "overall", "band_overall", "sync_confidence", "error"} <= set(table)


def test_a_batch_is_bounded_and_must_not_be_empty():
    clips.check_batch(["a.mp4"] * clips.MAX_BATCH)
    with pytest.raises(TalkfaceError, match=f"at most {clips.MAX_BATCH}"):
        clips.check_batch(["a.mp4"] * (clips.MAX_BATCH + 1))
    with pytest.raises(TalkfaceError, match="no clips"):
        clips.check_batch([])


def test_folders_under_a_data_root_are_named_not_pathed(tmp_path):
    root = tmp_path / "data"
    (root / "wav2lip").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "wav2lip" / "a.mp4").write_bytes(b"x")
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    (root / "wav2lip" / "link.mp4").symlink_to(outside)
    found = clips.folder_choices([root])
    assert set(found) == {"data", "data/wav2lip"}  # the root holds videos below it too
    assert [p.name for p in clips.folder_videos(found["data/wav2lip"], root)] == ["a.mp4"]


# --- the timeline -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundles(face_video, tmp_path_factory):
    """The real face clip as it is and with half of its frames frozen."""
    from talkface.features import Extractor
    from talkface.synth import degrade
    source = media.load_clip(face_video)
    folder = tmp_path_factory.mktemp("timeline")
    frozen = degrade.freeze_frames(source.frames, 0.5, np.random.default_rng(0))
    extractor = Extractor(identity_frames=3)
    out = {}
    for name, frames in (("clean", source.frames), ("frozen", frozen)):
        path = folder / f"{name}.mp4"
        media.write_video(path, frames, source.fps, audio=source.audio,
                          sample_rate=source.sample_rate, crf=18)
        out[name] = extractor.extract(path)
    return out


@pytest.mark.slow
def test_frame_courses_are_what_the_clip_signals_are_read_from(bundles):
    from talkface.signals import COURSES, frame_course, freeze_spans, measure_signals
    clean, frozen = bundles["clean"], bundles["frozen"]
    course, signals = frame_course(clean), measure_signals(clean)
    assert set(course) <= {c.name for c in COURSES}
    assert {"face_detail", "mouth_detail", "repeated", "head_jitter", "flicker",
            "identity"} <= set(course)
    for values in course.values():
        assert values.shape == clean.valid.shape and values.dtype == np.float32
    assert np.nanmedian(course["face_detail"]) == pytest.approx(signals["face_detail"], abs=1e-4)
    rms = float(np.sqrt(np.nanmean(course["head_jitter"].astype(float) ** 2)))
    assert rms == pytest.approx(signals["head_jitter"], abs=1e-5)
    identity = course["identity"][np.isfinite(course["identity"])]
    assert identity.size == 3 and identity[0] == pytest.approx(1.0)
    assert 1 - identity.min() == pytest.approx(signals["identity_drift"], abs=0.02)
    # the frozen clip's repeats are where the freezes are; the clean clip has next to none
    assert np.nanmean(course["repeated"]) == pytest.approx(signals["freeze_share"], abs=1e-6)
    repeated = frame_course(frozen)["repeated"]
    assert np.nansum(repeated) > 10 * max(np.nansum(course["repeated"]), 1)
    assert np.nanmean(repeated) == pytest.approx(measure_signals(frozen)["freeze_share"],
                                                 abs=0.02)
    spans = freeze_spans(repeated, 25.0)
    assert spans and sum(b - a for a, b in spans) == pytest.approx(np.nansum(repeated) / 25)


@pytest.mark.slow
def test_the_timeline_plot_has_a_panel_per_course_and_shades_freezes(bundles):
    from talkface.plots import timeline_plot
    from talkface.signals import frame_course
    frozen = bundles["frozen"]
    fake = ScoreResult("frozen.mp4", {}, (), {}, None, frozen.valid, 25.0,
                       timeline=frame_course(frozen))
    fig = timeline_plot(fake)
    titles = [a.text for a in fig.layout.annotations]
    assert any(t.startswith("Face detail") for t in titles)
    assert any(t.startswith("Events: repeated frames") for t in titles)
    assert len(fig.layout.shapes) >= 1  # the freezes, shaded
    assert all(s.fillcolor for s in fig.layout.shapes)
    empty = timeline_plot(ScoreResult("x.mp4", {}, (), {}, None, np.ones(3, bool), 25.0))
    assert "no per-frame signals" in empty.layout.annotations[0].text


def test_two_timelines_share_one_time_axis():
    """Side by side: the shorter clip's timeline is drawn on the longer one's axis."""
    from talkface.plots import timeline_plot
    course = {"face_detail": np.linspace(7.0, 7.5, 50)}
    short = ScoreResult("short.mp4", {}, (), {}, None, np.ones(50, bool), 25.0, timeline=course)
    own, shared = timeline_plot(short), timeline_plot(short, end=4.0, title="A: short.mp4")
    ranges = lambda fig: {tuple(fig.layout[k].range) for k in fig.layout  # noqa: E731
                          if k.startswith("xaxis")}
    assert ranges(own) == {(0, 2.0)} and ranges(shared) == {(0, 4.0)}
    assert shared.layout.title.text.startswith("A: short.mp4: Signals over time")
