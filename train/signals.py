"""Measured signals in a checkpoint: the real-recording reference it reads them against, the
penalties they take off its scores, and a table of every clip's signals for study.

    python -m train.signals --real FOOTAGE --table signals.csv            # every clip, for study
    python -m train.signals --real FOOTAGE --data BENCH --checkpoint DIR --out DIR

The reference is the 101 percentiles of each signal (`talkface.signals`) over the clean real
recordings (`talking_with_audio` and `video_only`) of the speakers on the training side of the
footage's speaker split (`talkface.synth.footage.speaker_split`, the split the sync model and the
real-footage benchmark use): a clip's signal is then read against real people the checkpoint saw,
never against the people it is tested on.

The penalties (`talkface.calibration`, "penalties") are fitted on the training split of a
benchmark with labels (`--data`, e.g. `talkface synth --from-real`): per task, non-negative
weights such that the signals' excess beyond the real recordings' typical range explains how far
the labels lie below the calibrated scores. The checkpoint's monotone maps become smooth and
strictly increasing first (`smooth_monotone`), so the penalties are fitted on the scores users
get. The checkpoint is written again with the same weights and the new calibration
(`talkface.checkpoint`, one atomic write); `train.evaluate` / `benchmarks/families.py` then
measure it on the benchmark's test speakers.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from talkface.calibration import (Calibration, fit_penalties, penalty_term, percentiles,
                                  smooth_monotone)
from talkface.data import DataSettings, load_dataset
from talkface.predict import predict_arrays
from talkface.checkpoint import load_checkpoint, save_checkpoint
from talkface.errors import TalkfaceError
from talkface.markdown import markdown_table
from talkface.signals import SIGNAL_LIST, measure_signals
from train.footage import footage_bundles

log = logging.getLogger(__name__)
REAL_KINDS = ("talking_with_audio", "video_only")


def signal_table(footage: str | Path, checkpoint: Optional[str] = None,
                 kinds: tuple[str, ...] = ("talking_with_audio", "video_only", "generated")
                 ) -> pd.DataFrame:
    """One row per clip of `kinds`: name, kind, speaker, split, and every signal (features from
    the checkpoint's extractor, through the feature cache)."""
    return pd.DataFrame([{"name": row.name, "kind": row.kind, "speaker": row.speaker,
                          "split": side, **measure_signals(bundle)}
                         for row, side, bundle in footage_bundles(footage, checkpoint, kinds,
                                                                  "signals")])


def reference(table: pd.DataFrame) -> dict[str, list[float]]:
    """Signal -> 101 percentiles over the clean real recordings of the training speakers."""
    real = table[table["kind"].isin(REAL_KINDS) & (table["split"] == "train")]
    return {s.name: percentiles(real[s.name]) for s in SIGNAL_LIST
            if s.name in real and real[s.name].notna().sum() >= 10}


PENALISED = ("lip_sync", "visual_quality", "temporal_quality", "overall")


def fit_signal_penalties(loaded, cal: Calibration, data: str, edge: int = 10) -> dict:
    """task -> fitted penalty terms, on the training split of the benchmark at `data` (split by
    speaker in its manifest), scored through `cal` without penalties."""
    settings = DataSettings(tasks=[t.name for t in loaded.tasks], features=loaded.spec.extractor)
    dataset = load_dataset(data, settings, progress=True)
    clips = dataset.splits["train"]
    base = Calibration(monotone=cal.monotone)
    scores, targets = predict_arrays(loaded.model, clips, calibration=base)
    penalties = {}
    for i, task in enumerate(t.name for t in loaded.tasks):
        if task not in PENALISED:
            continue
        terms = [penalty_term(s.name, s.direction, cal.signals[s.name], edge)
                 for s in SIGNAL_LIST if s.name in cal.signals and s.compute is not None
                 and (s.task == task or task == "overall")]
        ok = np.isfinite(scores[:, i]) & np.isfinite(targets[:, i])
        fitted = fit_penalties(terms, [c.signals for c, k in zip(clips, ok) if k],
                               targets[ok, i] - scores[ok, i])
        log.info("%s: %s", task, ", ".join(f"{t['signal']} {t['weight']:.3f}" for t in fitted))
        if fitted:
            penalties[task] = fitted
    return penalties


def store_reference(checkpoint: str, out: str, table: pd.DataFrame, footage: str,
                    data: Optional[str] = None, edge: int = 10, realism: bool = False,
                    reference_data: Optional[str] = None,
                    reference_videos: Optional[list[str]] = None) -> Path:
    """The checkpoint at `checkpoint` written to `out` with the signal reference added, its
    monotone maps made smooth, (with a benchmark at `data`) fitted signal penalties, (with
    `realism`) the generated-look model fitted on `footage` with its overall penalty
    (`train.realism.add_realism`), and (with `reference_data`, the dataset `train.ship` took its
    reference from, and its `reference_videos`) the score percentiles refitted through the new
    calibration, so "better than N% of reference clips" compares scores made the same way."""
    loaded = load_checkpoint(checkpoint)
    cal = Calibration.from_meta(loaded.meta.calibration or {})
    ranges = {t.name: (t.low, t.high) for t in loaded.tasks}
    cal.monotone = {k: smooth_monotone(v, *ranges[k]) for k, v in cal.monotone.items()}
    cal.signals = reference(table)
    n = int(((table["split"] == "train") & table["kind"].isin(REAL_KINDS)).sum())
    cal.signals_note = (f"{n} real recordings of the training speakers of "
                        f"{Path(footage).name} (talking and silent faces)")
    cal.penalties = fit_signal_penalties(loaded, cal, data, edge) if data else {}
    cal.realism = None
    if realism:
        from train.realism import add_realism
        add_realism(loaded, cal, footage, checkpoint)
    if reference_data:
        from train.evaluate import load_eval_data
        from train.ship import set_reference
        # the split `train.ship` used: the checkpoint's own (its stored split map)
        set_reference(loaded, cal, load_eval_data(reference_data, loaded),
                      reference_videos or [])
    meta = loaded.meta
    shipping = "talkface/checkpoints" in str(Path(out).resolve())
    card = card_section(loaded.card, cal, data, edge)
    folder = save_checkpoint(out, loaded.model, meta.options, metrics=meta.metrics,
                             data=meta.data, command=meta.command, card=card,
                             calibration=cal.to_meta(), shipping=shipping)
    if meta.onnx:  # the folder is written anew: export its model.onnx again (same weights)
        from talkface.export import add_onnx
        add_onnx(folder, shipping=shipping)
    return folder


CARD_HEADING = "## Measured signals and their penalties"


def card_section(card: str, cal: Calibration, data: Optional[str], edge: int) -> str:
    """The card with (a fresh copy of) the section saying what train.signals added."""
    card = card.split("\n" + CARD_HEADING)[0].rstrip() + "\n"
    rows = [[task, term["signal"], f"{term['weight']:.3f}", term["direction"],
             f"{term['low']:.4g} .. {term['high']:.4g}"]
            for task, terms in cal.penalties.items() for term in terms]
    fitted = (f"Penalties fitted on the training split (speakers) of `{Path(data).name}` "
              f"(real recordings with graded degradations, `talkface synth --from-real`); the "
              f"typical range is the real recordings' {edge}th-{100 - edge}th percentile:\n\n"
              + markdown_table(["task", "signal", "weight", "better", "typical range"], rows)
              if data and rows else "No penalties fitted: scores are the model's, mapped.")
    return (f"{card}\n{CARD_HEADING}\n\nThe measured signals (`talkface.signals`) are read "
            f"against {cal.signals_note}: the percentiles stored with this checkpoint. Each "
            f"task's score loses up to a penalty's weight as a signal leaves the real "
            f"recordings' typical range (`talkface.calibration`, applied by `talkface.predict`). "
            f"The metrics above were measured before this step; `docs/results.md` has the "
            f"figures after it. The monotone maps are smooth and strictly increasing (no tied "
            f"scores).\n\n"
            f"{fitted}\n{realism_section(cal)}\nRebuild: `python -m train.signals --real FOOTAGE "
            f"--data BENCHMARK --checkpoint DIR --out DIR --edge {edge}"
            f"{' --realism' if cal.realism is not None else ''}`.\n")


def realism_section(cal: Calibration) -> str:
    """The card's paragraph on the generated-look model (`train.realism`), empty without one."""
    if cal.realism is None:
        return ""
    r = cal.realism.report
    held, test = r.get("held_out", {}), r.get("held_out_test_speakers", {})
    per = held.get("per_generator", {})
    return (f"\n**Generated look** (`talkface.realism`): a logistic model on time-pooled face "
            f"statistics, fitted on {cal.realism.note}. Measured with every generator and every "
            f"real source held out of the fit that scores it (`python -m train.realism --real "
            f"FOOTAGE`): AUC {held.get('auc', float('nan')):.3f} that a real recording looks "
            f"less generated than a generator output ({held.get('real')} real, "
            f"{held.get('generated')} generated; {test.get('auc', float('nan')):.3f} on the "
            f"{test.get('real')} real recordings of the test speakers); "
            f"{sum(v >= 0.8 for v in per.values())} of {len(per)} generators with 3 or more "
            f"clips at 0.8 or above (lowest {min(per.values(), default=float('nan')):.2f}). "
            f"It takes up to {r.get('weight', 0):.2f} off `overall` as it rises above the "
            f"{100 - (r.get('edge') or 10)}th percentile of real recordings (chosen on the "
            f"training speakers: overall AUC {r.get('overall_auc_before', float('nan')):.3f} "
            f"without it, "
            f"{r.get('overall_auc_after') or float('nan'):.3f} with it, at most a fifth of their real recordings losing more than 0.1). It knows only the generators in that "
            f"pool: a new kind of generator, or a real recording unlike any there, can read "
            f"either way.\n")


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.signals", description=__doc__.split("\n")[0])
    p.add_argument("--real", required=True, help="footage folder (with manifest.csv)")
    p.add_argument("--checkpoint", help="checkpoint whose extractor makes the features "
                   "(default: the active one)")
    p.add_argument("--out", help="write the checkpoint with the reference here")
    p.add_argument("--table", help="write every clip's signals as CSV here (or read it, when it "
                   "exists and --reuse-table is given)")
    p.add_argument("--reuse-table", action="store_true")
    p.add_argument("--data", help="benchmark with labels whose training split fits penalties")
    p.add_argument("--realism", action="store_true", help="also fit the generated-look model "
                   "(`train.realism`) on the footage's real recordings and generator outputs")
    p.add_argument("--reference-data", help="refit the score percentiles on this dataset's val "
                   "and test clips (the one `train.ship` used) through the new calibration")
    p.add_argument("--reference", nargs="*", default=[],
                   help="with --reference-data: the extra reference videos `train.ship` used")
    p.add_argument("--edge", type=int, default=10,
                   help="percentile where the real recordings' typical range ends")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.reuse_table and args.table and Path(args.table).exists():
            table = pd.read_csv(args.table)
        else:
            table = signal_table(args.real, args.checkpoint)
            if args.table:
                table.to_csv(args.table, index=False, float_format="%.6g")
        if args.out:
            folder = store_reference(args.checkpoint, args.out, table, args.real, args.data,
                                     args.edge, args.realism, args.reference_data,
                                     args.reference)
            print(f"wrote {folder}")
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
