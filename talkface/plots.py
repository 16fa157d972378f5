"""Plotly figures for the app (and notebooks): what a score is made of, drawn on the clip's time.

Every figure takes plain results (`ScoreResult`, a leaderboard frame, metrics records) and returns
a `plotly.graph_objects.Figure`; nothing here knows about Gradio.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .spec import TaskSpec

HEIGHT = 320
ROW_HEIGHT = 230  # one panel of a stacked figure
PALETTE = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477"]


def _layout(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), height=height, template="plotly_white",
                      margin=dict(l=50, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def empty_figure(message: str, title: str = "") -> go.Figure:
    """A blank figure that says why there is nothing to show."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=200)


def radar(named_mos: dict[str, dict[str, Optional[float]]], tasks: list[TaskSpec]) -> go.Figure:
    """{name: {task: 1-5 score, or None when not judged}} -> one closed polygon per name on a
    1-5 radial axis. Every task keeps its axis; one that is not judged is labelled so and has
    no point (the polygon joins its neighbours)."""
    unjudged = {t.name for t in tasks if all(m.get(t.name) is None for m in named_mos.values())}
    labels = {t.name: (t.label or t.name) + (" (not judged)" if t.name in unjudged else "")
              for t in tasks}
    axis = [labels[t.name] for t in tasks]
    fig = go.Figure(go.Scatterpolar(r=[1] * len(axis), theta=axis, mode="markers",
                                    marker=dict(opacity=0), hoverinfo="skip", showlegend=False))
    for i, (name, mos) in enumerate(named_mos.items()):
        shown = [t for t in tasks if mos.get(t.name) is not None]
        values = [mos[t.name] for t in shown]
        theta = [labels[t.name] for t in shown]
        fig.add_trace(go.Scatterpolar(r=values + values[:1], theta=theta + theta[:1],
                                      fill="toself", name=name, opacity=0.6,
                                      line_color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(polar=dict(radialaxis=dict(range=[1, 5], tickvals=[1, 2, 3, 4, 5]),
                                 angularaxis=dict(categoryorder="array", categoryarray=axis)))
    return _layout(fig, "Scores on the 1-5 scale", height=360)


def result_radar(result) -> go.Figure:
    return radar({"this clip": {s.task.name: s.mos for s in result.tasks.values()}},
                 [s.task for s in result.tasks.values()])


def attention_heatmap(result) -> go.Figure:
    """Temporal attention as a strip over the clip's timeline (seconds); frames without a face
    are left blank, the most attended frames are marked."""
    weights = result.attention.get("temporal")
    if weights is None or len(weights) == 0:
        return empty_figure("this model gives no temporal attention", "Temporal attention")
    times = (np.arange(len(weights)) + 0.5) / result.fps  # frame k covers [k, k+1) / fps
    shown = np.where(result.valid, weights, np.nan)
    fig = go.Figure(go.Heatmap(z=[shown], x=times, y=["attention"], colorscale="Viridis",
                               colorbar=_colourbar(shown, 10),
                               hovertemplate="t=%{x:.2f}s<br>weight=%{z:.4f}<extra></extra>"))
    top = result.attended_frames(3, most=True)
    fig.add_trace(go.Scatter(x=times[top], y=["attention"] * len(top), mode="markers",
                             marker=dict(symbol="triangle-down", size=12, color="white",
                                         line=dict(color="black", width=1)),
                             name="most attended", hoverinfo="skip"))
    fig.update_xaxes(title="time (s)", range=[0, len(weights) / result.fps])
    fig.update_yaxes(showticklabels=False)
    return _layout(fig, "Where the model looked (temporal attention)", height=220)


def cross_matrix(result) -> go.Figure:
    """Video-to-audio attention (T, T), pooled for display; axes in seconds."""
    pooled = result.attention.get("cross")
    if pooled is None:
        return empty_figure("this model has no cross-modal attention (only the `improved` "
                            "model has one)", "Cross-modal attention")
    pooled = np.asarray(pooled)  # already pooled to at most 200 x 200 (talkface.predict)
    step = result.n_frames / result.fps / pooled.shape[0]
    ticks = (np.arange(pooled.shape[0]) + 0.5) * step  # cell centres
    fig = go.Figure(go.Heatmap(z=pooled, x=ticks, y=ticks, colorscale="Magma",
                               colorbar=_colourbar(pooled, 12),
                               hovertemplate="video %{y:.2f}s<br>audio %{x:.2f}s<br>"
                                             "%{z:.4f}<extra></extra>"))
    end = result.n_frames / result.fps
    fig.update_xaxes(title="audio time (s)", range=[0, end])
    fig.update_yaxes(title="video time (s)", range=[end, 0])
    return _layout(fig, "Cross-modal attention (video frames attending to audio)", height=420)


def _colourbar(values, thickness: int) -> dict:
    """Three labelled ticks (low, middle, high) whatever the span: plotly's automatic ticks
    leave a single one on the narrow ranges attention weights have."""
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0 or np.ptp(finite) == 0:
        return dict(thickness=thickness)
    ticks = np.linspace(finite.min(), finite.max(), 3)
    for digits in range(3, 9):  # enough digits to tell the ticks apart
        text = [f"{v:.{digits}g}" for v in ticks]
        if len(set(text)) == len(text):
            break
    else:
        return dict(thickness=thickness)
    return dict(thickness=thickness, tickvals=ticks.tolist(), ticktext=text,
                title=dict(text="weight", side="right"))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    finite = x[np.isfinite(x)]
    if finite.size == 0 or np.ptp(finite) == 0:
        return np.zeros_like(x)
    return (x - finite.min()) / np.ptp(finite)


def sync_plot(sync) -> go.Figure:
    """Top: mouth opening and loudness (each scaled to [0, 1]) over time. Middle: the
    audio-visual distance at each offset, lowest at the estimate. Bottom, where the sync model
    gave one: the best offset of each window over time (where a clip drifts or breaks)."""
    if sync is None or sync.mouth_open.size == 0:
        return empty_figure("no sync figures for this clip", "Lip sync")
    windows = sync.window_times.size > 0
    title = (f"AV offset {sync.offset_frames:+d} frames ({sync.offset_ms:+.0f} ms), confidence "
             f"{sync.confidence:.2f}" + ("" if sync.reliable else ": not reliable")
             if sync.judged else f"AV offset not judged: {sync.reason}")
    rows = 3 if windows else 2 if sync.judged and sync.curve.size else 1
    height = ROW_HEIGHT * rows + 60
    # room between panels for the x-axis title above and the next panel's title, in pixels
    lines = (f"<span style='color:{PALETTE[0]}'>mouth opening</span> vs "
             f"<span style='color:{PALETTE[1]}'>loudness</span>")
    titles = (lines, title, "Best offset per window")[:rows] if rows > 1 else \
        (f"{lines} ({title})",)
    fig = make_subplots(rows=rows, cols=1, vertical_spacing=110 / height if rows > 1 else 0,
                        subplot_titles=titles)
    t = np.arange(len(sync.mouth_open)) / sync.fps
    fig.add_trace(go.Scatter(x=t, y=_unit(sync.mouth_open), name="mouth opening",
                             line_color=PALETTE[0]), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=_unit(sync.audio_level), name="loudness",
                             line_color=PALETTE[1]), row=1, col=1)
    fig.update_xaxes(title_text="time (s)", row=1, col=1)
    fig.update_yaxes(title_text="scaled", row=1, col=1)
    if sync.judged and sync.curve.size:
        lag_ms = np.asarray(sync.offsets, float) * 1000.0 / sync.fps
        fig.add_trace(go.Scatter(x=lag_ms, y=sync.curve, name="distance",
                                 mode="lines+markers", line_color=PALETTE[3]), row=2, col=1)
        fig.add_vline(x=sync.offset_ms, line_dash="dash", line_color="black", row=2, col=1)
        fig.update_xaxes(title_text="audio delay (ms; > 0 = audio late)", row=2, col=1)
        fig.update_yaxes(title_text="distance", row=2, col=1)
    if windows:
        fig.add_trace(go.Scatter(x=sync.window_times, y=sync.window_offsets, mode="markers",
                                 name="window offset", marker=dict(
                                     color=sync.window_confidence, colorscale="Viridis",
                                     size=6, showscale=False)), row=3, col=1)
        fig.update_xaxes(title_text="time (s)", row=3, col=1)
        fig.update_yaxes(title_text="offset (frames)", row=3, col=1)
    fig = _layout(fig, "", height=height)
    fig.update_layout(showlegend=False)  # the panel titles name the lines in their colours
    return fig


def grouped_bars(board: pd.DataFrame, tasks: list[TaskSpec]) -> go.Figure:
    """Leaderboard -> bars of the mean per task over judged clips, one colour per group, 95%
    CI as error bars; a task no clip of a group could be judged on is a labelled empty bar."""
    if board.empty:
        return empty_figure("no scored clips to compare", "Leaderboard")
    labels = [t.label or t.name for t in tasks]
    fig = go.Figure()
    for i, row in board.reset_index(drop=True).iterrows():
        means = np.array([row[f"{t.name}_mean"] for t in tasks], float)
        high = np.array([row[f"{t.name}_ci_high"] for t in tasks], float) - means
        low = means - np.array([row[f"{t.name}_ci_low"] for t in tasks], float)
        counts = [int(row.get(f"{t.name}_n", 0) or 0) for t in tasks]
        text = ["not judged" if not np.isfinite(m) else "" for m in means]
        fig.add_trace(go.Bar(x=labels, y=np.nan_to_num(means), name=str(row["group"]),
                             marker_color=PALETTE[i % len(PALETTE)], text=text,
                             textposition="outside", customdata=counts,
                             hovertemplate="%{x}: %{y:.3f} (n=%{customdata})<extra>"
                                           f"{row['group']}</extra>",
                             error_y=dict(type="data", array=np.nan_to_num(high),
                                          arrayminus=np.nan_to_num(low), visible=True)))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="mean score (95% bootstrap CI)")
    return _layout(fig, "Generators per task (judged clips; failures in the table)", height=380)


