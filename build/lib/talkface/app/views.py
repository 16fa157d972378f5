"""What the app shows, computed without Gradio: the HTML, tables and files each tab displays.

`talkface.app.ui` only lays out components and wires events to these functions (and to
`talkface.app.state.AppState`), so everything here can be tested without a browser. The HTML
classes used here are styled by `style.css` beside this file.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..constants import TASKS
from ..errors import DatasetError, TalkfaceError
from .jobs import SAMPLES_DIR

DEMO_DIR = SAMPLES_DIR
BAND_COLOURS = {"excellent": "#1a9850", "good": "#66bd63", "fair": "#fdae61", "poor": "#f46d43",
                "bad": "#d73027", "not judged": "#9e9e9e"}
CSS_FILE = Path(__file__).with_name("style.css")


# --- Score tab -----------------------------------------------------------------------------------

def score_cards_html(result) -> str:
    """One card per task: label, score in its range, 1-5 value, a bar and the one-line meaning."""
    cards = []
    for score in result.tasks.values():
        t = score.task
        colour = BAND_COLOURS.get(score.band, "#888")
        arrow = "higher is better" if t.higher_is_better else "lower is better"
        label = html.escape(t.label or t.name)
        if not score.judged:
            cards.append(
                f'<div class="tf-card tf-unjudged" style="border-left:6px solid {colour}">'
                f'<div class="tf-label">{label}</div><div class="tf-value">not judged</div>'
                f'<div class="tf-meaning">{html.escape(score.reason)}</div></div>')
            continue
        cards.append(
            f'<div class="tf-card" style="border-left:6px solid {colour}">'
            f'<div class="tf-label">{label}</div>'
            f'<div class="tf-value">{score.value:.2f}<span class="tf-range"> in '
            f'[{t.low:g}, {t.high:g}], {arrow}</span></div>'
            f'<div class="tf-mos">{score.mos:.1f} / 5 &middot; {score.band}</div>'
            f'<div class="tf-bar"><div style="width:{100 * score.unit:.0f}%;'
            f'background:{colour}"></div></div>'
            f'<div class="tf-meaning">{html.escape(t.description)}</div></div>')
    return f'<div class="tf-cards">{"".join(cards)}</div>'


def warnings_markdown(result) -> str:
    lines = ["**Warnings**", ""] + [f"- {w}" for w in result.warnings] if result.warnings \
        else ["**No warnings**"]
    lines += ["", sync_line(result.sync)]
    return "\n".join(lines)


def sync_line(sync) -> str:
    """The offset with its confidence, and plainly when it is not to be trusted."""
    if sync is None:
        return "Audio offset: not estimated."
    if not sync.judged:
        return f"Audio offset: not judged ({sync.reason})."
    text = (f"Estimated audio offset: {sync.offset_frames:+d} frames ({sync.offset_ms:+.0f} ms; "
            f"positive = audio late), confidence {sync.confidence:.2f}")
    if not sync.reliable:
        return text + f" - **not reliable** (below {sync.reliable_confidence:g})."
    return text + "."


def thumbnails(result, path: str, k: int = 3) -> list[tuple[np.ndarray, str]]:
    """Most and least attended frames (with a face) as (image, caption) pairs."""
    from ..api import read_frames
    most, least = result.attended_frames(k, True), result.attended_frames(k, False)
    frames = read_frames(path, most + least, result.fps, max_side=192)
    weights = result.attention["temporal"]
    items = []
    for kind, picked in (("most", most), ("least", least)):
        for i in picked:
            if i in frames:
                items.append((frames[i], f"{kind} attended: t={i / result.fps:.2f}s, "
                                         f"w={weights[i]:.3f}"))
    return items


def write_json(result, folder: Path) -> Path:
    path = folder / f"{Path(result.file).stem}_talkface.json"
    path.write_text(json.dumps(result.to_dict(), indent=1))
    return path


# --- Dataset tab ---------------------------------------------------------------------------------

def demo_manifest(demo_dir: Path = DEMO_DIR) -> pd.DataFrame:
    csv = demo_dir / "manifest.csv"
    if not csv.exists():
        raise DatasetError(f"no bundled samples: {csv} is missing (generate them with "
                           f"`python -m talkface synth`)")
    return pd.read_csv(csv)


def demo_choices(demo_dir: Path = DEMO_DIR) -> list[str]:
    try:
        return [str(f) for f in demo_manifest(demo_dir)["file"]]
    except TalkfaceError:
        return []


def dataset_table(state: AppState, condition: str = "all") -> pd.DataFrame:
    """Bundled samples with condition and true labels, and predictions where already scored."""
    frame = demo_manifest(state.demo_dir)
    if condition and condition != "all" and "condition" in frame:
        frame = frame[frame["condition"] == condition]
    tasks = [c for c in TASKS if c in frame.columns]
    keep = [c for c in ("file", "condition", "split") if c in frame.columns]
    out = frame[keep].copy()
    for task in tasks:
        out[f"{task} true"] = frame[task].round(3)
        out[f"{task} pred"] = [state.predictions.get(f, {}).get(task, np.nan)
                               for f in frame["file"]]
        out[f"{task} pred"] = out[f"{task} pred"].astype(float).round(3)
    return out.reset_index(drop=True)


def score_demo(state: AppState, condition: str = "all", progress=None) -> pd.DataFrame:
    """Score the (filtered) bundled samples not yet scored, then return the table."""
    frame = demo_manifest(state.demo_dir)
    if condition and condition != "all" and "condition" in frame:
        frame = frame[frame["condition"] == condition]
    todo = [f for f in frame["file"] if f not in state.predictions]
    paths = [str(state.demo_dir / f) for f in todo]
    for name, result in zip(todo, state.score_many(paths, progress=progress)):
        state.predictions[name] = result.scores if result.ok else {}
    return dataset_table(state, condition)


def conditions(state: AppState) -> list[str]:
    try:
        frame = demo_manifest(state.demo_dir)
    except TalkfaceError:
        return ["all"]
    return ["all"] + sorted(frame["condition"].dropna().astype(str).unique()) \
        if "condition" in frame else ["all"]


# --- Train and Model tabs ------------------------------------------------------------------------

def flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """{"lip_sync": {"srcc": 0.8}} -> {"lip_sync/srcc": 0.8} (numbers only)."""
    out = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_metrics(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def checkpoint_metrics(folder: Optional[Path]) -> dict:
    """Validation metrics from a checkpoint's meta.json (without loading its weights)."""
    meta = Path(folder) / "meta.json" if folder else None
    if meta is None or not meta.exists():
        return {}
    try:
        return json.loads(meta.read_text()).get("metrics", {}) or {}
    except (OSError, ValueError):
        return {}


