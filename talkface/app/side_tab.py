"""The Side by side tab: two clips (two generators on the same input, say) scored through the
Score tab's path (`AppState.score`), played next to each other, their per-clip rows in one table
(`clips.clip_table`, as the batch and Compare show them) and their timelines
(`plots.timeline_plot`) one below the other on the same time axis. "Play both" starts the two
players together from the start (a few lines of JavaScript in the page; nothing on the server).
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import plots
from . import clips, views
from .preview import write_preview
from .state import AppState
from .tabs import CLIP_HEADERS, CLIP_WIDTHS, chosen_clip
from .views import status_html
from .wiring import failure_text

SIDES = ("A", "B")
PLAYERS = "#side-player-a video, #side-player-b video"
PLAY_BOTH = ("() => { document.querySelectorAll('" + PLAYERS + "').forEach(v => "
             "{ v.pause(); v.currentTime = 0; v.play(); }); }")
PAUSE_BOTH = "() => { document.querySelectorAll('" + PLAYERS + "').forEach(v => v.pause()); }"


def side_tab(state: AppState) -> None:
    gr.Markdown("Two clips, for instance two generators driven by the same input: both are "
                "scored as on the Score tab, shown next to each other, and their timelines are "
                "drawn one below the other on the same time axis.", elem_id="side-intro")
    inputs = []
    with gr.Row(equal_height=False):
        for side in SIDES:
            with gr.Column():
                video = gr.Video(label=f"Clip {side}", sources=["upload"], height=200,
                                 elem_id=f"side-video-{side.lower()}")
                sample = gr.Dropdown(choices=views.demo_choices(state.demo_dir), value=None,
                                     label=f"...or a bundled sample as clip {side}",
                                     elem_id=f"side-sample-{side.lower()}")
                inputs += [video, sample]
                # one source per side: choosing one clears the other
                video.upload(lambda: None, None, sample, queue=False, api_visibility="private")
                sample.input(lambda: None, None, video, queue=False, api_visibility="private")
    with gr.Row():
        button = gr.Button("Score both", variant="primary", elem_id="side-button", scale=2)
        play = gr.Button("Play both from the start", elem_id="side-play", scale=1)
        pause = gr.Button("Pause both", elem_id="side-pause", scale=1)
    status = gr.HTML(elem_id="side-status")
    with gr.Row(equal_height=True):
        players = [gr.Video(label=f"Clip {side} (what was scored, face boxed)",
                            interactive=False, height=320, elem_id=f"side-player-{side.lower()}")
                   for side in SIDES]
    table = gr.Dataframe(headers=CLIP_HEADERS, interactive=False, wrap=True,
                         column_widths=CLIP_WIDTHS, elem_id="side-table",
                         elem_classes=["tf-table", "tf-clips"], label="Both clips")
    timelines = [gr.Plot(label=f"Timeline of clip {side}", elem_id=f"side-timeline-{side.lower()}")
                 for side in SIDES]
    outputs = [status, *players, table, *timelines]

    def compare(upload_a, sample_a, upload_b, sample_b, progress=gr.Progress()):
        try:
            chosen = [chosen_clip(state, upload, sample, None) for upload, sample in
                      ((upload_a, sample_a), (upload_b, sample_b))]
        except Exception as err:
            yield status_html(failure_text(err, state.redact, "side"), "error"), *[None] * 5
            return
        yield status_html("Scoring both clips...", "busy"), *[None] * 5
        paths, names = [c[0] for c in chosen], [c[2] for c in chosen]
        results = clips.score_batch(state.score, paths, names, progress=lambda done, total,
                                    what: progress((done, total), desc=f"scoring {what}"))
        end = max((r.n_frames / r.fps for r in results if r.ok and r.fps), default=None)
        lines = [plots.timeline_plot(r, end, f"{side}: {Path(r.file).name}") if r.ok else None
                 for side, r in zip(SIDES, results)]
        table = clips.clip_table(results, state.scorer().tasks, redact=state.redact)
        failed = [f"{side}: {state.redact(r.error or '')}" for side, r in zip(SIDES, results)
                  if not r.ok]
        yield (status_html("; ".join(failed) if failed else "Scored both; the players follow.",
                           "error" if failed else "busy"), None, None, table, *lines)
        made = [_preview(state, r, path) for r, path in zip(results, paths)]
        done = "Scored both: press Play both to watch them together." if not failed else \
            "; ".join(failed)
        yield (status_html(done, "error" if failed else "ok"), *made, table, *lines)

    button.click(compare, inputs, outputs, api_name="side_by_side", concurrency_id="scorer",
                 concurrency_limit=state.concurrency, show_progress_on=[status])
    play.click(None, None, None, js=PLAY_BOTH, queue=False)
    pause.click(None, None, None, js=PAUSE_BOTH, queue=False)


def _preview(state: AppState, result, path: str):
    """The scored clip's preview (the Score tab's), or None when it failed or cannot be made."""
    if not result.ok:
        return None
    try:
        return str(write_preview(result, path, state.request_folder()))
    except Exception as err:  # a preview failing must not hide the scores
        failure_text(err, state.redact, "side preview")
        return None
