"""A benchmark made from real recordings: `python -m talkface synth --from-real DIR --out DIR`.

Labels by construction hold on real footage too: a recording with its audio moved by k frames is
out of sync by exactly k frames. Each source recording (`talkface.synth.footage`: its speaker and
whether it is in sync with its own speech) is analysed once by talkface's face stage (the scored
face's box per frame), cut into segments, and each segment becomes a family: the clean segment
plus graded versions of one factor, its strength worked back from evenly spaced target scores
(`talkface.synth.labels`, `REAL_LABEL_VERSION`):

- lip sync: audio offset (the recording's own neighbouring audio, no silence inserted), another
  speaker's speech for part or all of the segment, the lower face taken from another moment of
  the same recording (natural mouth shapes at the wrong time), a frozen lower face while the
  speech goes on;
- visual: blur, H.264 CRF, noise, a low-resolution lower face pasted back with a seam
  (Wav2Lip-style), a colour and brightness mismatch of the pasted lower face;
- temporal: camera shake, frame freezes, colour flicker, a pasted lower face jittering against
  the head;
- and what generators get wrong beyond those (`real-labels-2`): a smeared mouth (the lower face
  blurred), GAN-smoothed skin (edge-preserving smoothing of the face), texture that comes and
  goes between frames, frame repeats at an encoder's cadence, a stiff head (the upper face held
  while the mouth moves), eyes that never blink (the eye band held), motion smoothed into
  ghosting.

Strengths in pixels are relative to the face (a reference face of 150 px, the puppet's), so a
strength means the same visible damage on a close-up and on a full-body shot. Frames are
rendered with the face at most 160 px tall (and the frame's long side at most 960 px). Clips
without usable own speech (`video_only`) get the visual and temporal factors, without audio.
Splits are the speakers' (`footage.speaker_split`): the sync model trained on the same folder
holds out the same people. Same folder, seed and arguments: same plan, same clips.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pandas as pd

from .. import media
from ..constants import FPS, HOP, SAMPLE_RATE
from ..errors import DatasetError
from . import degrade, labels
from .build import write_manifest
from .footage import read_footage, speaker_split

log = logging.getLogger(__name__)
REFERENCE_FACE = 150.0  # px: pixel strengths are given for a face this tall
MAX_FACE, MAX_SIDE = 160, 960
SOURCE_SECONDS = 30.0  # read at most this much of a recording
LIP = ["offset_frames", "other_speaker", "mouth_time", "frozen_lower"]
VISUAL = ["blur_sigma", "crf", "noise_sigma", "lowres_mouth", "colour_mismatch", "mouth_blur",
          "face_smoothing"]
TEMPORAL = ["shake_px", "freeze_fraction", "flicker_amp", "region_jitter", "texture_flicker",
            "frame_repeat", "stiff_head", "no_blinks", "over_smooth"]
META = ["file", "split", "speaker", "source", "source_kind", "condition", "family", "seed",
        "start_s", "duration_s", "fps", "has_audio", "audio_source", "repo", "repo_licence"]
COLUMNS = META + list(labels.PARAMS) + list(labels.TASKS) + ["label_version"]


@dataclass
class Source:
    """A recording, analysed: its scored face's boxes per frame (source pixels)."""

    name: str
    path: str
    speaker: str
    split: str
    kind: str
    positive: bool
    boxes: np.ndarray  # (T, 4)
    repo: str = ""
    licence: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.boxes)

    @property
    def face_height(self) -> float:
        ok = np.isfinite(self.boxes).all(1)
        return float(np.median(self.boxes[ok, 3] - self.boxes[ok, 1])) if ok.any() else 0.0


@dataclass
class RealJob:
    file: str
    source: str
    condition: str
    params: dict
    seed: int
    start: int  # first frame of the segment
    n_frames: int
    family: str
    audio_source: str = ""  # the other speaker's recording, for `other_speaker`
    has_audio: bool = True
    extra: dict = field(default_factory=dict)


