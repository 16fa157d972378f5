"""The app's guards, without a browser or a model: uploaded dataset archives (a zip bomb, an
archive without a manifest, one whose directory lies, one with a bad manifest) leave nothing on
disk; failed logins are limited per client address; a server reachable from other machines does
not start without a login unless told to; empty tables have real headers; the Model tab opens
its first section."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from talkface.app.datasets import DatasetRefused, DatasetRegistry

BUDGET = 1 << 20  # bytes an upload may unpack to, in these tests
MANIFEST = "file,lip_sync\nclip0.mp4,0.5\n"


def registry(tmp_path: Path) -> DatasetRegistry:
    return DatasetRegistry(tmp_path / "demo", tmp_path / "uploads", max_upload_bytes=BUDGET)


def zip_of(path: Path, files: dict[str, bytes | int]) -> Path:
    """A deflated .zip; an int stands for that many zero bytes (written in chunks)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            if isinstance(content, int):
                with zf.open(name, "w", force_zip64=True) as out:
                    for _ in range(content // (1 << 20)):
                        out.write(bytes(1 << 20))
            else:
                zf.writestr(name, content)
    return path


def left_on_disk(tmp_path: Path) -> list[Path]:
    uploads = tmp_path / "uploads"
    return sorted(uploads.rglob("*")) if uploads.exists() else []


def test_a_zip_bomb_is_refused_and_leaves_nothing(tmp_path):
    bomb = zip_of(tmp_path / "bomb.zip", {"manifest.csv": MANIFEST, "clip0.mp4": 64 << 20})
    assert bomb.stat().st_size < 200_000  # 64 MB of zeros in a small archive
    with pytest.raises(DatasetRefused, match="unpacks to more than 1.0 MB"):
        registry(tmp_path).add_upload(bomb, "bomb.zip")
    assert left_on_disk(tmp_path) == []


def test_an_archive_without_a_manifest_is_refused_before_anything_is_unpacked(tmp_path):
    """It used to be unpacked in full, then refused for having no manifest, and stay on disk."""
    bomb = zip_of(tmp_path / "bomb.zip", {"zeros.bin": 8 << 20})
    big = DatasetRegistry(tmp_path / "demo", tmp_path / "uploads")  # the default budget
    with pytest.raises(DatasetRefused, match="no manifest.csv.*nothing was unpacked"):
        big.add_upload(bomb, "bomb.zip")
    assert left_on_disk(tmp_path) == []


def lie_about_sizes(path: Path) -> Path:
    """Set every uncompressed size in the central directory to 1 byte: a directory that lies."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        struct.pack_into("<I", data, at + 24, 1)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def test_an_archive_whose_directory_lies_is_refused_and_leaves_nothing(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.csv", MANIFEST)
        zf.writestr("clip0.mp4", bytes(2 << 20))
    with pytest.raises(DatasetRefused, match="damaged|more than"):
        registry(tmp_path).add_upload(lie_about_sizes(archive), "liar.zip")
    assert left_on_disk(tmp_path) == []


def test_a_bad_manifest_is_refused_and_its_upload_removed(tmp_path):
    archive = zip_of(tmp_path / "bad.zip", {"manifest.csv": "file,lip_sync\n../../x.mp4,0.5\n"})
    with pytest.raises(DatasetRefused, match="outside its folder"):
        registry(tmp_path).add_upload(archive, "bad.zip")
    assert left_on_disk(tmp_path) == []


def test_a_good_archive_is_unpacked_under_its_budget(tmp_path):
    archive = zip_of(tmp_path / "good.zip", {"data/manifest.csv": MANIFEST,
                                             "data/clip0.mp4": b"x" * 1000})
    added = registry(tmp_path).add_upload(archive, "good.zip")
    assert added.label == "upload: good" and (added.folder / "clip0.mp4").stat().st_size == 1000


# --- logins --------------------------------------------------------------------------------------

def login_app(limiter_options: dict):
    """A stand-in for Gradio's /login (400 for a wrong password) behind the limiter."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from talkface.app.login import LoginLimiter

    async def login(request):
        form = await request.form()
        ok = form.get("password") == "right"
        return JSONResponse({"success": ok}, status_code=200 if ok else 400)

    return Starlette(routes=[Route("/login", login, methods=["POST"]),
                             Route("/", lambda request: JSONResponse({}))],
                     middleware=[Middleware(LoginLimiter, **limiter_options)])


def test_failed_logins_are_limited_per_client_and_window():
    from starlette.testclient import TestClient
    now = [1000.0]
    app = login_app({"max_failures": 3, "window": 60.0, "clock": lambda: now[0]})
    first = TestClient(app, client=("10.0.0.1", 5000))
    other = TestClient(app, client=("10.0.0.2", 5000))
    codes = [first.post("/login", data={"username": "u", "password": f"guess{i}"}).status_code
             for i in range(5)]
    assert codes == [400, 400, 400, 429, 429]
    refused = first.post("/login", data={"username": "u", "password": "right"})
    assert refused.status_code == 429 and "try again in 60 s" in refused.json()["detail"]
    assert first.get("/").status_code == 200  # only the login is limited
    assert other.post("/login", data={"username": "u", "password": "right"}).status_code == 200
    now[0] += 61  # the failures leave the window
    assert first.post("/login", data={"username": "u", "password": "right"}).status_code == 200


def test_the_server_is_given_the_login_limit_with_credentials_only():
    from talkface.app.login import LoginLimiter
    from talkface.app.ui import server_options
    assert [m.cls for m in server_options([("u", "p")])["middleware"]] == [LoginLimiter]
    assert server_options([]) == {}


# --- exposure ------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_a_non_loopback_host_without_a_login_does_not_start(host, monkeypatch):
    import gradio as gr

    from talkface.app import ui

    def launch(*args, **kwargs):  # were the check missing, fail here instead of serving
        raise AssertionError(f"the app would have served {host} without a login")

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(ui, "set_threads", lambda workers: None)
    with pytest.raises(SystemExit) as stopped:
        ui.main(["--host", host])
    message = str(stopped.value.code)
    assert f"--host {host}" in message and "--auth" in message and "--insecure" in message


def test_a_login_or_insecure_or_loopback_lets_it_start():
    from talkface.app.ui import check_exposure, parse_args, training_off_reason
    check_exposure("0.0.0.0", [("u", "p")], insecure=False)
    check_exposure("127.0.0.1", [], insecure=False)
    check_exposure("localhost", [], insecure=False)
    args = parse_args(["--host", "0.0.0.0", "--insecure"])
    assert args.insecure
    check_exposure(args.host, [], args.insecure)
    assert training_off_reason(args.host, [], False)  # served insecurely: no training


# --- layout --------------------------------------------------------------------------------------

def test_empty_tables_show_their_column_names(tmp_path):
    """Gradio's default header for a table with no value is "1 2 3"."""
    import gradio as gr
    from helpers import make_random_checkpoint

    from talkface.app.state import AppState
    from talkface.app.ui import build_app
    fixture = make_random_checkpoint(tmp_path / "fixture")
    state = AppState(str(fixture), tmp_path / "checkpoints", tmp_path / "runs",
                     demo_dir=tmp_path / "no-samples", scratch=tmp_path / "scratch")
    tables = [b for b in build_app(state).blocks.values() if isinstance(b, gr.Dataframe)]
    assert len(tables) >= 6
    for table in tables:
        headers = table.postprocess(None).headers
        assert headers and headers != ["1", "2", "3"], (table.elem_id, headers)


def test_the_model_card_opens_its_first_section(tmp_path):
    from helpers import make_random_checkpoint

    from talkface.app.views import model_card_markdown
    from talkface.checkpoint import load_checkpoint
    make_random_checkpoint(tmp_path / "fixture")
    card = model_card_markdown(load_checkpoint(tmp_path / "fixture"))
    sections = card.split("<details")[1:]
    assert sections[0].startswith(" open><summary>Tasks")
    assert all(s.startswith("><summary>") for s in sections[1:])


def test_a_preview_for_a_clip_the_page_replaced_does_not_overwrite_it():
    """The Score tab's previews finish after the scores; if the page has moved on (another clip
    scored, an upload cleared or replaced), the late preview must leave the page alone."""
    from types import SimpleNamespace

    from talkface.app.tabs import PageClips
    pages = PageClips(limit=2)
    one, two = SimpleNamespace(session_hash="a"), SimpleNamespace(session_hash="b")
    first = pages.new(one)
    assert pages.is_current(one, first)
    pages.show(one, None)  # the page was cleared (an upload, a new sample, an error)
    assert not pages.is_current(one, first)
    second = pages.new(one)
    assert pages.is_current(one, second) and not pages.is_current(one, first)
    other = pages.new(two)
    assert pages.is_current(two, other) and pages.is_current(one, second)  # pages are separate
    pages.new(SimpleNamespace(session_hash="c"))  # over the limit: the oldest page is forgotten
    assert not pages.is_current(one, second)
