"""The Score, Dataset, Compare and Model tabs: Gradio layout and events only (what they show is
computed in `views`, `preview`, `talkface.plots` and `talkface.leaderboard`).

Every handler reports failure in its tab's status line (`wiring.guarded`) rather than raising, and
new input clears the previous results, so a page never shows a stale score beside a new clip
or a bare "Error" badge. Progress is drawn once, on the status line.
"""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import gradio as gr

from .. import plots
from ..leaderboard import compare_groups, failures, format_leaderboard, ranking_text
from ..errors import TalkfaceError
from . import clips, picker, views
from .preview import write_preview
from .state import AppState
from .views import status_html
from .wiring import blanks, failure_text, guarded

N_GROUPS = 4
SOURCES = [("uploaded video", "upload"), ("bundled sample", "sample")]
# what an empty table shows as its header (Gradio's default is "1 2 3")
DATASET_HEADERS = ["file", "condition", "split", "note"]
BOARD_HEADERS = ["rank", "group", "ranked by", "scored", "failed"]
FAILED_HEADERS = ["group", "file", "error"]
PAIRS_HEADERS = ["task", "group_a", "group_b", "win_rate", "p_value"]
CLIP_HEADERS = ["file", "lip sync", "visual quality", "temporal quality", "overall", "band",
                "better than", "offset", "sync confidence", "pulled down by", "warnings"]
# the clip tables fit the page: names get room for a 40-character hash, notes wrap
CLIP_WIDTHS = ["26%", "5.5%", "5.5%", "6%", "5.5%", "5.5%", "4.5%", "7.5%", "8%", "14.5%",
               "11.5%"]
RANKED_WIDTHS = ["3.5%", "5.5%", "5.5%", "22%", "6%", "5%", "5.5%", "5%", "5%", "4.5%", "7%",
                 "7.5%", "10.5%", "7.5%"]
CLIP_TABLE_HEIGHT = 2400  # pixels before the table scrolls


def _trust(state: AppState) -> str:
    try:
        return views.trust_line(state.scorer().loaded)
    except TalkfaceError as err:
        return f"**No checkpoint could be loaded:** {state.redact(str(err))}"


# --- Score ---------------------------------------------------------------------------------------

def chosen_clip(state: AppState, upload, picked, source) -> tuple[str, str, str]:
    """(path, kind, name) of the clip to score: the source the user chose last. A sample must
    be one of the bundled ones (a client cannot name any other server file)."""
    if source is None:
        if upload and picked:
            raise TalkfaceError("both an upload and a sample are given; choose which to score")
        source = "upload" if upload else "sample" if picked else None
    if source == "upload":
        if not upload:
            raise TalkfaceError("no upload to score: upload a video, or switch the source to "
                                "'bundled sample'")
        return str(upload), "upload", Path(upload).name
    if source == "sample":
        if not picked:
            raise TalkfaceError("no sample chosen: pick one, or switch the source to "
                                "'uploaded video'")
        if picked not in views.demo_choices(state.demo_dir):
            raise TalkfaceError(f"{picked!r} is not one of the bundled samples")
        return str(state.demo_dir / picked), "sample", Path(picked).name
    raise TalkfaceError("Upload a video or pick a bundled sample first.")