def metrics_side_by_side(new: dict, active: dict) -> pd.DataFrame:
    a, b = flat_metrics(new), flat_metrics(active)
    keys = list(dict.fromkeys(list(a) + list(b)))
    return pd.DataFrame({"metric": keys, "this run": [a.get(k, np.nan) for k in keys],
                         "active checkpoint": [b.get(k, np.nan) for k in keys]}).round(4)


def model_card_markdown(loaded) -> str:
    """The model card: tasks, feature spec, training data and metrics of a loaded checkpoint."""
    spec, meta = loaded.spec, loaded.meta
    tasks = "\n".join(f"| {t.name} | {t.label} | [{t.low:g}, {t.high:g}] | "
                      f"{'higher' if t.higher_is_better else 'lower'} | {t.description} |"
                      for t in loaded.tasks)
    groups = ", ".join(f"{g} ({b - a})" for g, (a, b) in
                       {**spec.visual_groups, **spec.audio_groups}.items())
    metrics = metrics_side_by_side(loaded.metrics, {}).drop(columns="active checkpoint")
    metric_rows = "\n".join(f"| {m} | {v:.4f} |" for m, v in metrics.itertuples(index=False))
    return "\n".join([
        f"## Checkpoint `{loaded.path.name}` ({meta.get('model_name')})", "",
        f"Folder: `{loaded.path}`, talkface {meta.get('talkface_version')}", "",
        "### Tasks", "", "| task | label | range | better | meaning |", "|---|---|---|---|---|",
        tasks, "", "### Features", "", f"- {spec.describe()}",
        f"- groups: {groups}", f"- extractor: `{json.dumps(spec.extractor.meaning())}`", "",
        "### Training data", "", training_data_lines(meta.get("data", {})), "",
        f"Command: `{meta.get('command', '')}`", "",
        f"### Metrics ({meta.get('data', {}).get('metrics_split', 'validation')} split)", "",
        "| metric | value |", "|---|---|", metric_rows or "| (none recorded) | |", "",
        "### Card", "", loaded.card])


def training_data_lines(data: dict) -> str:
    """The data description as short bullet lines; nested metric tables are left to the card."""
    lines = [f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}"
             for key, value in data.items()
             if not (isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()))]
    return "\n".join(lines) or "- (not recorded)"
