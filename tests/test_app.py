"""The Gradio app through `gradio_client`, one test per endpoint: score (and bad uploads), compare,
dataset, model card, and a tiny training job run to the end and promoted.

The app runs in a subprocess on a free port on 127.0.0.1 with its checkpoint root, runs folder and
feature cache in temp folders, so the shipped checkpoint is never touched. Its checkpoint is a
random-weight TEST FIXTURE (see test_api.py), not a trained model.
"""
from __future__ import annotations

import ipaddress
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
    import urllib.error
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "/config", timeout=2)
            return
        except urllib.error.HTTPError:  # it answers (behind a login)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def start_app(workdir: Path, *extra: str) -> tuple[subprocess.Popen, str, dict]:
    """Launch app.py on a random fixture checkpoint, with a temp checkpoint root (for
    promotions), runs folder, feature cache and a data root the Train tab may use."""
    roots = {"checkpoints": workdir / "checkpoints", "runs": workdir / "runs",
             "cache": workdir / "cache", "fixture": workdir / "fixture", "data": workdir / "data"}
    make_random_checkpoint(roots["fixture"])
    roots["data"].mkdir()
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TALKFACE_CACHE": str(roots["cache"]),
           "TALKFACE_CHECKPOINTS": str(roots["checkpoints"]), "TALKFACE_RUNS": str(roots["runs"])}
    log = workdir / "app.log"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port),
                             "--checkpoint", str(roots["fixture"]), "--data-root",
                             str(roots["data"]), "--min-eval-clips", "2", *extra], cwd=workdir,
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
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


def listening_addresses(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of the TCP sockets listening on `port` (Linux: /proc/net/tcp*)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) != port or state != "0A":  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
            found.append(ipaddress.ip_address(b"".join(raw[i:i + 4][::-1]
                                                       for i in range(0, len(raw), 4))))
    return found


def test_app_listens_on_the_loopback_interface_only(app):
    """Started without --host, the server is reachable from this machine only."""
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("reads the listening sockets from Linux's /proc/net/tcp")
    addresses = listening_addresses(int(app[0].rsplit(":", 1)[1]))
    assert addresses and all(a.is_loopback for a in addresses), addresses


SCORE_OUTPUTS = ("status", "trust", "cards", "notes", "preview", "json", "timeline", "radar",
                 "heatmap", "sync", "cross", "frames", "face", "face_note", "faces")


def score(client, upload=None, sample=None, which=None, face="auto", reference=None) -> dict:
    """/score's outputs by name (`which`: the source the user chose last; `face`: the picker's
    value; `reference`: a portrait image)."""
    from gradio_client import handle_file
    values = client.predict(handle_file(str(upload)) if upload else None, sample, which, face,
                            handle_file(str(reference)) if reference else None,
                            api_name="/score")
    return dict(zip(SCORE_OUTPUTS, values))


def test_score_endpoint(client, face_video):
    out = score(client, face_video, which="upload")
    assert "Scored" in out["status"] and "Checkpoint" in out["trust"]
    assert all(t in out["cards"] for t in ("Lip sync", "Visual quality", "/ 5"))
    assert "Estimated audio offset" in out["notes"]
    data = json.loads(Path(out["json"]).read_text())
    assert set(data["scores"]) == set(TASKS) and len(data["attention"]["temporal"]) == 60
    for plot in ("timeline", "radar", "heatmap", "sync", "cross"):
        assert out[plot]["type"] == "plotly" and json.loads(out[plot]["plot"])["data"]
    assert len(out["frames"]) == 6  # three most and three least attended frames


def test_the_face_picker_and_the_reference_portrait_reach_the_scorer(client, face_video,
                                                                      tmp_path):
    """The picker's face goes to Scorer.score(face=...) (the face choice then reads "as
    asked"); a portrait adds the identity similarity under the cards."""
    import cv2

    from talkface import media
    frame = next(iter(media.iter_frames(face_video, 25.0, 512)))
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out = score(client, face_video, which="upload", face="0", reference=portrait)
    assert "Scored" in out["status"], out["status"]
    assert "Identity similarity to the reference (CSIM): 0." in out["cards"]
    assert "the same person" in out["cards"]
    assert json.loads(Path(out["json"]).read_text())["face"]["scored_track"] == 0
    assert "as asked" in json.loads(Path(out["json"]).read_text())["face"]["choice"]
    plain = score(client, face_video, which="upload")
    assert "Identity similarity" not in plain["cards"]
    assert "as asked" not in json.loads(Path(plain["json"]).read_text())["face"]["choice"]


