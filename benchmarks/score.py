"""Scoring speed and memory on real recordings, against issue 13's targets, in one run.

    OMP_NUM_THREADS=1 python benchmarks/score.py --video ../shared/real-videos/real/CLIP.mp4
        [--checkpoint DIR] [--repeats 3] [--long]

From the talking clip passed as --video (without one: a bundled sample clip, which is a synthetic
puppet, and the output says so) the benchmark makes its own clips in a temporary folder, looping
the source forwards and back so motion stays smooth, with its audio looped the same way:

- a 10 s, 25 fps, 512x512 H.264 clip (centre square crop):
  * warm process: `load_scorer(ckpt, cache=False)`, one warm-up, then `scorer.score(clip)`, best
    of --repeats (target <= 1 s);
  * cold CLI: `python -m talkface score CLIP --checkpoint CKPT --no-cache` in a fresh process,
    wall time, best of --repeats (target <= 2.5 s), and the part of it that is only importing
    talkface and loading the checkpoint;
  * bare decode (the frames the scorer decodes, plus the audio), for reference;
  * a stage breakdown through the public API: `Extractor.analyse` (decode + face stage, which
    overlap: decoding runs in a prefetch thread), `Scorer.features` (adds the audio features and
    sync columns) and `Scorer.score_bundles` on ready features (model + sync signals + result);
- a 10 s 1080x1920 HEVC (libx265) portrait clip (the square upscaled to 1080x1080, edges
  replicated to 1920 tall): warm scoring time against its own bare decode (target <= 2x);
- with --long, a 2-minute 1920x1080 H.264 clip scored in a child process: peak RSS of that
  process (target < 1 GB, which needs streamed decoding).

The default checkpoint is the active one (`load_scorer()` with no path: the shipped
talkface/checkpoints/default unless a promoted one is active). Times are wall clock on this
machine; the CPU count and load average are printed, since other work inflates them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from talkface import media  # noqa: E402
from talkface.constants import FPS, SAMPLE_RATE  # noqa: E402

SAMPLES = ROOT / "talkface" / "app" / "samples"
GB = 1e9


@dataclass
class Row:
    name: str
    value: float                   # seconds, or bytes for memory rows
    target: Optional[str] = None   # e.g. "<= 1 s"
    ratio: Optional[float] = None  # measured / target: <= 1 (or < 1 for memory) passes
    unit: str = "s"                # "s", "B" (bytes) or "x" (a ratio of two times)
    strict: bool = False           # the target is "<", not "<="

    def verdict(self) -> str:
        if self.ratio is None:
            return ""
        ok = self.ratio < 1 if self.strict else self.ratio <= 1
        return "pass" if ok else "MISS"

    def cells(self) -> list[str]:
        value = {"B": f"{self.value / 1e6:.0f} MB", "x": f"{self.value:.2f}x"}.get(
            self.unit, f"{self.value:.3f} s")
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        return [self.name, value, self.target or "", ratio, self.verdict()]


# --- source and test clips -------------------------------------------------------------------

def bundled_source() -> Path:
    """The first clean clip among the app's bundled samples (a puppet, not a recording)."""
    import pandas as pd
    manifest = pd.read_csv(SAMPLES / "manifest.csv")
    return SAMPLES / manifest.loc[manifest["condition"] == "clean", "file"].iloc[0]


def load_square(source: Path, side: int = 512) -> media.DecodedClip:
    """The source decoded at 25 fps, centre-cropped to a square and scaled to side x side."""
    clip = media.load_clip(source, fps=FPS, max_side=side, max_seconds=10.0)
    if clip.audio is None:
        sys.exit(f"{source}: no audio track; pass a talking clip with its sound")
    h, w = clip.frames.shape[1:3]
    crop = min(h, w)
    y0, x0 = (h - crop) // 2, (w - crop) // 2
    frames = np.stack([cv2.resize(f[y0:y0 + crop, x0:x0 + crop], (side, side),
                                  interpolation=cv2.INTER_AREA) for f in clip.frames])
    return media.DecodedClip(frames, clip.audio, clip.fps, clip.sample_rate, clip.info)


