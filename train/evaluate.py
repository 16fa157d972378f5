"""Evaluate a checkpoint on a dataset: `python -m train.evaluate --checkpoint PATH --data DIR`.

Writes `report.json` (per-task and mean MSE, MAE, R2, Pearson, SRCC, KRCC) and `report.html`
(plotly predicted-vs-true scatter per task, and the training curves when a `metrics.jsonl` sits
next to the checkpoint). Clips are split by the file -> split map stored in the checkpoint when it
was trained, so "test" is exactly what it never saw (`--split` chooses).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import pandas as pd

from talkface.checkpoint import LoadedModel, load_checkpoint
import numpy as np

from talkface.data import DataSettings, TalkfaceData, load_dataset
from talkface.errors import TalkfaceError
from talkface.metrics import METRIC_NAMES
from talkface.predict import ClipFeatures, predict_arrays

from .loop import metrics_of

log = logging.getLogger(__name__)


def load_eval_data(data: str, loaded: LoadedModel, cache_dir: Optional[str] = None,
                   workers: int = 1) -> TalkfaceData:
    """The dataset with the checkpoint's tasks, extracted with the checkpoint's own feature
    settings, split by the checkpoint's file -> split map (stored at training time): "test" is
    what the checkpoint never saw. Clips the map does not name are unseen, hence test."""
    settings = DataSettings(tasks=[t.name for t in loaded.tasks], features=loaded.spec.extractor,
                            cache_dir=cache_dir, workers=workers)
    dataset = load_dataset(data, settings, split_map=loaded.meta.split_map, progress=True)
    loaded.spec.check_compatible(dataset.spec, "checkpoint", "dataset's features")
    return dataset


def clips_for(data: TalkfaceData, split: str) -> list[ClipFeatures]:
    if split == "all":
        return [c for s in ("train", "val", "test") for c in data.splits[s]]
    return data.splits[split]


def evaluate_clips(loaded: LoadedModel, clips: list[ClipFeatures], batch_size: int = 8) -> dict:
    """-> {"metrics": {task: {...}, "mean": {...}}, "predictions": [{file, task: (pred, true)}]}
    on the scores users get (`talkface.predict`)."""
    preds, targets = predict_arrays(loaded.model, clips, batch_size,
                                    calibration=loaded.calibration)
    names = [t.name for t in loaded.tasks]
    rows = [{"file": c.file, **{f"{t}_pred": _num(preds[j, i]) for i, t in enumerate(names)},
             **{f"{t}_true": _num(targets[j, i]) for i, t in enumerate(names)}}
            for j, c in enumerate(clips)]
    return {"metrics": metrics_of(names, preds, targets), "predictions": rows}


def _num(x: float) -> Optional[float]:
    return float(x) if np.isfinite(x) else None


def find_training_log(checkpoint: Path) -> Optional[Path]:
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    for candidate in (folder / "metrics.jsonl", folder.parent / "metrics.jsonl"):
        if candidate.exists():
            return candidate
    return None


def flatten_record(record: dict) -> dict:
    """A metrics.jsonl line -> flat numeric columns for `talkface.plots.training_curves`."""
    flat = {"epoch": record["epoch"], "train_loss": record.get("train_loss"),
            "val_loss": record.get("val_loss")}
    for task, value in (record.get("train_task_loss") or {}).items():
        flat[f"train_loss_{task}"] = value
    for name in ("srcc", "r2"):
        flat[f"val_{name}"] = ((record.get("val") or {}).get("mean") or {}).get(name)
    return flat


def html_report(result: dict, loaded: LoadedModel, log_path: Optional[Path]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from talkface.plots import training_curves
    rows, tasks = pd.DataFrame(result["predictions"]), loaded.tasks
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=[
        f"{t.label or t.name}: SRCC {result['metrics'][t.name]['srcc']:.3f}, "
        f"R2 {result['metrics'][t.name]['r2']:.3f}" for t in tasks])
    for i, task in enumerate(tasks, start=1):
        fig.add_trace(go.Scatter(x=rows[f"{task.name}_true"], y=rows[f"{task.name}_pred"],
                                 mode="markers", text=rows["file"], name=task.name,
                                 marker=dict(size=5, opacity=0.6)), row=1, col=i)
        fig.add_trace(go.Scatter(x=[task.low, task.high], y=[task.low, task.high], mode="lines",
                                 line=dict(dash="dot", color="grey"), showlegend=False),
                      row=1, col=i)
        fig.update_xaxes(title_text="true", row=1, col=i)
        fig.update_yaxes(title_text="predicted", row=1, col=i)
    fig.update_layout(height=380, template="plotly_white", showlegend=False,
                      title="Predicted vs true")
    table = pd.DataFrame(result["metrics"]).T[list(METRIC_NAMES)].round(4).to_html()
    parts = [f"<h1>talkface evaluation: {loaded.path}</h1>",
             f"<p>model {loaded.meta.model_name}, {result['n_clips']} clips "
             f"({result['split']} split of {result['data']})</p>", table,
             fig.to_html(full_html=False, include_plotlyjs=True)]
    if log_path is not None:
        records = [flatten_record(json.loads(x)) for x in log_path.read_text().splitlines() if x]
        parts += ["<h2>Training curves</h2>",
                  training_curves(records).to_html(full_html=False, include_plotlyjs=False)]
    return "<html><head><meta charset='utf-8'></head><body>" + "\n".join(parts) + \
        "</body></html>"


def evaluate(checkpoint: str, data: str, out: Optional[str] = None, split: str = "test",
             cache_dir: Optional[str] = None, workers: int = 1) -> dict:
    """Score `data` with `checkpoint`; writes report.json + report.html into `out`."""
    loaded = load_checkpoint(checkpoint)
    dataset = load_eval_data(data, loaded, cache_dir, workers)
    chosen = split
    clips = clips_for(dataset, chosen)
    if not clips:
        raise TalkfaceError(f"{data}: the {chosen} split has no clips")
    result = {"checkpoint": str(loaded.path), "data": str(data), "split": chosen,
              "n_clips": len(clips), **evaluate_clips(loaded, clips)}
    folder = Path(out) if out else Path("runs") / "eval" / loaded.path.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(result, indent=1, allow_nan=True))
    (folder / "report.html").write_text(html_report(result, loaded,
                                                    find_training_log(loaded.path)))
    result["out"] = str(folder)
    return result


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (or its model file)")
    p.add_argument("--data", required=True, help="dataset folder with manifest.csv")
    p.add_argument("--out", help="report folder (default runs/eval/<checkpoint name>)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="which clips, by the checkpoint's own split map (default: test, the "
                        "clips it never saw)")
    p.add_argument("--cache_dir", help="feature cache (default $TALKFACE_CACHE)")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        result = evaluate(args.checkpoint, args.data, args.out, args.split, args.cache_dir,
                          args.workers)
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = pd.DataFrame(result["metrics"]).T[list(METRIC_NAMES)]
    print(f"{result['n_clips']} clips ({result['split']}):\n{table.round(4).to_string()}")
    print(f"report: {result['out']}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
