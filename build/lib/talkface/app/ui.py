"""talkface in the browser: `talkface app` or `python app.py [--host 127.0.0.1] [--port 7860]
[--checkpoint DIR]`.

Gradio wiring only: layout and events. What each tab computes lives in `talkface.app.views`,
`talkface.app.state`, `talkface.app.jobs`, `talkface.plots` and `talkface.compare`. Server defaults: analytics off, bound to
127.0.0.1, SSR off, a queue with a concurrency limit for scoring, an upload size limit, uploads
deleted after an hour, and every error shown as a readable message (never a stack trace).
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from .. import plots  # noqa: E402
from ..compare import compare_groups, format_leaderboard  # noqa: E402
from ..errors import TalkfaceError  # noqa: E402
from . import views  # noqa: E402
from .jobs import JobError, JobSpec, list_configs  # noqa: E402
from .state import AppState  # noqa: E402

log = logging.getLogger("talkface.app")
MAX_UPLOAD = "500mb"
N_GROUPS = 4


def readable(fn):
    """Show a TalkfaceError's message in the page; anything else as a short message, logged."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except TalkfaceError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # the app must keep serving whatever one request does
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected {type(err).__name__}: {err}. The app is still running; "
                           f"details are in the server log.", print_exception=False) from None
    return wrapper


def build_app(state: AppState) -> gr.Blocks:
    with gr.Blocks(title="talkface", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# talkface\nNo-reference quality scores for AI-generated talking-face "
                    "videos, with what the model looked at.")
        with gr.Tab("Score"):
            _score_tab(state)
        with gr.Tab("Dataset"):
            _dataset_tab(state)
        with gr.Tab("Compare"):
            _compare_tab(state)
        with gr.Tab("Train"):
            _train_tab(state)
        with gr.Tab("Model"):
            _model_tab(state)
    return demo


# --- Score ---------------------------------------------------------------------------------------

def _score_tab(state: AppState) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            video = gr.Video(label="Video to score", sources=["upload"], elem_id="score-video")
            sample = gr.Dropdown(choices=views.demo_choices(state.demo_dir), value=None,
                                 label="...or a bundled sample", elem_id="score-sample")
            button = gr.Button("Score", variant="primary", elem_id="score-button")
        with gr.Column(scale=2):
            cards = gr.HTML(elem_id="score-cards")
            notes = gr.Markdown(elem_id="score-warnings")
            download = gr.File(label="Result as JSON", elem_id="score-json")
    with gr.Row():
        radar = gr.Plot(label="Radar", elem_id="score-radar")
        heatmap = gr.Plot(label="Temporal attention", elem_id="score-heatmap")
    with gr.Row():
        sync = gr.Plot(label="Lip sync", elem_id="score-sync")
        cross = gr.Plot(label="Cross-modal attention", elem_id="score-cross")
    gallery = gr.Gallery(label="Most and least attended frames", columns=6, height=220,
                         elem_id="score-frames")

    @readable
    def score(upload, picked, progress=gr.Progress()):
        path = upload or (str(state.demo_dir / picked) if picked else None)
        if not path:
            raise gr.Error("Upload a video or pick a bundled sample first.")
        progress(0, desc="extracting features")
        result = state.score(path, progress=lambda done, total, what: progress(
            (done, total), desc="extracting features", unit="frames"))
        progress(1.0, desc="drawing")
        return (views.score_cards_html(result), views.warnings_markdown(result),
                str(views.write_json(result, state.scratch)), plots.result_radar(result),
                plots.attention_heatmap(result), plots.sync_plot(result.sync),
                plots.cross_matrix(result), views.thumbnails(result, path))

    outputs = [cards, notes, download, radar, heatmap, sync, cross, gallery]
    # clear the previous clip's results first, so a failure never sits beside stale scores
    button.click(lambda: [None] * len(outputs), None, outputs, queue=False,
                 api_visibility="private").then(
        score, [video, sample], outputs, api_name="score", concurrency_id="scorer",
        concurrency_limit=1)


# --- Dataset -------------------------------------------------------------------------------------

