"""Measured signals: what the picture and its motion show, each with a name, unit, range and
direction, computed from a clip's features (pyiqa-style: every measure says what it means).

The learned scores say how good a clip is; the signals say what is wrong with it, in units a
researcher can check by eye. They are read from the per-frame columns the face stage computes on
canonical crops (`talkface.features.mesh_backend`: sharpness, noise, blockiness, brightness,
colour and frame differences of the face and mouth crops, pose-free landmarks, pose), plus the
clip's media facts, so they cost nothing beyond extraction and mean the same at any resolution.

Each signal names the task it informs. `talkface.calibration` keeps, per signal, the percentiles
of clean real recordings the checkpoint saw; a clip's signal is then also read as a percentile
("face detail below 97% of real recordings"), and each task lists the two or three signals that
pull it down furthest (`explain`).

    values = measure_signals(bundle)          # {name: float or None}
    SIGNALS["freeze_share"].description

References: freezes on the source timeline (repeats beyond what resampling a lower frame rate to
25 fps makes) after the frame-repeat detection of video-quality toolkits such as VQMT's; blink
rate from the eye aspect ratio (Soukupova & Cech, CVWW 2016); flicker as the high-frequency part
of the face's brightness (as in the temporal-flickering measure of EvalCrafter / VBench).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np

from .constants import FPS
from .measures import FREEZE_DIFF, highpass, speech_mask

Direction = Literal["higher", "lower", "typical"]  # "typical": far from real people either way
# inter-ocular distance in the canonical face crop: crops.FACE_SIZE * FACE_IOD = 40.3, rounded to
# the value the shipped signal reference was measured with
FACE_IOD_PX = 40.0
BOX_PER_IOD = 2.6  # a detected face box is about this many inter-ocular distances tall
REPEAT_DIFF = 0.07  # change (differences over edges, `repeat_diff`) below which a frame repeats...
REPEAT_RELATIVE = 0.5  # ...and below this share of the motion around it (90th pct. within
LOCAL = 15  # this many frames either side)
MIN_FRAMES = 8  # fewer valid frames than this: no signal


@dataclass(frozen=True)
class Signal:
    """One measured signal. `compute(bundle)` returns the clip's value or None (not measurable:
    a missing column, too few frames, no speech for a speech-only signal). A signal without
    `compute` is read by the checkpoint (`generated_look`, `talkface.realism`): `talkface.predict`
    adds it to the clip's signals where the checkpoint has the model for it."""

    name: str
    label: str
    task: str
    unit: str
    low: float
    high: float
    direction: Direction
    description: str
    compute: Optional[Callable[["object"], Optional[float]]]

    @property
    def higher_is_better(self) -> Optional[bool]:
        return {"higher": True, "lower": False}.get(self.direction)


def _column(bundle, name: str) -> Optional[np.ndarray]:
    """Column `name` on the frames with a face (None when the backend has no such column)."""
    spec = bundle.spec
    if name in spec.visual_names:
        values = bundle.visual_column(name)
    elif name in spec.audio_names:
        values = bundle.audio_column(name)
    else:
        return None
    return np.asarray(values, np.float64)[np.asarray(bundle.valid, bool)]


def _enough(x: Optional[np.ndarray]) -> bool:
    return x is not None and x.size >= MIN_FRAMES


def native_iod(bundle) -> Optional[float]:
    """The face's inter-ocular distance in source pixels (median over the clip), from the
    scored face's boxes."""
    boxes = [b for b in bundle.info.get("boxes") or [] if b]
    if not boxes:
        return None
    heights = np.array([b[3] - b[1] for b in boxes], float)
    return float(np.median(heights)) / BOX_PER_IOD


def resolution_loss(iod_px: Optional[float]) -> float:
    """How much sharpness (log Laplacian energy) a face loses only because the source has fewer
    pixels than the canonical crop: the crop is then an enlargement by s = 40 / iod, and the
    Laplacian's energy of an enlarged band-limited image falls as s^-4. 0 for faces at or above
    the crop's scale."""
    if not iod_px or iod_px >= FACE_IOD_PX:
        return 0.0
    return 4.0 * math.log(FACE_IOD_PX / iod_px)


# --- visual -----------------------------------------------------------------------------------

def face_sharpness(bundle) -> Optional[float]:
    """Median sharpness of the canonical face crop (log Laplacian energy) as it looks: a face
    smaller than the crop is enlarged into it and reads soft."""
    s = _column(bundle, "face_sharpness")
    return float(np.median(s)) if _enough(s) else None


