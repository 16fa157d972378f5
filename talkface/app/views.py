"""What the Score, Dataset and Model tabs show, computed without Gradio: HTML, tables, files.

`talkface.app.ui` only lays out components and wires events to these functions (and to
`talkface.app.state.AppState`), so everything here can be tested without a browser. The HTML
classes used here are styled by `style.css` beside this file. Nothing here puts a server path
into what a client sees.
"""
from __future__ import annotations

import html
import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..constants import FPS
from ..errors import DatasetError, TalkfaceError
from ..markdown import markdown_table
from ..metrics import LABELS
from ..results import BANDS, ScoreResult, SignalValue, overall_note
from ..sync.result import VISIBLE_OFFSET_FRAMES
from ..tasks import TASKS
from .jobs import SAMPLES_DIR

DEMO_DIR = SAMPLES_DIR
BAND_COLOURS = {"excellent": "#1a9850", "good": "#66bd63", "fair": "#fdae61", "poor": "#f46d43",
                "bad": "#d73027", "not judged": "#9e9e9e"}
CSS_FILE = Path(__file__).with_name("style.css")
# Gradio's galleries load their images lazily: frames below the fold (the attended-frames gallery)
# stay empty tiles until scrolled to, and in full-page screenshots. Load every image eagerly.
EAGER_IMAGES = """<script>
new MutationObserver(() => document.querySelectorAll('img[loading="lazy"]').forEach(
  (img) => { img.loading = "eager"; })).observe(document.documentElement,
  {subtree: true, childList: true});
</script>"""
NOT_JUDGED = "not judged"


# --- messages ------------------------------------------------------------------------------------

def status_html(text: str, kind: str = "info") -> str:
    """A status line that stays on the page: kind "info", "busy", "ok" or "error"."""
    return f'<div class="tf-status tf-status-{kind}" role="status">{html.escape(text)}</div>'


def source_line(kind: Optional[str], name: Optional[str]) -> str:
    if not kind or not name:
        return "Nothing chosen yet: upload a clip or pick a bundled sample."
    what = "your upload" if kind == "upload" else "bundled sample"
    return f"Will score {what} **{name}** (the last one chosen)."


# --- Score tab -----------------------------------------------------------------------------------

def trust_line(loaded, pointer: bool = True) -> str:
    """One line saying what the checkpoint was trained and tested on, from its metadata."""
    meta, data = loaded.meta, loaded.meta.data
    name = f"`{loaded.path.name}` ({meta.model_name})"
    if data.get("validity"):  # a statement written by whoever shipped the checkpoint
        return f"**Checkpoint {name}:** {_pointed(data['validity'], pointer)}"
    sizes, source = data.get("sizes") or {}, data.get("source")
    if sizes:
        where = f" from `{Path(str(source)).name}`" if source else ""
        labels = data.get("label_version")
        synthetic = "synth" in f"{labels or ''} {source or ''}".lower()
        text = (f"trained on {sizes.get('train', '?')} {'synthetic ' if synthetic else ''}"
                f"clips{where}" + (f" (labels `{labels}`)" if labels else ""))
    else:
        text = f"trained on: {data.get('note') or 'not recorded'}"
    mean, split = loaded.metrics.get("mean") or {}, meta.metrics_split
    if isinstance(mean, dict) and mean.get("srcc") is not None:
        text += f"; {split} SRCC {mean['srcc']:.2f} on {mean.get('n', '?')} clips"
    else:
        text += "; no held-out metrics recorded"
    ref = (meta.calibration or {}).get("reference_note")
    if ref:
        text += f"; percentiles against {ref}"
    return (f"**Checkpoint {name}:** {text}. Scores on other kinds of footage are not validated"
            + (f" {MODEL_TAB_POINTER}." if pointer else "."))


MODEL_TAB_POINTER = "(see the Model tab)"


def _pointed(validity: str, pointer: bool) -> str:
    """A shipped validity statement with the pointer to the Model tab only where it helps
    (checkpoints shipped so far end with it)."""
    text = validity.strip()
    bare = text.removesuffix(".").removesuffix(MODEL_TAB_POINTER).rstrip()
    if bare == text.removesuffix("."):
        return text
    return f"{bare} {MODEL_TAB_POINTER}." if pointer else f"{bare}."


