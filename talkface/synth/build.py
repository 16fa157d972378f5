"""Build a synthetic talking-head dataset: clips plus `manifest.csv` with labels and splits.

Plan first, render second. `plan_jobs` decides every clip (split, face, voice, condition,
parameters, seed) from the master seed alone; `render_job` turns one plan into an MP4, so the bytes
of a clip do not depend on the number of workers. Splits are by identity: each face identity and
each voice identity belongs to exactly one of train/val/test, and a clip pairs a face and a voice of
the same split, so no person's face or voice appears in two splits.

Most clips carry one degradation whose strength is worked back from a uniformly drawn target
score (see `labels`); a share of them come in paired families: a clean clip plus graded variants of
one factor, all from the same face, speech and seed.
"""
from __future__ import annotations

import csv
import itertools
import logging
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np

from .. import media
from ..data import split_groups
from ..errors import DatasetError
from ..sync.correlation import max_correlation
from . import degrade, labels
from .faces import Face, load_faces
from ..constants import FPS, SAMPLE_RATE
from .generator import head_motion, opening_from_audio, render_frames
from .speech import Voice, list_voices, make_utterance

log = logging.getLogger(__name__)

CONDITIONS = {"clean": None, **labels.CONDITION_PARAM}
SPECIAL_CONDITIONS = ("no_audio", "no_face")  # labels partly or wholly undefined (NaN)
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
META_COLUMNS = ["file", "split", "face", "face_identity", "voice", "condition", "family", "seed",
                "size", "fps", "n_frames", "has_audio", "face_licence", "voice_licence"]
# x264's macroblock-tree rate control gave different bytes for identical noisy frames in one run
# out of a few (PyAV 18.1 / libx264); without it every clip is byte-reproducible.
ENCODER_OPTIONS = {"x264-params": "mbtree=0"}
COLUMNS = META_COLUMNS + list(labels.PARAMS) + list(labels.TASKS) + ["label_version"]


@dataclass
class ClipJob:
    """Everything needed to render one clip, decided before any rendering."""

    file: str
    split: str
    face: str
    voice: str
    condition: str
    params: dict
    seed: int
    size: int
    duration: float
    family: str = ""


