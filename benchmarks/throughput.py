"""Batch throughput of `talkface score --workers N` (issue 21): clips per minute with one worker
and with N, on the same clips, in one run.

    python benchmarks/throughput.py [--clips 48] [--workers 2] [--checkpoint DIR]

The clips are the app's bundled samples (talkface/app/samples: 3 s, 25 fps, 256 px synthetic
talking heads; the face-less and the silent one left out, 38 remain), taken in order and
starting over past the last, each scored from scratch (no feature cache). Both runs go through
`talkface.parallel.score_files`, what `talkface score --workers N` calls, with one Scorer loaded
here first (as the CLI loads it before it starts the clock):

- workers=1 is `Scorer.score_many` in this process;
- workers=N spawns N processes, each building its own Scorer, and that start-up is inside the
  time.

For each run it prints the wall time, clips per minute over the whole run (the figure the CLI
reports, target: N=2 >= 1.8x one worker), the time to the first clip, and the steady rate from
the first clip to the last (without the start-up, the rate a long batch tends to). It checks that
both runs give the same JSON, and prints the CPU count and the load average before and after
each run: on a shared machine other work takes cores from the workers and lowers the ratio.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talkface.api import load_scorer  # noqa: E402
from talkface.parallel import score_files  # noqa: E402

SAMPLES = ROOT / "talkface" / "app" / "samples"


def sample_clips(count: int) -> list[Path]:
    """`count` bundled samples that have a face and a voice, in manifest order, starting over
    when there are fewer (a clip listed twice is scored twice: nothing is cached)."""
    with open(SAMPLES / "manifest.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["condition"] not in ("no_face", "no_audio")]
    return [SAMPLES / rows[i % len(rows)]["file"] for i in range(count)]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def timed_run(scorer, clips: list[Path], workers: int) -> tuple[dict, str]:
    """Figures of one run and its JSON."""
    before = load()
    marks: list[float] = []
    start = time.perf_counter()
    results = score_files(scorer, clips, workers=workers,
                          progress=lambda *_: marks.append(time.perf_counter()))
    total = time.perf_counter() - start
    failed = [r.file for r in results if not r.ok]
    if failed:
        raise SystemExit(f"workers={workers}: {len(failed)} clip(s) failed, e.g. {failed[0]}")
    first, last = marks[0] - start, marks[-1] - start
    figures = {"workers": workers, "seconds": total, "clips_per_min": len(clips) / total * 60,
               "first_clip_s": first,
               "steady_clips_per_min": (len(clips) - 1) / max(last - first, 1e-9) * 60,
               "load_before": before, "load_after": load()}
    return figures, json.dumps([r.to_dict(detail=False) for r in results], indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    args = parser.parse_args()
    clips = sample_clips(args.clips)
    print(f"{len(clips)} clips of 3 s ({len(set(clips))} distinct bundled samples), "
          f"{os.cpu_count()} CPUs, load average {load()}")
    scorer = load_scorer(args.checkpoint, cache=False)
    runs = [timed_run(scorer, clips, workers) for workers in (1, args.workers)]
    print(f"{'workers':>7} {'seconds':>8} {'clips/min':>9} {'first clip s':>12} "
          f"{'steady clips/min':>16}   load before -> after")
    for figures, _ in runs:
        print(f"{figures['workers']:>7} {figures['seconds']:>8.1f} {figures['clips_per_min']:>9.1f}"
              f" {figures['first_clip_s']:>12.1f} {figures['steady_clips_per_min']:>16.1f}   "
              f"{figures['load_before']} -> {figures['load_after']}")
    (one, one_json), (many, many_json) = runs
    ratio = many["clips_per_min"] / one["clips_per_min"]
    steady = many["steady_clips_per_min"] / one["steady_clips_per_min"]
    target = 1.8 if args.workers == 2 else None
    verdict = "" if target is None else f" (target >= {target}: " \
        f"{'met' if ratio >= target else 'NOT met'})"
    print(f"ratio {args.workers} workers / 1: {ratio:.2f}x clips per minute{verdict}; "
          f"steady rate {steady:.2f}x")
    print(f"same JSON from both runs: {one_json == many_json}")


if __name__ == "__main__":
    main()
