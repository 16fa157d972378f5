"""Hyperparameter search with Optuna, each trial one `train()` run.

    python -m train.search --config optimized --data data/synth --trials 20 \
        --storage sqlite:///runs/search.db --study optimized-synth --output_dir runs/search \
        [--space space.yaml] [--set key=value ...] [--epochs N]

Each trial draws values for the search space (dotted config keys, below), trains with them in
OUTPUT_DIR/trials/NNNN (a normal run folder) and is scored by the validation value of the
config's `train.select_metric`. `train()` reports that value after every epoch (its `on_epoch`
hook); Optuna's median pruner stops a trial whose value is worse than the median of earlier
trials at the same epoch. The study lives in the `--storage` database, so rerunning the same
command resumes it (`--trials` is the total of finished trials wanted), and several processes
given the same storage and study share the work; a trial whose process died is failed by its
missing heartbeat and run again.

Written to OUTPUT_DIR: `trials.jsonl` (one line per finished trial: number, value, params,
state, run folder), `best.yaml` (the best trial's full config; train it with
`python -m train --config OUTPUT_DIR/best.yaml ...`), `best.json`, and Optuna's plotly figures
`history.html`, `importance.html` and `intermediate.html` (they share `plotly.min.js` beside
them, so they open offline).

Search space file (YAML): `key: {low, high[, log]}` for a float or int range (ints when both
ends are ints), `key: {choices: [...]}` for a choice. The default space is `SPACE`.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from talkface.data import TalkfaceData, load_dataset
from talkface.errors import ConfigError, TalkfaceError
from talkface.metrics import HIGHER_IS_BETTER

from .config import Config, load_config, save_config
from .loop import train

log = logging.getLogger(__name__)

SPACE = {  # optimisation and regularisation; architecture is left to a --space file
    "train.lr": {"low": 1e-4, "high": 3e-3, "log": True},
    "train.weight_decay": {"low": 1e-4, "high": 0.1, "log": True},
    "train.batch_size": {"choices": [8, 16, 32]},
    "train.pct_start": {"low": 0.1, "high": 0.5},
    "train.label_smoothing": {"low": 0.0, "high": 0.1},
    "train.consistency_weight": {"low": 0.0, "high": 0.3},
    "model.dropout": {"low": 0.0, "high": 0.3},
}


def read_space(path: Optional[str]) -> dict:
    """The search space: a YAML file (see the module docstring) or `SPACE`."""
    if path is None:
        return dict(SPACE)
    space = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: expected a mapping of config keys to ranges")
    for key, spec in space.items():
        ok = isinstance(spec, dict) and (
            (set(spec) == {"choices"} and isinstance(spec["choices"], list) and spec["choices"])
            or ({"low", "high"} <= set(spec) <= {"low", "high", "log"}))
        if not ok:
            raise ConfigError(f"{path}: {key!r} needs {{low, high[, log]}} or {{choices: [...]}}"
                              f", got {spec!r}")
    return space


def suggest(trial, space: dict) -> dict:
    """One value per key of `space`, drawn by the trial."""
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"],
                                            log=spec.get("log", False))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                              log=spec.get("log", False))
    return values


def as_overrides(values: dict) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


class Search:
    """A study and what its trials share: the base config and overrides, the loaded data."""

    def __init__(self, args: argparse.Namespace, data: TalkfaceData, base: Config) -> None:
        self.args, self.data, self.base = args, data, base
        self.out = Path(args.output_dir)
        self.metric = base.train.select_metric
        self.space = read_space(args.space)

    def config(self, values: dict, output_dir: Optional[str]) -> Config:
        a = self.args
        return load_config(a.config, a.overrides + as_overrides(values), data=a.data,
                           epochs=a.epochs, output_dir=output_dir)

    def objective(self, trial) -> float:
        import optuna
        run = self.out / "trials" / f"{trial.number:04d}"
        cfg = self.config(suggest(trial, self.space), str(run))
        trial.set_user_attr("run", str(run))

        def report(epoch: int, record: dict) -> None:
            trial.report(record["select"][self.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {record['select']}")

        result = train(cfg, self.data, command=f"python -m train.search (trial {trial.number})",
                       on_epoch=report)
        trial.set_user_attr("test", result["test"].get("mean"))
        trial.set_user_attr("best_epoch", result["best_epoch"])
        return result["val"]["mean"][self.metric]

    def record(self, study, trial) -> None:
        """Study callback: one line per finished trial in trials.jsonl."""
        line = {"number": trial.number, "value": trial.value, "params": trial.params,
                "state": trial.state.name, "run": trial.user_attrs.get("run"),
                "test": trial.user_attrs.get("test"),
                "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None}
        with (self.out / "trials.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def write_best(self, study) -> dict:
        best = study.best_trial
        cfg = self.config(best.params, None)
        save_config(cfg, self.out / "best.yaml")
        summary = {"study": study.study_name, "metric": self.metric,
                   "direction": study.direction.name.lower(), "best_trial": best.number,
                   "value": best.value, "params": best.params,
                   "run": best.user_attrs.get("run"), "test": best.user_attrs.get("test"),
                   "trials": count_states(study)}
        (self.out / "best.json").write_text(json.dumps(summary, indent=1))
        return summary


def count_states(study) -> dict:
    counts: dict = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def write_plots(study, out: Path) -> list[str]:
    """Optuna's plotly figures as HTML; a figure that needs more trials is skipped."""
    from optuna import visualization as vis
    written = []
    for name, plot in (("history", vis.plot_optimization_history),
                       ("importance", vis.plot_param_importances),
                       ("intermediate", vis.plot_intermediate_values)):
        try:
            plot(study).write_html(out / f"{name}.html", include_plotlyjs="directory")
            written.append(name)
        except (ValueError, RuntimeError) as err:  # e.g. importances need 2+ complete trials
            log.info("no %s plot: %s", name, err)
    return written


