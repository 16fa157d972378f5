"""Hyperparameter search: trials are train() runs scored per epoch (so the pruner can stop one),
the study resumes from its database, and the best config, trial log and plots are written."""
from __future__ import annotations

import json

import optuna
import pytest
import yaml

from test_data import write_random_dataset
from train.config import load_config
from train.search import Search, build_parser, main as search_main, read_space

from talkface.errors import ConfigError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_random_dataset(tmp_path_factory.mktemp("data"), n=30, seed=0)


def test_a_trial_reports_every_epoch_and_is_pruned_there(dataset, tmp_path):
    """The hook inside train(): the pruner's answer after epoch 0 ends the run at once."""
    args = build_parser().parse_args(["--config", "tiny", "--data", str(dataset), "--trials",
                                      "1", "--output_dir", str(tmp_path), "--set",
                                      "train.threads=1"])
    from talkface.data import load_dataset
    search = Search(args, load_dataset(dataset), load_config("tiny"))

    class Trial:
        number, params, reported = 7, {}, []

        def suggest_float(self, name, low, high, log=False):
            return low

        def suggest_categorical(self, name, choices):
            return choices[0]

        def set_user_attr(self, key, value):
            pass

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return True

    trial = Trial()
    with pytest.raises(optuna.TrialPruned):
        search.objective(trial)
    assert [step for step, _ in trial.reported] == [0]
    lines = (tmp_path / "trials" / "0007" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["select"]["mse"] == trial.reported[0][1]


def test_a_bad_space_file_is_an_error(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("train.lr: {low: 0.1}\n")
    with pytest.raises(ConfigError, match="train.lr"):
        read_space(str(bad))


@pytest.mark.slow
def test_search_writes_best_config_trials_and_plots_and_resumes(dataset, tmp_path):
    out = tmp_path / "run"
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    args = ["--config", "tiny", "--data", str(dataset), "--storage", storage, "--study", "s",
            "--output_dir", str(out), "--epochs", "3", "--set", "train.threads=1", "-q"]
    assert search_main(args + ["--trials", "3"]) == 0
    assert search_main(args + ["--trials", "4"]) == 0  # the same study, one more trial
    lines = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    assert [x["number"] for x in lines] == [0, 1, 2, 3]
    assert all(x["state"] in ("COMPLETE", "PRUNED") for x in lines)
    assert set(lines[0]["params"]) == set(read_space(None))
    summary = json.loads((out / "best.json").read_text())
    complete = [x for x in lines if x["state"] == "COMPLETE"]
    assert summary["value"] == min(x["value"] for x in complete)
    best = yaml.safe_load((out / "best.yaml").read_text())
    params = next(x["params"] for x in lines if x["number"] == summary["best_trial"])
    assert best["train"]["lr"] == pytest.approx(params["train.lr"])
    assert best["train"]["epochs"] == 3 and best["output_dir"] is None
    cfg = load_config(out / "best.yaml")  # a config `python -m train --config` accepts
    assert cfg.train.batch_size == params["train.batch_size"]
    for name in ("history", "importance"):
        assert "plotly" in (out / f"{name}.html").read_text()
    assert (out / "plotly.min.js").exists()
