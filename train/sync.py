"""Train talkface's sync model on real footage: `python -m train.sync --real DIR --out DIR`.

    python -m train.sync --real ../shared/real-videos --out runs/sync [--steps 700] [--seed 0]
        [--cv 4] [--cache runs/sync-inputs]

1. Every clip of the footage folder (`talkface.synth.footage`) goes through talkface's own face
   stage (`Extractor.analyse`, the `mesh` backend): pose-free lip points, canonical mouth crops,
   16 kHz audio; cached per file.
2. Speakers (never clips) are split 70/15/15 (`--seed`); the in-sync clips of the train speakers
   are the positives. A `sync_note` in the manifest (the source's own audio is offset) keeps a
   clip out of training.
3. `SyncNet` is trained with the "Perfect match" multi-way loss: each video window against the
   audio windows at 31 offsets of its own clip and every window of the other clips in the batch,
   cross-entropy over cosine similarities scaled by a learned temperature, with label smoothing
   onto the neighbouring offsets; AdamW, one-cycle schedule, augmentation of lips (scale,
   rotation, mirror, noise), crops (shift, mirror, contrast, noise) and audio (gain, coloured
   noise at 0-25 dB SNR, frequency masks).
4. It is evaluated on the held-out speakers (`train.sync_eval`) and written as a sync checkpoint
   folder with a card (`talkface.checkpoint.save_checkpoint`, kind "sync"). `--cv K` also runs a K-fold
   cross-validation over speakers, every clip held out once (a 9-speaker test split is small).

Recipe and ablations: docs/sync.md. One thread trains it in about 4 minutes.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from talkface.constants import FPS, MAX_OFFSET_FRAMES
from talkface.errors import TalkfaceError
from talkface.sync.frontend import (MEL_PER_FRAME, MEL_WINDOW, WINDOW, crop_input,
                                     normalise_mel)
from talkface.sync.model import SyncNet, SyncOptions

from .sync_data import SyncClip, load_pool
from .sync_eval import (embed, evaluate_baseline, evaluate_split, held_out_figures,
                        shifted_curves, write_report)

log = logging.getLogger(__name__)


class SyncTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(700, gt=0)
    batch_clips: int = Field(32, gt=0)  # segments per batch
    anchors: int = Field(16, gt=0)  # video windows per segment
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    label_smoothing: float = Field(0.2, ge=0, lt=1)
    freq_mask: int = Field(8, ge=0)
    noise_probability: float = Field(0.5, ge=0, le=1)
    # each with this probability per segment: mouth crops at a lower resolution, JPEG-compressed
    # crops, video resampled from a 12.5-25 fps source (frames held, the audio untouched)
    resolution_probability: float = Field(0.0, ge=0, le=1)
    jpeg_probability: float = Field(0.0, ge=0, le=1)
    frame_rate_probability: float = Field(0.0, ge=0, le=1)
    seed: int = 0


# ---- batches and augmentation -----------------------------------------------------------------

class Sampler:
    """Random segments of `anchors` windows whose video is fully valid and whose audio reaches
    +-15 frames beyond them."""

    def __init__(self, clips: list[SyncClip], anchors: int, rng: np.random.Generator) -> None:
        self.clips, self.anchors, self.rng = clips, anchors, rng
        starts = []
        for ci, c in enumerate(clips):
            hi = min(len(c.wvalid) - anchors - MAX_OFFSET_FRAMES, len(c.wvalid) - anchors)
            starts += [(ci, t0) for t0 in range(MAX_OFFSET_FRAMES, hi + 1)
                       if c.wvalid[t0:t0 + anchors].all()]
        if not starts:
            raise TalkfaceError("no clip is long enough to train the sync model on")
        self.starts = np.array(starts)

    def batch(self, size: int, cfg: SyncTrainConfig) -> dict:
        na, rng = self.anchors, self.rng
        lips, crops, mels, ids = [], [], [], []
        for ci, t0 in self.starts[rng.integers(len(self.starts), size=size)]:
            c = self.clips[ci]
            frames = np.arange(t0, t0 + na + WINDOW - 1)
            if rng.random() < cfg.frame_rate_probability:
                frames = resample_frames(frames, rng.uniform(12.5, 25.0))
            lips.append(augment_lips(c.lips[frames], rng).T)
            crops.append(augment_crops(degrade_crops(c, frames, rng, cfg), rng))
            m0 = MEL_PER_FRAME * (t0 - MAX_OFFSET_FRAMES)
            m1 = MEL_PER_FRAME * (t0 + na - 1 + MAX_OFFSET_FRAMES) + MEL_WINDOW
            mel = normalise_mel(augment_mel(c.mel[:, m0:m1], rng, cfg.noise_probability))
            for _ in range(2 if cfg.freq_mask else 0):
                w = int(rng.integers(0, cfg.freq_mask + 1))
                f0 = int(rng.integers(0, mel.shape[0] - w + 1))
                mel[f0:f0 + w] = 0
            mels.append(mel)
            ids.append(ci)
        return {"lips": torch.from_numpy(np.stack(lips)), "crops": torch.from_numpy(np.stack(crops)),
                "mel": torch.from_numpy(np.stack(mels)), "ids": torch.tensor(ids)}


MIRROR = np.r_[(10 - np.arange(20)) % 20, 20 + (10 - np.arange(20)) % 20]  # lip point order


def augment_lips(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale, aspect, rotation, point noise and a left-right mirror of (T, 160) lip inputs."""
    t = len(x)
    pts = x[:, :80].reshape(t, 40, 2)
    s, a = rng.uniform(0.85, 1.15), rng.uniform(-0.1, 0.1)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * \
        [s * rng.uniform(0.9, 1.1), s]
    pts = pts @ rot.T + rng.normal(0, 0.03, pts.shape)
    if rng.random() < 0.5:
        pts = pts[:, MIRROR] * [-1, 1]
    out = pts.reshape(t, 80).astype(np.float32)
    delta = np.zeros_like(out)
    delta[1:] = out[1:] - out[:-1]
    return np.concatenate([out, delta * 3.0], 1).astype(np.float32)