def analyse_sources(footage: str | Path, cache: Path) -> list[Source]:
    """Every usable recording of a footage folder with its face boxes (cached per file)."""
    from ..cache import file_hash
    from ..features.extract import Extractor
    table = read_footage(footage)
    split = speaker_split(table)
    table = table[(table["positive"]) | (table["kind"] == "video_only")]
    extractor = Extractor(identity_frames=0, max_seconds=SOURCE_SECONDS)
    cache.mkdir(parents=True, exist_ok=True)
    sources = []
    for row in table.itertuples():
        target = cache / f"{file_hash(row.path)}.npy"
        if not target.exists():
            try:
                _, visual, _ = extractor.analyse(row.path)
            except Exception as err:  # noqa: BLE001 - a source that fails is skipped, named
                log.warning("source skipped: %s (%s)", row.name, err)
                continue
            np.save(target, visual.boxes)
        boxes = np.load(target)
        if np.isfinite(boxes).all(1).mean() < 0.9:
            log.warning("source skipped: %s (face in %.0f%% of frames)", row.name,
                        100 * np.isfinite(boxes).all(1).mean())
            continue
        sources.append(Source(row.name, row.path, row.speaker, split[row.speaker], row.kind,
                              bool(row.positive), boxes, str(getattr(row, "repo", "")),
                              str(getattr(row, "repo_licence", ""))))
    return sources


