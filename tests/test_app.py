"""The Gradio app through `gradio_client`, one test per endpoint: score (and bad uploads), compare,
dataset, model card, and a tiny training job run to the end and promoted.

The app runs in a subprocess on a free port on 127.0.0.1 with its checkpoint root, runs folder and
feature cache in temp folders, so the shipped checkpoint is never touched. Its checkpoint is a
random-weight TEST FIXTURE (see test_api.py), not a trained model.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import TASKS, make_random_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "/config", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def start_app(workdir: Path) -> tuple[subprocess.Popen, str, dict]:
    """Launch app.py on a random fixture checkpoint, with a temp checkpoint root (for
    promotions), runs folder and feature cache."""
    roots = {"checkpoints": workdir / "checkpoints", "runs": workdir / "runs",
             "cache": workdir / "cache", "fixture": workdir / "fixture"}
    make_random_checkpoint(roots["fixture"])
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TALKFACE_CACHE": str(roots["cache"]),
           "TALKFACE_CHECKPOINTS": str(roots["checkpoints"]), "TALKFACE_RUNS": str(roots["runs"])}
    log = workdir / "app.log"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port),
                             "--checkpoint", str(roots["fixture"])], cwd=workdir, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, proc, log)
    except Exception:
        proc.kill()
        raise
    return proc, url, roots


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("app")
    proc, url, roots = start_app(workdir)
    yield url, roots, workdir
    stop_app(proc)


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    from gradio_client import Client
    return Client(app[0], verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


def test_app_binds_to_localhost_only(app):
    assert app[0].startswith("http://127.0.0.1:")


def test_score_endpoint(client, face_video):
    from gradio_client import handle_file
    cards, notes, json_file, radar, heatmap, sync, cross, frames = client.predict(
        handle_file(str(face_video)), None, api_name="/score")
    assert all(t in cards for t in ("Lip sync", "Visual quality", "/ 5"))
    assert "Estimated audio offset" in notes
    data = json.loads(Path(json_file).read_text())
    assert set(data["scores"]) == set(TASKS) and len(data["attention"]["temporal"]) == 60
    for plot in (radar, heatmap, sync, cross):
        assert plot["type"] == "plotly" and json.loads(plot["plot"])["data"]
    assert len(frames) == 6  # three most and three least attended frames


@pytest.mark.parametrize("content,expected", [
    (b"", "empty"), (b"plain text, not a video\n" * 40, "not a video file")])
def test_bad_uploads_give_a_readable_message_and_the_app_keeps_serving(
        client, tmp_path, face_video, content, expected):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(bad)), None, api_name="/score")
    assert expected in str(info.value) and "Traceback" not in str(info.value)
    cards = client.predict(handle_file(str(face_video)), None, api_name="/score")[0]
    assert "Lip sync" in cards


def test_faceless_upload_is_refused(client, noface_video):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="no face"):
        client.predict(handle_file(str(noface_video)), None, api_name="/score")


def test_score_without_input_asks_for_one(client):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="Upload a video"):
        client.predict(None, None, api_name="/score")


def test_compare_endpoint(client, face_video, tmp_path):
    from gradio_client import handle_file
    from talkface import media
    clip = media.load_clip(face_video)
    darker = tmp_path / "darker.mp4"
    media.write_video(darker, (clip.frames * 0.6).astype(np.uint8), 25, clip.audio)
    board, bars, pairs, csv = client.predict(
        "real", [handle_file(str(face_video))], "dark", [handle_file(str(darker)),
                                                         handle_file(str(face_video))],
        "", None, "", None, api_name="/compare")
    assert board["headers"][:3] == ["group", "n", "failed"]
    assert {"real", "dark"} == {row[0] for row in board["data"]}
    assert len(pairs["data"]) == 2 * len(TASKS)  # both orders, per task
    table = pd.read_csv(csv)
    assert {"overall_mean", "overall_ci_low", "overall_ci_high"} <= set(table.columns)
    assert json.loads(bars["plot"])["data"]


def test_compare_without_clips_is_a_readable_error(client):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="at least one group"):
        client.predict("a", None, "b", None, "", None, "", None, api_name="/compare")


def test_model_card_endpoint(client):
    card = client.predict(api_name="/model_card")
    assert "### Tasks" in card and "lip_sync" in card and "backend=mesh" in card


def tiny_dataset(folder: Path, face_video: Path, n: int = 6) -> Path:
    """Short variants of a real face clip with made-up labels: enough for a training smoke run."""
    from talkface import media
    clip = media.load_clip(face_video)
    rng = np.random.default_rng(0)
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        gain = 0.5 + 0.5 * i / (n - 1)
        media.write_video(folder / f"clip{i}.mp4", (clip.frames[:30] * gain).astype(np.uint8),
                          25, clip.audio[: 16000 * 30 // 25])
        rows.append({"file": f"clip{i}.mp4", **{t: float(rng.uniform(0.2, 0.9)) for t in TASKS},
                     "split": ["train", "train", "train", "train", "val", "test"][i % 6]})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.mark.slow
def test_train_endpoint_runs_a_tiny_job_and_promotes_it(client, app, face_video):
    from gradio_client.exceptions import AppError
    url, roots, workdir = app
    data = tiny_dataset(workdir / "tiny-data", face_video)
    status = client.predict("tiny", "folder with a manifest", 0, str(data), 2, 4, None,
                            api_name="/train_start")[0]
    assert "running" in status
    with pytest.raises(AppError, match="already running"):
        client.predict("tiny", "folder with a manifest", 0, str(data), 2, 4, None,
                       api_name="/train_start")
    deadline = time.time() + 180
    while time.time() < deadline:
        status, curves, log, table, _ = client.predict(api_name="/train_status")
        if "running" not in status:
            break
        time.sleep(2)
    assert "finished" in status, log
    assert json.loads(curves["plot"])["data"]  # loss curves drawn from metrics.jsonl
    assert table["headers"] == ["metric", "this run", "active checkpoint"]
    message = client.predict("smoke", api_name="/promote")
    assert "Promoted" in message
    version = (roots["checkpoints"] / "ACTIVE").read_text().strip()
    assert version.startswith("smoke-")
    assert (roots["checkpoints"] / "versions" / version / "model.safetensors").exists()
    assert f"Checkpoint `{version}`" in client.predict(api_name="/model_card")


def test_train_with_a_bad_folder_is_a_readable_error(client, tmp_path):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="no manifest.csv"):
        client.predict("tiny", "folder with a manifest", 0, str(tmp_path), 1, 2, None,
                       api_name="/train_start")
