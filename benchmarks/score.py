"""Scoring speed, start-up and memory against issue 21's targets, in one run.

    OMP_NUM_THREADS=1 python benchmarks/score.py [--clip CLIP] [--checkpoint DIR] [--repeats 3]
        [--long] [--no-peer]

From a talking clip with sound (--clip: a real recording; without it the bundled fixture
tests/data/fixtures/00_clean.mp4, a synthetic puppet, and the output says so) the benchmark makes
its own clips in a temporary folder, looping the source forwards and back so motion stays smooth,
with its audio looped the same way:

- an 8 s, 25 fps, 512x512 H.264 clip (centre square crop), on which it measures
  * the peer, syncnet-python with RANDOM weights the benchmark makes (timing only; the numbers
    it finds mean nothing): its whole `syncnet-python CLIP --device cpu` pipeline where its
    dependencies (scenedetect, ffmpeg-python) are installed, else, as benchmarks/lse.py does,
    only its `SyncNetInstance.evaluate` on a folder of 224 px crops of the clip in a fresh
    process (a lower bound: no S3FD face detection, no re-encoding); skipped when syncnet-python
    is not installed (pip install --no-deps -r requirements-reference.txt);
  * `python -m talkface score CLIP --no-cache` in a fresh process (the default runtime, and
    `--runtime torch`): wall time and peak RSS, best of --repeats;
  * `python -m talkface score --help` and `python -c "import torch"` in fresh processes;
  * warm `scorer.score(clip)` after `load_scorer(ckpt, cache=False, runtime=R)` for R = onnx,
    int8 and torch side by side (one warm-up, best of --repeats), with each load's time, onnx
    first so that its load does not find torch already imported;
- a 10 s 1080x1920 HEVC (libx265) portrait clip: warm score (default runtime) against decoding
  every frame of it to RGB with PyAV;
- with --long, a 2-minute 1920x1080 H.264 clip through the CLI in a fresh process: wall time and
  peak RSS, against its own decode to RGB.

Peak RSS is the child process's own (`ru_maxrss` of a one-child wrapper). Times are wall clock on
this machine; the CPU count and load average are printed, since other work inflates them.
"""
from __future__ import annotations

import argparse
import importlib.util
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from talkface import media  # noqa: E402
from talkface.constants import FPS, SAMPLE_RATE  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "fixtures" / "00_clean.mp4"
RUNTIMES = ("onnx", "int8", "torch")
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


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)




# --- measurements ----------------------------------------------------------------------------

