"""The training loop: `train(cfg) -> metrics`, readable top to bottom (after nanoGPT).

One epoch = one pass over the training clips (random temporal crops), then a full-length pass over
the validation clips. Per optimizer step: autocast forward (bf16 on CUDA where supported, else fp16
with a GradScaler; fp32 on CPU), multi-task loss, backward, `unscale_` then `clip_grad_norm_`,
step, OneCycleLR step. Early stopping watches one validation metric; the best weights are written
as a safetensors checkpoint folder `best/`, the resume state as `last.pt` (plain types, loaded with
`weights_only=True`), one JSON line per epoch in `metrics.jsonl`. Under `torchrun` the model is
wrapped in DDP, each rank trains on its shard of the clips and only rank 0 writes.

Every epoch reseeds dropout and the crop/shuffle generators from (seed, epoch), so a run resumed
from `last.pt` after a kill reaches the same weights as one that was never interrupted.
"""
from __future__ import annotations


import json
import logging
import math
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from talkface.checkpoint import save_checkpoint
from talkface.data import TalkfaceData, collate, load_dataset
from talkface.errors import ConfigError
from talkface.metrics import HIGHER_IS_BETTER, task_metrics
from talkface.models import TalkfaceModel, create_model
from talkface.models.losses import multitask_loss, smooth_targets
from talkface.predict import predict_arrays

from .config import Config, save_config

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str) -> Runtime:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return Runtime(rank, world, torch.device("cuda", local))
    return Runtime(rank, world, torch.device("cpu" if device == "auto" else device))


@contextmanager
def cpu_settings(threads: Optional[int]):
    """`configure_cpu` for the length of a `train()` call, then the process's own settings
    again (a caller in the same process, e.g. a test or a notebook, keeps IEEE floats)."""
    before = torch.get_num_threads()
    configure_cpu(threads)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(before)


def configure_cpu(threads: Optional[int]) -> None:
    """Process-wide CPU settings for a training process. Denormal floats (tiny values near 0,
    which small weights and attention produce) are flushed to zero: x86 handles them in slow
    microcode, which made identical epochs swing up to 10x in time. `threads` caps torch's
    threads: on a machine with other work running, more threads than free cores make each step
    many times slower (measured here: 0.9 s with 1 thread, 15 s with 2 beside a busy core)."""
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def precision_for(device: torch.device, choice: str) -> torch.dtype:
    """fp32 on CPU unless asked; on CUDA bf16 where supported, else fp16."""
    if choice == "fp32" or (device.type != "cuda" and choice == "auto"):
        return torch.float32
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW/Adam; biases, norm weights and other 1-D parameters get no weight decay. Learned
    task weights (`log_vars`) get `task_weight_lr_scale` x the learning rate: Adam moves each
    parameter by about lr per step, so at lr 1e-3 they could hardly leave 0 in a short run."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    task = [p for n, p in named if n.endswith("log_vars")]
    rest = [(n, p) for n, p in named if not n.endswith("log_vars")]
    groups = [{"params": [p for _, p in rest if p.ndim >= 2], "weight_decay": cfg.weight_decay,
               "lr": cfg.lr},
              {"params": [p for _, p in rest if p.ndim < 2], "weight_decay": 0.0, "lr": cfg.lr}]
    if task:
        groups.append({"params": task, "weight_decay": 0.0,
                       "lr": cfg.lr * cfg.task_weight_lr_scale})
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def build_scheduler(optimizer, cfg, steps_per_epoch: int):
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=cfg.epochs * steps_per_epoch,
            pct_start=cfg.pct_start)
    return None


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rt: Runtime) -> list[list[int]]:
    """This rank's shuffled batches of clip indices (a DistributedSampler without the sampler):
    `batch_size` is the global batch, so each of the `world` ranks takes batch_size / world
    clips per step and step k's clips, over all ranks, are the ones a single process would take
    in its step k. Every rank gets the same number of steps (the shuffled order is padded by
    wrapping around)."""
    if batch_size % rt.world:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch; it must be a "
                          f"multiple of the {rt.world} processes")
    order = np.random.default_rng([seed, epoch, 7]).permutation(n)
    per_rank, local = math.ceil(n / rt.world), batch_size // rt.world
    order = np.resize(order, per_rank * rt.world)[rt.rank::rt.world]  # pad by wrapping around
    return [order[i:i + local].tolist() for i in range(0, len(order), local)]