def looped(clip: media.DecodedClip, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices and audio for `seconds`, the clip played forwards then backwards."""
    n_src = len(clip.frames)
    order = np.concatenate([np.arange(n_src), np.arange(n_src)[::-1]])
    idx = order[np.arange(int(round(seconds * FPS))) % len(order)]
    audio = clip.audio[: int(round(n_src / FPS * SAMPLE_RATE))]
    audio = np.resize(np.concatenate([audio, audio[::-1]]), int(round(seconds * SAMPLE_RATE)))
    return idx, audio.astype(np.float32)


def padded(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The square frame scaled to fit width x height, its edges replicated to fill the rest."""
    side = min(width, height)
    big = cv2.resize(frame, (side, side), interpolation=cv2.INTER_LINEAR)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.copyMakeBorder(big, top, height - side - top, left, width - side - left,
                              cv2.BORDER_REPLICATE)


def make_clip(path: Path, clip: media.DecodedClip, seconds: float, size: Optional[tuple[int, int]],
              codec: str = "libx264", options: Optional[dict] = None) -> Path:
    """Write `seconds` of the looped clip at `size` (width, height; None: as it is)."""
    idx, audio = looped(clip, seconds)
    frames: Iterator[np.ndarray] = (clip.frames[i] if size is None else
                                    padded(clip.frames[i], *size) for i in idx)
    media.write_video(path, frames, FPS, audio, codec=codec, crf=23, options=options)
    return path


def describe(path: Path) -> str:
    info = media.probe(path)
    return (f"{info.width}x{info.height} {info.video_codec}, {info.duration:.1f} s, "
            f"{info.fps:g} fps, audio {'yes' if info.has_audio else 'no'}, "
            f"{path.stat().st_size / 1e6:.1f} MB")


# --- measurements ----------------------------------------------------------------------------

def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bare_decode(scorer, clip: Path) -> None:
    """Decode what the scorer decodes (native or downscaled frames, by its backend) + audio."""
    cfg = scorer.extractor.config
    if scorer.extractor.backend.frame_kind == "native":
        frames = media.iter_native_frames(clip, cfg.fps, cfg.max_seconds)
    else:
        frames = media.iter_frames(clip, cfg.fps, cfg.max_side, cfg.max_seconds)
    sum(1 for _ in frames)
    media.load_audio(clip, cfg.sample_rate, cfg.max_seconds)


def warm_score(scorer, clip: Path, repeats: int) -> float:
    scorer.clear_memory()
    scorer.score(clip)  # warm-up: lazy imports, first-call allocations

    def once():
        scorer.clear_memory()  # a result kept in memory would make this a lookup
        scorer.score(clip)
    return best_of(once, repeats)


def stages(scorer, clip: Path, repeats: int) -> list[Row]:
    """Where a warm score's time goes, through public methods only (cache is off)."""
    analyse = best_of(lambda: scorer.extractor.analyse(clip), repeats)
    features = best_of(lambda: scorer.features(clip), repeats)
    bundle = scorer.features(clip)
    model = best_of(lambda: scorer.score_bundles([bundle], [str(clip)]), max(repeats, 3))
    return [Row("  decode + face stage (Extractor.analyse)", analyse),
            Row("  + audio features, sync columns", max(features - analyse, 0.0)),
            Row("  model + sync signals + result", model)]


def run_child(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return took


def child_env(cache: Path) -> dict:
    env = dict(os.environ, TALKFACE_CACHE=str(cache), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def cold_cli(clip: Path, ckpt: Path, env: dict, repeats: int) -> tuple[float, float]:
    """(best wall time of the scoring CLI, best time of a process that only imports talkface
    and loads the checkpoint), each in a fresh Python process."""
    cli = [sys.executable, "-m", "talkface", "score", str(clip), "--checkpoint", str(ckpt),
           "--no-cache"]
    load = [sys.executable, "-c", "import sys; from talkface.api import load_scorer; "
            "load_scorer(sys.argv[1], cache=False)", str(ckpt)]
    return (min(run_child(cli, env) for _ in range(max(repeats, 1))),
            min(run_child(load, env) for _ in range(max(repeats, 1))))


PEAK_CHILD = """
import json, resource, sys, time
from talkface.api import load_scorer
start = time.perf_counter()
load_scorer(sys.argv[1], cache=False).score(sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_memory(clip: Path, ckpt: Path, env: dict) -> tuple[float, float]:
    """(peak RSS in bytes, load + score seconds) of a fresh process scoring `clip`."""
    done = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(ckpt), str(clip)], env=env,
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"peak-memory child failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["peak_kb"] * 1024.0, out["seconds"]  # Linux reports ru_maxrss in KiB


# --- report ----------------------------------------------------------------------------------

def print_table(rows: list[Row]) -> None:
    header = ["measurement", "value", "target", "ratio", "verdict"]
    cells = [header] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for n, line in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_checkpoint(ckpt: Path, scorer) -> None:
    spec = scorer.spec
    cfg = spec.extractor
    meta = scorer.loaded.meta
    print(f"checkpoint: {ckpt} (model {meta.model_name}, talkface {meta.talkface_version})")
    print(f"feature spec {spec.fingerprint}: backend {cfg.backend} v{spec.backend_version} "
          f"{cfg.options}, {cfg.fps:g} fps, {cfg.sample_rate} Hz, "
          f"{len(spec.visual_names)} visual + {len(spec.audio_names)} audio features, "
          f"sync model {spec.sync_version or 'none'}")


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpus} CPU core(s) available, load average {load}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, help="a real talking clip with audio to build from "
                   "(default: a bundled sample clip, which is a puppet)")
    p.add_argument("--checkpoint", type=Path, help="default: the active checkpoint")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (best kept)")
    p.add_argument("--long", action="store_true",
                   help="also measure peak memory on a 2-minute 1080p clip (slow to make)")
    args = p.parse_args(argv)

    from talkface.api import load_scorer
    from talkface.checkpoint import active_checkpoint

    if args.video is not None:
        source = args.video
        print(f"source: {source}")
    else:
        source = bundled_source()
        print(f"source: no --video given; using the bundled sample {source.relative_to(ROOT)} "
              f"(a synthetic puppet, NOT a real recording: pass --video for issue 13's figures)")
    ckpt = args.checkpoint or active_checkpoint()
    scorer = load_scorer(ckpt, cache=False)
    print_checkpoint(ckpt, scorer)
    print(machine())

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = child_env(tmp / "cache")
        square = load_square(source)
        print(f"making clips from {len(square.frames)} source frames ...", flush=True)
        small = make_clip(tmp / "real_512.mp4", square, 10.0, None)
        hevc = make_clip(tmp / "real_1080x1920_hevc.mp4", square, 10.0, (1080, 1920),
                         codec="libx265", options={"preset": "ultrafast",
                                                   "x265-params": "log-level=error"})
        print(f"  512 clip:  {describe(small)}")
        print(f"  HEVC clip: {describe(hevc)}", flush=True)

        decode = best_of(lambda: bare_decode(scorer, small), args.repeats)
        warm = warm_score(scorer, small, args.repeats)
        rows += [Row("10 s 512x512: bare decode (frames + audio)", decode),
                 Row("10 s 512x512: score, warm process", warm, "<= 1 s", warm / 1.0)]
        rows += stages(scorer, small, args.repeats)
        cli, load = cold_cli(small, ckpt, env, args.repeats)
        rows += [Row("10 s 512x512: python -m talkface score, cold", cli, "<= 2.5 s", cli / 2.5),
                 Row("  of which import + load checkpoint", load)]

        hevc_decode = best_of(lambda: bare_decode(scorer, hevc), args.repeats)
        hevc_score = warm_score(scorer, hevc, args.repeats)
        times = hevc_score / hevc_decode
        rows += [Row("10 s 1080x1920 HEVC: bare decode", hevc_decode),
                 Row("10 s 1080x1920 HEVC: score, warm process", hevc_score),
                 Row("  score / its bare decode", times, "<= 2x", times / 2.0, unit="x")]

        if args.long:
            print("making the 2-minute 1080p clip ...", flush=True)
            long_clip = make_clip(tmp / "real_2min_1080p.mp4", square, 120.0, (1920, 1080),
                                  options={"preset": "ultrafast"})
            print(f"  long clip: {describe(long_clip)}", flush=True)
            peak, took = peak_memory(long_clip, ckpt, env)
            rows += [Row("2 min 1920x1080: peak RSS, fresh process", peak, "< 1 GB", peak / GB,
                         unit="B", strict=True),
                     Row("  its load + score time", took)]
        else:
            print("peak memory on a 2-minute 1080p clip: skipped (pass --long)")

    print()
    print_table(rows)
    print(f"\nafter the run: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