def face_detail(bundle) -> Optional[float]:
    """Median face-crop sharpness plus what the source's resolution alone takes away: a soft or
    blurred face reads low, a small but sharp face does not."""
    frames = _face_detail_frames(bundle)
    return None if frames is None else float(np.median(frames))


def _face_detail_frames(bundle) -> Optional[np.ndarray]:
    s = _column(bundle, "face_sharpness")
    return s + resolution_loss(native_iod(bundle)) if _enough(s) else None


def _info_series(bundle, key: str) -> Optional[np.ndarray]:
    """A per-frame list the face stage put in the bundle's info, on the frames with a face."""
    values = bundle.info.get(key)
    if values is None:
        return None
    series = np.array([np.nan if v is None else v for v in values], float)
    return series[np.asarray(bundle.valid, bool)[:len(series)]]


def _mouth_detail_frames(bundle) -> Optional[np.ndarray]:
    """Mouth detail (below) on each frame with a face."""
    m = _column(bundle, "mouth_sharpness")
    reference = _info_series(bundle, "upper_sharpness")
    if reference is None or reference.size != (0 if m is None else m.size):
        reference = _column(bundle, "face_sharpness")
    if not _enough(m) or reference is None:
        return None
    return m - reference


def mouth_detail(bundle) -> Optional[float]:
    """Mouth-crop sharpness minus the sharpness of the face's upper half (eyes and brows; log
    ratio of Laplacian energies): teeth and lip texture keep it near real people's; a blurred or
    low-resolution pasted mouth (the dubbing generators' 96 px mouth) drops it. Without the upper
    half (other backends) the whole face crop is the reference."""
    frames = _mouth_detail_frames(bundle)
    return None if frames is None else float(np.nanmedian(frames))


def _median_column(name: str, unit: Callable = float) -> Callable:
    """The clip's median of a column, back in its unit (the crop statistics store the log of
    blockiness and log1p of noise)."""
    def compute(bundle) -> Optional[float]:
        x = _column(bundle, name)
        return float(unit(np.median(x))) if _enough(x) else None
    return compute


def colour_step(bundle) -> Optional[float]:
    """Distance between the mouth region's and the face's colour and brightness (opponent
    colour means and mean grey, in grey levels / 255): a pasted lower face whose colour or
    light does not match the head moves it away from real people's (whose lips are redder)."""
    parts = []
    for stat in ("chroma_rg", "chroma_by", "brightness"):
        m, f = _column(bundle, f"mouth_{stat}"), _column(bundle, f"face_{stat}")
        if not _enough(m) or f is None:
            return None
        parts.append(float(np.median(m - f)))
    return float(np.hypot.reduce(parts))


# --- temporal ---------------------------------------------------------------------------------