def _segments(n_frames: int, length: int, count: int, rng) -> list[int]:
    """Up to `count` non-overlapping segment starts, 15 frames in from each end where possible
    (offsets use the recording's own neighbouring audio)."""
    margin = 15 if n_frames >= length + 30 else 0
    slots = max(1, (n_frames - 2 * margin) // length)
    picks = sorted(rng.permutation(slots)[:count])
    return [margin + int(p) * length for p in picks if margin + (p + 1) * length <= n_frames]


def _strength(factor: str, target: float, rng, late: bool) -> float:
    if factor == "offset_frames":
        return round(labels.offset_for(target, audio_late=late), 2)
    value = labels.strength_for(factor, target)
    return int(round(value)) if factor == "crf" else round(value, 4)


def plan(sources: list[Source], seed: int, segments: int = 4, seconds: float = 3.0,
         steps: int = 3, factors: Optional[list[str]] = None) -> list[RealJob]:
    """Families (clean + `steps` graded versions of one factor) for `segments` segments of every
    source, cycling each source kind through its factors so all are covered evenly. `factors`
    keeps only those (a source kind left with none, e.g. silent footage for lip-sync factors,
    is not used)."""
    rng = np.random.default_rng(seed)
    length = int(round(seconds * FPS))
    jobs: list[RealJob] = []
    unknown = sorted(set(factors or ()) - set(LIP + VISUAL + TEMPORAL))
    if unknown:
        raise DatasetError(f"unknown factors {unknown}: choose from {LIP + VISUAL + TEMPORAL}")
    kinds = {True: LIP + VISUAL + TEMPORAL, False: VISUAL + TEMPORAL}
    kinds = {k: [f for f in v if not factors or f in factors] for k, v in kinds.items()}
    sources = [s for s in sources if kinds[s.positive]]
    cycles = {k: iter(np.resize(v, 10 ** 4)) for k, v in kinds.items() if v}
    talkers = {s: [o for o in sources if o.positive and o.split == s]
               for s in ("train", "val", "test")}
    for src in sources:
        for start in _segments(src.n_frames, length, segments, rng):
            factor = str(next(cycles[src.positive]))
            family = f"{Path(src.name).stem[:40]}_{start:05d}"
            base = dict(source=src.name, start=start, n_frames=length, family=family,
                        has_audio=src.positive, seed=int(rng.integers(2 ** 31)))
            late = bool(rng.random() < 0.5)
            low = labels.min_quality(factor)
            others = [o for o in talkers[src.split] if o.speaker != src.speaker]
            donor = others[int(rng.integers(len(others)))].name if others else ""
            for k, target in enumerate(np.linspace(1.0, low, steps + 1)):
                params = {} if k == 0 else {factor: _strength(factor, float(target), rng, late)}
                if factor == "other_speaker" and not donor and k:
                    continue
                cond = "clean" if k == 0 else factor
                jobs.append(RealJob(f"clips/{len(jobs):05d}_{cond}.mp4", condition=cond,
                                    params=params, audio_source=donor if k and factor ==
                                    "other_speaker" else "", **base))
    return jobs


def _working_scale(src: Source, width: int, height: int) -> float:
    return min(1.0, MAX_FACE / max(src.face_height, 1.0), MAX_SIDE / max(width, height))


def _read(src: Source) -> tuple[np.ndarray, Optional[np.ndarray], float]:
    """Frames at the working scale (even size), the audio, and the scale applied."""
    info = media.probe(src.path)
    scale = _working_scale(src, info.width, info.height)
    side = int(max(info.width, info.height) * scale)
    frames = np.stack(list(media.iter_frames(src.path, FPS, side, SOURCE_SECONDS)))
    audio = media.load_audio(src.path, SAMPLE_RATE, SOURCE_SECONDS)
    return frames, audio, frames.shape[2] / info.width


def _audio(audio: Optional[np.ndarray], start: int, n: int, offset: float) -> np.ndarray:
    """The segment's audio, `offset` frames late (taken from before the segment when late)."""
    shift = int(round(offset * HOP))
    begin = start * HOP - shift
    out = np.zeros(n * HOP, np.float32)
    if audio is None:
        return out
    lo, hi = max(begin, 0), min(begin + n * HOP, len(audio))
    if hi > lo:
        out[lo - begin:hi - begin] = audio[lo:hi]
    return out


def render_source(src: Source, jobs: list[RealJob], out: Path, donors: dict) -> list[dict]:
    """Render every job of one source (decoded once). A source whose clips all exist is not
    rendered again (clips are written atomically), so an interrupted build resumes."""
    if all((out / job.file).exists() for job in jobs):
        return [_row(job, src, {**labels.NEUTRAL, **job.params}) for job in jobs]
    frames, audio, scale = _read(src)
    boxes = src.boxes[:len(frames)] * scale
    rows = []
    for job in jobs:
        seg = slice(job.start, job.start + job.n_frames)
        clip, clip_boxes = frames[seg].copy(), boxes[seg]
        p = {**labels.NEUTRAL, **job.params}
        rng = np.random.default_rng([job.seed, 2])
        face_scale = max(src.face_height * scale, 8.0) / REFERENCE_FACE
        clip = degrade.degrade_frames(clip, p, rng, scale=face_scale)
        clip = _artifacts(clip, clip_boxes, p, frames, boxes, job, rng, face_scale)
        sound = _audio(audio, job.start, job.n_frames, p["offset_frames"])
        if p["other_speaker"] > 0 and job.audio_source in donors:
            sound = _mix_speaker(sound, donors[job.audio_source], p["other_speaker"], rng)
        path = out / job.file
        path.parent.mkdir(parents=True, exist_ok=True)
        media.write_video(path, clip, fps=FPS, audio=sound if job.has_audio else None,
                          sample_rate=SAMPLE_RATE, crf=int(p["crf"]),
                          options={"x264-params": "mbtree=0"})
        rows.append(_row(job, src, p))
    return rows


def _artifacts(clip, clip_boxes, p, frames, boxes, job, rng, face_scale):
    clip = degrade.paste_lowres(clip, clip_boxes, p["lowres_mouth"])
    clip = degrade.colour_mismatch(clip, clip_boxes, p["colour_mismatch"], rng)
    clip = degrade.region_jitter(clip, clip_boxes, p["region_jitter"], rng, face_scale)
    clip = degrade.mouth_blur(clip, clip_boxes, p["mouth_blur"], face_scale)
    clip = degrade.face_smoothing(clip, clip_boxes, p["face_smoothing"])
    clip = degrade.texture_flicker(clip, clip_boxes, p["texture_flicker"], rng)
    clip = degrade.stiff_head(clip, clip_boxes, p["stiff_head"], rng)
    clip = degrade.no_blinks(clip, clip_boxes, p["no_blinks"], rng)
    if p["mouth_time"] > 0:  # donor frames at least 1 s away from this segment
        far = np.r_[np.arange(0, max(job.start - 25, 0)),
                    np.arange(min(job.start + job.n_frames + 25, len(frames)), len(frames))]
        if not far.size:
            far = np.arange(len(frames))[::-1]  # a short source: the segment reversed
        clip = degrade.mouth_from_elsewhere(clip, clip_boxes, p["mouth_time"], frames[far],
                                            boxes[far], rng)
    return degrade.freeze_lower_face(clip, clip_boxes, p["frozen_lower"], rng)


def _mix_speaker(sound: np.ndarray, other: np.ndarray, fraction: float, rng) -> np.ndarray:
    """Replace one contiguous `fraction` of the segment with another speaker's speech, at the
    same loudness."""
    n = len(sound)
    length = int(round(min(fraction, 1.0) * n))
    start = int(rng.integers(0, n - length + 1))
    piece = np.resize(other[int(rng.integers(0, max(len(other) - length, 1))):], length)
    gain = (np.sqrt(np.mean(sound ** 2)) + 1e-6) / (np.sqrt(np.mean(piece ** 2)) + 1e-6)
    out = sound.copy()
    out[start:start + length] = np.clip(piece * gain, -1, 1)
    return out


def _row(job: RealJob, src: Source, p: dict) -> dict:
    task = labels.compute_labels(p, has_audio=job.has_audio)
    row = {"file": job.file, "split": src.split, "speaker": src.speaker, "source": src.name,
           "source_kind": "real", "condition": job.condition, "family": job.family,
           "seed": job.seed, "start_s": round(job.start / FPS, 2),
           "duration_s": round(job.n_frames / FPS, 2), "fps": FPS,
           "has_audio": int(job.has_audio), "audio_source": job.audio_source, "repo": src.repo,
           "repo_licence": src.licence, "label_version": labels.REAL_LABEL_VERSION}
    row.update({k: p[k] for k in labels.PARAMS})
    row.update({k: round(v, 6) for k, v in task.items()})
    return row


_PROCESS: dict = {}  # a render worker's sources and donor audio (set only in worker processes)


def _init(sources: list[Source], donors: dict) -> None:
    cv2.setNumThreads(1)
    _PROCESS.update(sources={s.name: s for s in sources}, donors=donors)


def _render_task(args: tuple[str, list[RealJob], Path]) -> list[dict]:
    name, jobs, out = args
    return render_source(_PROCESS["sources"][name], jobs, out, _PROCESS["donors"])


def build_from_real(footage: str | Path, out: str | Path, seed: int = 0, segments: int = 4,
                    seconds: float = 3.0, steps: int = 3, workers: int = 1,
                    cache: Optional[Path] = None, progress: bool = True,
                    factors: Optional[list[str]] = None) -> Path:
    """Analyse, plan and render the benchmark; writes `out/manifest.csv` and returns it."""
    from tqdm import tqdm
    out = Path(out)
    sources = analyse_sources(footage, cache or out / ".sources")
    if not sources:
        raise DatasetError(f"{footage}: no usable recording (a face in 90% of frames)")
    jobs = plan(sources, seed, segments, seconds, steps, factors)
    wanted = {j.audio_source for j in jobs if j.audio_source}
    donors = {s.name: media.load_audio(s.path, SAMPLE_RATE, SOURCE_SECONDS)
              for s in sources if s.name in wanted}
    by_source: dict[str, list[RealJob]] = {}
    for job in jobs:
        by_source.setdefault(job.source, []).append(job)
    tasks = [(name, js, out) for name, js in by_source.items()]
    rows = []
    with tqdm(total=len(jobs), desc="from-real", unit="clip", disable=not progress) as bar:
        if workers <= 1:
            named = {s.name: s for s in sources}
            for name, js, folder in tasks:
                rows += render_source(named[name], js, folder, donors)
                bar.update(len(js))
        else:
            with mp.get_context("spawn").Pool(workers, _init, (sources, donors)) as pool:
                for part in pool.imap_unordered(_render_task, tasks):
                    rows += part
                    bar.update(len(part))
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(rows, out / "manifest.csv", COLUMNS)
    return out / "manifest.csv"


def merge_manifests(folders: list[str | Path], out: str | Path) -> Path:
    """One manifest over several benchmark folders (e.g. the puppet and the real-footage one),
    with absolute file paths and the union of their columns (a factor a folder does not have
    is at its neutral value)."""
    out = Path(out)
    frames = []
    for folder in folders:
        frame = pd.read_csv(Path(folder) / "manifest.csv")
        frame["file"] = [str((Path(folder) / f).resolve()) for f in frame["file"]]
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    for name in labels.PARAMS:
        merged[name] = merged[name].fillna(labels.NEUTRAL[name]) if name in merged else \
            labels.NEUTRAL[name]
    out.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"