def _dataset_tab(state: AppState) -> None:
    gr.Markdown("Bundled samples with how they were made (condition) and their true labels. "
                "**Score samples** adds the model's predictions beside them.")
    with gr.Row():
        condition = gr.Dropdown(choices=views.conditions(state), value="all",
                                label="Condition", elem_id="dataset-condition")
        score_button = gr.Button("Score samples", elem_id="dataset-score")
    table = gr.Dataframe(value=lambda: _quietly(views.dataset_table, state), interactive=False,
                         wrap=True, elem_id="dataset-table")

    @readable
    def show(cond):
        return views.dataset_table(state, cond)

    @readable
    def score_all(cond, progress=gr.Progress()):
        return views.score_demo(state, cond, progress=lambda done, total, f: progress(
            (done, total), desc=f))

    condition.change(show, condition, table, api_name="dataset")
    score_button.click(score_all, condition, table, api_name="dataset_score",
                       concurrency_id="scorer", concurrency_limit=1)


def _quietly(fn, *args):
    """For values computed on page load: an error becomes its message, not a broken page."""
    try:
        return fn(*args)
    except TalkfaceError as err:
        return f"*{err}*" if fn is not views.dataset_table else None


# --- Compare -------------------------------------------------------------------------------------

def _compare_tab(state: AppState) -> None:
    gr.Markdown("Each generator is a named group of clips. Groups left empty are ignored.")
    inputs = []
    with gr.Row():
        for i in range(N_GROUPS):
            with gr.Column(min_width=200):
                inputs.append(gr.Textbox(value=f"generator {chr(65 + i)}", label="Name",
                                         elem_id=f"group-name-{i}"))
                inputs.append(gr.File(file_count="multiple", label="Clips",
                                      elem_id=f"group-files-{i}"))
    button = gr.Button("Compare", variant="primary", elem_id="compare-button")
    board = gr.Dataframe(label="Leaderboard (mean [95% CI])", interactive=False,
                         elem_id="compare-board")
    bars = gr.Plot(elem_id="compare-bars")
    pairs = gr.Dataframe(label="Pairwise win rates (Mann-Whitney U test)", interactive=False,
                         elem_id="compare-pairs")
    csv = gr.File(label="Leaderboard CSV", elem_id="compare-csv")

    @readable
    def compare(*values, progress=gr.Progress()):
        groups = {}
        for name, files in zip(values[0::2], values[1::2]):
            if files:
                name = (name or "").strip() or f"group {len(groups) + 1}"
                if name in groups:
                    raise gr.Error(f"Two groups are called {name!r}; give each a unique name.")
                groups[name] = [f if isinstance(f, str) else f.name for f in files]
        if not groups:
            raise gr.Error("Add clips to at least one group.")
        result = compare_groups(state.scorer(), groups, progress=lambda done, total, what:
                                progress((done, total), desc=what))
        path = result.to_csv(state.scratch / "leaderboard.csv")
        return (format_leaderboard(result.leaderboard, result.tasks),
                plots.grouped_bars(result.leaderboard, result.tasks),
                result.pairwise.round(4), str(path))

    button.click(compare, inputs, [board, bars, pairs, csv], api_name="compare",
                 concurrency_id="scorer", concurrency_limit=1)


# --- Train ---------------------------------------------------------------------------------------

DATASETS = {"bundled demo set": "demo", "generate new clips": "generate",
            "folder with a manifest": "folder"}