def assign_splits(identities: Iterable[str], seed: int,
                  fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> dict[str, str]:
    """identity -> split (`talkface.data.split_groups`); test and val get at least one identity
    each when there are three or more."""
    return split_groups(list(identities), seed, fractions[1], fractions[2], at_least_one=True)


def sample_params(condition: str, target: float, rng: np.random.Generator,
                  audio_late: Optional[bool] = None) -> dict:
    """Parameters of a one-factor clip whose factor quality equals `target` (after rounding the
    parameter, labels are recomputed from the rounded value, so they stay exact)."""
    name = CONDITIONS.get(condition)
    if name is None:
        return {}
    if name == "offset_frames":
        late = bool(rng.random() < 0.5) if audio_late is None else audio_late
        return {name: round(labels.offset_for(target, audio_late=late), 2)}
    value = labels.strength_for(name, target)
    return {name: int(round(value)) if name == "crf" else round(value, 4)}


def random_target(condition: str, rng: np.random.Generator) -> float:
    name = CONDITIONS[condition]
    return float(rng.uniform(labels.min_quality(name), 1.0)) if name else 1.0


@dataclass
class Pools:
    """Faces and voices grouped by split."""

    faces: dict[str, list[Face]]
    voices: dict[str, list[Voice]]

    @classmethod
    def make(cls, faces: list[Face], voices: list[Voice], seed: int) -> "Pools":
        fsplit = assign_splits((f.identity for f in faces), seed)
        vsplit = assign_splits((v.identity for v in voices), seed + 1)
        pools = cls({s: [f for f in faces if fsplit[f.identity] == s] for s in SPLITS},
                    {s: [v for v in voices if vsplit[v.identity] == s] for s in SPLITS})
        for s in SPLITS:
            if not pools.faces[s] or not pools.voices[s]:
                log.warning("split %r has no %s: it gets no clips (add --faces/--speech)", s,
                            "faces" if not pools.faces[s] else "voices")
        return pools

    def usable_splits(self) -> list[str]:
        return [s for s in SPLITS if self.faces[s] and self.voices[s]]


def plan_jobs(n: int, size: int, seed: int, pools: Pools, duration: float = 3.0,
              family_fraction: float = 0.3, family_steps: int = 4, specials: bool = False,
              splits: Optional[Iterable[str]] = None, balanced: bool = False) -> list[ClipJob]:
    """`n` clips: paired families (clean + `family_steps` graded variants of one factor) for about
    `family_fraction` of them, single random-condition clips for the rest. `splits` restricts the
    clips to some splits (e.g. only "test" for a benchmark); identities keep their split.
    `balanced` cycles the single clips through every condition instead of drawing them."""
    rng = np.random.default_rng(seed)
    splits = [s for s in pools.usable_splits() if splits is None or s in set(splits)]
    if not splits:
        raise DatasetError("no split has both a face and a voice")
    weights = np.array([SPLIT_FRACTIONS[SPLITS.index(s)] for s in splits])
    factors = [c for c in CONDITIONS if c != "clean"]
    jobs: list[ClipJob] = []
    cycle = itertools.cycle(CONDITIONS)

    def base() -> dict:
        split = splits[int(rng.choice(len(splits), p=weights / weights.sum()))]
        return {"split": split, "seed": int(rng.integers(2 ** 31)), "size": size,
                "duration": duration,
                "face": pools.faces[split][int(rng.integers(len(pools.faces[split])))].name,
                "voice": pools.voices[split][int(rng.integers(len(pools.voices[split])))].identity}

    def add(condition: str, params: dict, b: dict, family: str = "") -> None:
        jobs.append(ClipJob(f"clips/{len(jobs):05d}_{condition}.mp4", condition=condition,
                            params=params, family=family, **b))

    if specials:
        for cond in SPECIAL_CONDITIONS:
            add(cond, {}, base())
    while len(jobs) < n:
        if rng.random() < family_fraction and n - len(jobs) > family_steps:
            b, cond = base(), factors[int(rng.integers(len(factors)))]
            fam = f"fam{len(jobs):05d}"
            add("clean", {}, b, fam)
            lo, late = labels.min_quality(CONDITIONS[cond]), bool(rng.random() < 0.5)
            for target in np.linspace(1.0, lo, family_steps + 1)[1:]:
                add(cond, sample_params(cond, float(target), rng, late), b, fam)
        else:
            if balanced:
                cond = next(cycle)
            else:
                cond = "clean" if rng.random() < 0.1 else factors[int(rng.integers(len(factors)))]
            add(cond, sample_params(cond, random_target(cond, rng), rng), base())
    return jobs[:n]


# ---- rendering ----

@dataclass
class Renderer:
    """The faces and voices clips are rendered from, by name."""

    faces: dict[str, Face]
    voices: dict[str, Voice]

    @classmethod
    def of(cls, faces: list[Face], voices: list[Voice]) -> "Renderer":
        return cls({f.name: f for f in faces}, {v.identity: v for v in voices})


_PROCESS: dict = {}  # a spawned render worker's Renderer (never set in the calling process)


def _init_worker(faces: list[Face], voices: list[Voice]) -> None:
    cv2.setNumThreads(1)  # in a worker process: one thread each
    _PROCESS["renderer"] = Renderer.of(faces, voices)


def _faceless_frames(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A slow pan over a face-less photo (scikit-image `coffee`, CC0)."""
    from skimage import data
    img = cv2.resize(data.coffee(), (2 * size, 2 * size), interpolation=cv2.INTER_AREA)
    motion = head_motion(n, rng, size, np.zeros(n))
    cx = (0.5 * size + 4 * motion[:, 1]).astype(int).clip(0, size)
    cy = (0.5 * size + 4 * motion[:, 2]).astype(int).clip(0, size)
    return np.stack([img[y:y + size, x:x + size] for x, y in zip(cx, cy)])


SWAP_MAX_CORRELATION = 0.3  # above this, the "other" utterance moves the mouth like the real one


def swap_driver(opening: np.ndarray, voice: Voice, voices: list[Voice], seed: int,
                duration: float) -> np.ndarray:
    """Mouth opening from a *different* utterance, for the `swap_mix` degradation.

    A recording shorter than the clip always starts at 0 and some recorded voices have one file,
    so a redraw can return the very same speech (the label would then claim bad sync for a mouth
    that follows the audio). Redraw, first from the same voice, then from other voices, until the
    curve is no near copy of the original's; keep the least correlated draw otherwise.
    """
    rng = np.random.default_rng([seed, 3])
    best, best_r = None, np.inf
    for attempt in range(16):
        source = voice if attempt < 4 else voices[int(rng.integers(len(voices)))]
        other = make_utterance(source, np.random.default_rng([seed, 3, attempt]), duration)
        drive = opening_from_audio(other.audio, len(opening))
        r = max_correlation(opening, drive)
        if r < best_r:
            best, best_r = drive, r
        if r < SWAP_MAX_CORRELATION:
            break
    return best


def render_job(job: ClipJob, out_dir: Path, renderer: Renderer) -> dict:
    """Render one planned clip to `out_dir / job.file` and return its manifest row."""
    face = renderer.faces[job.face]
    voice = renderer.voices[job.voice]
    n = int(round(job.duration * FPS))
    speech = make_utterance(voice, np.random.default_rng([job.seed, 0]), job.duration)
    opening = opening_from_audio(speech.audio, n)
    p = {**labels.NEUTRAL, **job.params}
    opening = degrade.freeze_mouth(opening, p["frozen_mouth"])
    if p["swap_mix"] > 0:
        driver = swap_driver(opening, voice, list(renderer.voices.values()), job.seed,
                             job.duration)
        opening = degrade.swap_drive(opening, driver, p["swap_mix"])
    render_rng = np.random.default_rng([job.seed, 1])
    if job.condition == "no_face":
        frames = _faceless_frames(job.size, n, render_rng)
    else:
        frames = render_frames(face.resized(job.size), opening, render_rng)
    frames = degrade.degrade_frames(frames, p, np.random.default_rng([job.seed, 2]))
    has_audio = job.condition != "no_audio"
    audio = degrade.shift_audio(speech.audio, p["offset_frames"], FPS, SAMPLE_RATE)
    path = out_dir / job.file
    path.parent.mkdir(parents=True, exist_ok=True)
    media.write_video(path, frames, fps=FPS, audio=audio if has_audio else None,
                      sample_rate=SAMPLE_RATE, crf=int(p["crf"]), options=ENCODER_OPTIONS)
    return _manifest_row(job, face, voice, p, n, has_audio)


def _manifest_row(job: ClipJob, face: Face, voice: Voice, p: dict, n: int,
                  has_audio: bool) -> dict:
    task_labels = labels.compute_labels(p, has_audio=has_audio)
    if job.condition == "no_face":  # nothing to judge a talking face on
        task_labels = {t: float("nan") for t in labels.TASKS}
    row = {"file": job.file, "split": job.split, "face": face.name,
           "face_identity": face.identity, "voice": voice.identity,
           "condition": job.condition, "family": job.family, "seed": job.seed,
           "size": job.size, "fps": FPS, "n_frames": n, "has_audio": int(has_audio),
           "face_licence": face.licence, "voice_licence": voice.licence,
           "label_version": labels.LABEL_VERSION}
    row.update({k: p[k] for k in labels.PARAMS})
    row.update({k: round(v, 6) for k, v in task_labels.items()})
    return row


def _render_in_worker(args: tuple[ClipJob, Path]) -> dict:
    return render_job(*args, _PROCESS["renderer"])


def write_manifest(rows: list[dict], path: Path, columns: Optional[list[str]] = None) -> None:
    """manifest.csv, rows sorted by file, written atomically; `columns` default to the puppet
    benchmark's (the real-footage benchmark passes its own)."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["file"]):
            writer.writerow({k: ("" if isinstance(v, float) and np.isnan(v) else v)
                             for k, v in row.items()})
    tmp.replace(path)


def render_jobs(jobs: list[ClipJob], out: Path, faces: list[Face], voices: list[Voice],
                workers: int = 1, progress: bool = True) -> list[dict]:
    """Render planned clips into `out` (in parallel with `workers` processes); manifest rows."""
    from tqdm import tqdm
    args = [(job, Path(out)) for job in jobs]
    rows = []
    with tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress) as bar:
        if workers <= 1:
            renderer = Renderer.of(faces, voices)
            for job, folder in args:
                rows.append(render_job(job, folder, renderer))
                bar.update()
            return rows
        # spawn, not fork: a forked OpenCV thread pool can deadlock
        with mp.get_context("spawn").Pool(workers, _init_worker, (faces, voices)) as pool:
            for row in pool.imap_unordered(_render_in_worker, args):
                rows.append(row)
                bar.update()
    return rows


def build_dataset(out: str | Path, n: int = 600, size: int = 256, seed: int = 0,
                  workers: int = 1, faces_dir: Optional[str] = None,
                  speech_dir: Optional[str] = None, duration: float = 3.0,
                  redistributable_only: bool = False, specials: bool = False,
                  family_fraction: float = 0.3, splits: Optional[Iterable[str]] = None,
                  balanced: bool = False, progress: bool = True) -> Path:
    """Render `n` clips into `out` and write `out/manifest.csv`; returns the manifest path."""
    out = Path(out)
    faces = load_faces(faces_dir, redistributable_only=redistributable_only)
    voices = list_voices(speech_dir)
    jobs = plan_jobs(n, size, seed, Pools.make(faces, voices, seed), duration,
                     family_fraction=family_fraction, specials=specials, splits=splits,
                     balanced=balanced)
    rows = render_jobs(jobs, out, faces, voices, workers, progress)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(rows, out / "manifest.csv")
    log.info("wrote %d clips and %s", len(rows), out / "manifest.csv")
    return out / "manifest.csv"
