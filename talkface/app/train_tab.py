"""The Train tab: Gradio layout and events for background training (and, where `train.search`
is installed, hyperparameter search) jobs, and promotion.

Datasets are picked from a list (bundled, uploaded .zip, `--data-root` folders), never typed as
a server path. A job keeps running when the page is closed; a page opened later reattaches to
it. Training and promotion are refused with a reason when the server is exposed without
credentials (`AppState.training_off`).
"""
from __future__ import annotations

import gradio as gr

from .. import plots
from ..errors import TalkfaceError
from . import train_views as tv
from .datasets import GENERATE
from .jobs import JobError, JobSpec, list_configs, search_available
from .state import AppState
from .views import status_html
from .wiring import blanks, guarded

MODES = [("train a model", "train"), ("hyperparameter search (Optuna)", "search")]
# what the tables show before a run has any (Gradio's default header is "1 2 3")
SIDE_HEADERS = ["task", "metric", "this run", "N (this run)", "active checkpoint", "N (active)"]
TRIALS_HEADERS = ["trial", "state", "value"]


def train_tab(state: AppState):
    """Lay out the tab; returns (load function, its outputs) for the page's load event."""
    configs = list_configs()
    searching = search_available()
    if state.training_off:
        gr.Markdown(f"**Training and promotion are off on this server.** {state.training_off}",
                    elem_id="train-access")
    with gr.Row():
        config = gr.Dropdown(choices=configs, label="Config", elem_id="train-config",
                             value="optimized" if "optimized" in configs else None)
        mode = gr.Radio(MODES, value="train", label="Mode", elem_id="train-mode",
                        visible=searching)
        dataset = gr.Dropdown(choices=_dataset_choices(state), value=_dataset_choices(state)[0],
                              label="Dataset", elem_id="train-dataset",
                              # the list is refreshed per page load (a new folder or upload
                              # appears); the registry, not Gradio, refuses unknown labels
                              allow_custom_value=True)
        n_clips = gr.Number(value=10 * state.min_eval_clips, precision=0,
                            label="Clips to generate", elem_id="train-nclips",
                            visible=_dataset_choices(state)[0] == GENERATE)
        trials = gr.Number(value=8, precision=0, label="Trials (search)", elem_id="train-trials",
                           visible=searching)
    upload = gr.File(label=f"Add a dataset: a .zip with manifest.csv and its clips (at least "
                     f"{state.min_eval_clips} labelled clips in each of train, val and test)",
                     file_types=[".zip"], elem_id="train-upload")
    with gr.Row():
        epochs = gr.Number(value=None, precision=0, label="Epochs (0: from the config)",
                           elem_id="train-epochs")
        batch = gr.Number(value=None, precision=0, label="Batch size (0: from the config)",
                          elem_id="train-batch")
        lr = gr.Number(value=None, label="Learning rate (0: from the config)", elem_id="train-lr")
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="train-start",
                          interactive=state.training_allowed)
        cancel = gr.Button("Cancel", variant="stop", elem_id="train-cancel",
                           interactive=state.training_allowed)
    status = gr.HTML(status_html("No training job yet."), elem_id="train-status")
    curves = gr.Plot(elem_id="train-curves")
    verdict = gr.Markdown(elem_id="train-verdict")
    side = gr.Dataframe(label="This run vs the active checkpoint (N: clips each metric was "
                        "computed on)", interactive=False, headers=SIDE_HEADERS,
                        elem_id="train-metrics", elem_classes=["tf-table"])
    trials_table = gr.Dataframe(label="Search trials", interactive=False, visible=searching,
                                headers=TRIALS_HEADERS, elem_id="train-trials-table",
                                elem_classes=["tf-table"])
    logbox = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True, elem_id="train-log")
    with gr.Row():
        name = gr.Textbox(label="Promote as", value="", placeholder="e.g. retrained-1",
                          elem_id="promote-name")
        promote = gr.Button("Promote to active checkpoint", elem_id="promote-button",
                            interactive=state.training_allowed)
    promoted = gr.HTML(elem_id="promote-result")
    timer = gr.Timer(2.0, active=False)
    polled = [status, curves, logbox, side, verdict, trials_table, timer]

    @guarded(state.redact, lambda message: (message, gr.Timer()))
    def start_job(cfg, which, ds, n, ep, bs, rate, n_trials):
        state.require_training()
        job = state.jobs.start(JobSpec(config=cfg or "optimized", dataset=ds, n_clips=int(n or 0),
                                       epochs=ep or None, batch_size=bs or None, lr=rate or None,
                                       mode=which or "train", trials=int(n_trials or 8)))
        return status_html(job.summary(), "busy"), gr.Timer(active=True)

    @guarded(state.redact, blanks(len(polled)))
    def poll():
        return job_view(state)

    @guarded(state.redact, lambda message: (message,))
    def cancel_job():
        state.require_training()
        return (status_html(state.jobs.cancel().summary()),)

    @guarded(state.redact, lambda message: message)
    def promote_job(label):
        state.require_training()
        job = state.jobs.current
        if job is None or job.status != "finished" or job.checkpoint() is None:
            raise JobError("nothing to promote: finish a training job first")
        smallest = tv.smallest_n(tv.checkpoint_metrics(job.checkpoint()))
        if smallest is None or smallest < state.min_eval_clips:
            raise JobError(f"this run's metrics rest on {smallest or 0} clips; the minimum to "
                           f"promote is {state.min_eval_clips}")
        target = state.promote(job.checkpoint(), label or job.name)
        return status_html(f"Promoted {job.name} as {target.name}; the app now scores with it.",
                           "ok")

    @guarded(state.redact, lambda message: (message, gr.update()))
    def add_dataset(archive):
        if not archive:
            return "", gr.update()
        state.require_training()
        added = state.registry.add_upload(archive, getattr(archive, "orig_name", None) or
                                          str(archive).rsplit("/", 1)[-1])
        return (status_html(f"Added {added.label}.", "ok"),
                gr.update(choices=_dataset_choices(state), value=added.label))

    start.click(start_job, [config, mode, dataset, n_clips, epochs, batch, lr, trials],
                [status, timer], api_name="train_start")
    timer.tick(poll, None, polled, api_name="train_status", concurrency_id="poll",
               concurrency_limit=None, show_progress="hidden")
    cancel.click(cancel_job, None, status, api_name="train_cancel")
    promote.click(promote_job, name, promoted, api_name="promote")
    upload.upload(add_dataset, upload, [status, dataset], api_name="train_dataset")
    # the number of clips only means something when new clips are generated
    dataset.change(lambda ds: gr.update(visible=ds == GENERATE), dataset, n_clips,
                   api_visibility="private", show_progress="hidden")
    return lambda: _on_load(state), [*polled, dataset, config]