def training_curves(records: Iterable[dict], reference: Optional[dict] = None) -> go.Figure:
    """metrics.jsonl records -> losses (left) and mean validation metrics (right) per epoch.
    Nested records are flattened (`val.mean.srcc`). `reference`: {metric: value} of the active
    checkpoint (e.g. {"srcc": 0.7}), drawn as dotted lines."""
    frame = pd.json_normalize(list(records))
    if frame.empty:
        return empty_figure("waiting for the first epoch...", "Training")
    x = frame["epoch"] if "epoch" in frame else pd.Series(range(1, len(frame) + 1))
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    losses = [c for c in numeric if c.endswith("loss")]
    metrics = [c for c in numeric if c.startswith("val.mean.") and not c.endswith(".n")] or \
        [c for c in numeric if c.startswith("val") and c not in losses and
         not c.endswith(".n")]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "Loss", "Validation metrics (mean over tasks)" + _n_label(frame)))
    for i, col in enumerate(losses):
        fig.add_trace(go.Scatter(x=x, y=frame[col], name=col.replace("_", " "),
                                 mode="lines+markers", legendgroup="loss",
                                 line_color=PALETTE[i % len(PALETTE)]), row=1, col=1)
    for i, col in enumerate(metrics):
        color, short = PALETTE[(i + len(losses)) % len(PALETTE)], col.rsplit(".", 1)[-1]
        fig.add_trace(go.Scatter(x=x, y=frame[col], name=f"val {short}", mode="lines+markers",
                                 legendgroup="val", line_color=color), row=1, col=2)
        if reference and short in reference:
            fig.add_hline(y=reference[short], line_dash="dot", line_color=color, row=1, col=2,
                          annotation_text=f"active {short}", annotation_font_color=color)
    span = int(x.max() - x.min()) if len(x) else 0
    fig.update_xaxes(title_text="epoch", tickformat="d",
                     **({"dtick": 1} if span <= 15 else {}))
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="metric value", row=1, col=2)
    return _layout(fig, "Training: loss and validation metrics per epoch", height=380)


