"""The app in a real browser (Playwright driving Debian's /usr/bin/chromium, headless).

Upload a clip and see scores and the heatmap; compare two groups and see the leaderboard; run a
tiny training job to the end and promote it (into a temp checkpoint root, never the shipped one);
upload a broken file and see a readable message. Screenshots go to artifacts/screenshots/.
The app's checkpoint is a random-weight TEST FIXTURE, not a trained model.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from talkface.results import BAND_NAMES
from test_app import start_app, stop_app, tiny_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    workdir = tmp_path_factory.mktemp("browser-app")
    proc, url, roots = start_app(workdir)
    yield url, roots, workdir
    stop_app(proc)


@pytest.fixture(scope="module")
def page(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app[0])
        page.wait_for_selector("#score-button")
        yield page
        browser.close()


def upload(page, elem_id: str, files) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(files)


def test_upload_a_clip_and_see_scores_and_heatmap(page, face_video):
    upload(page, "score-video", str(face_video))
    page.wait_for_selector("#score-video video", state="attached")
    page.wait_for_selector("#score-chosen >> text=upload")  # the source is shown, explicitly
    page.click("#score-button")
    page.wait_for_selector("#score-cards .tf-card")
    assert page.locator("#score-cards .tf-card").count() == 4
    assert "Lip sync" in page.inner_text("#score-cards")
    assert "Scored" in page.inner_text("#score-status")
    assert "trained on" in page.inner_text("#score-trust")  # what the checkpoint is valid for
    page.wait_for_selector("#score-heatmap .js-plotly-plot .heatmaplayer")
    page.wait_for_selector("#score-sync .js-plotly-plot")
    page.wait_for_selector("#score-preview video", state="attached")  # an H.264 preview
    # once the preview is there, the status line no longer promises it
    page.wait_for_function("() => !document.querySelector('#score-status').innerText"
                           ".includes('follows')", timeout=30_000)
    assert page.locator("#score-frames img").count() >= 1
    # the attended frames load without being scrolled into view (no empty tiles below the fold)
    page.wait_for_function("() => [...document.querySelectorAll('#score-frames img')].every("
                           "(img) => img.complete && img.naturalWidth > 0)", timeout=30_000)
    legend = page.inner_text("#score-legend")
    assert "How to read the cards" in legend and "better than N% of reference clips" in legend
    assert "Overall" in page.inner_text("#score-cards") and "combines" in page.inner_text(
        "#score-cards")
    page.screenshot(path=str(SHOTS / "score.png"), full_page=True)


def test_picking_a_sample_after_an_upload_scores_the_sample(page):
    page.locator("#score-sample input").click()
    page.get_by_role("option", name="clips/00002_clean.mp4").click()
    page.wait_for_selector("#score-chosen >> text=00002_clean.mp4")
    page.click("#score-button")
    page.wait_for_selector("#score-status >> text=Scored 00002_clean.mp4 (bundled sample)")
    page.wait_for_selector("#score-cards .tf-card")


def test_broken_upload_shows_a_readable_message(page, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is a text file pretending to be a video\n" * 40)
    clear = page.locator("#score-video button[aria-label='Clear']")
    if clear.count():  # the earlier upload is still in the player
        clear.first.click()
    upload(page, "score-video", str(bad))
    page.wait_for_selector("#score-chosen >> text=broken.mp4")
    page.click("#score-button")
    page.wait_for_selector("#score-status >> text=not a video file FFmpeg can read")
    page.wait_for_timeout(6000)  # a toast would have closed by now; the status line stays
    assert "not a video file" in page.inner_text("#score-status")
    assert page.locator("#score-cards .tf-card").count() == 0  # the old clip's scores are gone
    page.screenshot(path=str(SHOTS / "broken_upload.png"), full_page=False)
    assert "Traceback" not in page.content()


def test_compare_two_groups_and_see_the_leaderboard(page, face_video, noface_video):
    page.get_by_role("tab", name="Compare").click()
    page.fill("#group-name-0 textarea", "sharp")
    page.fill("#group-name-1 textarea", "also sharp")
    upload(page, "group-files-0", [str(face_video)])
    upload(page, "group-files-1", [str(face_video), str(noface_video)])
    page.wait_for_timeout(1000)
    page.click("#compare-button")
    page.wait_for_selector("#compare-bars .js-plotly-plot .barlayer")
    board = page.inner_text("#compare-board")
    assert "also sharp" in board and "failed" in board
    assert noface_video.name in page.inner_text("#compare-failed")  # which file, and why
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)


def test_train_a_tiny_job_and_promote_it(page, app, face_video):
    url, roots, workdir = app
    tiny_dataset(roots["data"] / "browser", face_video, (4, 2, 2))
    page.reload()  # the dataset list is read when the page loads
    page.wait_for_selector("#score-button")
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-config input").click()
    page.get_by_role("option", name="tiny").click()
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name="folder: browser").click()
    page.fill("#train-epochs input", "2")
    page.fill("#train-batch input", "4")
    page.click("#train-start")
    page.wait_for_selector("#train-status >> text=finished", timeout=180_000)
    page.wait_for_selector("#train-curves .js-plotly-plot")
    page.fill("#promote-name textarea", "browser-run")
    page.click("#promote-button")
    page.wait_for_selector("#promote-result >> text=Promoted")
    page.screenshot(path=str(SHOTS / "train.png"), full_page=True)
    active = (roots["checkpoints"] / "ACTIVE").read_text().strip()
    assert active.startswith("browser-run-")  # a new version, named and timestamped
    assert (roots["checkpoints"] / "versions" / active / "model.safetensors").is_file()
    page.get_by_role("tab", name="Model").click()
    page.click("#model-refresh")
    page.wait_for_selector("#model-card >> text=browser-run")
    page.screenshot(path=str(SHOTS / "model.png"), full_page=True)


def test_score_many_clips_into_one_table_and_export_it(page, face_video, noface_video):
    page.get_by_role("tab", name="Score").click()
    upload(page, "batch-files", [str(face_video), str(noface_video)])
    page.wait_for_selector(f"#batch-files >> text={noface_video.stem}")
    page.click("#batch-button")
    page.wait_for_selector("#batch-status >> text=Scored 1 of 2 clips", timeout=120_000)
    page.wait_for_selector(f"#batch-table >> text={noface_video.name}")
    table = page.inner_text("#batch-table")  # both clips' rows, the failed one too
    assert face_video.name in table and noface_video.name in table  # base names only
    assert "FAILED: no face" in table and "0.000" not in table  # its row says why, no score
    assert any(band in table for band in BAND_NAMES)  # the scored clip has its band
    assert "/tmp" not in table
    links = page.locator("#batch-export a[download]")
    assert sorted(links.evaluate_all("els => els.map(e => e.download)")) == [
        "batch_talkface.csv", "batch_talkface.json"]
    for href in links.evaluate_all("els => els.map(e => e.href)"):  # both files are served
        served = page.request.get(href)
        assert served.ok and face_video.name in served.text() and "/tmp" not in served.text()
    page.locator("#batch-table").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "batch.png"), full_page=True)


def test_two_samples_side_by_side_with_aligned_timelines(page):
    page.get_by_role("tab", name="Side by side").click()
    for side, sample in (("a", "clips/00002_clean.mp4"), ("b", "clips/00004_freeze.mp4")):
        page.locator(f"#side-sample-{side} input").click()
        page.locator(f"#side-sample-{side}").get_by_role("option", name=sample).click()
        page.wait_for_function(f"() => document.querySelector('#side-sample-{side} input')"
                               f".value === '{sample}'")
    page.click("#side-button")
    page.wait_for_selector("#side-status >> text=Play both", timeout=120_000)
    for side in "ab":  # both players, both timelines
        page.wait_for_selector(f"#side-player-{side} video", state="attached")
        page.wait_for_selector(f"#side-timeline-{side} .js-plotly-plot .scatterlayer")
    table = page.inner_text("#side-table")
    assert "00002_clean.mp4" in table and "00004_freeze.mp4" in table
    # one time axis: the bottom axes of both timelines end at the same second
    ends = page.evaluate("() => ['a', 'b'].map(s => { const g = document.querySelector("
                         "`#side-timeline-${s} .js-plotly-plot`); const axes = Object.keys("
                         "g._fullLayout).filter(k => /^xaxis\\d*$/.test(k)); return axes.map("
                         "k => g._fullLayout[k].range[1]); })")
    assert len(set(ends[0] + ends[1])) == 1, ends
    page.click("#side-play")
    page.wait_for_function("() => [...document.querySelectorAll('#side-player-a video, "
                           "#side-player-b video')].every(v => !v.paused && v.currentTime > 0)")
    page.screenshot(path=str(SHOTS / "side_by_side.png"), full_page=True)