def score_tab(state: AppState) -> None:
    trust = gr.Markdown(value=lambda: _trust(state), elem_id="score-trust")
    with gr.Row():
        with gr.Column(scale=1):
            video = gr.Video(label="Video to score", sources=["upload"], elem_id="score-video")
            sample = gr.Dropdown(choices=views.demo_choices(state.demo_dir), value=None,
                                 label="...or a bundled sample", elem_id="score-sample")
            source = gr.Radio(SOURCES, value=None, label="Score this", elem_id="score-source")
            chosen = gr.Markdown(views.source_line(None, None), elem_id="score-chosen")
            reference = gr.Image(type="filepath", sources=["upload"], height=170,
                                 label="Reference portrait (optional)",
                                 elem_id="score-reference")
            gr.Markdown(picker.REFERENCE_HINT, elem_id="score-reference-hint")
            button = gr.Button("Score", variant="primary", elem_id="score-button")
            face = gr.Dropdown(choices=picker.face_choices(None), value=picker.AUTO,
                               label="Face to score", elem_id="score-face",
                               info=picker.PICKER_HINT)
            faces = gr.Gallery(label="Faces found (click one to pick it)", columns=3,
                               height=220, object_fit="contain", allow_preview=False,
                               elem_id="score-faces")
            face_note = gr.Markdown(elem_id="score-face-note")
        with gr.Column(scale=2):
            status = gr.HTML(elem_id="score-status")
            cards = gr.HTML(elem_id="score-cards")
            notes = gr.Markdown(elem_id="score-warnings")
            gr.HTML(views.legend_html(), elem_id="score-legend")
            with gr.Row():
                preview = gr.Video(label="What was scored (scored face boxed)",
                                   interactive=False, elem_id="score-preview", height=300)
                download = gr.File(label="Result as JSON", elem_id="score-json",
                                   elem_classes=["tf-files"])
    timeline = gr.Plot(label="Timeline", elem_id="score-timeline")
    with gr.Row():
        radar = gr.Plot(label="Radar", elem_id="score-radar")
        heatmap = gr.Plot(label="Temporal attention", elem_id="score-heatmap")
    with gr.Row():
        sync = gr.Plot(label="Lip sync", elem_id="score-sync")
        cross = gr.Plot(label="Cross-modal attention", elem_id="score-cross")
    gallery = gr.Gallery(label="Most and least attended frames", columns=6, height=240,
                         elem_id="score-frames")
    scored = gr.State(None)  # the clip last scored, for its preview (never set by a client)
    results = [cards, notes, preview, download, timeline, radar, heatmap, sync, cross, gallery]
    picks = [face, face_note, faces]  # the face picker: reset when the clip changes
    outputs = [status, trust, *results, *picks, scored]

    shown = PageClips()  # what each open page shows, so a late preview cannot overwrite it

    def cleared(message: str, kind: str = "info", request: gr.Request = None,
                new_clip: bool = True) -> tuple:
        shown.show(request, None)
        faces_now = (gr.update(choices=picker.face_choices(None), value=picker.AUTO), "", None) \
            if new_clip else (gr.update(),) * len(picks)
        return (status_html(message, kind), gr.update(), *[None] * len(results), *faces_now,
                None)

    def score(upload, picked, which, chosen_face, portrait, request: gr.Request,
              progress=gr.Progress()):
        try:
            path, kind, name = chosen_clip(state, upload, picked, which)
            face_id = picker.face_value(chosen_face)
            yield cleared(f"Scoring {name}...", "busy", request, new_clip=False)
            result = state.score(path, progress=lambda done, total, what: progress(
                (done, total), desc="extracting features", unit="frames"), face=face_id,
                reference=portrait or None)
            progress(1.0, desc="drawing")
            folder = state.request_folder()
            crops = picker.face_crops(result, path)
            clip = {"path": path, "name": name, "kind": kind, "id": shown.new(request),
                    "face": face_id, "faces": [i for i, _, _ in crops]}
            yield (status_html(scored_text(clip, "the preview follows"), "ok"),
                   _trust(state), views.score_cards_html(result, picker.identity_html(
                       result, asked=bool(portrait))), views.warnings_markdown(result),
                   None, str(views.write_json(result, folder, name)),
                   plots.timeline_plot(result), plots.result_radar(result),
                   plots.attention_heatmap(result), plots.sync_plot(result.sync),
                   plots.cross_matrix(result), views.thumbnails(result, path),
                   gr.update(choices=picker.face_choices(result),
                             value=str(result.face_summary()["scored_track"])
                             if face_id is not None else picker.AUTO),
                   picker.picker_note(result), [(img, cap) for _, img, cap in crops], clip)
        except Exception as err:  # the message stays on the page; nothing stale beside it
            yield cleared(failure_text(err, state.redact, "score"), "error", request,
                          new_clip=False)

    def make_preview(clip, request: gr.Request):
        if not clip:
            return gr.update(), None
        try:
            made = write_preview(state.score(clip["path"], face=clip.get("face")), clip["path"],
                                 state.request_folder())
        except Exception as err:  # a preview failing must not hide the scores
            failure_text(err, state.redact, "preview")
            made, then = None, "no preview could be made"
        else:
            then = ""
        if not shown.is_current(request, clip["id"]):  # the page moved on meanwhile
            return gr.update(), gr.update()
        return status_html(scored_text(clip, then), "ok"), None if made is None else str(made)

    def picked_upload(upload, picked, request: gr.Request):
        name = Path(upload).name if upload else None
        return ("upload" if upload else ("sample" if picked else None),
                views.source_line("upload" if upload else None, name),
                *cleared("New clip chosen: press Score." if upload else "", request=request))

    def picked_sample(picked, request: gr.Request):
        return ("sample" if picked else None, views.source_line("sample", picked),
                *cleared("New sample chosen: press Score." if picked else "", request=request))

    def switched(which, upload, picked, request: gr.Request):
        name = (Path(upload).name if upload else None) if which == "upload" else picked
        return (views.source_line(which, name), *cleared("", request=request))

    def upload_cleared(picked, request: gr.Request):
        if picked:
            return picked_sample(picked, request)
        return (None, views.source_line(None, None), *cleared("", request=request))

    video.upload(picked_upload, [video, sample], [source, chosen, *outputs], queue=False,
                 api_visibility="private")
    video.clear(upload_cleared, sample, [source, chosen, *outputs], queue=False,
                api_visibility="private")
    sample.input(picked_sample, sample, [source, chosen, *outputs], queue=False,
                 api_visibility="private")
    source.input(switched, [source, video, sample], [chosen, *outputs], queue=False,
                 api_visibility="private")
    def face_picked(chosen_face):
        if picker.face_value(chosen_face) is None:
            return status_html("The automatic face choice is back: press Score.")
        return status_html(f"Face {chosen_face} chosen: press Score to score it.")

    def tile_picked(clip, evt: gr.SelectData):
        ids = (clip or {}).get("faces") or []
        if evt.index is None or not 0 <= evt.index < len(ids):
            return gr.update(), gr.update()
        return str(ids[evt.index]), face_picked(str(ids[evt.index]))

    face.input(face_picked, face, status, queue=False, api_visibility="private")
    faces.select(tile_picked, scored, [face, status], queue=False, api_visibility="private")
    def portrait_changed(request: gr.Request):
        return cleared("Reference portrait changed: press Score.", request=request,
                       new_clip=False)

    for event in (reference.upload, reference.clear):
        event(portrait_changed, None, outputs, queue=False, api_visibility="private")
    button.click(score, [video, sample, source, face, reference], outputs, api_name="score",
                 concurrency_id="scorer", concurrency_limit=state.concurrency,
                 show_progress_on=[status]).then(
        make_preview, scored, [status, preview], concurrency_id="scorer",
        concurrency_limit=state.concurrency, api_visibility="private",
        show_progress="minimal")
    batch_section(state)


