"""How a score reads on the Score tab's cards (and in the JSON): band, percentile and score from
one rule, lip sync read against the sync estimate, overall naming what it combines, the legend,
and the JSON download naming the clip as the user knows it. Built from hand-made results: no
model, no server."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from talkface.calibration import Calibration, percentiles
from talkface.results import BAND_NAMES, BANDS, ScoreResult, in_context, task_score
from talkface.spec import tasks_from_names
from talkface.sync.result import VISIBLE_OFFSET_FRAMES, SyncResult

TASKS = tasks_from_names(["lip_sync", "visual_quality", "temporal_quality", "overall"])
# a reference set like a shipped one: mostly good clips, a quarter of them at the top of the range
REFERENCE = np.r_[np.linspace(0.3, 1.0, 75), np.ones(25)]


def result(values: dict, sync=None, reasons: dict = {}) -> ScoreResult:
    cal = Calibration(reference={t.name: percentiles(REFERENCE) for t in TASKS})
    tasks = {t.name: task_score(t, values.get(t.name, np.nan), reasons.get(t.name, ""),
                                percentile=cal.percentile(t.name, values.get(t.name)))
             for t in TASKS}
    return ScoreResult("/srv/tmp/gradio/1234/clip.mp4", in_context(tasks, sync), (), {}, sync,
                       np.ones(4, bool), 25.0)


def card(html: str, label: str) -> str:
    """The card of task `label` in score_cards_html's output."""
    cards = re.findall(r'<div class="tf-card.*?(?=<div class="tf-card|</div></div>$|$)', html,
                       flags=re.S)
    return next(c for c in cards if f'<div class="tf-label">{label}</div>' in c)


def test_band_and_percentile_both_follow_the_score_and_stay_in_range():
    """Over the whole range, a higher score never gets a lower band or a lower percentile; the
    percentile reads 1..99 ("better than 100%" was possible), and only a score outside the
    reference clips' range is called beyond them (a score tied with the top quarter is not)."""
    from talkface.app.views import score_cards_html
    ranks, shares = [], []
    for value in np.linspace(0, 1, 201):
        score = result({"visual_quality": value}).tasks["visual_quality"]
        ranks.append(-BAND_NAMES.index(score.band))
        shares.append(score.better_than)
        shown = int(re.search(r"better than (\d+)%", score.reference_text).group(1))
        assert 1 <= shown <= 99, score.reference_text
    assert np.all(np.diff(ranks) >= 0) and np.all(np.diff(shares) >= 0)
    top = result({"visual_quality": 1.0})
    assert top.tasks["visual_quality"].better_than == pytest.approx(87.5, abs=1)  # ties: half
    assert re.fullmatch(r"better than 8[78]% of reference clips",
                        top.tasks["visual_quality"].reference_text)
    assert "beyond" not in score_cards_html(top)
    low = result({"visual_quality": 0.1}).tasks["visual_quality"]
    assert low.reference_text == ("better than 1% of reference clips (beyond the worst "
                                  "reference clip)")
    cards = score_cards_html(result({t.name: 0.95 for t in TASKS}))
    assert "above" not in cards and "100%" not in cards


def test_a_lower_is_better_task_reads_its_percentile_the_other_way():
    from talkface.spec import TaskSpec
    error = TaskSpec(name="error", low=0.0, high=1.0, higher_is_better=False, label="Error")
    cal = Calibration(reference={"error": percentiles(np.linspace(0, 1, 101))})
    score = task_score(error, 0.2, percentile=cal.percentile("error", 0.2))
    assert score.band == "good" and score.reference_text == "better than 80% of reference clips"


def test_lip_sync_with_a_confident_visible_offset_is_at_most_good():
    from talkface.app.views import score_cards_html
    offset = SyncResult(True, offset_frames=VISIBLE_OFFSET_FRAMES + 1, confidence=4.0)
    out = result({"lip_sync": 0.95, "overall": 0.9}, offset)
    lip = out.tasks["lip_sync"]
    assert lip.mos > BANDS[0][0] and lip.band == "good" and lip.band_limit == "good"
    assert "4 frames (160 ms) late" in lip.note
    shown = card(score_cards_html(out), "Lip sync")
    assert "excellent" not in shown and "&middot; good" in shown and "160 ms" in shown
    assert json.loads(json.dumps(out.to_dict()))["tasks"]["lip_sync"]["band"] == "good"
    early = result({"lip_sync": 0.95}, SyncResult(True, offset_frames=-3, confidence=4.0))
    assert early.tasks["lip_sync"].band == "good" and "early" in early.tasks["lip_sync"].note
    small = result({"lip_sync": 0.95}, SyncResult(True, offset_frames=2, confidence=4.0))
    assert small.tasks["lip_sync"].band == "excellent" and not small.tasks["lip_sync"].note
    worse = result({"lip_sync": 0.5}, offset)  # a limit never raises a band
    assert worse.tasks["lip_sync"].band == "fair"