def mean_over_ranks(values: list[float], rt: Runtime) -> list[float]:
    """All-reduce: the mean over ranks of each value (the values themselves in one process)."""
    if rt.world == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return (tensor / rt.world).tolist()


def gather_rows(rows: np.ndarray, n: int, rt: Runtime) -> np.ndarray:
    """Rank r holds rows r, r + world, ... of an (n, K) array; every rank gets all n rows."""
    if rt.world == 1:
        return rows
    parts: list = [None] * rt.world
    dist.all_gather_object(parts, rows)
    out = np.empty((n, rows.shape[1]), rows.dtype)
    for rank, part in enumerate(parts):
        out[rank::rt.world] = part
    return out


def targets_of(batch, task_names: list[str]) -> dict[str, torch.Tensor]:
    return {t: batch.targets[:, i] for i, t in enumerate(task_names)}


def train_one_epoch(model, raw: TalkfaceModel, dataset, batches, optimizer, scheduler, scaler,
                    amp_dtype, cfg: Config, means: dict, rt: Runtime) -> dict:
    model.train()
    task_names = raw.task_names
    totals, task_sums, norms, steps = 0.0, {t: 0.0 for t in task_names}, [], 0
    for indices in batches:
        batch = collate([dataset[i] for i in indices]).to(rt.device)
        targets = smooth_targets(targets_of(batch, task_names), means, cfg.train.label_smoothing)
        autocast = torch.autocast(rt.device.type, dtype=amp_dtype) \
            if amp_dtype != torch.float32 else nullcontext()
        with autocast:
            output = model(batch.visual, batch.audio, batch.mask)
        loss, per_task, _ = multitask_loss(raw, output, targets, cfg.train.consistency_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        limit = cfg.train.grad_clip if cfg.train.grad_clip else float("inf")
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit)))
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        totals += loss.item()
        for t, value in per_task.items():
            task_sums[t] += value.item()
        steps += 1
    # each rank's losses are over its own clips; gradients (hence norms) are already synced
    loss_mean, *task_means = mean_over_ranks([totals / steps] + [v / steps for v in
                                                                task_sums.values()], rt)
    return {"train_loss": loss_mean, "train_task_loss": dict(zip(task_sums, task_means)),
            "grad_norm": float(np.mean(norms)), "grad_norm_max": float(np.max(norms))}


def split_metrics(model: TalkfaceModel, data: TalkfaceData, split: str, cfg: Config,
                  device, rt: Optional[Runtime] = None) -> dict:
    """Per-task metrics (and "mean") on one split, computed on the scores users get
    (`talkface.predict.predict_arrays`: clipped to each task's range, unjudged tasks left out).
    Under DDP each rank scores every world-th clip and the predictions are gathered, so every
    rank computes the same metrics from the same arrays."""
    clips = data.splits[split]
    if not clips:
        return {}
    rt = rt or Runtime(device=torch.device(device))
    preds, targets = predict_arrays(model, clips[rt.rank::rt.world], cfg.train.eval_batch_size,
                                    device)
    preds = gather_rows(preds, len(clips), rt)
    targets = gather_rows(targets, len(clips), rt)
    return metrics_of(model.task_names, preds, targets)


def metrics_of(names: list[str], preds: np.ndarray, targets: np.ndarray) -> dict:
    """(N, K) predictions and targets in task order -> {task: metrics, "mean": ...}."""
    return task_metrics({t: preds[:, i] for i, t in enumerate(names)},
                        {t: targets[:, i] for i, t in enumerate(names)})