def test_the_json_download_names_the_clip_not_the_server_path(client, app, face_video):
    """The download used to carry the server's temporary upload path (with its process id)."""
    upload = json.loads(Path(score(client, face_video, which="upload")["json"]).read_text())
    assert upload["file"] == face_video.name
    sample = Path(score(client, sample="clips/00002_clean.mp4", which="sample")["json"])
    assert json.loads(sample.read_text())["file"] == "00002_clean.mp4"
    for text in (json.dumps(upload), sample.read_text()):
        assert "talkface-app-" not in text and str(ROOT) not in text and "/tmp" not in text


def test_the_source_chosen_last_is_the_one_scored(client, face_video):
    sample = "clips/00002_clean.mp4"
    as_sample = score(client, face_video, sample, which="sample")
    assert "00002_clean.mp4 (bundled sample)" in as_sample["status"]
    as_upload = score(client, face_video, sample, which="upload")
    assert "(your upload)" in as_upload["status"]
    both = score(client, face_video, sample)  # neither chosen: ask, score nothing
    assert "choose which" in both["status"] and both["cards"] is None


@pytest.mark.parametrize("content,expected", [
    (b"", "empty"), (b"plain text, not a video\n" * 40, "not a video file")])
def test_bad_uploads_give_a_readable_message_and_the_app_keeps_serving(
        client, tmp_path, face_video, content, expected):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    out = score(client, bad, which="upload")
    assert expected in out["status"] and "Traceback" not in out["status"]
    assert str(tmp_path) not in out["status"]  # no server paths on the page
    assert out["cards"] is None and out["json"] is None  # nothing stale beside the message
    assert "Lip sync" in score(client, face_video, which="upload")["cards"]


def test_faceless_upload_is_refused(client, noface_video):
    out = score(client, noface_video, which="upload")
    assert "no face" in out["status"] and out["cards"] is None


def test_score_without_input_asks_for_one(client):
    assert "Upload a video" in score(client)["status"]


def test_a_sample_outside_the_bundled_set_is_refused(client):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio's own check
        score(client, sample="../../etc/passwd", which="sample")


def test_compare_endpoint(client, face_video, tmp_path):
    from gradio_client import handle_file
    from talkface import media
    clip = media.load_clip(face_video)
    darker = tmp_path / "darker.mp4"
    media.write_video(darker, (clip.frames * 0.6).astype(np.uint8), 25, clip.audio)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    status, ranking, board, clips, failed, bars, pairs, csv = client.predict(
        "real", [handle_file(str(face_video))], "dark", [handle_file(str(darker)),
                                                         handle_file(str(face_video)),
                                                         handle_file(str(broken))],
        "", None, "", None, api_name="/compare")
    assert "Compared 4 clips in 2 groups; 1 could not be scored" in status
    assert board["headers"][:5] == ["rank", "group", "ranked by", "scored", "failed"]
    assert "ranked by overall" in ranking and "failed clip counted as 0" in ranking
    rows = {row[1]: row for row in board["data"]}
    assert set(rows) == {"real", "dark"} and rows["dark"][4] == 1 and rows["real"][4] == 0
    # every clip, ranked by the value shown beside it; the failed one last, with its reason
    assert clips["headers"][:4] == ["rank", "ranked by", "group", "file"]
    assert [row[3] for row in clips["data"]][-1] == "broken.mp4"
    assert clips["data"][-1][1] == "0.000" and "FAILED" in clips["data"][-1][-1]
    shown = [float(row[1]) for row in clips["data"]]
    assert shown == sorted(shown, reverse=True)
    per_clip = pd.read_csv(next(f for f in csv if f.endswith("_clips.csv")))
    assert len(per_clip) == 4 and {"group", "file", "overall", "band_overall", "sync_confidence",
                                   "signal_face_detail", "why_overall", "warnings"} <= set(
        per_clip.columns)
    assert [row[1] for row in failed["data"]] == ["broken.mp4"]  # which file, and why
    assert "not a video" in failed["data"][0][2]
    assert len(pairs["data"]) == 2 * len(TASKS)  # both orders, per task
    table = pd.read_csv(next(f for f in csv if f.endswith("leaderboard.csv")))
    assert {"overall_mean", "overall_ci_low", "overall_ci_high"} <= set(table.columns)
    assert table["overall_ci_high"].max() <= 1.0 and table["overall_ci_low"].min() >= 0.0
    assert json.loads(bars["plot"])["data"]


def test_compare_without_clips_is_a_readable_error(client):
    status = client.predict("a", None, "b", None, "", None, "", None, api_name="/compare")[0]
    assert "at least one group" in status