def _on_load(state: AppState) -> tuple:
    """A page opened (or reloaded) while a job runs shows that job, follows it, and shows the
    config and dataset it was started with; the dataset list is read afresh (a folder added
    under a data root appears)."""
    try:
        view = job_view(state)
    except Exception:  # noqa: BLE001 - a page must open whatever a run folder holds
        view = blanks(7)(status_html("The current job could not be read.", "error"))
    job = state.jobs.current
    started = job.settings if job is not None and job.running else {}
    choices = _dataset_choices(state)
    dataset = started.get("dataset")
    return (*view, gr.update(choices=choices, **({"value": dataset} if dataset in choices else {})),
            gr.update(**({"value": started["config"]} if started.get("config") else {})))


def _dataset_choices(state: AppState) -> list[str]:
    return state.registry.choices() + [GENERATE]


def job_view(state: AppState) -> tuple:
    """Status, curves, log, metrics table, verdict, trials and timer for the current job."""
    job = state.jobs.current
    if job is None:
        return (status_html("No training job yet."), plots.training_curves([]), "", None, "",
                None, gr.Timer(active=False))
    active_path = _active_path(state)
    active = tv.checkpoint_metrics(active_path)
    table, verdict = None, ""
    if not job.running and job.checkpoint() is not None:
        run = tv.checkpoint_metrics(job.checkpoint())
        table = tv.metrics_side_by_side(run, active, tv.metrics_split(job.checkpoint()),
                                        tv.metrics_split(active_path))
        verdict = tv.run_verdict(run, state.min_eval_clips)
    kind = "busy" if job.running else "ok" if job.status == "finished" else "error"
    trials = tv.trials_table(job.trials()) if job.mode == "search" else None
    return (status_html(state.redact(job.summary()), kind),
            plots.training_curves(job.metrics(), (active.get("mean") or {})),
            state.redact(job.log_tail()), table, verdict, trials,
            gr.Timer(active=job.running))


def _active_path(state: AppState):
    try:
        return state.checkpoint_path()
    except TalkfaceError:
        return None
