"""Paper-standard LSE: talkface against syncnet-python on one clip, same weights, one run.

    python benchmarks/lse.py [--video CLIP] [--seconds 8] [--repeat 2] [--threads N]
        [--out lse.json]

Without --video the clip is made from the bundled fixtures (tests/data/fixtures: one face, one
voice; clips concatenated to --seconds). The SyncNet weights are RANDOM, in the reference's layout
(tests/syncnet_reference.py): VGG's syncnet_v2.model is not available here. Timing does not
depend on the weights; the figures themselves mean nothing beyond parity.

The clip's face is tracked once by talkface's face stage (`Extractor.extract`, which scoring pays
anyway), and its 224 px crop clip (`talkface.sync.lse`) is what both sides are given. Timed, best
of --repeat, the sides alternating:

- syncnet-python: `SyncNetInstance.evaluate` on a crop folder (frames + audio.wav, as its
  pipeline writes them for each face track): reading the folder, MFCC, SyncNet, distances. The
  pipeline's stages before that (FFmpeg re-encoding and frame dumps, S3FD face detection on
  every frame, scene detection, cropping to XVID) are not run: S3FD's weights are not available
  here, so the reference's figure is a lower bound on what syncnet-python costs per clip.
- talkface `lse()`: the same crops and audio, in memory.
- talkface's LSE pass as `Scorer.score` runs it with `syncnet_weights` (`video_lse`): decode
  the clip again (in a thread, ahead), cut the crops from the face track's boxes, `lse()`.

Each side's best wall time and its process CPU time are printed, and the speed-up both as a
ratio of best times and as the median ratio of runs made back to back (steadier when others share
the machine).

Parity on the same crops and weights is printed beside the times: |LSE-D| and |LSE-C|
differences and both offsets.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from talkface import media  # noqa: E402
from talkface.constants import FPS, HOP, SAMPLE_RATE  # noqa: E402
from talkface.sync.lse import crop_geometry, face_crops, track_span, video_lse  # noqa: E402
from talkface.sync.syncnet import lse, load_syncnet, to_pcm16  # noqa: E402

FIXTURES = ["00_clean.mp4", "03_blur.mp4", "05_crf.mp4", "01_offset.mp4"]


def fixture_clip(seconds: float, out: Path) -> Path:
    """The bundled fixtures (one face, one voice) joined and cut to `seconds`."""
    clips = [media.load_clip(ROOT / "tests" / "data" / "fixtures" / name) for name in FIXTURES]
    n = int(round(seconds * FPS))
    frames, audio = [], []
    while sum(len(f) for f in frames) < n:
        for clip in clips:
            frames.append(clip.frames)
            audio.append(clip.audio[:len(clip.frames) * HOP])
    media.write_video(out, np.concatenate(frames)[:n], audio=np.concatenate(audio)[:n * HOP])
    return out


def timed(fn) -> tuple[tuple[float, float], object]:
    """((wall seconds, CPU seconds of the whole process), fn())."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), value


def run(video: Path, repeat: int, work: Path) -> dict:
    from syncnet_reference import random_syncnet_weights, reference_lse, write_crop_folder
    from talkface.features.extract import Extractor
    weights = random_syncnet_weights(work / "syncnet_random.model")
    net = load_syncnet(weights)
    extractor = Extractor()
    start = time.perf_counter()
    bundle = extractor.extract(video)
    face_stage = time.perf_counter() - start
    boxes = bundle.info["boxes"]
    first, last, filled = track_span(np.array([[np.nan] * 4 if b is None else b for b in boxes]))
    crops = np.stack(list(face_crops(extractor.frames(video), first, crop_geometry(filled))))
    audio = media.load_audio(video, SAMPLE_RATE)
    pcm = to_pcm16(audio)[first * HOP:(last + 1) * HOP]
    folder = write_crop_folder(crops, pcm, work / "crops")
    lse(net, crops[:8], pcm[:8 * HOP])  # warm-up, paid once per process
    times = {"reference": [], "lse": [], "video_lse": []}  # (wall, cpu) per run
    for _ in range(repeat):  # alternate, so load on a shared machine hits both sides alike
        t, ref = timed(lambda: reference_lse(weights, folder))
        times["reference"].append(t)
        t, ours = timed(lambda: lse(net, crops, pcm))
        times["lse"].append(t)
        t, whole = timed(lambda: video_lse(net, extractor, video, boxes))
        times["video_lse"].append(t)
    best = {k: min(w for w, _ in v) for k, v in times.items()}
    cpu = {k: min(c for _, c in v) for k, v in times.items()}
    paired = {k: float(np.median([r[0] / t[0] for r, t in zip(times["reference"], times[k])]))
              for k in ("lse", "video_lse")}
    return {"video": str(video), "frames": len(crops), "seconds": len(crops) / FPS,
            "windows": ours.windows, "face_stage_s": face_stage,
            "reference": ref, "talkface": {"offset": ours.offset_frames, "lse_c": ours.lse_c,
                                           "lse_d": ours.lse_d},
            "scorer_pass": {"offset": whole.offset_frames, "lse_c": whole.lse_c,
                            "lse_d": whole.lse_d},
            "diff_lse_d": abs(ours.lse_d - ref["lse_d"]),
            "diff_lse_c": abs(ours.lse_c - ref["lse_c"]),
            "same_figures_in_scorer_pass": (whole.lse_d, whole.lse_c, whole.offset_frames)
            == (ours.lse_d, ours.lse_c, ours.offset_frames),
            "times_s": times, "best_s": best, "best_cpu_s": cpu,
            "speedup_lse": best["reference"] / best["lse"],
            "speedup_video_lse": best["reference"] / best["video_lse"],
            "speedup_paired_median": paired}


def report(r: dict) -> str:
    b, c, p = r["best_s"], r["best_cpu_s"], r["speedup_paired_median"]
    return "\n".join([
        f"clip: {r['video']} ({r['frames']} frames, {r['seconds']:.1f} s, {r['windows']} "
        f"SyncNet windows); face stage {r['face_stage_s']:.1f} s (paid by scoring anyway)",
        f"parity on the same crops and weights: |LSE-D diff| {r['diff_lse_d']:.2e}, "
        f"|LSE-C diff| {r['diff_lse_c']:.2e}, offsets {r['reference']['offset']} (syncnet-python)"
        f" / {r['talkface']['offset']} (talkface); the scorer's pass gives the same figures: "
        f"{r['same_figures_in_scorer_pass']}",
        f"best of {len(r['times_s']['lse'])}, wall (CPU) seconds, speed-up: best / median of "
        f"paired runs",
        f"syncnet-python SyncNetInstance.evaluate (crop folder): {b['reference']:6.2f} "
        f"({c['reference']:6.2f})",
        f"talkface lse() (same crops, in memory):              {b['lse']:6.2f} "
        f"({c['lse']:6.2f})  {r['speedup_lse']:.2f}x / {p['lse']:.2f}x",
        f"talkface LSE pass (decode + crops + lse, video_lse): {b['video_lse']:6.2f} "
        f"({c['video_lse']:6.2f})  {r['speedup_video_lse']:.2f}x / {p['video_lse']:.2f}x"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, help="a clip (default: made from the fixtures)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of the fixture clip")
    p.add_argument("--repeat", type=int, default=2, help="runs per side; the best counts")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    p.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = p.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="talkface-lse-") as tmp:
        work = Path(tmp)
        video = args.video or fixture_clip(args.seconds, work / f"fixtures_{args.seconds:g}s.mp4")
        result = run(video, max(1, args.repeat), work)
    result["torch_threads"] = torch.get_num_threads()
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