def open_study(args: argparse.Namespace, direction: str):
    import optuna
    import warnings
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    with warnings.catch_warnings():  # heartbeats are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(args.storage, heartbeat_interval=60, grace_period=180,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                 max_retry=1))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=args.startup_trials,
                                         n_warmup_steps=args.warmup_epochs) \
        if args.pruner == "median" else optuna.pruners.NopPruner()
    return optuna.create_study(storage=storage, study_name=args.study, direction=direction,
                               sampler=optuna.samplers.TPESampler(seed=args.seed),
                               pruner=pruner, load_if_exists=True)


def run_search(args: argparse.Namespace) -> dict:
    import optuna
    if args.quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = load_config(args.config, args.overrides, data=args.data, epochs=args.epochs,
                       output_dir=str(out))
    d = base.data
    if not d.path:
        raise ConfigError("no data (--data DIR with a manifest.csv)")
    data = load_dataset(d.path, d, progress=not args.quiet)
    if not data.splits["val"]:
        raise ConfigError(f"{d.path}: the search needs a validation split; it is empty")
    search = Search(args, data, base)
    direction = "maximize" if HIGHER_IS_BETTER[search.metric] else "minimize"
    study = open_study(args, direction)
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    remaining = args.trials - len(study.get_trials(deepcopy=False, states=done))
    if remaining > 0:
        log.info("study %s: %d trial(s) to run", args.study, remaining)
        study.optimize(search.objective, n_trials=remaining, gc_after_trial=True,
                       callbacks=[MaxTrialsCallback(args.trials, states=done), search.record],
                       catch=(TalkfaceError,))
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TalkfaceError(f"study {args.study}: no trial completed")
    summary = search.write_best(study)
    summary["plots"] = write_plots(study, out)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.search", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="base YAML config (a file or a shipped name)")
    p.add_argument("--data", help="dataset folder with manifest.csv")
    p.add_argument("--trials", type=int, required=True,
                   help="finished (complete or pruned) trials the study should hold")
    p.add_argument("--output_dir", required=True, help="folder for trials, best.yaml, plots")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUTPUT_DIR/search.db)")
    p.add_argument("--study", help="study name (default: the output folder's name)")
    p.add_argument("--space", help="search space YAML (default: train.search.SPACE)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the config's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the base config for every trial (repeatable)")
    p.add_argument("--pruner", choices=["median", "none"], default="median")
    p.add_argument("--startup_trials", type=int, default=3,
                   help="trials run in full before the pruner may stop one")
    p.add_argument("--warmup_epochs", type=int, default=2,
                   help="epochs of each trial the pruner never stops")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args.storage = args.storage or f"sqlite:///{Path(args.output_dir) / 'search.db'}"
    args.study = args.study or Path(args.output_dir).resolve().name
    started = time.time()
    try:
        summary = run_search(args)
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary["seconds"] = round(time.time() - started, 1)
    summary["command"] = "python -m train.search " + shlex.join(argv)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