def repeated_frames(bundle) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(repeated (T,) bool, counted (T,) bool): frames with a face whose face region repeats the
    previous frame's, among the frames that count: those after a frame with a face that show a
    new source frame (a source below 25 fps is put on the 25 fps grid by holding each frame,
    and those held frames are not the source's fault).

    A repeat changes from the previous frame by less than REPEAT_DIFF (the 99.5th percentile of
    the luma difference over that of the edges: re-encoding noise, on a sharp face or a soft one)
    and by less than REPEAT_RELATIVE of the change around it (the 90th percentile within LOCAL
    frames either side), so a calm stretch of a real speaker, whose neighbours are as calm, does
    not count; a clip whose frames nearly all lie below REPEAT_DIFF is a still
    picture and every such frame counts. The `mesh` backend measures the difference with one
    crop for both frames (`repeat_diff`); other backends fall back to the crop statistics'
    frame difference and the frame-rate cadence."""
    valid = np.asarray(bundle.valid, bool)
    counted = np.zeros_like(valid)
    counted[1:] = valid[1:] & valid[:-1]
    if "repeat_diff" in bundle.info:
        diff = np.array([np.nan if d is None else d for d in bundle.info["repeat_diff"]], float)
        counted &= np.isfinite(diff)
        counted[[i for i in bundle.info.get("held_frames", []) if i < len(counted)]] = False
    elif "face_frame_diff" in bundle.spec.visual_names:
        diff = np.asarray(bundle.visual_column("face_frame_diff"), np.float64)
    else:
        return None
    if counted.sum() < MIN_FRAMES:
        return None
    floor = REPEAT_DIFF if "repeat_diff" in bundle.info else FREEZE_DIFF
    low = counted & (diff < floor)
    if np.percentile(diff[counted], 90) < floor:  # a still picture throughout
        return low, counted
    padded = np.pad(np.where(counted, diff, np.nan), LOCAL, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * LOCAL + 1)
    local = _nanpercentile_rows(windows, 90)
    return low & (diff < REPEAT_RELATIVE * np.nan_to_num(local)), counted


def _nanpercentile_rows(rows: np.ndarray, q: float) -> np.ndarray:
    """`np.nanpercentile(rows, q, axis=1)` to the last bit (NaN for a row of NaNs), without its
    per-row Python loop: rows sorted (NaNs last), then one percentile per count of numbers."""
    ordered = np.sort(rows, axis=1)
    counts = (~np.isnan(ordered)).sum(axis=1)
    out = np.full(len(rows), np.nan)
    for n in np.unique(counts[counts > 0]):
        pick = counts == n
        out[pick] = np.percentile(ordered[pick, :n], q, axis=1)
    return out


def _resampling_repeats(bundle) -> float:
    """Share of frames that repeat only because a source below 25 fps was put on the 25 fps grid
    (for backends that do not report which frames were held)."""
    if "held_frames" in bundle.info:
        return 0.0
    source_fps = float(bundle.info.get("source_fps") or 0.0)
    fps = float(bundle.spec.fps or FPS)
    return max(0.0, 1.0 - source_fps / fps) if 0 < source_fps < fps else 0.0


def freeze_share(bundle) -> Optional[float]:
    """Share of frames that repeat the previous one: frozen or dropped frames in the source."""
    found = repeated_frames(bundle)
    if found is None:
        return None
    repeats, counted = found
    cadence = _resampling_repeats(bundle)
    observed = float(repeats.sum()) / float(counted.sum())
    return float(max(0.0, observed - cadence) / (1.0 - cadence))


def longest_freeze(bundle) -> Optional[float]:
    """The longest run of repeated frames, in seconds (held frames of a low frame-rate source
    continue a run but do not start one)."""
    found = repeated_frames(bundle)
    if found is None:
        return None
    repeats, counted = found
    longest = run = 0
    for r, c in zip(repeats, counted):
        run = run + 1 if r else (run if not c and run else 0)
        longest = max(longest, run)
    return longest / float(bundle.spec.fps or FPS)


def mouth_stall(bundle) -> Optional[float]:
    """Share of speech frames in stretches of at least 0.2 s where the lips do not move (the gap
    between them changes by under 1% of the inter-ocular distance per frame): a mouth that stops
    while the voice goes on."""
    found = stalled_frames(bundle)
    if found is None:
        return None
    stalled, frames = found
    return float(stalled.sum() / frames.sum())


def stalled_frames(bundle) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(stalled (T,) bool, speech frames with a face (T,) bool) for `mouth_stall`."""
    if "mouth_velocity" not in bundle.spec.visual_names or "log_rms" not in bundle.spec.audio_names:
        return None
    valid = np.asarray(bundle.valid, bool)
    speech = speech_mask(np.asarray(bundle.audio_column("log_rms"), float))  # dB
    frames = valid & speech
    if frames.sum() < 2 * MIN_FRAMES or bundle.unjudged.get("lip_sync"):
        return None
    still = frames & (np.abs(bundle.visual_column("mouth_velocity")) < 0.01)
    run_min = int(round(0.2 * (bundle.spec.fps or FPS)))
    stalled, run = np.zeros_like(still), 0
    for i, s in enumerate(still):
        run = run + 1 if s else 0
        if run >= run_min:
            stalled[i - run + 1:i + 1] = True
    return stalled, frames


def _fast(bundle, *names: str, width: int = 5) -> Optional[np.ndarray]:
    """On each frame with a face, the size of the fast part (what a `width`-frame average does
    not follow) of one column, or of several together (root of the sum of squares). A jitter
    or flicker signal is the RMS of this over the clip."""
    parts = [_column(bundle, name) for name in names]
    if any(not _enough(x) for x in parts):
        return None
    return np.sqrt(np.sum([highpass(x, width) ** 2 for x in parts], axis=0))


def _rms(x: Optional[np.ndarray]) -> Optional[float]:
    return None if x is None else float(np.sqrt(np.mean(np.square(x))))


def _jitter(bundle, name: str) -> Optional[float]:
    return _rms(_fast(bundle, name))


def head_jitter(bundle) -> Optional[float]:
    """RMS of the fast part (what a 5-frame average does not follow) of the head's per-frame
    shift, in inter-ocular distances: shake, and a tracked face that trembles."""
    return _jitter(bundle, "face_shift")


def mouth_jitter(bundle) -> Optional[float]:
    """The same for the lips' movement against the head (pose-free landmarks): a pasted mouth
    region that trembles on a still head."""
    return _jitter(bundle, "mouth_velocity")


def flicker(bundle) -> Optional[float]:
    """RMS of the fast part of the face's brightness and colour (grey levels / 255): flicker of
    light or texture."""
    return _rms(_fast(bundle, *FLICKER_COLUMNS))


FLICKER_COLUMNS = ("face_brightness", "face_chroma_rg", "face_chroma_by")


def blink_rate(bundle) -> Optional[float]:
    """Blinks per minute: dips of the eye aspect ratio (both eyes) 8% or more below its running
    median over one second, lasting 1-12 frames (FaceMesh's eyelids close only part of the way
    on a blink, so an absolute threshold misses most). Real people blink about 10-20 times a
    minute; some generators never do."""
    blinks = blink_frames(bundle)
    if blinks is None:
        return None
    starts = np.flatnonzero(np.diff(np.concatenate([[0], blinks.astype(np.int8)])) == 1)
    return float(starts.size * 60.0 * (bundle.spec.fps or FPS) / blinks.size)


def blink_frames(bundle) -> Optional[np.ndarray]:
    """On each frame with a face: True inside a blink (a dip of the eye aspect ratio as
    `blink_rate` counts them)."""
    from scipy.ndimage import median_filter
    r, l = _column(bundle, "ear_right"), _column(bundle, "ear_left")
    if not _enough(r) or l is None or r.size < 2 * FPS:
        return None
    ear = (r + l) / 2
    closed = ear < 0.92 * median_filter(ear, size=int(FPS), mode="nearest")
    blinking, run = np.zeros_like(closed), 0
    for i, c in enumerate(np.append(closed, False)):
        if c:
            run += 1
            continue
        if 1 <= run <= 12:
            blinking[i - run:i] = True
        run = 0
    return blinking


def head_motion(bundle) -> Optional[float]:
    """Standard deviation of head pose (yaw, pitch, roll together), in degrees: a stiff head
    reads low, a swaying one high."""
    poses = [_column(bundle, c) for c in ("yaw", "pitch", "roll")]
    if any(not _enough(p) for p in poses):
        return None
    return float(90.0 * np.sqrt(sum(np.var(p) for p in poses)))


def audio_offset(bundle) -> Optional[float]:
    """How many frames the audio is shifted from the mouth (either way), where the clip's sync
    estimate is reliable (`SyncResult.reliable`, from the sync model's figures stored in
    `info["sync"]`); 0 where it is not (no trusted offset is no evidence of one); None where lip
    sync could not be judged."""
    from .sync.result import SyncResult
    stored = bundle.info.get("sync")
    sync = SyncResult.from_dict(stored, bundle.spec.fps or FPS) if stored else None
    if sync is None or not sync.judged or sync.offset_frames is None:
        return None
    return float(abs(sync.offset_frames)) if sync.reliable else 0.0


def identity_drift(bundle) -> Optional[float]:
    """1 - the cosine similarity of the face descriptors at the clip's start and end (dlib's
    ResNet): the face turning into someone else."""
    consistency = (bundle.info.get("identity") or {}).get("consistency")
    return None if consistency is None else float(1.0 - consistency)


SIGNAL_LIST = (
    Signal("face_detail", "Face detail", "visual_quality", "log Laplacian energy", 0.0, 10.0,
           "higher", "sharpness of the face at a canonical scale, resolution loss added back",
           face_detail),
    Signal("mouth_detail", "Mouth detail", "visual_quality", "log ratio", -4.0, 4.0, "higher",
           "sharpness of the mouth against the face (teeth, lip texture)", mouth_detail),
    Signal("blockiness", "Blockiness", "visual_quality", "ratio", 1.0, 3.0, "lower",
           "luminance jumps on the 8x8 coding grid over jumps elsewhere (1 = none)",
           _median_column("face_blockiness", np.exp)),
    Signal("noise", "Noise", "visual_quality", "grey levels", 0.0, 20.0, "lower",
           "noise sigma of the face crop (Immerkaer)", _median_column("face_noise", np.expm1)),
    Signal("colour_step", "Colour step", "visual_quality", "grey levels / 255", 0.0, 0.3,
           "typical", "colour and light of the mouth region against the face", colour_step),
    Signal("freeze_share", "Frozen frames", "temporal_quality", "share of frames", 0.0, 1.0,
           "lower", "frames that repeat the previous one beyond the frame-rate cadence",
           freeze_share),
    Signal("longest_freeze", "Longest freeze", "temporal_quality", "seconds", 0.0, 10.0,
           "lower", "the longest run of repeated frames", longest_freeze),
    Signal("mouth_stall", "Mouth stalls", "temporal_quality", "share of speech", 0.0, 1.0,
           "lower", "speech frames in stretches of 0.2 s or more with still lips", mouth_stall),
    Signal("head_jitter", "Head jitter", "temporal_quality", "inter-ocular distances", 0.0,
           0.2, "lower", "fast trembling of the head's position", head_jitter),
    Signal("mouth_jitter", "Mouth jitter", "temporal_quality", "inter-ocular distances", 0.0,
           0.1, "lower", "fast trembling of the lips against the head", mouth_jitter),
    Signal("flicker", "Flicker", "temporal_quality", "grey levels / 255", 0.0, 0.1, "lower",
           "fast changes of the face's brightness and colour", flicker),
    Signal("blink_rate", "Blink rate", "temporal_quality", "blinks per minute", 0.0, 60.0,
           "typical", "eye blinks per minute", blink_rate),
    Signal("head_motion", "Head motion", "temporal_quality", "degrees", 0.0, 30.0, "typical",
           "how much the head turns and nods", head_motion),
    Signal("identity_drift", "Identity drift", "visual_quality", "1 - cosine", 0.0, 1.0, "lower",
           "how far the face's identity moves between the clip's start and end", identity_drift),
    Signal("audio_offset", "Audio offset", "lip_sync", "frames", 0.0, 15.0, "lower",
           "how far the audio is shifted from the mouth, where the sync estimate is confident",
           audio_offset),
    Signal("generated_look", "Generated look", "overall", "probability", 0.0, 1.0, "lower",
           "how much the face's pooled features look like a generator output rather than a real "
           "recording (the checkpoint's realism model)", None),
)
SIGNALS = {s.name: s for s in SIGNAL_LIST}
if len(SIGNALS) != len(SIGNAL_LIST):  # one home per signal: a name defined twice is a bug
    raise ValueError("a signal name is defined twice")


CONCERN = 10.0  # a signal whose standing is below this (worse than 90% of real recordings) is named
MIN_COST = 0.02  # ...as is one whose penalty takes at least this much off the task


def standing(signal: Signal, percentile: Optional[float]) -> Optional[float]:
    """0-100: how a value stands among clean real recordings, 100 the best side: the percentile
    for a higher-is-better signal, 100 minus it for a lower-is-better one, and for a signal
    that should be typical, 100 at the real recordings' median falling to 0 at either end."""
    if percentile is None:
        return None
    if signal.direction == "higher":
        return percentile
    if signal.direction == "lower":
        return 100.0 - percentile
    return 100.0 - 2.0 * abs(percentile - 50.0)


def explain(task: str, standings: dict[str, Optional[float]], most: int = 3,
            costs: Optional[dict[str, float]] = None) -> tuple[str, ...]:
    """The signals that pull `task` down, at most `most` of them: those that cost it something
    (`costs`, {signal: what the checkpoint's penalty takes off this task}, the largest first;
    a signal's penalty can start before it is a concern, as the generated look's does), then
    the task's own signals standing below CONCERN, worst first (none when the clip looks like
    real recordings on every signal)."""
    paying = sorted((-cost, name) for name, cost in (costs or {}).items() if cost >= MIN_COST)
    named = [name for _, name in paying]
    worst = sorted((value, name) for name, value in standings.items()
                   if value is not None and value < CONCERN and SIGNALS[name].task == task)
    named += [name for _, name in worst if name not in named]
    return tuple(named[:most])


def measure_signals(bundle) -> dict[str, Optional[float]]:
    """Every signal of one clip (None where it cannot be measured), in table order; one read
    by the checkpoint is None here (`talkface.predict` fills it in)."""
    out = {}
    for signal in SIGNAL_LIST:
        if signal.compute is None:
            out[signal.name] = None
            continue
        value = signal.compute(bundle)
        out[signal.name] = None if value is None or not np.isfinite(value) else round(value, 6)
    return out


# --- on the clip's time axis ------------------------------------------------------------------

@dataclass(frozen=True)
class Course:
    """A signal's time course: `name` keys `frame_course`'s output, `signal` the clip-level
    signal it is read into (`reduce` says how), `kind` "level" (a value per frame) or "event"
    (1 on the frames where something happens, 0 on the others it was looked for on)."""

    name: str
    label: str
    unit: str
    signal: str
    reduce: str
    kind: Literal["level", "event"] = "level"


COURSES = (
    Course("face_detail", "Face detail", "log Laplacian energy", "face_detail", "median"),
    Course("mouth_detail", "Mouth detail", "log ratio", "mouth_detail", "median"),
    Course("repeated", "Repeated frames", "1 = repeats the previous", "freeze_share",
           "share, beyond the frame-rate cadence", "event"),
    Course("mouth_stall", "Mouth stalls", "1 = still lips in speech", "mouth_stall",
           "share of speech", "event"),
    Course("head_jitter", "Head jitter", "inter-ocular distances", "head_jitter", "RMS"),
    Course("mouth_jitter", "Mouth jitter", "inter-ocular distances", "mouth_jitter", "RMS"),
    Course("flicker", "Flicker", "grey levels / 255", "flicker", "RMS"),
    Course("blink", "Blinks", "1 = eyes closing", "blink_rate", "count per minute", "event"),
    Course("identity", "Identity similarity", "cosine to the first sampled face",
           "identity_drift", "1 - the lowest similarity between samples", "level"),
)


def _on_frames(bundle, values: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Values on the frames with a face -> (T,) float32, NaN on the others."""
    if values is None:
        return None
    valid = np.asarray(bundle.valid, bool)
    out = np.full(valid.shape, np.nan, np.float32)
    out[valid] = values
    return out


def _events(found: Optional[tuple[np.ndarray, np.ndarray]]) -> Optional[np.ndarray]:
    """(happened (T,), looked at (T,)) -> (T,) 1 / 0 where looked at, NaN elsewhere."""
    if found is None:
        return None
    happened, looked = found
    return np.where(looked, happened.astype(np.float32), np.nan).astype(np.float32)


def identity_course(bundle) -> Optional[np.ndarray]:
    """(T,): the cosine similarity of the face at each frame the identity descriptor was taken
    (`info["identity"]`) to the first such face, NaN between them."""
    entry = bundle.info.get("identity") or {}
    frames, vectors = entry.get("frames") or [], entry.get("descriptors") or []
    if len(frames) < 2 or len(vectors) != len(frames):
        return None
    from .faces.identity import cosine
    out = np.full(len(bundle.valid), np.nan, np.float32)
    first = np.asarray(vectors[0], float)
    for frame, vector in zip(frames, vectors):
        if 0 <= frame < out.size:
            out[frame] = cosine(first, np.asarray(vector, float))
    return out


def frame_course(bundle) -> dict[str, np.ndarray]:
    """The time course of every signal that has one (`COURSES`), each (T,) float32 on the
    clip's frames, NaN where it was not measured (no face, not looked for); a course that cannot
    be had (a missing column, too few frames) is left out. These are the per-frame values the
    clip-level signals are read from (each Course's `reduce`), not a second measurement."""
    found = {
        "face_detail": _on_frames(bundle, _face_detail_frames(bundle)),
        "mouth_detail": _on_frames(bundle, _mouth_detail_frames(bundle)),
        "repeated": _events(repeated_frames(bundle)),
        "mouth_stall": _events(stalled_frames(bundle)),
        "head_jitter": _on_frames(bundle, _fast(bundle, "face_shift")),
        "mouth_jitter": _on_frames(bundle, _fast(bundle, "mouth_velocity")),
        "flicker": _on_frames(bundle, _fast(bundle, *FLICKER_COLUMNS)),
        "blink": _on_frames(bundle, None if (b := blink_frames(bundle)) is None
                            else b.astype(np.float32)),
        "identity": identity_course(bundle),
    }
    return {c.name: found[c.name] for c in COURSES if found[c.name] is not None}


def freeze_spans(repeated: np.ndarray, fps: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of repeated frames in a `frame_course` "repeated"
    series (frame k covers [k, k + 1) / fps)."""
    hit = np.nan_to_num(np.asarray(repeated, float)) > 0.5
    edges = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(float(a) / fps, float(b) / fps) for a, b in zip(starts, ends)]
