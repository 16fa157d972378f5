"""Training: configs validate strictly, overrides apply before validation, a few CPU steps lower
the loss, a killed run resumed from last.pt ends where an uninterrupted one does, and the run
folder holds what the docs promise."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from talkface.checkpoint import load_checkpoint
from talkface.errors import ConfigError
from test_data import write_random_dataset
from train.__main__ import main as train_main
from train.config import CONFIGS as CONFIG_DIR
from train.config import Config, build_config, config_file, load_config
from train.loop import train

CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
TINY = config_file("tiny")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("data"), n=40, seed=0)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_builds_its_model_and_takes_a_step(path, dataset):
    """Each config validates, its model builds on real data's spec and one optimizer step gives
    a finite loss and moves the weights."""
    from talkface.data import collate, load_dataset
    from talkface.models import create_model
    from talkface.models.losses import multitask_loss
    from train.loop import build_optimizer
    cfg = load_config(path.stem)  # shipped configs load by name
    data = load_dataset(dataset)
    model = create_model(cfg.model.name, data.spec, data.tasks, **cfg.model.kwargs())
    model.set_normalization(*data.normalization())
    optimizer = build_optimizer(model, cfg.train)
    batch = collate([data.dataset("train", cfg.data.crop_frames)[i] for i in range(4)])
    out = model(batch.visual, batch.audio, batch.mask)
    targets = {t: batch.targets[:, i] for i, t in enumerate(data.task_names)}
    loss, _, _ = multitask_loss(model, out, targets, cfg.train.consistency_weight)
    before = [p.detach().clone() for p in model.parameters()]
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_typo_key_is_an_error(tmp_path):
    raw = yaml.safe_load(TINY.read_text())
    raw["train"]["learning_rate"] = 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="unknown key 'train.learning_rate'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        build_config({"modle": {}})


def test_wrong_types_are_errors_not_coerced():
    with pytest.raises(ConfigError, match="batch_size"):
        build_config({"train": {"batch_size": "8"}})
    with pytest.raises(ConfigError, match="optimizer"):
        build_config({"train": {"optimizer": "sgd"}})


def test_overrides_apply_before_validation():
    cfg = load_config(TINY, ["train.lr=3e-4", "model.encoder_dim=24", "data.tasks=[overall]",
                             "model.encoder_layers=null", "model.visual_layers=null"],
                      batch_size=8, model="original")
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.model.kwargs()["encoder_dim"] == 24
    assert cfg.data.tasks == ["overall"] and cfg.model.name == "original"
    with pytest.raises(ConfigError, match="unknown key 'train.lrr'"):
        load_config(TINY, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TINY, ["train.lr"])
    # an option of another model is an error naming the model, not silently ignored
    with pytest.raises(ConfigError, match="original.*encoder_layers"):
        load_config(TINY, ["model.name=original"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("nonexistent")


def tiny(dataset: Path, out: Path, **overrides) -> Config:
    items = [f"{k}={v}" for k, v in overrides.items()]
    return load_config(TINY, items, data=str(dataset), output_dir=str(out))


def test_a_few_cpu_steps_lower_the_loss(dataset, tmp_path):
    result = train(tiny(dataset, tmp_path, **{"train.epochs": 6}))
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 6
    first, last = lines[0]["train_task_loss"], lines[-1]["train_task_loss"]
    assert sum(last.values()) < 0.7 * sum(first.values())
    for key in ("train_loss", "val_loss", "lr", "grad_norm", "task_weights", "val"):
        assert key in lines[0]
    assert set(lines[0]["val"]["overall"]) == {"mse", "mae", "r2", "pearson", "srcc", "krcc",
                                               "n"}
    assert lines[0]["val"]["overall"]["n"] == 8  # every metric says how many clips it is on
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "metrics.json").exists()
    loaded = load_checkpoint(tmp_path / "best")
    assert loaded.meta.metrics["overall"]["mse"] == pytest.approx(
        result["test"]["overall"]["mse"])
    assert loaded.model.visual_std.min() > 0  # normalisation travelled with the weights
    # the split travelled too: evaluation reads it instead of re-deriving it
    split = loaded.meta.data["split"]
    assert split["map"]["bundles/clip004.npz"] == "test" and len(split["map"]) == 40


def test_without_a_scheduler_the_lr_stays_put_and_the_loss_goes_down(dataset, tmp_path):
    """`scheduler: none` trains at the configured learning rate throughout, and a few CPU epochs
    still lower train_loss (the mean of the steps' losses, which also drives early stopping
    when there is no validation split)."""
    train(tiny(dataset, tmp_path, **{"train.epochs": 4, "train.scheduler": "none",
                                     "train.lr": 1e-3}))
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["lr"] for line in lines] == pytest.approx([1e-3] * 4)
    losses = [line["train_loss"] for line in lines]
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses


def test_the_config_a_run_writes_repeats_the_run(dataset, tmp_path):
    """config.yaml in a run folder is the resolved config, overrides included: it loads back to
    the same Config, and training from it gives the same model."""
    cfg = tiny(dataset, tmp_path / "a", **{"train.epochs": 1, "train.lr": 2e-3,
                                           "model.encoder_dim": 16, "data.crop_frames": 24})
    first = train(cfg)
    saved = load_config(tmp_path / "a" / "config.yaml")
    assert saved == cfg
    again = train(saved.model_copy(update={"output_dir": str(tmp_path / "b")}))
    assert again["test"]["mean"]["mse"] == pytest.approx(first["test"]["mean"]["mse"])


def test_resume_after_a_kill_reaches_the_same_final_state(dataset, tmp_path):
    straight = train(tiny(dataset, tmp_path / "a"))
    stopped = train(tiny(dataset, tmp_path / "b", **{"train.stop_after_epochs": 2}))
    assert stopped["stopped"] and stopped["epochs_run"] == 2
    resumed = train(tiny(dataset, tmp_path / "b").model_copy(update={"resume": True}))
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0)
    assert resumed["test"]["mean"]["mse"] == pytest.approx(straight["test"]["mean"]["mse"])
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "b" / "metrics.jsonl").open()]
    assert epochs == [0, 1, 2, 3]


def test_cli_trains_original_with_batch_size_override(dataset, tmp_path, capsys):
    code = train_main(["--config", str(TINY), "--data", str(dataset), "--output_dir",
                       str(tmp_path), "--model", "original", "--batch_size", "4",
                       "--set", "train.epochs=1", "--set", "model.encoder_layers=null",
                       "--set", "model.visual_layers=null", "-q"])
    assert code == 0
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["train"]["batch_size"] == 4 and saved["model"]["name"] == "original"
    assert load_checkpoint(tmp_path / "best").model.model_name == "original"
    assert train_main(["--config", str(TINY), "--output_dir", str(tmp_path), "-q"]) == 2
    assert "no data" in capsys.readouterr().err


def test_mixed_precision_path_runs_on_cpu_with_bf16(dataset, tmp_path):
    """The autocast branch of the loop (what CUDA uses) also trains on the CPU with bf16."""
    result = train(tiny(dataset, tmp_path, **{"train.epochs": 4, "train.precision": "bf16"}))
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    first, last = lines[0]["train_task_loss"], lines[-1]["train_task_loss"]
    assert sum(last.values()) < sum(first.values())
    assert all(np.isfinite(v["mse"]) for v in result["test"].values())


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_training_on_cuda(dataset, tmp_path, precision):
    """fp16 goes through the GradScaler (unscale_ before clipping); bf16 does not need it."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    result = train(tiny(dataset, tmp_path, **{"train.epochs": 4, "train.precision": precision,
                                             "train.device": "cuda"}))
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(line["grad_norm"]) for line in lines)
    assert sum(lines[-1]["train_task_loss"].values()) < sum(lines[0]["train_task_loss"].values())
    assert all(np.isfinite(v["mse"]) for v in result["test"].values())


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A tiny run on a manifest without a `split` column: the split is made at training time."""
    folder = tmp_path_factory.mktemp("nosplit")
    data = write_random_dataset(folder / "data", n=40, seed=1, split_column=False)
    out = folder / "run"
    train(tiny(data, out, **{"data.split_by": "face"}))
    return out


def test_evaluate_scores_exactly_the_clips_the_run_held_out(trained):
    """Evaluation reads the split map from the checkpoint: its test clips are the run's test
    clips, and its metrics equal the run's own test metrics (the same inference path)."""
    from train.evaluate import evaluate
    data = trained.parent / "data"
    result = evaluate(str(trained / "best"), str(data), out=str(trained / "eval"))
    run = json.loads((trained / "metrics.json").read_text())
    held_out = {f for f, s in load_checkpoint(trained / "best").meta.split_map
                .items() if s == "test"}
    assert {r["file"] for r in result["predictions"]} == held_out
    assert result["n_clips"] == len(held_out) < 40
    assert result["metrics"]["mean"]["mse"] == pytest.approx(run["test"]["mean"]["mse"])
    assert (trained / "eval" / "report.html").read_text().count("<h1>") == 1