def is_better(value: float, best: Optional[float], metric: str) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(value)
    return value > best if HIGHER_IS_BETTER[metric] else value < best


def resume_state(path: Path, model, optimizer, scheduler, scaler, cfg: Config) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["config"]["model"] != cfg.model.model_dump():
        raise ConfigError(f"{path} was trained with model {state['config']['model']}, "
                          f"not {cfg.model.model_dump()}; use another --output_dir")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return state


def save_resume_state(path: Path, raw, optimizer, scheduler, scaler, cfg: Config,
                      epoch: int, best: Optional[float], best_epoch: int, bad_epochs: int) -> None:
    state = {"model": raw.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "scaler": scaler.state_dict(), "epoch": epoch, "best": best,
             "best_epoch": best_epoch, "bad_epochs": bad_epochs, "config": cfg.model_dump()}
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def append_jsonl(path: Path, record: dict, keep_before_epoch: Optional[int] = None) -> None:
    """Append one line; with `keep_before_epoch`, first drop lines of epochs a resume redoes."""
    if keep_before_epoch is not None and path.exists():
        lines = [ln for ln in path.read_text().splitlines()
                 if ln.strip() and json.loads(ln)["epoch"] < keep_before_epoch]
        path.write_text("".join(ln + "\n" for ln in lines))
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


EpochHook = Callable[[int, dict], None]


def train(cfg: Config, data: Optional[TalkfaceData] = None, command: str = "",
          on_epoch: Optional[EpochHook] = None) -> dict:
    """Train one model as `cfg` says; returns {"best_epoch", "val", "test", "epochs_run", ...}.

    `data` may be passed in to share one loaded dataset between runs (compare, search).
    `on_epoch(epoch, record)` is called after each epoch with that epoch's `metrics.jsonl` record
    (`record["select"]` holds the validation value early stopping watches); an exception it
    raises (e.g. `optuna.TrialPruned`) ends the run there, with `last.pt` and `best/` as they
    are."""
    if not cfg.output_dir:
        raise ConfigError("output_dir is not set (--output_dir)")
    if data is None and not cfg.data.path:
        raise ConfigError("no data (--data DIR with a manifest.csv)")
    with cpu_settings(cfg.train.threads):
        return _train(cfg, data, command, on_epoch)