def _reference(score) -> str:
    text = score.reference_text
    return f'<div class="tf-reference">{html.escape(text)}</div>' if text else ""


def _note(score) -> str:
    if not score.note:
        return ""
    kind = " tf-note-limit" if score.band_limit else ""
    return f'<div class="tf-note{kind}">{html.escape(score.note)}</div>'


def score_cards_html(result, below: str = "") -> str:
    """One card per task: label, score in its range, 1-5 value, a bar and the one-line meaning;
    "not judged" with the reason where the clip does not allow a verdict. A banner above says
    when the clip is out of the training distribution; `below` (HTML, e.g. the identity
    similarity to a reference portrait) goes between the cards and the signals."""
    cards = []
    for score in result.tasks.values():
        t = score.task
        colour = BAND_COLOURS.get(score.band, "#888")
        label = html.escape(t.label or t.name)
        extra = _sync_note(result.sync) if t.name == "lip_sync" else ""
        if not score.judged:
            cards.append(
                f'<div class="tf-card tf-unjudged" style="border-left:6px solid {colour}">'
                f'<div class="tf-label">{label}</div><div class="tf-value">{NOT_JUDGED}</div>'
                f'<div class="tf-meaning">{html.escape(score.reason)}</div>{extra}</div>')
            continue
        arrow = "higher is better" if t.higher_is_better else "lower is better"
        spread = f" &plusmn; {score.spread:.2f}" if score.spread is not None else ""
        cards.append(
            f'<div class="tf-card" style="border-left:6px solid {colour}">'
            f'<div class="tf-label">{label}</div>'
            f'<div class="tf-value">{score.value:.2f}{spread}<span class="tf-range"> in '
            f'[{t.low:g}, {t.high:g}], {arrow}</span></div>'
            f'<div class="tf-mos">{score.mos:.1f} / 5 &middot; {score.band}</div>'
            f'{_reference(score)}'
            f'<div class="tf-bar"><div style="width:{100 * score.unit:.0f}%;'
            f'background:{colour}"></div></div>'
            f'<div class="tf-meaning">{html.escape(t.description)}</div>'
            f'{_note(score)}{_why(result, score)}{extra}</div>')
    banner = ""
    if result.out_of_distribution:
        banner = (f'<div class="tf-ood"><b>Out of the training distribution:</b> '
                  f'{html.escape(result.out_of_distribution)}. These scores are extrapolations; '
                  f'do not rely on them.</div>')
    return f'{banner}<div class="tf-cards">{"".join(cards)}</div>{below}{signals_html(result)}'


def _signal_text(value: SignalValue) -> str:
    """'frozen frames 0.52 (worse than 98% of real recordings)'."""
    d = value.to_dict()
    where = ""
    if value.standing is not None:
        where = f" (worse than {100 - value.standing:.0f}% of real recordings)"
    return f"{d['label'].lower()} {value.value:.3g} {d['unit']}{where}"


def _why(result, score) -> str:
    """The signals that pull this task's score down, on its card."""
    if not score.why:
        return ""
    items = "; ".join(html.escape(_signal_text(result.signals[name])) for name in score.why)
    return f'<div class="tf-why"><b>Pulled down by:</b> {items}</div>'


def signals_html(result) -> str:
    """Every measured signal: value and unit, the task it informs, where it stands among real
    recordings (100 = the good end), and what it measures; in a collapsed section."""
    if not result.signals:
        return ""
    rows = []
    for value in result.signals.values():
        d = value.to_dict()
        shown = "not measured" if value.value is None else f"{value.value:.3g} {d['unit']}"
        standing = "" if value.standing is None else f"{value.standing:.0f}"
        concern = ' class="tf-concern"' if value.standing is not None and value.standing < 10 \
            else ""
        rows.append(f"<tr{concern}><td>{html.escape(d['label'])}</td><td>{html.escape(shown)}"
                    f"</td><td>{html.escape(d['task'].replace('_', ' '))}</td><td>{standing}"
                    f"</td><td>{html.escape(d['meaning'])}</td></tr>")
    return ('<details class="tf-signals" open><summary>Measured signals (standing: 100 = as good '
            'as the best real recordings, 0 = worse than all of them)</summary><table><thead>'
            '<tr><th>signal</th><th>value</th><th>informs</th><th>standing</th><th>measures</th>'
            '</tr></thead><tbody>' + "".join(rows) + "</tbody></table></details>")


