"""Ensembles: K models in one checkpoint, scored as the mean with the members' spread per task.

    python -m train.ensemble --config optimized --data data/synth --members 3 --output_dir RUN
    python -m train.ensemble --data data/synth --members 3 --from_search runs/search --output_dir RUN

The first form trains K seeds of one config with `train()` (RUN/member_K, each a normal run
folder; a member whose metrics.json exists is reused, so a killed job resumes). The second takes
the K best complete trials of a `train.search` folder. Either way RUN/best is one checkpoint
folder holding every member (`talkface.models.ensemble`), with test metrics and a card; it loads
with `load_scorer(RUN/best)` and ships with `train.ship --run RUN`. The Scorer then reports each
task as mean +- spread and warns when the spread is above the checkpoint's `disagreement` share
of a task's range: by default the 95th percentile of that share over the validation clips.

RUN/ensemble.json and RUN/ensemble.md hold the comparison on the test split: every member, the
members' mean metrics and the ensemble (MSE, SRCC, ...), and per task the Spearman correlation
between the spread and the ensemble's absolute error (does the spread say where it is wrong?).
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from talkface.checkpoint import (LoadedModel, default_card, load_checkpoint, read_meta,
                                 save_checkpoint)
from talkface.data import TalkfaceData, load_dataset
from talkface.errors import ConfigError, TalkfaceError
from talkface.markdown import markdown_table
from talkface.metrics import LABELS, SHOWN_METRICS, srcc
from talkface.models import TalkfaceModel, create_model
from talkface.predict import predict, predict_arrays

from .config import Config, load_config
from .evaluate import load_eval_data
from .loop import metrics_of, train

log = logging.getLogger(__name__)


def train_members(cfg: Config, data: TalkfaceData, k: int, out: Path, command: str) -> list[Path]:
    """K seeds of `cfg` (seed, seed + 1, ...), each a run folder under `out`."""
    runs = []
    for i in range(k):
        run = cfg.model_copy(deep=True)
        run.train.seed, run.output_dir = cfg.train.seed + i, str(out / f"member_{i}")
        if (Path(run.output_dir) / "metrics.json").exists():
            log.info("member %d: reusing %s", i, run.output_dir)
        else:
            log.info("member %d: training seed %d", i, run.train.seed)
            train(run, data, command=f"{command} (member {i})")
        runs.append(Path(run.output_dir))
    return runs


def search_members(search: Path, k: int) -> list[Path]:
    """The run folders of the K best complete trials of a `train.search` output folder."""
    summary = json.loads((search / "best.json").read_text())
    lines = [json.loads(x) for x in (search / "trials.jsonl").read_text().splitlines() if x]
    done = [x for x in lines if x["state"] == "COMPLETE" and x["value"] is not None]
    done.sort(key=lambda x: x["value"], reverse=summary["direction"] == "maximize")
    if len(done) < k:
        raise ConfigError(f"{search}: {len(done)} complete trial(s), {k} members asked for")
    return [Path(x["run"]) for x in done[:k]]


def build_ensemble(members: list[LoadedModel], disagreement: float = 0.1) -> TalkfaceModel:
    """One `ensemble` model holding the members' weights."""
    first = members[0]
    for m in members[1:]:
        first.spec.check_compatible(m.spec, str(first.path), str(m.path))
        if [t.name for t in m.tasks] != [t.name for t in first.tasks]:
            raise ConfigError(f"{m.path} scores other tasks than {first.path}")
    config = {"members": [{"name": m.meta.model_name, "options": m.meta.options}
                          for m in members], "disagreement": disagreement}
    model = create_model("ensemble", first.spec, first.tasks, **config)
    for slot, m in zip(model.members, members):
        slot.load_state_dict(m.model.state_dict())
    TalkfaceModel.set_normalization(model, first.model.visual_mean, first.model.visual_std,
                                    first.model.audio_mean, first.model.audio_std)
    return model.eval()


def spreads(model, clips) -> np.ndarray:
    """(N, K) spread per clip and task (NaN where not judged)."""
    names = [t.name for t in model.tasks]
    return np.array([[p.spread[n] for n in names] for p in predict(model, clips)],
                    np.float64).reshape(-1, len(names))


def disagreement_limit(model, clips) -> float:
    """95th percentile over clips of the largest spread as a share of its task's range."""
    spans = np.array([t.high - t.low for t in model.tasks])
    share = np.nanmax(spreads(model, clips) / spans, axis=1)
    return float(np.nanpercentile(share, 95)) if np.isfinite(share).any() else 0.1