def _train(cfg: Config, data: Optional[TalkfaceData], command: str,
           on_epoch: Optional[EpochHook]) -> dict:
    rt = setup_runtime(cfg.train.device)
    out = Path(cfg.output_dir)
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    torch.manual_seed(cfg.train.seed)
    if data is None:
        data = load_dataset(cfg.data.path, cfg.data, progress=rt.main)
    if not data.splits["train"]:
        raise ConfigError(f"{data.source}: the train split is empty")
    log.info("data: %s", data.describe(split_map=False))

    raw = create_model(cfg.model.name, data.spec, data.tasks, **cfg.model.kwargs())
    raw.set_normalization(*data.normalization("train"))
    raw.to(rt.device)
    if not cfg.train.consistency_weight and getattr(raw, "consistency", None) is not None:
        raw.consistency.requires_grad_(False)  # unused without the loss; DDP needs every grad
    model = raw
    if rt.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            raw, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    train_set = data.dataset("train", cfg.data.crop_frames, cfg.train.seed, cfg.augment)
    means = data.target_means("train")
    tc = cfg.train
    steps_per_epoch = len(epoch_batches(len(train_set), tc.batch_size, 0, tc.seed, rt))
    optimizer = build_optimizer(raw, tc)
    scheduler = build_scheduler(optimizer, tc, steps_per_epoch)
    amp_dtype = precision_for(rt.device, tc.precision)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=amp_dtype == torch.float16)

    start, best, best_epoch, bad_epochs = 0, None, -1, 0
    last_path, jsonl = out / "last.pt", out / "metrics.jsonl"
    if cfg.resume and last_path.exists():
        state = resume_state(last_path, raw, optimizer, scheduler, scaler, cfg)
        start, best = state["epoch"] + 1, state["best"]
        best_epoch, bad_epochs = state["best_epoch"], state["bad_epochs"]
        log.info("resumed from %s at epoch %d", last_path, start)
    elif rt.main and jsonl.exists():
        jsonl.unlink()

    metric, stopped_early, epoch = tc.select_metric, False, start - 1
    for epoch in range(start, tc.epochs):
        if tc.stop_after_epochs is not None and epoch - start >= tc.stop_after_epochs:
            return {"stopped": True, "epochs_run": epoch, "best_epoch": best_epoch}
        t0 = time.time()
        # dropout: the same stream after a resume; another stream on each DDP rank
        torch.manual_seed(tc.seed * 100_003 + epoch + 1_000_003 * rt.rank)
        train_set.set_epoch(epoch)
        batches = epoch_batches(len(train_set), tc.batch_size, epoch, tc.seed, rt)
        stats = train_one_epoch(model, raw, train_set, batches, optimizer, scheduler, scaler,
                                amp_dtype, cfg, means, rt)
        val = split_metrics(raw, data, "val", cfg, rt.device, rt)
        value = val["mean"][metric] if val else -stats["train_loss"]
        if is_better(value, best, metric if val else "r2"):
            best, best_epoch, bad_epochs = value, epoch, 0
            if rt.main:
                save_checkpoint(out / "best", raw, cfg.model.kwargs(), metrics=val,
                                data={**data.describe(), "metrics_split": "val"},
                                command=command or " ".join(sys.argv))
        else:
            bad_epochs += 1
        record = {"epoch": epoch, **stats, "val_loss": val["mean"]["mse"] if val else None,
                  "lr": optimizer.param_groups[0]["lr"], "task_weights": task_weights(raw),
                  "val": val, "select": {metric: value}, "best_epoch": best_epoch,
                  "seconds": round(time.time() - t0, 2)}
        if rt.main:
            append_jsonl(jsonl, record, keep_before_epoch=epoch if epoch == start else None)
            save_resume_state(last_path, raw, optimizer, scheduler, scaler, cfg, epoch, best,
                              best_epoch, bad_epochs)
        log.info("%sepoch %d train %.6f val mse %.6f lr %.2e (%.1fs)",
                 f"rank {rt.rank}/{rt.world} " if rt.world > 1 else "", epoch,
                 stats["train_loss"], record["val_loss"] or float("nan"), record["lr"],
                 record["seconds"])
        if on_epoch is not None:
            on_epoch(epoch, record)
        if tc.patience is not None and bad_epochs >= tc.patience:
            stopped_early = True
            break
    return finish(raw, data, cfg, out, rt, best_epoch, epoch + 1, stopped_early, command)


def task_weights(raw: TalkfaceModel) -> dict[str, float]:
    if hasattr(raw, "task_weights"):
        return raw.task_weights()
    return {t: 1.0 for t in raw.task_names}


def finish(raw, data, cfg, out: Path, rt: Runtime, best_epoch: int, epochs_run: int,
           stopped_early: bool, command: str) -> dict:
    """Reload the best weights, score val and test, update `best/` metadata, write metrics.json."""
    if rt.world > 1:
        dist.barrier()  # rank 0 has written best/
    best_dir = out / "best"
    if (best_dir / "model.safetensors").exists():
        raw.load_state_dict(load_file(str(best_dir / "model.safetensors")))
    val = split_metrics(raw, data, "val", cfg, rt.device, rt)
    test = split_metrics(raw, data, "test", cfg, rt.device, rt)
    result = {"best_epoch": best_epoch, "epochs_run": epochs_run, "stopped_early": stopped_early,
              "val": val, "test": test, "data": data.describe(), "model": cfg.model.name}
    if rt.main:
        shown = "test" if test else "val"
        save_checkpoint(best_dir, raw.cpu(), cfg.model.kwargs(), metrics=test or val,
                        data={**data.describe(), "metrics_split": shown, "val_metrics": val},
                        command=command or " ".join(sys.argv))
        raw.to(rt.device)
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result