def test_ship_writes_a_card_with_the_baseline_and_the_test_split(trained, tmp_path):
    """`train.ship` on a run: a loadable checkpoint whose metrics are the test split's and whose
    card names the data, the split and the command."""
    from train.ship import main as ship_main
    manifest = trained.parent / "data" / "manifest.csv"
    frame = pd.read_csv(manifest)
    frame["label_version"] = "test-labels"
    frame.to_csv(manifest, index=False)
    out = tmp_path / "shipped"
    assert ship_main(["--run", str(trained), "--data", str(trained.parent / "data"), "--out",
                      str(out), "--command", "python -m train --config tiny"]) == 0
    loaded = load_checkpoint(out)
    assert loaded.meta.metrics_split == "test"
    assert loaded.meta.metrics["mean"]["n"] == sum(
        1 for s in loaded.meta.split_map.values() if s == "test")
    card = (out / "card.md").read_text()
    assert "python -m train --config tiny" in card and "baseline" in card.lower()


@pytest.mark.slow
def test_compare_trains_both_models_on_the_same_split(dataset, tmp_path):
    from train.compare import main as compare_main
    code = compare_main(["--data", str(dataset), "--seeds", "1", "--output_dir", str(tmp_path),
                         "--original", str(TINY), "--improved", str(TINY), "--epochs", "2",
                         "--set_original", "model.name=original",
                         "--set_original", "model.encoder_layers=null",
                         "--set_original", "model.visual_layers=null"])
    assert code == 0
    result = json.loads((tmp_path / "compare.json").read_text())
    assert set(result["summary"]) == {"original", "improved"}
    assert result["runs"]["original"][0]["mean"]["n"] == result["runs"]["improved"][0]["mean"]["n"]
    assert "MSE change" in (tmp_path / "compare.md").read_text()
    # run again: finished seeds are read back, not trained again (a killed job resumes)
    weights = tmp_path / "improved" / "seed0" / "best" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert compare_main(["--data", str(dataset), "--seeds", "1", "--output_dir", str(tmp_path),
                         "--original", str(TINY), "--improved", str(TINY),
                         "--epochs", "2"]) == 0
    assert weights.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "compare.json").read_text())["runs"] == result["runs"]
