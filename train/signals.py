"""Measured signals on a footage pool: the real-recording reference a checkpoint carries, and a
table of every clip's signals for study.

    python -m train.signals --real FOOTAGE --checkpoint DIR --out DIR     # store the reference
    python -m train.signals --real FOOTAGE --table signals.csv            # every clip, for study

The reference is the 101 percentiles of each signal (`talkface.signals`) over the clean real
recordings (`talking_with_audio` and `video_only`) of the speakers on the training side of the
footage's speaker split (`talkface.synth.footage.speaker_split`, the split the sync model and the
real-footage benchmark use): a clip's signal is then read against real people the checkpoint saw,
never against the people it is tested on. The checkpoint is written again with the same weights
and the reference added to its calibration (`talkface.checkpoint`, one atomic write).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import pandas as pd
from tqdm import tqdm

from talkface.api import load_scorer
from talkface.calibration import Calibration, percentiles
from talkface.checkpoint import load_checkpoint, save_checkpoint
from talkface.errors import TalkfaceError
from talkface.signals import SIGNAL_LIST, measure_signals
from talkface.synth.footage import read_footage, speaker_split

log = logging.getLogger(__name__)
REAL_KINDS = ("talking_with_audio", "video_only")


def signal_table(footage: str | Path, checkpoint: Optional[str] = None,
                 kinds: tuple[str, ...] = ("talking_with_audio", "video_only", "generated")
                 ) -> pd.DataFrame:
    """One row per clip of `kinds`: name, kind, speaker, split, and every signal (features from
    the checkpoint's extractor, through the feature cache)."""
    table = read_footage(footage)
    split = speaker_split(table)
    table = table[table["kind"].isin(kinds)].reset_index(drop=True)
    scorer = load_scorer(checkpoint)
    rows = []
    for row in tqdm(list(table.itertuples()), desc="signals", unit="clip"):
        try:
            bundle = scorer.features(row.path)
        except TalkfaceError as err:
            log.warning("skipped %s", err)
            continue
        rows.append({"name": row.name, "kind": row.kind, "speaker": row.speaker,
                     "split": split[row.speaker], **measure_signals(bundle)})
    return pd.DataFrame(rows)


def reference(table: pd.DataFrame) -> dict[str, list[float]]:
    """Signal -> 101 percentiles over the clean real recordings of the training speakers."""
    real = table[table["kind"].isin(REAL_KINDS) & (table["split"] == "train")]
    return {s.name: percentiles(real[s.name]) for s in SIGNAL_LIST
            if s.name in real and real[s.name].notna().sum() >= 10}


def store_reference(checkpoint: str, out: str, table: pd.DataFrame, footage: str) -> Path:
    """The checkpoint at `checkpoint` written to `out` with the signal reference added."""
    loaded = load_checkpoint(checkpoint)
    cal = Calibration.from_meta(loaded.meta.calibration or {})
    cal.signals = reference(table)
    n = int(((table["split"] == "train") & table["kind"].isin(REAL_KINDS)).sum())
    cal.signals_note = (f"{n} real recordings of the training speakers of "
                        f"{Path(footage).name} (talking and silent faces)")
    meta = loaded.meta
    shipping = "talkface/checkpoints" in str(Path(out).resolve())
    return save_checkpoint(out, loaded.model, meta.options, metrics=meta.metrics, data=meta.data,
                           command=meta.command, card=loaded.card, calibration=cal.to_meta(),
                           shipping=shipping)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.signals", description=__doc__.split("\n")[0])
    p.add_argument("--real", required=True, help="footage folder (with manifest.csv)")
    p.add_argument("--checkpoint", help="checkpoint whose extractor makes the features "
                   "(default: the active one)")
    p.add_argument("--out", help="write the checkpoint with the reference here")
    p.add_argument("--table", help="write every clip's signals as CSV here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        table = signal_table(args.real, args.checkpoint)
        if args.table:
            table.to_csv(args.table, index=False, float_format="%.6g")
        if args.out:
            print(f"wrote {store_reference(args.checkpoint, args.out, table, args.real)}")
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