def legend_html() -> str:
    """How to read the cards: bands, the spread, sync confidence, percentiles and overall, from
    the constants that decide them (`talkface.results`, `talkface.sync.result`)."""
    bands = ", ".join(f"{name} &ge; {low:g}" if i == 0 else f"{name} &lt; {BANDS[i - 1][0]:g}"
                      if i == len(BANDS) - 1 else f"{name} {low:g}-{BANDS[i - 1][0]:g}"
                      for i, (low, name) in enumerate(BANDS))
    offset_ms = 1000 * VISIBLE_OFFSET_FRAMES / FPS
    items = [
        ("Score, 1-5 and band", f"each score lies in its task's range (on the card); the 1-5 "
         f"value maps that range onto 1 (worst) to 5 (best). Bands on the 1-5 scale: {bands}. "
         f"The band follows from the score alone, except lip sync (below)."),
        ("&plusmn; spread", "for an ensemble checkpoint: how much its members disagree (their "
         "standard deviation, in the score's units). A wide spread means an uncertain score."),
        ("Sync confidence", f"how clearly one audio offset fits best (median minus minimum of "
         f"the audio-visual distance over offsets, as LSE-C). Below the sync estimator's own "
         f"threshold, given beside the offset on the lip-sync card, the offset is not trusted "
         f"and the lip-sync score rests on the mouth-audio match alone. "
         f"A trusted offset of {VISIBLE_OFFSET_FRAMES} frames ({offset_ms:.0f} ms at "
         f"{FPS:g} fps) or more is visible: lip sync then reads as at most good."),
        ("Percentile", "&ldquo;better than N% of reference clips&rdquo;: the share of the "
         "checkpoint's reference clips (named above the cards) that the same score beats, ties "
         "counting half, N kept in 1-99; a score outside their range is marked beyond the best "
         "(or worst) reference clip. It rises with the score, as the band does, but it is "
         "relative: where most reference clips are good, a score in the excellent band can be "
         "better than only a minority of them."),
        ("Overall", html.escape(overall_note(None)) + "; without lip sync (no audio) it combines "
         "the other two only and says so, and is not comparable with clips that have audio. "
         "Measured signals beyond the real recordings' typical range take some off (named under "
         "&ldquo;Pulled down by&rdquo;); for overall that includes the generated look: how much "
         "the face behaves like a generator output rather than a real recording.")]
    rows = "".join(f"<dt>{name}</dt><dd>{text}</dd>" for name, text in items)
    return (f'<details class="tf-legend" open><summary>How to read the cards</summary>'
            f'<dl>{rows}</dl></details>')


def _sync_note(sync) -> str:
    if sync is None:
        return ""
    kind = "tf-sync-ok" if sync.reliable else "tf-sync-weak"
    return f'<div class="tf-sync {kind}">{html.escape(sync_line(sync, markdown=False))}</div>'


def warnings_markdown(result) -> str:
    items = list(result.warnings)
    if result.sync is not None and result.sync.judged and not result.sync.reliable:
        items.append(f"the audio offset estimate is not reliable (confidence "
                     f"{result.sync.confidence:.2f}, below {result.sync.reliable_confidence:g}):"
                     f" the lip-sync verdict rests on weak evidence")
    lines = ["**Warnings**", ""] + [f"- {w}" for w in items] if items else ["**No warnings**"]
    lines += ["", sync_line(result.sync)]
    if result.lse is not None:
        from ..sync.lse import lse_line
        lines += ["", lse_line(result.lse)]
    return "\n".join(lines)


