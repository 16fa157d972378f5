"""`python -m talkface import-pickle FILE --out DIR --trust`: the command line of
`talkface.legacy` (an old feature pickle into bundles + manifest.csv), kept apart so that building
the parser imports no numpy, pandas or torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .constants import FPS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("import-pickle", help="convert an old feature pickle into "
                              "bundles + manifest.csv (needs --trust)")
    p.add_argument("file", help="local .pkl file: list of dicts or dict of lists")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--trust", action="store_true",
                   help="I know where this pickle comes from (unpickling can run code)")
    p.add_argument("--fps", type=float, default=FPS, help="frame rate of the old features")
    return p


def run(args: argparse.Namespace) -> int:
    from .legacy import as_samples, convert, read_pickle
    samples = as_samples(read_pickle(args.file, args.trust))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = convert(samples, out, args.fps)
    scores = [c for c in manifest.columns if c != "file"]
    print(f"imported {len(manifest)} samples into {out} (scores: {', '.join(scores) or 'none'});"
          f" train with: python -m train --config optimized --data {out} "
          f"--output_dir runs/legacy" + (f" --set 'data.tasks=[{','.join(scores)}]'"
                                         if scores else ""))
    return 0
