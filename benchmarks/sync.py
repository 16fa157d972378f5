"""The shipped sync model on speakers it never saw, on the synthetic benchmark, and its cost.

    python benchmarks/sync.py --real ../shared/real-videos [--synth data/synth]
        [--sync sync] [--out artifacts/sync.json]

1. Real footage: the test speakers of the sync model's own split (stored in its meta.json), in
   sync clips only: offset recovery for audio shifted by -15..+15 frames against context length
   (5, 7, 9, 11, 15 windows and the whole clip), confidence in sync / shifted by >= 8 frames /
   with another speaker's audio, ROC AUCs; the same for the correlation baseline.
2. The synthetic benchmark's clean clips (test split), the same figures.
3. Time for a 10 s clip: the sync model alone (log-mel, both encoders, distance curve) beside
   scoring the whole clip with the shipped scorer in a warm process.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkface.sync.estimate import load_sync_model  # noqa: E402
from train.sync import extract_inputs, prepare  # noqa: E402
from train.sync_eval import evaluate_split, summary_table  # noqa: E402


def held_out_real(real: Path, estimator, cache: Path):
    from talkface.synth.footage import read_footage
    split = estimator.meta.data["split"]
    table = read_footage(real)
    table = table[table["positive"] & table["name"].map(lambda n: split.get(n) == "test")]
    inputs = extract_inputs(list(table["path"]), cache)
    clips = [prepare(r.name, r.speaker, inputs[r.path], estimator.model.options)
             for r in table.itertuples() if r.path in inputs]
    return [c for c in clips if c is not None]


def synthetic(synth: Path, estimator, cache: Path, n: int = 40):
    frame = pd.read_csv(synth / "manifest.csv")
    frame = frame[(frame["condition"] == "clean") & (frame["split"] == "test")].head(n)
    paths = [str(synth / f) for f in frame["file"]]
    inputs = extract_inputs(paths, cache)
    clips = [prepare(Path(p).name, v, inputs[p], estimator.model.options)
             for p, v in zip(paths, frame["voice"]) if p in inputs]
    return [c for c in clips if c is not None]


def scoring_time(clip: Path) -> float:
    from talkface.api import load_scorer
    scorer = load_scorer(cache=False)
    scorer.score(clip)  # warm-up: models loaded, first inference
    start = time.perf_counter()
    scorer.score(clip)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--real", type=Path, required=True)
    p.add_argument("--synth", type=Path, default=Path("data/synth"))
    p.add_argument("--sync", default="sync", help="sync checkpoint (shipped name or folder)")
    p.add_argument("--cache", type=Path, default=Path("artifacts/sync-inputs"))
    p.add_argument("--out", type=Path, default=Path("artifacts/sync.json"))
    args = p.parse_args(argv)
    estimator = load_sync_model(args.sync)
    report = {"test": evaluate_split(estimator.model, held_out_real(args.real, estimator,
                                                                     args.cache))}
    if (args.synth / "manifest.csv").exists():
        report["synthetic"] = evaluate_split(estimator.model,
                                             synthetic(args.synth, estimator, args.cache))
    print(summary_table(report))
    for name in ("test", "synthetic"):
        if report.get(name):
            print(f"{name}: sync model {report[name]['ms_per_10s']:.0f} ms per 10 s clip")
    longest = max(read_paths(args.real, estimator), key=lambda p: p[1], default=None)
    if longest is not None:
        report["scoring_seconds"] = scoring_time(Path(longest[0]))
        print(f"scoring {Path(longest[0]).name} end to end (warm): "
              f"{report['scoring_seconds']:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    return 0


def read_paths(real: Path, estimator) -> list[tuple[str, float]]:
    """(path, duration) of the held-out test clips, for the timing run."""
    from talkface.synth.footage import read_footage
    split = estimator.meta.data["split"]
    table = read_footage(real)
    table = table[table["name"].map(lambda n: split.get(n) == "test")]
    return [(r.path, getattr(r, "duration_s", 0.0)) for r in table.itertuples()
            if 8 <= getattr(r, "duration_s", 10.0) <= 12]


if __name__ == "__main__":
    raise SystemExit(main())
