"""How good a sync model is on held-out speakers, measured as SyncNet's paper and syncnet_python do.

- Offset recovery: the clip's audio shifted by k = -15..+15 frames (k > 0: audio late); the
  predicted offset is the argmin of the distance curve averaged over the whole clip, or over
  chunks of 5, 7, 9, 11 or 15 windows (SyncNet's context-length table). Reported: exact and
  within +-1 frame, and `relative`: the same against the clip's own prediction at k = 0 (a source
  whose own audio is a frame or two off is then not counted against the model).
- Confidence (median - min of the curve, LSE-C style) in sync, shifted by >= 8 frames and with
  another speaker's audio; ROC AUC of in sync against each. `score0` (median minus the distance
  at offset 0) separates in-sync from shifted audio, which confidence by design does not (a
  shifted clip is confidently synchronised at its shift).
- The same figures for the correlation baseline (mouth opening against loudness).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from talkface.constants import MAX_OFFSET_FRAMES
from talkface.markdown import markdown_table
from talkface.measures import highpass, loudness_db
from talkface.metrics import auc
from talkface.sync.correlation import correlation_curve
from talkface.sync.estimate import speech_weights
from talkface.sync.frontend import normalise_mel

from .sync_data import SyncClip

OFFSETS = np.arange(-MAX_OFFSET_FRAMES, MAX_OFFSET_FRAMES + 1)
CONTEXTS = (5, 7, 9, 11, 15)


@torch.inference_mode()
def embed(model, clip: SyncClip) -> np.ndarray:
    """(S, S) distances between the clip's video windows and its audio windows."""
    o = model.options
    lips = torch.from_numpy(clip.lips.T[None]) if o.lips else None
    crops = torch.from_numpy(clip.crops[None]) if o.crops else None
    v = model.embed_video(lips, crops)[0].T.numpy()
    a = model.embed_audio(torch.from_numpy(normalise_mel(clip.mel)[None]))[0].T.numpy()
    s = min(len(v), len(a))
    return np.sqrt(np.maximum(2 - 2 * v[:s] @ a[:s].T, 0))


def shifted_curves(dist: np.ndarray, wvalid: np.ndarray, k: int, context=None,
                   weights=None) -> np.ndarray:
    """Distance curves over OFFSETS with the audio shifted by k: (chunks, 31); one row for the
    whole clip (context None), else one per chunk of `context` windows with every pair present.
    `weights` (S,): per audio window, as `SyncEstimator.curve` takes them (whole clip only)."""
    s = dist.shape[0]
    t = np.arange(s)
    cols = t[:, None] + OFFSETS[None] - k
    ok = (cols >= 0) & (cols < dist.shape[1]) & wvalid[:s, None]
    safe = np.clip(cols, 0, dist.shape[1] - 1)
    values = np.where(ok, dist[t[:, None], safe], 0.0)
    if context is None:
        w = ok * (1.0 if weights is None else weights[safe])
        n = w.sum(0)
        return ((w * values).sum(0) / n)[None] if (ok.sum(0) > 0).all() else \
            np.zeros((0, len(OFFSETS)))
    full, out, i = ok.all(1), [], 0
    while i + context <= s:
        if full[i:i + context].all():
            out.append(values[i:i + context].mean(0))
            i += context
        else:
            i += 1
    return np.array(out).reshape(-1, len(OFFSETS))


