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
    page.click("#score-button")
    page.wait_for_selector("#score-cards .tf-card")
    assert page.locator("#score-cards .tf-card").count() == 4
    assert "Lip sync" in page.inner_text("#score-cards")
    page.wait_for_selector("#score-heatmap .js-plotly-plot .heatmaplayer")
    page.wait_for_selector("#score-sync .js-plotly-plot")
    assert page.locator("#score-frames img").count() >= 1
    page.screenshot(path=str(SHOTS / "score.png"), full_page=True)


def test_broken_upload_shows_a_readable_message(page, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is a text file pretending to be a video\n" * 40)
    page.locator("#score-video button[aria-label='Clear']").first.click() \
        if page.locator("#score-video button[aria-label='Clear']").count() else None
    upload(page, "score-video", str(bad))
    page.click("#score-button")
    message = page.get_by_text("not a video file FFmpeg can read").first
    message.wait_for()
    page.wait_for_timeout(800)  # let the toast finish fading in
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
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)


def test_train_a_tiny_job_and_promote_it(page, app, face_video):
    url, roots, workdir = app
    data = tiny_dataset(workdir / "tiny-data", face_video)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-config input").click()
    page.get_by_role("option", name="tiny").click()
    page.get_by_label("folder with a manifest").check()
    page.fill("#train-folder textarea", str(data))
    page.fill("#train-epochs input", "2")
    page.fill("#train-batch input", "4")
    page.click("#train-start")
    page.wait_for_selector("#train-status >> text=finished", timeout=180_000)
    page.wait_for_selector("#train-curves .js-plotly-plot")
    page.fill("#promote-name textarea", "browser-run")
    page.click("#promote-button")
    page.wait_for_selector("#promote-result >> text=Promoted")
    page.screenshot(path=str(SHOTS / "train.png"), full_page=True)
    assert (roots["checkpoints"] / "ACTIVE").read_text().strip() == "browser-run"
    page.get_by_role("tab", name="Model").click()
    page.click("#model-refresh")
    page.wait_for_selector("#model-card >> text=browser-run")
    page.screenshot(path=str(SHOTS / "model.png"), full_page=True)
