"""talkface in the browser: `talkface app` or `python app.py [--host 127.0.0.1] [--port 7860]
[--checkpoint DIR] [--workers N] [--auth USER:PASS | --auth-file FILE] [--insecure]
[--data-root DIR] [--syncnet-weights syncnet_v2.model]`.

Gradio wiring only: the page and the server. The tabs are laid out in `talkface.app.tabs`,
`talkface.app.side_tab` and `talkface.app.train_tab`; what they compute lives in `views`,
`picker`, `train_views`, `state`, `jobs`, `preview`, `talkface.plots` and
`talkface.leaderboard`. Server defaults: analytics off, bound to 127.0.0.1, SSR off, a queue
feeding `--workers` feature worker processes (default min(2, cpu_count): each makes one clip's
features at a time with its own Scorer, `talkface.parallel.FeatureWorkers`; the model and the
drawing stay in the app's request threads, which share one thread-safe Scorer), an upload size
limit, uploads deleted after an hour, every error shown as a readable message on
the page. A server reachable from other machines (`--host` other than loopback) does not start
without credentials unless `--insecure` says so, and then training and promotion are off; with
credentials, failed logins are limited per client address (`talkface.app.login`). On exit
(SIGTERM, Ctrl-C) a running job is stopped and the scratch folder, Gradio's temp files included,
is removed; a start removes those of killed earlier runs.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import ipaddress  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import gradio as gr  # noqa: E402

from ..errors import ConfigError  # noqa: E402
from . import scratch as scratch_dir  # noqa: E402
from .datasets import MIN_EVAL_CLIPS  # noqa: E402
from .login import LoginLimiter  # noqa: E402
from .runs import KEEP_RUNS  # noqa: E402
from .state import AppState  # noqa: E402
from .side_tab import side_tab  # noqa: E402
from .tabs import compare_tab, dataset_tab, model_tab, score_tab  # noqa: E402
from .train_tab import train_tab  # noqa: E402
from .views import CSS_FILE, EAGER_IMAGES  # noqa: E402

log = logging.getLogger("talkface.app")
MAX_UPLOAD = "500mb"


def build_app(state: AppState) -> gr.Blocks:
    with gr.Blocks(title="talkface", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# talkface\nNo-reference quality scores for AI-generated talking-face "
                    "videos, with what the model looked at.")
        with gr.Tab("Score"):
            score_tab(state)
        with gr.Tab("Side by side"):
            side_tab(state)
        with gr.Tab("Dataset"):
            dataset_tab(state)
        with gr.Tab("Compare"):
            compare_tab(state)
        with gr.Tab("Train"):
            on_load, outputs = train_tab(state)
        with gr.Tab("Model"):
            model_tab(state)
        demo.load(on_load, None, outputs, api_visibility="private", show_progress="hidden")
    return demo


# --- server --------------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_credentials(pairs: list[str], files: list[str]) -> list[tuple[str, str]]:
    """`USER:PASS` items and files of such lines (`#` comments) -> Gradio's auth list."""
    items = list(pairs or [])
    for name in files or []:
        try:
            items += [line.strip() for line in Path(name).read_text().splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
        except OSError as err:
            raise ConfigError(f"--auth-file {name}: {err.strerror}") from None
    credentials = []
    for item in items:
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ConfigError("credentials must be USER:PASSWORD (non-empty both)")
        credentials.append((user, password))
    return credentials


def check_exposure(host: str, credentials: list, insecure: bool) -> None:
    """Refuse to serve other machines without a login, unless the user said so."""
    if credentials or insecure or is_loopback(host):
        return
    raise ConfigError(f"--host {host} makes the app reachable from other machines, and no login "
                      f"was given: add --auth USER:PASS (or --auth-file FILE), or --insecure to "
                      f"serve it to anyone who can reach it (training and promotion then stay "
                      f"off), or bind it to 127.0.0.1")


def training_off_reason(host: str, credentials: list, no_training: bool) -> str:
    if no_training:
        return "It was started with --no-training."
    if credentials or is_loopback(host):
        return ""
    return (f"This server listens on {host} without credentials, so anyone who can reach it "
            f"could start jobs and replace the checkpoint. Restart it with --auth USER:PASS (or "
            f"--auth-file FILE) to allow them, or bind it to 127.0.0.1.")


def set_threads(workers: int) -> None:
    """Give the app's request threads their share of the cores (the worker processes take
    theirs, `talkface.features.batch.process_pool`): torch's intra-op pool and OpenCV's would
    otherwise each start one thread per core."""
    import cv2
    import torch
    share = max(1, (os.cpu_count() or 1) // max(1, workers))
    torch.set_num_threads(share)
    cv2.setNumThreads(share)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="talkface web app")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    p.add_argument("--checkpoint-root", dest="checkpoint_root",
                   help="where checkpoints live and are promoted to (default: $TALKFACE_CHECKPOINTS"
                        " or checkpoints/)")
    p.add_argument("--runs-root", dest="runs_root", help="where training jobs write their runs")
    p.add_argument("--data-root", dest="data_roots", action="append", default=[],
                   help="a folder whose datasets (sub-folders with manifest.csv) the Train tab "
                        "may use (repeat)")
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASS",
                   help="require this login (repeat for several users)")
    p.add_argument("--auth-file", dest="auth_files", action="append", default=[],
                   metavar="FILE", help="a file of USER:PASS lines (keeps secrets out of `ps`)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a --host other than loopback without --auth (anyone who can "
                        "reach it may score clips; training and promotion stay off)")
    p.add_argument("--no-training", dest="no_training", action="store_true",
                   help="switch training and promotion off")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes making clips' features, one clip each at a time "
                        "(default: 2, or 1 on one core; 0: in the app's own process)")
    p.add_argument("--recycle-after", dest="recycle_after", type=int, default=None,
                   metavar="K", help="replace a worker process by a fresh one after K clips "
                                     "(default: never)")
    p.add_argument("--keep-runs", dest="keep_runs", type=int, default=KEEP_RUNS,
                   help=f"training run folders kept under --runs-root: the newest N (default "
                        f"{KEEP_RUNS}), besides the running one and the one last promoted")
    p.add_argument("--min-eval-clips", dest="min_eval_clips", type=int, default=MIN_EVAL_CLIPS,
                   help="refuse training runs with fewer labelled clips in train, val or test")
    p.add_argument("--max-file-size", dest="max_file_size", default=MAX_UPLOAD)
    p.add_argument("--syncnet-weights", dest="syncnet_weights", metavar="PATH",
                   help="SyncNet's own weights (syncnet_v2.model, not shipped): the Score tab "
                        "adds paper-standard LSE-D / LSE-C")
    return p.parse_args(argv)