def batch_section(state: AppState) -> None:
    """Score many clips (uploads and/or a folder under --data-root) into one table and files."""
    folders = lambda: list(clips.folder_choices(state.registry.data_roots))  # noqa: E731
    gr.Markdown(f"### Score many clips\nUp to {clips.MAX_BATCH} clips, scored one by one as "
                f"above: upload several, or pick a folder the server was started with "
                f"(`--data-root`), or both. A clip that cannot be scored keeps its row with the "
                f"reason.", elem_id="batch-intro")
    with gr.Row(equal_height=False):
        files = gr.File(file_count="multiple", label="Clips", elem_id="batch-files",
                        elem_classes=["tf-files"], scale=2)
        with gr.Column(scale=1):
            folder = gr.Dropdown(choices=folders(), value=None, label="...and/or a folder",
                                 elem_id="batch-folder",
                                 info="none: start the app with --data-root DIR" if not
                                 state.registry.data_roots else None)
            button = gr.Button("Score all", variant="primary", elem_id="batch-button")
    status = gr.HTML(elem_id="batch-status")
    table = gr.Dataframe(headers=CLIP_HEADERS, interactive=False, wrap=True,
                         column_widths=CLIP_WIDTHS, max_height=CLIP_TABLE_HEIGHT,
                         elem_id="batch-table", elem_classes=["tf-table", "tf-clips"],
                         label="Per clip: scores in each task's range; band and 'better than' "
                               "are the overall score's; the signals that pull each score down")
    export = gr.File(label="The batch as JSON (every clip in full) and CSV", file_count="multiple",
                     elem_id="batch-export", elem_classes=["tf-files"])

    def run(uploads, picked, progress=gr.Progress()):
        try:
            paths, names = _batch_inputs(state, uploads, picked)
        except Exception as err:
            yield status_html(failure_text(err, state.redact, "batch"), "error"), None, None
            return
        results = []
        for i, (path, name) in enumerate(zip(paths, names)):
            progress((i, len(paths)), desc=f"scoring {name}", unit="clips")
            yield (status_html(f"Scoring {i + 1} of {len(paths)}: {name}...", "busy"),
                   _clip_table(state, results), None)
            results += clips.score_batch(state.score, [path], [name])
        made = clips.write_batch(results, state.request_folder())
        failed = sum(not r.ok for r in results)
        text = f"Scored {len(results) - failed} of {len(results)} clips" + (
            f"; {failed} could not be scored (their rows say why)." if failed else ".")
        yield (status_html(text, "error" if failed == len(results) else "ok"),
               _clip_table(state, results), [str(p) for p in made])

    button.click(run, [files, folder], [status, table, export], api_name="score_batch",
                 concurrency_id="scorer", concurrency_limit=state.concurrency,
                 show_progress_on=[status])
    files.change(lambda: (status_html(""), None, None), None, [status, table, export],
                 queue=False, api_visibility="private")
    folder.focus(lambda: gr.update(choices=folders()), None, folder, queue=False,
                 api_visibility="private")