def _train_tab(state: AppState) -> None:
    configs = list_configs()
    with gr.Row():
        config = gr.Dropdown(choices=configs, label="Config", elem_id="train-config",
                             value="optimized" if "optimized" in configs else None)
        dataset = gr.Radio(list(DATASETS), value="bundled demo set", label="Dataset",
                           elem_id="train-dataset")
        n_clips = gr.Number(value=24, precision=0, label="Clips to generate",
                            elem_id="train-nclips")
        folder = gr.Textbox(label="Folder (with manifest.csv)", elem_id="train-folder")
    with gr.Row():
        epochs = gr.Number(value=None, precision=0, label="Epochs (0: from the config)",
                           elem_id="train-epochs")
        batch = gr.Number(value=None, precision=0, label="Batch size (0: from the config)",
                          elem_id="train-batch")
        lr = gr.Number(value=None, label="Learning rate (0: from the config)", elem_id="train-lr")
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        cancel = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
    status = gr.Markdown("No training job yet.", elem_id="train-status")
    curves = gr.Plot(elem_id="train-curves")
    logbox = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True, elem_id="train-log")
    side = gr.Dataframe(label="This run vs the active checkpoint", interactive=False,
                        elem_id="train-metrics")
    with gr.Row():
        name = gr.Textbox(label="Promote as", value="", placeholder="e.g. retrained-1",
                          elem_id="promote-name")
        promote = gr.Button("Promote to active checkpoint", elem_id="promote-button")
    promoted = gr.Markdown(elem_id="promote-result")
    timer = gr.Timer(2.0, active=False)

    @readable
    def start_job(cfg, ds, n, fold, ep, bs, rate):
        job = state.jobs.start(JobSpec(config=cfg or "optimized", dataset=DATASETS[ds],
                                       folder=fold or None, n_clips=int(n or 0), epochs=ep or None,
                                       batch_size=bs or None, lr=rate or None))
        return f"**{job.summary()}**", gr.Timer(active=True)

    @readable
    def poll():
        job = state.jobs.current
        if job is None:
            return "No training job yet.", plots.training_curves([]), "", None, gr.Timer()
        active = views.checkpoint_metrics(_active_path(state))
        table = None if job.running else views.metrics_side_by_side(
            views.checkpoint_metrics(job.checkpoint()), active)
        return (f"**{job.summary()}**", plots.training_curves(job.metrics(), active.get("mean")),
                job.log_tail(), table, gr.Timer(active=job.running))

    @readable
    def cancel_job():
        return f"**{state.jobs.cancel().summary()}**"

    @readable
    def promote_job(label):
        job = state.jobs.current
        if job is None or job.status != "finished" or job.checkpoint() is None:
            raise JobError("nothing to promote: finish a training job first")
        target = state.promote(job.checkpoint(), label or job.name)
        return f"Promoted **{job.name}** to `{target}`; the app now scores with it."

    start.click(start_job, [config, dataset, n_clips, folder, epochs, batch, lr], [status, timer],
                api_name="train_start")
    timer.tick(poll, None, [status, curves, logbox, side, timer], api_name="train_status",
               concurrency_id="poll", concurrency_limit=None, show_progress="hidden")
    cancel.click(cancel_job, None, status, api_name="train_cancel")
    promote.click(promote_job, name, promoted, api_name="promote")


def _active_path(state: AppState):
    try:
        return state.checkpoint_path()
    except TalkfaceError:
        return None


# --- Model ---------------------------------------------------------------------------------------

def _model_tab(state: AppState) -> None:
    card = gr.Markdown(value=lambda: _quietly(
        lambda s: views.model_card_markdown(s.scorer().loaded), state), elem_id="model-card")
    refresh = gr.Button("Reload", elem_id="model-refresh")

    @readable
    def show():
        return views.model_card_markdown(state.scorer().loaded)

    refresh.click(show, None, card, api_name="model_card")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="talkface web app")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    p.add_argument("--checkpoint-root", dest="checkpoint_root",
                   help="where checkpoints live and are promoted to (default: $TALKFACE_CHECKPOINTS"
                        " or checkpoints/)")
    p.add_argument("--runs-root", dest="runs_root", help="where training jobs write their runs")
    p.add_argument("--max-file-size", dest="max_file_size", default=MAX_UPLOAD)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    state = AppState(args.checkpoint, Path(args.checkpoint_root) if args.checkpoint_root
                           else None, Path(args.runs_root) if args.runs_root else None)
    demo = build_app(state)
    demo.queue(api_open=False, max_size=64, default_concurrency_limit=1)
    demo.launch(server_name=args.host, server_port=args.port, ssr_mode=False,
                max_file_size=args.max_file_size, show_error=False, quiet=False,
                footer_links=["api"], css=views.CSS_FILE.read_text(), theme=gr.themes.Soft())


if __name__ == "__main__":
    main()