def server_options(credentials: list) -> dict:
    """FastAPI settings for Gradio's app: with a login, failed attempts are limited."""
    from starlette.middleware import Middleware
    return {"middleware": [Middleware(LoginLimiter)]} if credentials else {}


def _stop_on_sigterm() -> None:
    """SIGTERM ends the server like Ctrl-C does, so the clean-up below runs."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        credentials = read_credentials(args.auth, args.auth_files)
        check_exposure(args.host, credentials, args.insecure)
    except ConfigError as err:
        raise SystemExit(f"talkface app: {err}") from None
    scratch = scratch_dir.make_scratch()
    scratch_dir.use_for_gradio(scratch)  # before any Blocks exists
    state: Optional[AppState] = None
    try:
        set_threads(args.workers)
        state = AppState(args.checkpoint,
                         Path(args.checkpoint_root) if args.checkpoint_root else None,
                         Path(args.runs_root) if args.runs_root else None,
                         data_roots=[Path(r) for r in args.data_roots], scratch=scratch,
                         training_off=training_off_reason(args.host, credentials,
                                                          args.no_training),
                         min_eval_clips=args.min_eval_clips, workers=args.workers,
                         syncnet_weights=args.syncnet_weights, keep_runs=args.keep_runs,
                         recycle_after=args.recycle_after)
        if state.training_off:
            log.warning("training and promotion are off: %s", state.training_off)
        demo = build_app(state)
        demo.queue(api_open=False, max_size=64, default_concurrency_limit=1)
        _stop_on_sigterm()
        demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False,
                    max_file_size=args.max_file_size, show_error=False, quiet=False,
                    footer_links=["api"], css=CSS_FILE.read_text(), head=EAGER_IMAGES,
                    theme=gr.themes.Soft(),
                    auth=credentials or None, app_kwargs=server_options(credentials))
    finally:
        if state is not None:
            state.close()
        shutil.rmtree(scratch, ignore_errors=True)
        log.info("removed the scratch folder")


if __name__ == "__main__":
    main()