def sync_line(sync, markdown: bool = True) -> str:
    """The offset with its confidence, and plainly when it is not to be trusted."""
    if sync is None:
        return "Audio offset: not estimated."
    if not sync.judged:
        return f"Audio offset: not judged ({sync.reason})."
    text = (f"Estimated audio offset: {sync.offset_frames:+d} frames ({sync.offset_ms:+.0f} ms; "
            f"positive = audio late), confidence {sync.confidence:.2f}")
    if not sync.reliable:
        weak = "**not reliable**" if markdown else "not reliable"
        return text + f" - {weak} (below {sync.reliable_confidence:g})."
    return text + "."


def thumbnails(result, path: str, k: int = 3) -> list[tuple[np.ndarray, str]]:
    """Most and least attended frames (with a face) as (image, short caption) pairs."""
    from ..api import read_frames
    most, least = result.attended_frames(k, True), result.attended_frames(k, False)
    frames = read_frames(path, most + least, result.fps, max_side=192)
    items = []
    for kind, picked in (("most", most), ("least", least)):
        for i in picked:
            if i in frames:
                items.append((frames[i], f"{kind} · {i / result.fps:.2f} s"))
    return items


def write_json(result: ScoreResult, folder: Path, name: str) -> Path:
    """The app's download: `ScoreResult.to_dict()`, the CLI's `score --json` schema plus the
    per-frame detail, with `file` the name the user knows the clip by (the uploaded file's base
    name or the sample's), never the server's path to it."""
    data = replace(result, file=Path(name).name).to_dict()
    path = folder / f"{Path(name).stem}_talkface.json"
    path.write_text(json.dumps(data, indent=1))
    return path


# --- Dataset tab ---------------------------------------------------------------------------------

def demo_manifest(demo_dir: Path = DEMO_DIR) -> pd.DataFrame:
    csv = demo_dir / "manifest.csv"
    if not csv.exists():
        raise DatasetError("no bundled samples: the app's samples/manifest.csv is missing "
                           "(generate them with `python -m talkface synth`)")
    return pd.read_csv(csv)


def demo_choices(demo_dir: Path = DEMO_DIR) -> list[str]:
    try:
        return [str(f) for f in demo_manifest(demo_dir)["file"]]
    except TalkfaceError:
        return []


def _label(task: str) -> str:
    return task.replace("_", " ")


def prediction_record(result) -> dict:
    """What the Dataset tab keeps per scored sample: scores, bands and why one is missing."""
    if not result.ok:
        prefix = f"{Path(result.file).name}: "
        error = result.error or ""
        return {"note": error[len(prefix):] if error.startswith(prefix) else error}
    notes = [f"{_label(n)}: {s.reason}" for n, s in result.tasks.items() if not s.judged]
    return {"scores": result.scores, "note": "; ".join(notes)}


def dataset_table(state, condition: str = "all") -> pd.DataFrame:
    """Bundled samples with condition and true labels, and predictions where already scored
    ("not judged" where the clip allows no verdict, and a note saying why)."""
    frame = demo_manifest(state.demo_dir)
    if condition and condition != "all" and "condition" in frame:
        frame = frame[frame["condition"] == condition]
    tasks = [c for c in TASKS if c in frame.columns]
    keep = [c for c in ("file", "condition", "split") if c in frame.columns]
    out = frame[keep].copy()
    out["file"] = [Path(f).name for f in out["file"]]
    records = [state.predictions.get(f) for f in frame["file"]]
    out["note"] = [(r or {}).get("note", "") or "" for r in records]
    for task in tasks:
        out[f"{_label(task)} true"] = [_cell(v) for v in frame[task]]
        out[f"{_label(task)} pred"] = [_pred_cell(r, task) for r in records]
    return out.reset_index(drop=True)