def compare(model, members: list[LoadedModel], clips) -> dict:
    """Members, their mean and the ensemble on `clips`, and spread vs absolute error."""
    names = [t.name for t in model.tasks]
    each = [metrics_of(names, *predict_arrays(m.model, clips)) for m in members]
    preds, targets = predict_arrays(model, clips)
    spread = spreads(model, clips)
    correlation = {}
    for i, t in enumerate(names):
        keep = np.isfinite(spread[:, i]) & np.isfinite(targets[:, i])
        error = np.abs(preds[keep, i] - targets[keep, i])
        correlation[t] = float(srcc(spread[keep, i], error)) if keep.sum() > 2 else None
    mean_member = {task: {k: float(np.mean([e[task][k] for e in each])) for k in each[0][task]}
                   for task in each[0]}
    return {"ensemble": metrics_of(names, preds, targets), "members": each,
            "member_mean": mean_member, "spread_error_srcc": correlation,
            "spread_mean": {t: float(np.nanmean(spread[:, i])) for i, t in enumerate(names)}}


def markdown(result: dict, tasks: list[str], limit: float) -> str:
    shown = [(t, m) for t in [*tasks, "mean"] for m in SHOWN_METRICS]
    named = [*((f"member {i}", m) for i, m in enumerate(result["members"])),
             ("members' mean", result["member_mean"]),
             (f"ensemble of {len(result['members'])}", result["ensemble"])]
    table = markdown_table(["", *(f"{t} {LABELS[m]}" for t, m in shown)],
                           ([name, *(f"{metrics[t][m]:.4f}" for t, m in shown)]
                            for name, metrics in named))
    corr = ", ".join(f"{t} {v:+.2f}" if v is not None else f"{t} n/a"
                     for t, v in result["spread_error_srcc"].items())
    return "\n".join([table, "", f"Spearman correlation of the spread with the ensemble's "
                                  f"absolute error, per task: {corr}.", "",
                       f"Disagreement warning: a task's spread above {limit:.3f} of its range "
                       f"(the 95th percentile of the largest such share over the validation "
                       f"clips)."]) + "\n"


def run_ensemble(args: argparse.Namespace, command: str) -> dict:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_search:
        runs = search_members(Path(args.from_search), args.members)
        members = [load_checkpoint(r / "best") for r in runs]
        data = load_eval_data(args.data, members[0])  # the split the trials were trained on
    else:
        cfg = load_config(args.config, args.overrides, data=args.data, epochs=args.epochs,
                          output_dir=str(out))
        data = load_dataset(cfg.data.path, cfg.data, progress=True)
        runs = train_members(cfg, data, args.members, out, command)
        members = [load_checkpoint(r / "best") for r in runs]
    model = build_ensemble(members)
    limit = args.disagreement or disagreement_limit(model, data.splits["val"])
    model.disagreement = limit
    test, val = (compare(model, members, data.splits[s]) if data.splits[s] else None
                 for s in ("test", "val"))
    shown = test or val
    table = markdown(shown, data.task_names, limit)
    config = {"members": [{"name": m.meta.model_name, "options": m.meta.options}
                          for m in members], "disagreement": limit}
    meta_data = {**data.describe(), "metrics_split": "test" if test else "val",
                 "val_metrics": val["ensemble"] if val else {}, "members": [str(r) for r in runs]}
    folder = save_checkpoint(out / "best", model, config, metrics=shown["ensemble"],
                             data=meta_data, command=command)
    card = default_card(read_meta(folder)) + "\n## Ensemble\n\n" + \
        f"{len(members)} members ({', '.join(str(r) for r in runs)}); each task is reported as " \
        f"the members' mean +- their standard deviation.\n\n" + table
    save_checkpoint(out / "best", model, config, metrics=shown["ensemble"], data=meta_data,
                    command=command, card=card)
    epochs = [json.loads((r / "metrics.json").read_text()) for r in runs]
    summary = {"best_epoch": ", ".join(str(e["best_epoch"]) for e in epochs),
               "epochs_run": ", ".join(str(e["epochs_run"]) for e in epochs),
               "val": val["ensemble"] if val else {}, "test": test["ensemble"] if test else {},
               "data": data.describe(), "model": "ensemble"}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    result = {"test": test, "val": val, "disagreement": limit, "members": [str(r) for r in runs],
              "table": table}
    (out / "ensemble.json").write_text(json.dumps(result, indent=1))
    (out / "ensemble.md").write_text(table)
    return result


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m train.ensemble",
                                description=__doc__.split("\n")[0])
    p.add_argument("--config", default="optimized", help="config of the members (seeds form)")
    p.add_argument("--data", required=True)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--from_search", help="a train.search output folder: its top trials")
    p.add_argument("--epochs", type=int)
    p.add_argument("--disagreement", type=float,
                   help="spread (share of a task's range) that warns (default: val 95th pct.)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.members < 2:
        print("error: an ensemble needs --members 2 or more", file=sys.stderr)
        return 2
    try:
        result = run_ensemble(args, "python -m train.ensemble " + shlex.join(argv))
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
