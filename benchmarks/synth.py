"""Benchmark of the synthetic talking-head set and the no-learning baselines.

    python benchmarks/synth.py [--out artifacts/bench_synth] [--n-test 220] [--workers 2]

Prints: seconds and MB per generated clip at 256 and 512 px; the offset estimator's hit rate on
clean clips with injected integer offsets; the SRCC of each quality measure against its own
degradation; the baseline's SRCC per task on a generated test split (only test identities).
Clips and extracted features are cached under --out, so a rerun only recomputes the numbers.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkface.baselines import baseline_measures, baseline_scores  # noqa: E402
from talkface.features.extract import Extractor, FeatureBundle  # noqa: E402
from talkface.synth import labels  # noqa: E402
from talkface.synth.build import ClipJob, build_dataset, render_jobs  # noqa: E402
from talkface.synth.faces import load_faces  # noqa: E402
from talkface.synth.speech import list_voices  # noqa: E402

# measure -> (parameter it should track, sign of the expected correlation)
MEASURE_CHECKS = [("sharpness", "blur_sigma", -1), ("noise", "noise_sigma", +1),
                  ("blockiness", "crf", +1), ("shake", "shake_px", +1),
                  ("freeze", "freeze_fraction", +1), ("flicker", "flicker_amp", +1),
                  ("mouth_motion", "frozen_mouth", -1), ("sync_peak", "swap_mix", -1),
                  ("abs_offset", "abs_offset_frames", +1)]


def timing(out: Path, size: int, n: int = 4) -> tuple[float, float]:
    faces, voices = load_faces(redistributable_only=True), list_voices()
    jobs = [ClipJob(f"t{size}_{i}.mp4", "test", faces[i % len(faces)].name,
                    voices[i % len(voices)].identity, "clean", {}, 1000 + i, size, 3.0)
            for i in range(n)]
    render_jobs(jobs[:1], out, faces, voices, progress=False)  # warm-up: imports, caches
    start = time.perf_counter()
    render_jobs(jobs, out, faces, voices, progress=False)
    secs = (time.perf_counter() - start) / n
    mb = np.mean([(out / j.file).stat().st_size for j in jobs]) / 1e6
    return secs, mb


def _extract(path: str) -> str:
    warnings.filterwarnings("ignore")
    cache = Path(path).with_suffix(".npz")
    if not cache.exists():
        Extractor("landmarks").extract(path).save(cache)
    return str(cache)


def extract_all(root: Path, rows: list[dict], workers: int) -> list[FeatureBundle]:
    paths = [str(root / r["file"]) for r in rows]
    with mp.get_context("spawn").Pool(workers) as pool:
        caches = pool.map(_extract, paths, chunksize=4)
    return [FeatureBundle.load(c) for c in caches]


def offset_hit_rate(out: Path, workers: int, n: int = 40) -> tuple[float, float]:
    faces, voices = load_faces(redistributable_only=True), list_voices()
    rng = np.random.default_rng(5)
    jobs = [ClipJob(f"off_{i:03d}.mp4", "test", faces[i % len(faces)].name,
                    voices[int(rng.integers(len(voices)))].identity, "offset",
                    {"offset_frames": float(rng.integers(-12, 13))}, 2000 + i, 256, 3.0)
            for i in range(n)]
    todo = [j for j in jobs if not (out / j.file).exists()]
    rows = {r["file"]: r for r in render_jobs(todo, out, faces, voices, workers, False)}
    rows = [rows.get(j.file, {"file": j.file, **j.params}) for j in jobs]
    bundles = extract_all(out, rows, workers)
    est = np.array([baseline_measures(b)["offset_frames"] for b in bundles])
    true = np.array([j.params["offset_frames"] for j in jobs])
    return float(np.mean(est == true)), float(np.mean(np.abs(est - true) <= 1))


def measure_srcc(rows: list[dict], measures: list[dict]) -> dict[str, tuple[float, int]]:
    results = {}
    for measure, param, sign in MEASURE_CHECKS:
        xs, ys = [], []
        for r, m in zip(rows, measures):
            if param == "abs_offset_frames":
                key, value = "offset", abs(float(r["offset_frames"]))
                mval = abs(m["offset_frames"])
            else:
                key, value, mval = param, float(r[param]), m[measure]
            own = r["condition"] == "clean" or CONDITION_OF[key] == r["condition"]
            if own and np.isfinite(mval):
                xs.append(value)
                ys.append(mval)
        results[f"{measure} vs {param}"] = (sign * spearmanr(xs, ys)[0], len(xs))
    return results


CONDITION_OF = {"offset": "offset", "blur_sigma": "blur", "noise_sigma": "noise", "crf": "crf",
                "shake_px": "shake", "freeze_fraction": "freeze", "flicker_amp": "flicker",
                "frozen_mouth": "frozen_mouth", "swap_mix": "swap_mix"}


def task_srcc(rows: list[dict], scores: list[dict]) -> dict[str, tuple[float, int]]:
    out = {}
    for task in labels.TASKS:
        pairs = [(float(r[task]), s[task]) for r, s in zip(rows, scores)
                 if r[task] != "" and np.isfinite(s[task])]
        out[task] = (spearmanr(*zip(*pairs))[0], len(pairs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="artifacts/bench_synth")
    ap.add_argument("--n-test", type=int, default=220)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    for size in (256, 512):
        secs, mb = timing(out / "timing", size)
        print(f"generation {size}px: {secs:.2f} s/clip (1 process), {mb:.3f} MB/clip (3 s)")
    hit, near = offset_hit_rate(out / "offsets", args.workers)
    print(f"offset estimator on clean clips, 40 injected offsets in [-12, 12]: "
          f"exact {hit:.1%}, within 1 frame {near:.1%}")
    test = out / "test256"
    if not (test / "manifest.csv").exists():
        build_dataset(test, n=args.n_test, size=256, seed=123, workers=args.workers,
                      splits=["test"])
    rows = list(csv.DictReader(open(test / "manifest.csv")))
    bundles = extract_all(test, rows, args.workers)
    measures = [baseline_measures(b) for b in bundles]
    print(f"test split: {len(rows)} clips, faces {sorted({r['face_identity'] for r in rows})}")
    for name, (rho, n) in measure_srcc(rows, measures).items():
        print(f"  measure SRCC {name:32s} {rho:+.3f}  (n={n}, sign: + = ranks correctly)")
    scores = [baseline_scores(b, m) for b, m in zip(bundles, measures)]
    for task, (rho, n) in task_srcc(rows, scores).items():
        print(f"  baseline SRCC {task:17s} {rho:+.3f}  (n={n})")


if __name__ == "__main__":
    main()