def _cell(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _pred_cell(record: Optional[dict], task: str) -> str:
    if record is None or "scores" not in record:
        return ""
    value = record["scores"].get(task)
    return NOT_JUDGED if value is None else f"{value:.3f}"


def score_demo(state, condition: str = "all", progress=None) -> pd.DataFrame:
    """Score the (filtered) bundled samples not yet scored, then return the table."""
    frame = demo_manifest(state.demo_dir)
    if condition and condition != "all" and "condition" in frame:
        frame = frame[frame["condition"] == condition]
    todo = [f for f in frame["file"] if f not in state.predictions]
    paths = [str(state.demo_dir / f) for f in todo]
    for name, result in zip(todo, state.score_many(paths, progress=progress)):
        state.predictions[name] = prediction_record(result)
    return dataset_table(state, condition)


def conditions(state) -> list[str]:
    try:
        frame = demo_manifest(state.demo_dir)
    except TalkfaceError:
        return ["all"]
    return ["all"] + sorted(frame["condition"].dropna().astype(str).unique()) \
        if "condition" in frame else ["all"]


# --- Model tab -----------------------------------------------------------------------------------

def metric_rows(metrics: dict) -> list[tuple[str, str, float, Optional[int]]]:
    """{task: {metric: value, "n": N}} -> (task, metric, value, N) rows."""
    rows = []
    for task, values in (metrics or {}).items():
        if not isinstance(values, dict):
            continue
        n = values.get("n")
        for name, value in values.items():
            if name != "n" and isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((task, name, float(value), None if n is None else int(n)))
    return rows


def metrics_table(metrics: dict) -> str:
    """One markdown row per task: N, then each metric."""
    rows = metric_rows(metrics)
    names = list(dict.fromkeys(name for _, name, _, _ in rows))
    if not rows:
        return "(no metrics recorded)"
    by_task: dict[str, dict] = {}
    for task, name, value, n in rows:
        by_task.setdefault(task, {"n": n})[name] = value
    return markdown_table(["task", "N", *(LABELS.get(m, m) for m in names)], (
        [task, "" if values["n"] is None else values["n"],
         *(f"{values[m]:.4f}" if m in values else "" for m in names)]
        for task, values in by_task.items()))


def _details(summary: str, body: str, open_: bool = False) -> str:
    return (f"<details{' open' if open_ else ''}><summary>{summary}</summary>\n\n{body}\n\n"
            f"</details>")


def model_card_markdown(loaded, redact=lambda text: text) -> str:
    """The model card: what the checkpoint is and was trained on, then its tasks, features,
    data, metrics (with N) and card text, each in a section of its own, the first open."""
    spec, meta = loaded.spec, loaded.meta
    tasks = markdown_table(["task", "label", "range", "better", "meaning"], (
        [t.name, t.label, f"[{t.low:g}, {t.high:g}]", "higher" if t.higher_is_better else "lower",
         t.description] for t in loaded.tasks))
    groups = ", ".join(f"{g} ({b - a})" for g, (a, b) in
                       {**spec.visual_groups, **spec.audio_groups}.items())
    return "\n".join([
        f"## Checkpoint `{loaded.path.name}` ({meta.model_name})", "",
        f"talkface {meta.talkface_version} &middot; {trust_line(loaded, False)}", "",
        _details("Tasks", tasks, open_=True),
        _details("Features", f"- {spec.describe()}\n- groups: {groups}\n- extractor: "
                 f"`{json.dumps(spec.extractor.meaning())}`"),
        _details("Training data", training_data_lines(meta.data) + "\n\nCommand: `"
                 + redact(meta.command) + "`"),
        _details(f"Metrics ({meta.metrics_split} split, N clips per task)",
                 metrics_table(loaded.metrics)),
        _details("Card", redact(loaded.card))])


def training_data_lines(data: dict) -> str:
    """The data description as short bullet lines; the split map and nested metric tables are
    left to the card."""
    lines = [f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}"
             for key, value in data.items()
             if key != "split" and not (isinstance(value, dict) and any(
                 isinstance(v, dict) for v in value.values()))]
    split = data.get("split") or {}
    if split:
        lines.append(f"- split: by {split.get('split_by', '?')} (seed {split.get('seed', '-')}; "
                     f"{len(split.get('map') or {})} files in the stored map)")
    return "\n".join(lines) or "- (not recorded)"