def resample_frames(frames: np.ndarray, source_fps: float) -> np.ndarray:
    """The frames a 25 fps video made from a `source_fps` one shows: each output frame holds
    the nearest earlier-or-equal source instant, rounded to the nearest 25 fps frame we have,
    so the held frames lag by half a source frame at most on average and not at all at zero."""
    t = (frames - frames[0]) / FPS
    source = np.floor(t * source_fps + 0.5) / source_fps  # nearest source instant
    return frames[0] + np.clip(np.rint(source * FPS).astype(int), 0, len(frames) - 1)


def degrade_crops(clip: SyncClip, frames: np.ndarray, rng: np.random.Generator,
                  cfg: SyncTrainConfig) -> np.ndarray:
    """The segment's model crops, as if the video were of lower resolution (the raw mouth
    crop down- and up-scaled) and/or JPEG-compressed at quality 10-60: the degradation's change
    to each normalised crop, less its mean over the segment (which the clip-mean subtraction
    of `crop_input` would remove), is added to the clean input."""
    clean = clip.crops[frames]
    low_res = rng.random() < cfg.resolution_probability
    jpeg = rng.random() < cfg.jpeg_probability
    if clip.mouths is None or not (low_res or jpeg):
        return clean
    raw = clip.mouths[frames]
    h, w = raw.shape[1:]
    scale, quality = rng.uniform(0.15, 0.6), int(rng.integers(10, 61))
    out = []
    for m in raw:
        if low_res:
            small = cv2.resize(m, (max(4, round(w * scale)), max(2, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
            m = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if jpeg:
            m = cv2.imdecode(cv2.imencode(".jpg", m, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                             cv2.IMREAD_GRAYSCALE)
        out.append(m)
    ok = clip.valid[frames]
    change = crop_input(np.stack(out), ok) - crop_input(raw, ok)  # both minus their own mean
    return (clean + change).astype(np.float32)


def augment_crops(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = np.roll(x, (int(rng.integers(-1, 2)), int(rng.integers(-2, 3))), (1, 2))
    if rng.random() < 0.5:
        y = y[:, :, ::-1]
    y = y * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1, y.shape)
    return np.ascontiguousarray(y, dtype=np.float32)


def augment_mel(power: np.ndarray, rng: np.random.Generator, p_noise: float) -> np.ndarray:
    """Gain and, with probability p_noise, coloured noise at 0-25 dB SNR (mel power domain)."""
    power = power * rng.uniform(0.3, 3.0)
    if rng.random() < p_noise:
        level = power.mean() * 10 ** (-rng.uniform(0, 25) / 10)
        tilt = np.exp(np.linspace(0, rng.uniform(-3, 1), power.shape[0]))[:, None]
        power = power + level * tilt / tilt.mean() * rng.exponential(1.0, power.shape)
    return power.astype(np.float32)


# ---- loss and training ------------------------------------------------------------------------

def multiway_loss(model: SyncNet, batch: dict, cfg: SyncTrainConfig) -> tuple[torch.Tensor, float]:
    """Cross-entropy over 31 own-clip offsets + other clips' windows; target offset 0."""
    na = cfg.anchors
    v = model.embed_video(batch["lips"], batch["crops"])  # (B, D, na)
    a = model.embed_audio(batch["mel"])  # (B, D, na + 30)
    b, d, _ = v.shape
    scale = model.logit_scale.exp().clamp(1, 100)
    idx = torch.arange(na)[:, None] + torch.arange(2 * MAX_OFFSET_FRAMES + 1)[None]
    own = torch.einsum("bdi,bdij->bij", v, a[:, :, idx]) * scale  # (B, na, 31)
    flat_v = v.transpose(1, 2).reshape(b * na, d)
    flat_a = a[:, :, MAX_OFFSET_FRAMES:MAX_OFFSET_FRAMES + na].transpose(1, 2).reshape(b * na, d)
    same = (batch["ids"][:, None] == batch["ids"][None]).repeat_interleave(na, 0) \
        .repeat_interleave(na, 1)
    other = (flat_v @ flat_a.T * scale).masked_fill(same, -1e4)
    logp = F.log_softmax(torch.cat([own.reshape(b * na, -1), other], 1), 1)
    ls = cfg.label_smoothing
    loss = -((1 - ls) * logp[:, MAX_OFFSET_FRAMES]
             + ls / 2 * (logp[:, MAX_OFFSET_FRAMES - 1] + logp[:, MAX_OFFSET_FRAMES + 1])).mean()
    accuracy = float((own.argmax(-1) == MAX_OFFSET_FRAMES).float().mean())
    return loss, accuracy


def train_sync(clips: list[SyncClip], cfg: SyncTrainConfig,
               options: Optional[SyncOptions] = None) -> SyncNet:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SyncNet(options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.steps,
                                                   pct_start=0.1)
    sampler = Sampler(clips, cfg.anchors, rng)
    log.info("sync: %d clips, %d segments, %d parameters", len(clips), len(sampler.starts),
             sum(p.numel() for p in model.parameters()))
    start, history = time.time(), []
    model.train()
    for step in range(cfg.steps):
        loss, accuracy = multiway_loss(model, sampler.batch(cfg.batch_clips, cfg), cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append((float(loss.detach()), accuracy))
        if (step + 1) % 100 == 0:
            recent = np.mean(history[-100:], 0)
            log.info("step %d loss %.3f accuracy %.3f (%.0f s)", step + 1, recent[0], recent[1],
                     time.time() - start)
    model.eval()
    model.train_seconds = time.time() - start
    return model


def realign(model: SyncNet, clips: list[SyncClip], limit: int = 3) -> tuple[list, dict]:
    """Self-training's alignment step: many sources' own audio is a frame or two off (muxed or
    re-encoded), which blurs what the model learns as "in sync". Each clip's audio is moved to
    the offset the model finds for it when that offset is within +-`limit` frames (beyond that
    the model, not the source, is more likely wrong). Returns (clips, {name: offset})."""
    out, moved = [], {}
    for clip in clips:
        curve = shifted_curves(embed(model, clip), clip.wvalid, 0)
        offset = int(np.argmin(curve[0])) - MAX_OFFSET_FRAMES if len(curve) else 0
        if offset == 0 or abs(offset) > limit:
            out.append(clip)
            continue
        shift = MEL_PER_FRAME * offset  # audio late by `offset`: take it from `offset` later
        mel = np.concatenate([clip.mel[:, shift:], np.repeat(clip.mel[:, -1:], shift, 1)], 1) \
            if shift > 0 else np.concatenate([np.repeat(clip.mel[:, :1], -shift, 1),
                                              clip.mel[:, :shift]], 1)
        out.append(dataclasses.replace(clip, mel=mel))
        moved[clip.name] = offset
    return out, moved


def train_with_realignment(clips: list[SyncClip], cfg: SyncTrainConfig,
                           options: Optional[SyncOptions] = None,
                           rounds: int = 1) -> tuple[SyncNet, dict]:
    """Train, re-align the training clips to the model's own offsets, train again."""
    model, moved = train_sync(clips, cfg, options), {}
    for _ in range(rounds):
        clips, moved = realign(model, clips)
        log.info("realigned %d of %d training clips: %s", len(moved), len(clips), moved)
        model = train_sync(clips, cfg, options)
    return model, moved


# ---- the command ------------------------------------------------------------------------------

def speaker_folds(clips: list[SyncClip], folds: int) -> dict[str, int]:
    """speaker -> fold (0..folds-1), a fixed permutation of the sorted speakers."""
    speakers = sorted({c.speaker for c in clips})
    order = np.random.default_rng(123).permutation(len(speakers))
    return {speakers[i]: n % folds for n, i in enumerate(order)}


def train_fold(clips: list[SyncClip], cfg, opts, folds: int, k: int, rounds: int = 0,
               keep: Optional[Path] = None) -> SyncNet:
    """The model of CV fold k (trained without fold k's speakers). With `keep`, its weights are
    saved as keep/fold{k}.pt and taken from there instead when that file was made with the same
    config, options and training clips (so folds can be trained apart and reused)."""
    fold = speaker_folds(clips, folds)
    fold_cfg = cfg.model_copy(update={"seed": cfg.seed + k})
    train = [c for c in clips if fold[c.speaker] != k]
    recipe = {"config": fold_cfg.model_dump(), "options": (opts or SyncOptions()).model_dump(),
              "rounds": rounds, "train": sorted(c.name for c in train)}
    path = keep / f"fold{k}.pt" if keep is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        if saved["recipe"] == recipe:
            model = SyncNet(opts)
            model.load_state_dict(saved["state"])
            model.eval()
            model.train_seconds = saved["train_seconds"]
            log.info("fold %d: weights from %s", k, path)
            return model
    model = train_with_realignment(train, fold_cfg, opts, rounds)[0] if rounds else \
        train_sync(train, fold_cfg, opts)
    if path is not None:
        keep.mkdir(parents=True, exist_ok=True)
        torch.save({"state": model.state_dict(), "recipe": recipe,
                    "train_seconds": model.train_seconds}, path.with_suffix(".part"))
        path.with_suffix(".part").replace(path)
    return model


def cross_validate(clips: list[SyncClip], cfg, opts, folds: int, rounds: int = 0,
                   keep: Optional[Path] = None) -> dict:
    """K-fold over speakers: every clip held out once; figures pooled over the folds.
    `rounds`: self-training alignment rounds within each fold (`train.sync.realign`); `keep`:
    where each fold's weights are saved and reused (`train_fold`)."""
    fold = speaker_folds(clips, folds)
    held, models = [], []
    for k in range(folds):
        model = train_fold(clips, cfg, opts, folds, k, rounds, keep)
        out = [c for c in clips if fold[c.speaker] == k]
        held += out
        models += [model] * len(out)
    return {"folds": folds, "model": held_out_figures(held, models),
            "baseline": evaluate_baseline(held),
            "train_seconds": float(np.mean([m.train_seconds for m in models]))}


# Notes that say the track may not be the visible person's own speech alone: dubbed or
# translated tracks, two voices at once, a music bed. On the pool's 2026-12-07 rows the shipped
# model's confidence on all eleven such clips (0.02-0.11, median 0.04) sat at or below the 95th
# percentile of its other-speaker confidences (0.096), unlike the other new clips (median 0.16).
NOT_OWN_SPEECH = ("DOUBTFUL", "MIXTURE", "music bed")


def sync_positives(table) -> set[str]:
    """Names of the clips trained and evaluated on as in sync with their own speech: the
    footage's positives less those whose notes doubt the track (NOT_OWN_SPEECH)."""
    notes = table["notes"].fillna("").astype(str) if "notes" in table.columns else \
        table["name"].map(lambda _: "")
    doubtful = notes.map(lambda n: any(word in n for word in NOT_OWN_SPEECH))
    return set(table.loc[table["positive"] & ~doubtful, "name"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.sync", description=__doc__.split("\n")[0])
    p.add_argument("--real", required=True, type=Path, help="footage folder or manifest")
    p.add_argument("--out", required=True, type=Path, help="sync checkpoint folder to write")
    p.add_argument("--cache", type=Path, help="where extracted inputs are kept "
                   "(default: <out>-inputs)")
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cv", type=int, default=0, help="also run K-fold speaker cross-validation")
    p.add_argument("--lips-only", action="store_true", help="no mouth crops (cheaper)")
    p.add_argument("--degrade", type=float, default=0.0, help="probability of each of the "
                   "resolution, JPEG and frame-rate augmentations per segment")
    p.add_argument("--keep-folds", type=Path, help="save each CV fold's weights here, and "
                   "reuse those trained with the same recipe")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    cfg = SyncTrainConfig(steps=args.steps, seed=args.seed, resolution_probability=args.degrade,
                          jpeg_probability=args.degrade, frame_rate_probability=args.degrade)
    opts = SyncOptions(crops=not args.lips_only)
    cache = args.cache or args.out.with_name(args.out.name + "-inputs")
    try:
        table, clips, split = load_pool(args.real, cache, opts)
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    positives = sync_positives(table)
    side = {name: split[c.speaker] for name, c in clips.items()}
    train_clips = [c for n, c in clips.items() if side[n] == "train" and n in positives]
    model = train_sync(train_clips, cfg, opts)
    report = {"config": cfg.model_dump(), "options": opts.model_dump(),
              "train_seconds": model.train_seconds,
              "split": {n: side[n] for n in clips}, "positives": sorted(positives & set(clips))}
    for name in ("val", "test"):
        held = [c for n, c in clips.items() if side[n] == name and n in positives]
        report[name] = evaluate_split(model, held)
    if args.cv:
        report["cv"] = cross_validate([c for n, c in clips.items() if n in positives], cfg, opts,
                                      args.cv, keep=args.keep_folds)
    write_report(model, report, table, clips, args, cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