def _n_label(frame: pd.DataFrame) -> str:
    if "val.mean.n" in frame and frame["val.mean.n"].notna().any():
        return f", N={int(frame['val.mean.n'].dropna().iloc[-1])} clips"
    return ""


TIMELINE_ROW = 120  # one small panel of the timeline, in pixels
FREEZE_COLOUR = "rgba(220, 57, 18, 0.18)"


def timeline_plot(result, end: Optional[float] = None, title: str = "") -> go.Figure:
    """Every signal with a time course (`ScoreResult.timeline`, `talkface.signals.COURSES`) in
    small stacked panels on the clip's time axis, each in its own unit: the sync estimate's
    confidence per window where the sync model gave one, each per-frame level, and one strip of
    events (repeated frames, mouth stalls, blinks). Runs of repeated frames are shaded across
    every panel; gaps are frames without a face. `end`: the axis's end in seconds (default the
    clip's), so two clips' timelines can share one time axis; `title` goes before the usual
    one."""
    from .signals import COURSES, freeze_spans
    courses = [c for c in COURSES if c.name in result.timeline]
    sync = result.sync
    windows = sync is not None and sync.window_times.size > 0 and sync.window_confidence.size > 0
    levels = [c for c in courses if c.kind == "level"]
    events = [c for c in courses if c.kind == "event"]
    titles = (["Sync confidence per window"] if windows else []) + [
        f"{c.label} ({c.unit}) · clip value: {c.reduce}" for c in levels] + (
        ["Events: " + ", ".join(c.label.lower() for c in events)] if events else [])
    if not titles:
        return empty_figure("no per-frame signals for this clip", "Timeline")
    rows = len(titles)
    height = TIMELINE_ROW * rows + 90
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles,
                        vertical_spacing=min(42 / height, 0.9 / max(rows - 1, 1)))
    t = (np.arange(result.n_frames) + 0.5) / result.fps  # frame k covers [k, k+1) / fps
    row = 1
    if windows:
        fig.add_trace(go.Scatter(x=sync.window_times, y=sync.window_confidence,
                                 mode="lines+markers", line_color=PALETTE[3], name="sync",
                                 hovertemplate="t=%{x:.2f}s<br>confidence %{y:.2f}"
                                               "<extra></extra>"), row=row, col=1)
        fig.add_hline(y=sync.reliable_confidence, line_dash="dot", line_color="grey", row=row,
                      col=1, annotation_text="trusted above", annotation_position="top left",
                      annotation_font_size=10)
        row += 1
    for i, c in enumerate(levels):
        values = np.asarray(result.timeline[c.name], float)
        sparse = np.isfinite(values).sum() < 0.2 * max(values.size, 1)
        fig.add_trace(go.Scatter(x=t, y=values, name=c.label, connectgaps=False,
                                 mode="markers" if sparse else "lines",
                                 marker=dict(size=8), line=dict(width=1.2),
                                 line_color=PALETTE[i % len(PALETTE)],
                                 hovertemplate=f"t=%{{x:.2f}}s<br>{c.label} %{{y:.4g}}"
                                               f"<extra></extra>"), row=row, col=1)
        row += 1
    for i, c in enumerate(events):
        hit = np.nan_to_num(np.asarray(result.timeline[c.name], float)) > 0.5
        fig.add_trace(go.Scatter(x=t[hit], y=[c.label] * int(hit.sum()), mode="markers",
                                 marker=dict(symbol="line-ns-open", size=14,
                                             color=PALETTE[(i + 1) % len(PALETTE)]),
                                 name=c.label, hovertemplate=f"t=%{{x:.2f}}s {c.label.lower()}"
                                                             f"<extra></extra>"), row=row, col=1)
    if events:
        fig.update_yaxes(type="category", categoryorder="array",
                         categoryarray=[c.label for c in events], row=row, col=1)
    end = end or result.n_frames / result.fps
    for start, stop in freeze_spans(result.timeline.get("repeated", []), result.fps):
        fig.add_vrect(x0=start, x1=stop, fillcolor=FREEZE_COLOUR, line_width=0, layer="below")
    fig.update_xaxes(range=[0, end])
    fig.update_xaxes(title_text="time (s)", row=rows, col=1)
    fig.update_annotations(font_size=12)
    fig = _layout(fig, f"{title}{': ' if title else ''}Signals over time (shaded: repeated "
                       f"frames)", height=height)
    fig.update_layout(showlegend=False, margin=dict(l=60, r=20, t=60, b=40))
    return fig