def test_model_card_endpoint(client):
    card = client.predict(api_name="/model_card")
    assert "<details open><summary>Tasks</summary>" in card  # the first section open
    assert "<details><summary>Features</summary>" in card  # the others collapsed
    assert "lip_sync" in card and "backend=mesh" in card
    assert "trained on: test fixture" in card  # the validity statement, first


def tiny_dataset(folder: Path, face_video: Path, splits: tuple[int, int, int]) -> Path:
    """Short variants of a real face clip with made-up labels: enough for a training smoke run.
    `splits`: how many clips go to train, val and test."""
    from talkface import media
    clip = media.load_clip(face_video)
    rng = np.random.default_rng(0)
    names = ["train"] * splits[0] + ["val"] * splits[1] + ["test"] * splits[2]
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for i, split in enumerate(names):
        gain = 0.5 + 0.5 * i / (len(names) - 1)
        media.write_video(folder / f"clip{i}.mp4", (clip.frames[:30] * gain).astype(np.uint8),
                          25, clip.audio[: 16000 * 30 // 25])
        rows.append({"file": f"clip{i}.mp4", **{t: float(rng.uniform(0.2, 0.9)) for t in TASKS},
                     "split": split})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def train_start(client, dataset: str, epochs: int = 2):
    return client.predict("tiny", "train", dataset, 0, epochs, 4, 0, 8, api_name="/train_start")[0]


@pytest.mark.slow
def test_train_endpoint_runs_a_tiny_job_and_promotes_it(client, app, face_video):
    url, roots, workdir = app
    tiny_dataset(roots["data"] / "tiny", face_video, (4, 2, 2))
    status = train_start(client, "folder: tiny")
    assert "running" in status
    assert "already running" in train_start(client, "folder: tiny")
    deadline = time.time() + 180
    while time.time() < deadline:
        status, curves, log, table, verdict, trials, _ = client.predict(api_name="/train_status")
        if "running" not in status:
            break
        time.sleep(2)
    assert "finished" in status, log
    assert str(workdir) not in log  # server folders are redacted in the job log
    assert json.loads(curves["plot"])["data"]  # validation curves drawn from metrics.jsonl
    assert table["headers"][:2] == ["task", "metric"]
    assert {"N (this run)", "N (active)"} <= set(table["headers"])  # N beside every metric
    n_this = table["headers"].index("N (this run)")
    assert {row[n_this] for row in table["data"]} <= {"2", ""}  # the 2 validation clips
    message = client.predict("smoke", api_name="/promote")
    assert "Promoted" in message
    version = (roots["checkpoints"] / "ACTIVE").read_text().strip()
    assert version.startswith("smoke-")
    assert (roots["checkpoints"] / "versions" / version / "model.safetensors").exists()
    assert f"Checkpoint `{version}`" in client.predict(api_name="/model_card")


def test_train_refuses_unknown_and_too_small_datasets(client, app, face_video):
    url, roots, workdir = app
    assert "unknown dataset" in train_start(client, "/etc")
    tiny_dataset(roots["data"] / "small", face_video, (4, 1, 1))  # under the minimum of 2
    runs_before = sorted(roots["runs"].glob("*")) if roots["runs"].exists() else []
    message = train_start(client, "folder: small")
    # the refusal says which splits are short, by how much, and what the minimum is
    assert "(train 4, val 1, test 1)" in message and "minimum is 2" in message, message
    assert "val and test are short" in message, message
    assert (sorted(roots["runs"].glob("*")) if roots["runs"].exists() else []) == runs_before


def test_failed_logins_are_limited(tmp_path):
    """With --auth, a client gets a bounded number of wrong passwords a minute; after that even
    the right one is refused until the window passes (it used to take 25 guesses in 0.04 s)."""
    import urllib.error
    import urllib.parse
    import urllib.request
    from talkface.app.login import MAX_FAILURES
    proc, url, _ = start_app(tmp_path, "--auth", "ann:right-password")

    def login(password: str) -> int:
        form = urllib.parse.urlencode({"username": "ann", "password": password}).encode()
        try:
            return urllib.request.urlopen(url + "/login", form, timeout=10).status
        except urllib.error.HTTPError as err:
            return err.code

    try:
        assert login("right-password") == 200
        codes = [login(f"guess-{i}") for i in range(MAX_FAILURES + 2)]
        assert codes == [400] * MAX_FAILURES + [429, 429], codes
        assert login("right-password") == 429
    finally:
        stop_app(proc)
