"""The app's feature worker processes (`talkface.parallel.FeatureWorkers`, `talkface app
--workers N`): a clip scored through a worker gives the result the app's own process gives (scores,
attention, timeline, sync, the face picker's choices and note, the score cards), progress comes
back, a bad file fails with the in-process message, and a worker killed mid-clip fails only that
clip, with a readable message, and is replaced. Shipped checkpoint, fixture clips copied to a temp
folder, no feature cache (so the worker makes the features)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from talkface.api import load_scorer
from talkface.app import picker, views
from talkface.errors import TalkfaceError
from talkface.parallel import FeatureWorkers, ScorerSettings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "talkface" / "checkpoints" / "default"
FIXTURES = ROOT / "tests" / "data" / "fixtures"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    for name in ("00_clean.mp4", "01_offset.mp4", "03_blur.mp4"):
        shutil.copy(FIXTURES / name, folder / name)
    (folder / "broken.mp4").write_bytes(b"definitely not a video\n" * 50)
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def here():
    return load_scorer(SHIPPED, cache=False)


@pytest.fixture(scope="module")
def pooled():
    scorer = load_scorer(SHIPPED, cache=False)
    workers = FeatureWorkers(ScorerSettings.of(scorer), 1)
    workers.start()
    scorer.feature_workers = workers
    yield scorer
    workers.close()


def page(result) -> dict:
    """What the Score tab shows of a result, in comparable form."""
    return {"json": json.dumps(result.to_dict(detail=True), sort_keys=True, default=str),
            "choices": picker.face_choices(result), "note": picker.picker_note(result),
            "cards": views.score_cards_html(result, picker.identity_html(result)),
            "warnings": views.warnings_markdown(result), "info": repr(result.info)}


def test_a_worker_gives_the_result_of_the_app_process(here, pooled, clips):
    reports: list[tuple] = []
    path = str(clips["00_clean.mp4"])
    mine, theirs = here.score(path), pooled.score(path, progress=lambda *r: reports.append(r))
    assert page(theirs) == page(mine)
    for field in ("attention", "timeline"):
        a, b = getattr(mine, field), getattr(theirs, field)
        assert a.keys() == b.keys() and a  # something to compare
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(mine.valid, theirs.valid)
    np.testing.assert_array_equal(mine.sync.curve, theirs.sync.curve)
    assert reports and reports[-1][0] == reports[-1][1]  # the worker's progress, to the end
    track = mine.face_summary()["scored_track"]  # a picked face: the same way
    assert page(pooled.score(path, face=track)) == page(here.score(path, face=track))


def test_a_bad_file_fails_with_the_in_process_message(here, pooled, clips):
    path = str(clips["broken.mp4"])
    with pytest.raises(TalkfaceError) as mine:
        here.score(path)
    with pytest.raises(TalkfaceError) as theirs:
        pooled.score(path)
    assert str(theirs.value) == str(mine.value) and "not a video" in str(mine.value)


def test_a_killed_worker_fails_only_its_clip_and_is_replaced(pooled, clips):
    workers = pooled.feature_workers
    killed: list[int] = []

    def kill_on_first_report(done, total, what):
        if not killed:
            killed.extend(workers.pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(TalkfaceError, match="worker process making its features stopped"):
        pooled.score(str(clips["01_offset.mp4"]), progress=kill_on_first_report)
    assert killed
    result = pooled.score(str(clips["03_blur.mp4"]))  # the next clip: a fresh worker
    assert result.ok and result.scores["lip_sync"] is not None
    assert workers.pids() and not set(workers.pids()) & set(killed)


def test_requests_on_other_workers_go_on_when_one_dies(here, clips):
    """Two workers, two clips at once; one worker killed: the other clip is scored."""
    scorer = load_scorer(SHIPPED, cache=False)
    workers = FeatureWorkers(ScorerSettings.of(scorer), 2)
    scorer.feature_workers = workers
    try:
        workers.start()
        outcome: dict[str, object] = {}
        started = threading.Event()

        def score(name: str, progress=None) -> None:
            try:
                outcome[name] = scorer.score(str(clips[name]), progress=progress)
            except TalkfaceError as err:
                outcome[name] = err

        def kill_one(done, total, what):
            if not started.is_set():
                started.set()
                os.kill(workers.pids()[0], signal.SIGKILL)

        # the victim's first report kills worker 0; it may be the victim's own worker or the
        # other's: exactly one of the two clips fails, with the readable message
        threads = [threading.Thread(target=score, args=("00_clean.mp4", kill_one)),
                   threading.Thread(target=score, args=("03_blur.mp4",))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        failed = [v for v in outcome.values() if isinstance(v, TalkfaceError)]
        assert len(outcome) == 2 and len(failed) == 1, outcome
        assert "a new one has taken its place" in str(failed[0])
        again = scorer.score(str(clips["01_offset.mp4"]))
        assert again.ok
    finally:
        workers.close()


def test_a_promotion_reaches_the_workers(clips, tmp_path):
    """The app's state: after a promotion the next clip is scored by workers built on the new
    checkpoint, with that checkpoint's in-process scores."""
    from helpers import make_random_checkpoint

    from talkface.app.state import AppState
    first = make_random_checkpoint(tmp_path / "first", seed=0)
    second = make_random_checkpoint(tmp_path / "second", seed=1)
    state = AppState(str(first), tmp_path / "checkpoints", tmp_path / "runs",
                     demo_dir=tmp_path / "no-samples", scratch=tmp_path / "scratch", workers=1)
    path = str(clips["00_clean.mp4"])
    try:
        before = state.score(path).scores
        old = state.scorer().feature_workers
        assert old.settings.checkpoint == str(first)
        target = state.promote(second, "next")
        workers = state.scorer().feature_workers
        assert workers is not old and old.closed
        assert Path(workers.settings.checkpoint).resolve() == target.resolve()
        after = state.score(path).scores
        assert after == load_scorer(target).score(path).scores and after != before
    finally:
        state.close()