def test_lip_sync_without_a_trusted_offset_says_what_it_rests_on():
    from talkface.app.views import score_cards_html
    weak = SyncResult(True, offset_frames=14, confidence=0.4)
    out = result({"lip_sync": 0.91}, weak)
    assert out.tasks["lip_sync"].band == "excellent"  # an untrusted offset limits nothing
    shown = card(score_cards_html(out), "Lip sync")
    assert "rests on the mouth-audio match alone, without a trusted offset" in shown
    assert "not reliable" in shown  # the offset line beside it agrees
    unjudged = result({"lip_sync": 0.91}, SyncResult(False, reason="no speech found"))
    assert "no audio offset could be estimated (no speech found)" in unjudged.tasks[
        "lip_sync"].note


def test_overall_names_what_it_combines_and_a_clip_without_audio_says_lip_sync_is_left_out():
    from talkface.app.views import score_cards_html
    with_audio = result({t.name: 0.8 for t in TASKS}, SyncResult(True, offset_frames=0,
                                                                  confidence=3.0))
    assert "combines lip sync 40%, visual quality 30%, temporal quality 30%" in card(
        score_cards_html(with_audio), "Overall")
    silent = result({"visual_quality": 0.8, "temporal_quality": 0.8, "overall": 0.8},
                    SyncResult(False, reason="no audio track"),
                    reasons={"lip_sync": "no audio track"})
    shown = card(score_cards_html(silent), "Overall")
    assert "lip sync left out (no audio track)" in shown and "not comparable" in shown
    assert "combines visual quality 50%, temporal quality 50% only" in shown  # as computed
    assert "lip sync left out" in silent.to_dict()["tasks"]["overall"]["note"]


def test_the_weights_overall_names_are_those_it_is_made_with():
    from talkface.measures import combine_overall
    from talkface.results import overall_note

    def weights(note: str) -> dict[str, float]:
        return {name: int(share) / 100 for name, share in
                re.findall(r"(lip sync|visual quality|temporal quality) (\d+)%", note)}

    lip, visual, temporal = 0.9, 0.7, 0.4
    w = weights(overall_note(None))
    assert combine_overall(lip, visual, temporal) == pytest.approx(
        lip ** w["lip sync"] * visual ** w["visual quality"] * temporal ** w["temporal quality"])
    w = weights(overall_note(task_score(TASKS[0], np.nan, "no audio track")))
    assert set(w) == {"visual quality", "temporal quality"}
    assert combine_overall(np.nan, visual, temporal) == pytest.approx(
        visual ** w["visual quality"] * temporal ** w["temporal quality"])


def test_the_legend_states_the_rules_the_cards_follow():
    from talkface.app.views import legend_html
    legend = legend_html()
    for low, name in BANDS[:-1]:
        assert f"{name} " in legend and f"{low:g}" in legend
    assert "bad &lt; 1.5" in legend and "1 (worst) to 5 (best)" in legend
    assert "spread" in legend and "disagree" in legend
    assert "Sync confidence" in legend and f"{VISIBLE_OFFSET_FRAMES} frames (120 ms" in legend
    assert "threshold, given beside the offset" in legend  # each sync estimator has its own
    assert "better than N% of reference clips" in legend and "1-99" in legend
    assert "Overall" in legend and "not comparable" in legend


def test_the_json_download_names_the_clip_as_the_user_knows_it(tmp_path):
    from talkface.app.views import write_json
    out = result({t.name: 0.8 for t in TASKS})
    path = write_json(out, tmp_path, "my clip.mp4")
    text = path.read_text()
    assert json.loads(text)["file"] == "my clip.mp4" and path.name == "my clip_talkface.json"
    assert "/srv/tmp" not in text and "1234" not in text
    sample = write_json(out, tmp_path, "clips/00002_clean.mp4")
    assert json.loads(sample.read_text())["file"] == "00002_clean.mp4"


@pytest.mark.parametrize("pointer", [True, False])
def test_the_model_tab_does_not_point_to_itself(pointer):
    from types import SimpleNamespace
    from pathlib import Path
    from talkface.app.views import trust_line
    validity = ("trained on 10 clips; test SRCC 0.80. Scores on other kinds of footage are not "
                "validated (see the Model tab).")
    loaded = SimpleNamespace(path=Path("default"), metrics={}, meta=SimpleNamespace(
        data={"validity": validity}, model_name="improved", metrics_split="test",
        calibration={}))
    line = trust_line(loaded, pointer)
    assert ("(see the Model tab)" in line) == pointer and line.endswith("validated" + (
        " (see the Model tab)." if pointer else "."))