def figures(curves_of, clips: list[SyncClip], cross) -> dict:
    """curves_of(i, k, context) -> curves; cross: [(i, j, curve)] other-speaker curves."""
    err = {c: [] for c in (None, *CONTEXTS)}
    rel = {c: [] for c in (None, *CONTEXTS)}
    conf = {"sync": [], "shift": [], "other": []}
    score0 = {"sync": [], "shift": []}
    judged = []  # (confidence, |error| <= 1) of whole-clip offsets at |k| <= 12
    per_clip = []
    for i, clip in enumerate(clips):
        base_curve = curves_of(i, 0, None)
        if not len(base_curve):
            continue
        base = int(OFFSETS[np.argmin(base_curve[0])])
        clip_err = []
        for k in OFFSETS:
            for c in (None, *CONTEXTS):
                cv = curves_of(i, int(k), c)
                if not len(cv):
                    continue
                pred = OFFSETS[np.argmin(cv, 1)]
                err[c] += list(pred - k)
                rel[c] += list(pred - k - base)
                if c is None:
                    clip_err.append(int(pred[0] - k))
                    curve = cv[0]
                    if abs(k) <= 12:
                        judged.append((float(np.median(curve) - curve.min()),
                                       abs(int(pred[0] - k)) <= 1))
                    kind = "sync" if k == 0 else "shift" if abs(k) >= 8 else None
                    if kind:
                        conf[kind].append(float(np.median(curve) - curve.min()))
                        score0[kind].append(float(np.median(curve) - curve[MAX_OFFSET_FRAMES]))
        c0 = base_curve[0]
        per_clip.append({"clip": clip.name, "offset_at_0": base,
                         "confidence": float(np.median(c0) - c0.min()),
                         "min_dist": float(c0.min()),
                         "within_1": float(np.mean(np.abs(clip_err) <= 1))})
    conf["other"] = [float(np.median(cv) - cv.min()) for _, _, cv in cross]
    out = {"n_clips": len(per_clip), "n_other_pairs": len(cross)}
    for c in (None, *CONTEXTS):
        name = "whole" if c is None else f"ctx{c}"
        e, r = np.array(err[c]), np.array(rel[c])
        out[f"{name}_exact"] = float((e == 0).mean()) if e.size else float("nan")
        out[f"{name}_within_1"] = float((np.abs(e) <= 1).mean()) if e.size else float("nan")
        out[f"{name}_relative_within_1"] = float((np.abs(r) <= 1).mean()) if r.size else \
            float("nan")
    ok = np.array([j[1] for j in judged], bool)
    out["whole_within_1_k12"] = float(ok.mean()) if ok.size else float("nan")
    out["offsets_judged"] = judged
    out.update(fit_reliable(judged, conf["other"]))
    out["clips_native_within_1"] = float(np.mean([abs(p["offset_at_0"]) <= 1 for p in per_clip]))
    out["clips_native_within_2"] = float(np.mean([abs(p["offset_at_0"]) <= 2 for p in per_clip]))
    for kind, values in conf.items():
        out[f"confidence_{kind}_median"] = float(np.median(values)) if values else float("nan")
    out["auc_other_speaker"] = auc(conf["sync"], conf["other"])
    out["auc_shifted_confidence"] = auc(conf["sync"], conf["shift"])
    out["auc_shifted_score0"] = auc(score0["sync"], score0["shift"])
    out["confidences"] = conf
    out["clips"] = per_clip
    return out


def fit_reliable(judged, other, target: float = 0.95) -> dict:
    """The confidence above which a whole-clip offset is shown as reliable: the lowest at which
    at least `target` of the offsets at or above it (5 or more) are within one frame of the
    truth, and never below the 95th percentile of other-speaker confidences. Where no
    confidence reaches `target`, that percentile alone (`reliable_target_met` False): "reliable"
    then only says the audio is not another speaker's. Its precision and coverage (share of
    offsets shown as reliable) on the same offsets."""
    if not judged:
        return {}
    conf = np.array([c for c, _ in judged])
    ok = np.array([o for _, o in judged], float)
    order = np.argsort(-conf)
    precision = np.cumsum(ok[order]) / np.arange(1, len(ok) + 1)
    good = np.flatnonzero((precision >= target) & (np.arange(1, len(ok) + 1) >= 5))
    floor = float(np.percentile(other, 95)) if len(other) else 0.0
    threshold = max(float(conf[order][good[-1]]), floor) if good.size else floor
    precision_at, coverage = reliable_at(judged, threshold)
    return {"reliable_threshold": threshold, "reliable_target_met": bool(good.size),
            "reliable_precision": precision_at, "reliable_coverage": coverage}


def reliable_at(judged, threshold: float) -> tuple[float, float]:
    """(precision, coverage) of the offsets shown as reliable at `threshold`."""
    conf = np.array([c for c, _ in judged])
    ok = np.array([o for _, o in judged], float)
    shown = conf >= threshold
    return (float(ok[shown].mean()) if shown.any() else float("nan"), float(shown.mean()))