CHILD = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(done.returncode, time.perf_counter() - start,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
if done.returncode:
    print(done.stderr[-3000:], file=sys.stderr)
"""


def child_env(cache: Path) -> dict:
    env = dict(os.environ, TALKFACE_CACHE=str(cache), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(cmd: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, peak RSS bytes) of `cmd` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, *cmd], env=env, cwd=cwd,
                          capture_output=True, text=True)
    code, took, peak_kb = done.stdout.split()
    if int(code) != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return float(took), float(peak_kb) * 1024.0  # Linux reports ru_maxrss in KiB


def best_child(cmd: list[str], env: dict, repeats: int, cwd: Path = ROOT) -> tuple[float, float]:
    """Best wall time of `repeats` fresh runs, and the largest peak RSS among them."""
    runs = [run_child(cmd, env, cwd) for _ in range(max(repeats, 1))]
    return min(t for t, _ in runs), max(m for _, m in runs)


def rgb_decode(path: Path) -> int:
    """Decode every frame of `path` to RGB (PyAV, its default threading); the frame count."""
    import av
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def warm_score(scorer, clip: Path, repeats: int) -> float:
    scorer.clear_memory()
    scorer.score(clip)  # warm-up: lazy imports, first-call allocations

    def once():
        scorer.clear_memory()  # a result kept in memory would make this a lookup
        scorer.score(clip)
    return best_of(once, repeats)


def runtimes(ckpt: Path, clip: Path, repeats: int) -> list[Row]:
    """Load time and warm score per runtime, in this process, onnx first."""
    from talkface.api import load_scorer
    rows = []
    for runtime in RUNTIMES:
        start = time.perf_counter()
        scorer = load_scorer(ckpt, cache=False, runtime=runtime)
        load = time.perf_counter() - start
        warm = warm_score(scorer, clip, repeats)
        target = ("<= 0.35 s", warm / 0.35) if runtime == "onnx" else (None, None)
        rows += [Row(f"warm scorer.score, runtime {runtime}", warm, *target),
                 Row("  its load_scorer (in this process)", load)]
    return rows


# --- the peer: syncnet-python ------------------------------------------------------------------

PEER_EVALUATE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from syncnet_reference import reference_lse
reference_lse(Path(sys.argv[2]), Path(sys.argv[3]))
"""


def peer_available() -> Optional[str]:
    """'pipeline', 'evaluate' or None (not installed)."""
    if importlib.util.find_spec("syncnet_python") is None:
        return None
    full = all(importlib.util.find_spec(m) for m in ("scenedetect", "ffmpeg"))
    return "pipeline" if full else "evaluate"


def random_s3fd_weights(path: Path) -> Path:
    import torch
    from syncnet_python.detectors.s3fd.nets import S3FDNet
    torch.manual_seed(0)
    torch.save(S3FDNet().state_dict(), path)
    return path


def peer(kind: str, clip: Path, tmp: Path, env: dict, repeats: int) -> tuple[str, float, float]:
    """(what ran, best wall seconds, peak RSS bytes) of the peer on `clip`."""
    from syncnet_reference import random_syncnet_weights, write_crop_folder
    weights = random_syncnet_weights(tmp / "peer" / "syncnet_v2.model")
    if kind == "pipeline":
        s3fd = random_s3fd_weights(tmp / "peer" / "sfd_face.pth")
        exe = Path(sys.executable).with_name("syncnet-python")
        cmd = [str(exe), str(clip), "--device", "cpu", "--s3fd-weights", str(s3fd),
               "--syncnet-weights", str(weights), "--cache-dir", str(tmp / "peer" / "cache")]
        took, peak = best_child(cmd, env, repeats, cwd=tmp)
        return "syncnet-python CLIP --device cpu", took, peak
    decoded = media.load_clip(clip, fps=FPS, max_side=512)
    side = min(decoded.frames.shape[1:3])
    crops = np.stack([cv2.resize(f[:side, :side], (224, 224)) for f in decoded.frames])
    from talkface.sync.syncnet import to_pcm16
    folder = write_crop_folder(crops, to_pcm16(decoded.audio), tmp / "peer" / "crops")
    cmd = [sys.executable, "-c", PEER_EVALUATE, str(ROOT / "tests"), str(weights), str(folder)]
    took, peak = best_child(cmd, env, repeats)
    return ("syncnet-python SyncNetInstance.evaluate on crops, fresh process (lower bound: "
            "its pipeline's deps are not installed)", took, peak)


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


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpus} CPU core(s) available, load average {load}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", "--video", dest="clip", type=Path,
                   help="a real talking clip with audio to build from (default: a fixture)")
    p.add_argument("--checkpoint", type=Path, help="default: the active checkpoint")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (best kept)")
    p.add_argument("--long", action="store_true", help="also a 2-minute 1080p clip (slow)")
    p.add_argument("--no-peer", dest="peer", action="store_false")
    args = p.parse_args(argv)
    from talkface.checkpoint import active_checkpoint, scoring_runtime

    source = args.clip or FIXTURE
    print(f"source: {source}" + ("" if args.clip else " (a synthetic fixture, NOT a real "
                                 "recording: pass --clip for issue 21's figures)"))
    ckpt = args.checkpoint or active_checkpoint()
    print(f"checkpoint: {ckpt} (default runtime: {scoring_runtime(ckpt)})")
    print(machine())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = child_env(tmp / "cache")
        square = load_square(source)
        print(f"making clips from {len(square.frames)} source frames ...", flush=True)
        small = make_clip(tmp / "real_512.mp4", square, 8.0, None)
        hevc = make_clip(tmp / "real_1080x1920_hevc.mp4", square, 10.0, (1080, 1920),
                         codec="libx265", options={"preset": "ultrafast",
                                                   "x265-params": "log-level=error"})
        print(f"  512 clip:  {describe(small)}")
        print(f"  HEVC clip: {describe(hevc)}", flush=True)

        cli = ["-m", "talkface", "score", str(small), "--checkpoint", str(ckpt), "--no-cache"]
        py = [sys.executable]
        cold, cold_rss = best_child(py + cli, env, args.repeats)
        cold_torch, cold_torch_rss = best_child(py + cli + ["--runtime", "torch"], env,
                                                args.repeats)
        helped, _ = best_child(py + ["-m", "talkface", "score", "--help"], env, args.repeats)
        torch_import, torch_rss = best_child(py + ["-c", "import torch"], env, args.repeats)
        kind = peer_available() if args.peer else None
        if kind:
            print(f"timing the peer ({kind}) ...", flush=True)
            what, peer_s, peer_rss = peer(kind, small, tmp, env, args.repeats)
            rows += [Row(what, peer_s), Row("  its peak RSS", peer_rss, unit="B")]
        else:
            print("peer: syncnet-python not installed (pip install --no-deps -r "
                  "requirements-reference.txt)" if args.peer else "peer: skipped (--no-peer)")
        rows += [Row("talkface score CLIP --no-cache, cold process", cold, "<= 1.5 s", cold / 1.5),
                 Row("  its peak RSS", cold_rss, unit="B")]
        if kind:
            rows.append(Row("  peer time / talkface cold time", peer_s / cold, ">= 15x",
                            15 / (peer_s / cold), unit="x"))
        rows += [Row("talkface score CLIP --no-cache --runtime torch, cold", cold_torch),
                 Row("  its peak RSS", cold_torch_rss, unit="B"),
                 Row("talkface score --help", helped, "<= 0.3 s", helped / 0.3),
                 Row("python -c 'import torch'", torch_import),
                 Row("  its peak RSS", torch_rss, unit="B")]
        rows += runtimes(ckpt, small, args.repeats)

        from talkface.api import load_scorer
        scorer = load_scorer(ckpt, cache=False)
        decode = best_of(lambda: rgb_decode(hevc), args.repeats)
        score = warm_score(scorer, hevc, args.repeats)
        rows += [Row("10 s 1080x1920 HEVC: decode every frame to RGB", decode),
                 Row("10 s 1080x1920 HEVC: warm scorer.score", score),
                 Row("  score / its decode", score / decode, "<= 1.2x", score / decode / 1.2,
                     unit="x")]
        if args.long:
            print("making the 2-minute 1080p clip ...", flush=True)
            long_clip = make_clip(tmp / "real_2min_1080p.mp4", square, 120.0, (1920, 1080),
                                  options={"preset": "ultrafast"})
            print(f"  long clip: {describe(long_clip)}", flush=True)
            long_decode = best_of(lambda: rgb_decode(long_clip), 1)
            took, peak = run_child(py + ["-m", "talkface", "score", str(long_clip),
                                         "--checkpoint", str(ckpt), "--no-cache"], env)
            rows += [Row("2 min 1920x1080: decode every frame to RGB", long_decode),
                     Row("2 min 1920x1080: talkface score, cold process", took, "<= 1.3x decode",
                         took / long_decode / 1.3),
                     Row("  its peak RSS", peak, "< 600 MB", peak / 600e6, unit="B",
                         strict=True)]
        else:
            print("2-minute 1080p clip: skipped (pass --long)")

    print()
    print_table(rows)
    print(f"\nafter the run: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