def _batch_inputs(state: AppState, uploads, picked) -> tuple[list[str], list[str]]:
    """(paths, base names) of the uploads and the picked folder's videos, at most MAX_BATCH."""
    paths = [f if isinstance(f, str) else f.name for f in uploads or []]
    if picked:
        choices = clips.folder_choices(state.registry.data_roots)
        if picked not in choices:
            raise TalkfaceError(f"{picked!r} is not a folder under --data-root")
        root = next(r for r in state.registry.data_roots
                    if choices[picked].resolve().is_relative_to(r))
        paths += [str(p) for p in clips.folder_videos(choices[picked], root,
                                                      limit=clips.MAX_BATCH)]
    clips.check_batch(paths)
    return paths, [Path(p).name for p in paths]


def _clip_table(state: AppState, results: list, groups=None, ranked: bool = False):
    if not results:
        return None
    return clips.clip_table(results, state.scorer().tasks, groups, ranked, state.redact)


class PageClips:
    """Which scored clip each open page shows (by Gradio session, the most recent pages only):
    a preview made for a clip the page has since replaced or cleared must not write over it."""

    def __init__(self, limit: int = 1024) -> None:
        self._shown: OrderedDict[str, Optional[str]] = OrderedDict()
        self._lock, self._limit = threading.Lock(), limit

    @staticmethod
    def _page(request) -> Optional[str]:
        return getattr(request, "session_hash", None)

    def show(self, request, clip_id: Optional[str]) -> None:
        page = self._page(request)
        if page is None:
            return
        with self._lock:
            self._shown[page] = clip_id
            self._shown.move_to_end(page)
            while len(self._shown) > self._limit:
                self._shown.popitem(last=False)

    def new(self, request) -> str:
        clip_id = uuid.uuid4().hex
        self.show(request, clip_id)
        return clip_id

    def is_current(self, request, clip_id: str) -> bool:
        page = self._page(request)
        with self._lock:
            return page is None or self._shown.get(page) == clip_id


def scored_text(clip: dict, then: str = "") -> str:
    """'Scored 00002_clean.mp4 (bundled sample); the preview follows.'"""
    what = "your upload" if clip["kind"] == "upload" else "bundled sample"
    return f"Scored {clip['name']} ({what})" + (f"; {then}." if then else ".")


# --- Dataset -------------------------------------------------------------------------------------

def dataset_tab(state: AppState) -> None:
    gr.Markdown("Bundled samples with how they were made (condition) and their true labels. "
                "**Score samples** adds the model's predictions beside them; *note* says why a "
                "sample has none.")
    with gr.Row():
        condition = gr.Dropdown(choices=views.conditions(state), value="all",
                                label="Condition", elem_id="dataset-condition")
        score_button = gr.Button("Score samples", elem_id="dataset-score")
    status = gr.HTML(elem_id="dataset-status")
    table = gr.Dataframe(value=lambda: _quiet_table(state), interactive=False, wrap=True,
                         headers=DATASET_HEADERS, elem_id="dataset-table",
                         elem_classes=["tf-table"])

    @guarded(state.redact, blanks(2, 0))
    def show(cond):
        return "", views.dataset_table(state, cond)

    @guarded(state.redact, blanks(2, 0))
    def score_all(cond, progress=gr.Progress()):
        table = views.score_demo(state, cond, progress=lambda done, total, f: progress(
            (done, total), desc=f))
        return status_html(f"Scored {len(table)} samples.", "ok"), table

    condition.change(show, condition, [status, table], api_name="dataset")
    score_button.click(score_all, condition, [status, table], api_name="dataset_score",
                       concurrency_id="scorer", concurrency_limit=state.concurrency,
                       show_progress_on=[status])


def _quiet_table(state: AppState):
    try:
        return views.dataset_table(state)
    except TalkfaceError:
        return None


# --- Compare -------------------------------------------------------------------------------------