def cross_pairs(clips: list[SyncClip], per_clip: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs = []
    for i, c in enumerate(clips):
        others = [j for j, o in enumerate(clips) if o.speaker != c.speaker]
        pairs += [(i, int(j)) for j in rng.permutation(others)[:per_clip]]
    return pairs


def held_out_figures(held: list[SyncClip], models: list, weighted: bool = False) -> dict:
    """`figures` for clips each scored by its own (fold's) model; `weighted`: whole-clip curves
    weigh windows by speech (`talkface.sync.estimate.speech_weights`), an option the shipped
    estimator does not use yet (default: as it scores)."""
    dists = [embed(m, c) for c, m in zip(held, models)]
    weights = [speech_weights(c.audio, len(d)) if weighted else None
               for c, d in zip(held, dists)]

    def curves_of(i, k, context):
        return shifted_curves(dists[i], held[i].wvalid, k, context,
                              weights[i] if context is None else None)

    cross = []
    for i, j in cross_pairs(held):
        model = models[i]
        o = model.options
        with torch.inference_mode():
            v = model.embed_video(torch.from_numpy(held[i].lips.T[None]) if o.lips else None,
                                  torch.from_numpy(held[i].crops[None]) if o.crops else None)[0].T
            au = model.embed_audio(torch.from_numpy(normalise_mel(held[j].mel)[None]))[0].T
        s = min(len(v), len(au))
        w = speech_weights(held[j].audio, s) if weighted else None
        cv = shifted_curves(np.sqrt(np.maximum(2 - 2 * v[:s].numpy() @ au[:s].numpy().T, 0)),
                            held[i].wvalid[:s], 0, None, w)
        if len(cv):
            cross.append((i, j, cv[0]))
    return figures(curves_of, held, cross)


def evaluate_model(model, clips: list[SyncClip], weighted: bool = False) -> dict:
    return held_out_figures(clips, [model] * len(clips), weighted)


def evaluate_baseline(clips: list[SyncClip]) -> dict:
    """The correlation of the inner lip gap with loudness, as a distance (1 - r)."""
    levels = [loudness_db(c.audio, c.n_frames) for c in clips]

    def curve(gap, level, valid, k, context):
        # audio late by k: the level at t + k belongs to the mouth at t (edges repeated)
        shifted = np.concatenate([np.full(k, level[0]), level[:len(level) - k]]) if k >= 0 \
            else np.concatenate([level[-k:], np.full(-k, level[-1])])
        g, a = highpass(np.nan_to_num(gap)), highpass(shifted)
        if context is None:
            return (1 - correlation_curve(g, a, MAX_OFFSET_FRAMES, valid,
                                          highpass_frames=None)[1])[None]
        n, out = len(gap), []
        for start in range(0, n - context - WINDOW_PAD, context + WINDOW_PAD):
            part = slice(start, start + context + WINDOW_PAD)
            if valid[part].all():
                out.append(1 - correlation_curve(g[part], a[part], MAX_OFFSET_FRAMES,
                                                 highpass_frames=None)[1])
        return np.array(out).reshape(-1, len(OFFSETS))

    def curves_of(i, k, context):
        c = clips[i]
        return curve(c.mouth_gap, levels[i], c.valid, k, context)

    cross = []
    for i, j in cross_pairs(clips):
        n = min(clips[i].n_frames, clips[j].n_frames)
        cross.append((i, j, curve(clips[i].mouth_gap[:n], levels[j][:n], clips[i].valid[:n], 0,
                                  None)[0]))
    return figures(curves_of, clips, cross)


WINDOW_PAD = 4  # a context of c windows spans c + 4 frames


def timing(model, clip: SyncClip, repeats: int = 5) -> float:
    """Milliseconds per 10 s of video for log-mel + both encoders + the distance curve."""
    from talkface.sync.frontend import mel_power
    n = min(250, clip.n_frames)
    start = time.perf_counter()
    for _ in range(repeats):
        part = SyncClip(clip.name, clip.speaker, clip.lips[:n], clip.crops[:n],
                        mel_power(clip.audio, n, model.options.n_mels), clip.valid[:n],
                        clip.wvalid[:n - 4], clip.mouth_gap[:n], clip.audio)
        shifted_curves(embed(model, part), part.wvalid, 0)
    return (time.perf_counter() - start) / repeats * 1000 * 250 / n


def evaluate_split(model, clips: list[SyncClip]) -> dict:
    if not clips:
        return {}
    return {"model": evaluate_model(model, clips), "baseline": evaluate_baseline(clips),
            "ms_per_10s": timing(model, max(clips, key=lambda c: c.n_frames))}


SUMMARY = ("whole_within_1_k12", "clips_native_within_1", "reliable_precision",
           "reliable_coverage", "whole_within_1", "whole_relative_within_1", "ctx5_within_1",
           "ctx15_within_1", "auc_other_speaker", "auc_shifted_score0",
           "confidence_sync_median", "confidence_other_median")


def summary_table(report: dict) -> str:
    rows = []
    for split in ("val", "test", "cv"):
        for who in ("model", "baseline"):
            figures = (report.get(split) or {}).get(who)
            if figures:
                rows.append([split, who, *(f"{figures[k]:.3f}" for k in SUMMARY)])
    return markdown_table(["split", "model", *SUMMARY], rows)


LISTS = ("confidences", "clips", "offsets_judged")  # per-clip figures: results.json, not meta


def write_report(model, report: dict, table, clips, args, cache: Path) -> None:
    """The sync checkpoint (weights, meta with the split, card) and results.json beside it."""
    from talkface.checkpoint import save_checkpoint
    held = [c for c in report["split"].values()]
    sizes = {s: held.count(s) for s in ("train", "val", "test")}
    speakers = {s: len({clips[n].speaker for n, side in report["split"].items() if side == s})
                for s in sizes}
    # fitted on the CV's held-out offsets where there are any (every clip once), else on val
    fitted = (report.get("cv") or report.get("val") or {}).get("model", {})
    reliable = fitted.get("reliable_threshold", 0.1)
    meta = {"command": "python -m train.sync " + " ".join(_argv(args)),
            "data": {"source": str(args.real), "clips": sizes, "speakers": speakers,
                     "split_by": "speaker", "split": report["split"]},
            "metrics": {k: {who: {m: v for m, v in f.items() if m not in LISTS}
                            for who, f in report[k].items() if isinstance(f, dict)}
                        for k in ("val", "test", "cv") if report.get(k)},
            "reliable_confidence": round(reliable, 4),
            "train_seconds": round(report["train_seconds"], 1)}
    card = sync_card(meta, report, table)
    shipping = "talkface/checkpoints" in str(args.out.resolve())
    save_checkpoint(args.out, model, model.options.model_dump(), card=card, kind="sync",
                    shipping=shipping, **meta)
    from talkface.export import add_onnx
    add_onnx(args.out, shipping)  # scoring runs model.onnx (talkface.checkpoint)
    results = args.out.with_name(args.out.name + "-results.json")
    results.write_text(json.dumps(report, indent=1, default=float))
    print(card)


def _argv(args) -> list[str]:
    out = [f"--real {args.real}", f"--out {args.out}", f"--steps {args.steps}",
           f"--seed {args.seed}"]
    out += [f"--degrade {args.degrade:g}"] if args.degrade else []
    return out + ([f"--cv {args.cv}"] if args.cv else []) + (["--lips-only"] if args.lips_only
                                                             else [])


def sync_card(meta: dict, report: dict, table) -> str:
    d = meta["data"]  # the fields this module is about to save (a plain dict)
    excluded = sorted(set(table.loc[~table["positive"], "name"]) & set(d["split"]))
    return f"""# talkface sync model

A two-stream audio-visual embedding (`talkface.sync.model.SyncNet`, {report['options']}) trained
self-supervised (in-sync pairs against 31 offsets of the same clip and other clips' audio) on
real people speaking: the `talking_with_audio` clips of {d['source']}.

**Data.** Real recordings gathered from the demo folders of public talking-face repositories
(VoxCeleb2, LRS2/BBC, GRID, MEAD, HDTF-style news, public figures, phone videos; sources and each
repository's licence in that folder's manifest). The footage belongs to third parties; many of the
repositories are CC-BY-NC or have no licence file: this model is for research and
non-commercial evaluation, and the footage itself is not redistributed. Speakers are split, never
clips: {d['speakers']} speakers and {d['clips']} clips in train/val/test (the per-clip split is in
`meta.json`). Not used as in-sync positives: {len(excluded)} clips whose own audio is offset in
the source (`sync_note`), too short, or with two people speaking.

**Command:** `{meta['command']}` ({meta['train_seconds']:.0f} s on one CPU thread).

## Held-out speakers

{summary_table(report)}

Figures as in SyncNet's paper: audio shifted by -15..+15 frames, the offset recovered from the
whole clip or from chunks of 5 / 15 windows; `relative` counts against the clip's own offset at
no shift (some sources are a frame or two off themselves); AUC of the confidence (median - min
of the distance curve) in sync against another speaker's audio, and of the score at offset 0
against audio shifted by 8 frames or more. Whole-clip curves weigh each window by how much speech
its audio holds (silence counts a tenth). Confidence below {meta['reliable_confidence']} means "not
reliable": the lowest confidence at which 95% of the held-out offsets at or above it (audio
shifted by up to 12 frames, 4-fold speaker CV) are within one frame of the truth, and at least the
95th percentile of other-speaker confidences; where no confidence reaches 95%, that percentile
alone, and "reliable" then only says the audio is not another speaker's (the precision and
coverage of "reliable" offsets are in the table).

## Limits

About 7 minutes of in-sync training speech from about 40 people: short-context offsets are far less
reliable than SyncNet's (trained on hundreds of hours), and the absolute offset of a clip is only
known to about +-2 frames (the sources' own alignment is not verified). Not evaluated on
non-frontal faces beyond about 45 degrees of yaw, nor on languages other than those in the data.
"""