def compare_tab(state: AppState) -> None:
    gr.Markdown("Each generator is a named group of clips. Groups left empty are ignored. A clip "
                "that cannot be scored counts against its generator (as the worst score in the "
                "ranking and the win rates) and is listed with the reason.")
    inputs, files = [], []
    with gr.Row(equal_height=False):
        for i in range(N_GROUPS):
            with gr.Column(min_width=240):
                inputs.append(gr.Textbox(value=f"generator {chr(65 + i)}", label="Name",
                                         elem_id=f"group-name-{i}"))
                files.append(gr.File(file_count="multiple", label="Clips",
                                     elem_id=f"group-files-{i}",
                                     elem_classes=["tf-files", "tf-narrow-files"]))
                inputs.append(files[-1])
    button = gr.Button("Compare", variant="primary", elem_id="compare-button")
    status = gr.HTML(elem_id="compare-status")
    ranking = gr.Markdown(elem_id="compare-ranking")
    board = gr.Dataframe(label="Leaderboard: mean over judged clips [95% bootstrap CI]",
                         interactive=False, headers=BOARD_HEADERS, elem_id="compare-board",
                         elem_classes=["tf-table"])
    clip_rows = gr.Dataframe(label="Every clip, ranked the same way", interactive=False,
                             wrap=True, headers=["rank", "ranked by", "group", *CLIP_HEADERS],
                             column_widths=RANKED_WIDTHS, max_height=CLIP_TABLE_HEIGHT,
                             elem_id="compare-clips", elem_classes=["tf-table", "tf-clips"])
    failed = gr.Dataframe(label="Clips that could not be scored", interactive=False,
                          headers=FAILED_HEADERS, elem_id="compare-failed",
                          elem_classes=["tf-table"], wrap=True,
                          column_widths=["15%", "30%", "55%"])
    bars = gr.Plot(elem_id="compare-bars")
    pairs = gr.Dataframe(label="Pairwise win rates (Mann-Whitney U test)", interactive=False,
                         headers=PAIRS_HEADERS, elem_id="compare-pairs", elem_classes=["tf-table"])
    csv = gr.File(label="CSV: leaderboard, pairwise win rates, every clip", file_count="multiple",
                  elem_id="compare-csv", elem_classes=["tf-files"])
    outputs = [status, ranking, board, clip_rows, failed, bars, pairs, csv]

    @guarded(state.redact, blanks(len(outputs)))
    def compare(*values, progress=gr.Progress()):
        groups = {}
        for name, items in zip(values[0::2], values[1::2]):
            if items:
                name = (name or "").strip() or f"group {len(groups) + 1}"
                if name in groups:
                    raise TalkfaceError(f"two groups are called {name!r}; give each a unique "
                                        f"name")
                groups[name] = [f if isinstance(f, str) else f.name for f in items]
        if not groups:
            raise TalkfaceError("Add clips to at least one group.")
        result = compare_groups(state.scorer(), groups, progress=lambda done, total, what:
                                progress((done, total), desc=what))
        path = result.to_csv(state.request_folder() / "leaderboard.csv")
        lost = failures(result)
        total = len(result.scores)
        message = f"Compared {total} clips in {len(groups)} groups" + (
            f"; {len(lost)} could not be scored (listed below)." if len(lost) else ".")
        names = [g for g, items in result.results.items() for _ in items]
        every = [r for items in result.results.values() for r in items]
        return (status_html(message, "error" if len(lost) == total else "ok"),
                f"Groups and clips are ranked by {ranking_text(result.tasks)}; the *ranked by* "
                f"column shows that value.",
                format_leaderboard(result.leaderboard, result.tasks),
                _clip_table(state, every, names, ranked=True),
                lost.assign(error=[state.redact(e) for e in lost["error"]]),
                plots.grouped_bars(result.leaderboard, result.tasks), result.pairwise.round(4),
                [str(path), str(path.with_name(path.stem + "_pairwise.csv")),
                 str(path.with_name(path.stem + "_clips.csv"))])

    def changed():
        return (status_html("Groups changed: press Compare."), *[None] * (len(outputs) - 1))

    for item in files:
        item.change(changed, None, outputs, queue=False, api_visibility="private")
    button.click(compare, inputs, outputs, api_name="compare", concurrency_id="scorer",
                 concurrency_limit=state.concurrency, show_progress_on=[status])


# --- Model ---------------------------------------------------------------------------------------

def model_tab(state: AppState) -> None:
    card = gr.Markdown(value=lambda: _card(state), elem_id="model-card")
    refresh = gr.Button("Reload", elem_id="model-refresh")
    refresh.click(lambda: _card(state), None, card, api_name="model_card")


def _card(state: AppState) -> str:
    try:
        return views.model_card_markdown(state.scorer().loaded, state.redact)
    except TalkfaceError as err:
        return f"*{state.redact(str(err))}*"
