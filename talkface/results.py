"""What scoring a clip returns: plain values, one schema for the API, the CLI's JSON and the app.

Results are frozen dataclasses; the Scorer hands out deep copies of what it remembers, so a
caller changing one result cannot change the next.

How a score reads, one rule for every caller (the app's legend states it):

- the band comes from the score alone: its place on the 1-5 scale (`BANDS`), with one exception,
  lip sync, which is at most "good" when the sync estimate is confident that audio and lips are
  `VISIBLE_OFFSET_FRAMES` or more apart (`in_context`);
- the percentile comes from the same score: the share of the checkpoint's reference clips it is
  better than (ties count half), read as "better than N% of reference clips" with N kept in
  1..99, and "beyond the best (worst) reference clip" outside their range (`reference_text`).
  Both rise with the score, so a higher score never gets a lower band or percentile; the band is
  absolute, the percentile relative to whatever the reference set holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .signals import SIGNALS, standing
from .spec import TaskSpec
from .sync.result import VISIBLE_OFFSET_FRAMES, SyncResult
from .tasks import OVERALL, OVERALL_WEIGHTS, task_row

BANDS = [(4.5, "excellent"), (3.5, "good"), (2.5, "fair"), (1.5, "poor"), (-math.inf, "bad")]
BAND_NAMES = [name for _, name in BANDS]  # best first
LIP_SYNC = "lip_sync"


@dataclass(frozen=True)
class TaskScore:
    """One task's score: `value` in the task's own range, or None when the clip does not allow
    judging it (`reason` says why). `unit` in [0, 1] and `mos` on 1-5 follow from `value`."""

    task: TaskSpec
    value: Optional[float]
    reason: str = ""
    percentile: Optional[float] = None  # share of reference clips scoring lower (0-100)
    spread: Optional[float] = None  # ensemble members' standard deviation, where there are some
    why: tuple[str, ...] = ()  # the measured signals that pull this task down, worst first
    note: str = ""  # what the score rests on or combines, where that needs saying (`in_context`)
    band_limit: Optional[str] = None  # the best band the score may read as (`in_context`)

    @property
    def judged(self) -> bool:
        return self.value is not None

    @property
    def unit(self) -> Optional[float]:
        if self.value is None:
            return None
        return (self.value - self.task.low) / (self.task.high - self.task.low)

    @property
    def mos(self) -> Optional[float]:
        return None if self.value is None else self.task.to_mos(self.value)

    @property
    def band(self) -> str:
        """The score's place on the 1-5 scale, no better than `band_limit`."""
        if self.value is None:
            return "not judged"
        band = next(name for low, name in BANDS if self.mos >= low)
        if self.band_limit and BAND_NAMES.index(band) < BAND_NAMES.index(self.band_limit):
            return self.band_limit
        return band

    @property
    def better_than(self) -> Optional[float]:
        """Share (0-100) of the reference clips this score is better than (ties count half):
        `percentile` read in the task's direction."""
        if self.percentile is None:
            return None
        return self.percentile if self.task.higher_is_better else 100.0 - self.percentile

    @property
    def reference_text(self) -> str:
        """'better than 72% of reference clips', N kept in 1..99; beyond the reference clips'
        range it says so ("" without reference percentiles)."""
        share = self.better_than
        if share is None:
            return ""
        shown = min(max(round(share), 1), 99)
        text = f"better than {shown}% of reference clips"
        if share >= 100.0:
            return text + " (beyond the best reference clip)"
        if share <= 0.0:
            return text + " (beyond the worst reference clip)"
        return text

    @property
    def meaning(self) -> str:
        """One line a reader can act on, e.g. 'good lip sync (4.1/5): Do the lips move ...'."""
        label = self.task.label or self.task.name
        if self.value is None:
            return f"{label} not judged: {self.reason}"
        text = f"{self.band} {label.lower()} ({self.mos:.1f}/5)"
        return f"{text}: {self.task.description}" if self.task.description else text

    def to_dict(self) -> dict:
        t = self.task
        return {"label": t.label or t.name, "score": self.value, "unit": self.unit,
                "mos": self.mos, "range": [t.low, t.high], "higher_is_better": t.higher_is_better,
                "band": self.band, "meaning": self.meaning, "judged": self.judged,
                "reason": self.reason or None, "percentile": self.percentile,
                "spread": self.spread, "why": list(self.why), "note": self.note or None,
                "band_limit": self.band_limit}


@dataclass(frozen=True)
class SignalValue:
    """One measured signal of a clip (`talkface.signals`): its value in the signal's unit (None
    where it cannot be measured) and where it stands among clean real recordings."""

    name: str
    value: Optional[float]
    percentile: Optional[float] = None  # share of real recordings with a lower value (0-100)

    @property
    def standing(self) -> Optional[float]:
        """0-100, 100 on the good side of real recordings (see `talkface.signals.standing`)."""
        return standing(SIGNALS[self.name], self.percentile)

    def to_dict(self) -> dict:
        s = SIGNALS[self.name]
        return {"label": s.label, "value": self.value, "unit": s.unit, "task": s.task,
                "better": s.direction, "meaning": s.description, "percentile": self.percentile,
                "standing": self.standing}


def task_score(task: TaskSpec, value: float, reason: str = "", **extra) -> TaskScore:
    """A TaskScore from a predicted value (NaN = not judged)."""
    if value is None or not np.isfinite(value):
        return TaskScore(task, None, reason or "cannot be judged", **extra)
    return TaskScore(task, float(min(max(value, task.low), task.high)), **extra)


def in_context(tasks: dict[str, TaskScore], sync: Optional[SyncResult]) -> dict[str, TaskScore]:
    """The scores with what they rest on stated (`TaskScore.note`), the one place this is decided:

    - lip sync with a sync estimate that is confident the audio is `VISIBLE_OFFSET_FRAMES` or
      more frames off reads as at most "good" (an offset that large is visible, whatever the
      mouth-audio match says); with no trusted offset, the note says the score rests on the
      mouth-audio match alone;
    - overall names the tasks it combines, and says when lip sync was left out (no audio, ...):
      such an overall is not comparable with one that includes lip sync."""
    out = dict(tasks)
    lip = out.get(LIP_SYNC)
    if lip is not None and lip.judged:
        out[LIP_SYNC] = _lip_sync_in_context(lip, sync)
    if OVERALL in out and out[OVERALL].judged:
        out[OVERALL] = replace(out[OVERALL], note=overall_note(lip))
    return out


def _lip_sync_in_context(lip: TaskScore, sync: Optional[SyncResult]) -> TaskScore:
    if sync is None or not sync.judged:
        why = f" ({sync.reason})" if sync is not None and sync.reason else ""
        return replace(lip, note=f"rests on the mouth-audio match alone: no audio offset could "
                                 f"be estimated{why}")
    if not sync.reliable:
        return replace(lip, note=f"rests on the mouth-audio match alone, without a trusted "
                                 f"offset (sync confidence {sync.confidence:.2f}, below "
                                 f"{sync.reliable_confidence:g})")
    if abs(sync.offset_frames) >= VISIBLE_OFFSET_FRAMES:
        side = "late" if sync.offset_frames > 0 else "early"
        return replace(lip, band_limit="good", note=(
            f"at most good: the sync estimate is confident the audio is "
            f"{abs(sync.offset_frames)} frames ({abs(sync.offset_ms):.0f} ms) {side}, a visible "
            f"offset"))
    return lip


def overall_note(lip_sync: Optional[TaskScore]) -> str:
    """Which tasks the overall score combines, with the task table's weights (made to sum to 1
    over the tasks left, as `talkface.measures.combine_overall` does without lip sync)."""
    def named(names):
        total = sum(OVERALL_WEIGHTS[n] for n in names)
        return ", ".join(f"{task_row(n).label.lower()} {OVERALL_WEIGHTS[n] / total:.0%}"
                         for n in names)
    if lip_sync is not None and not lip_sync.judged:
        rest = [n for n in OVERALL_WEIGHTS if n != LIP_SYNC]
        return (f"lip sync left out ({lip_sync.reason}): combines {named(rest)} only, so it is "
                f"not comparable with clips whose lip sync was judged")
    return f"combines {named(OVERALL_WEIGHTS)} (a weighted geometric mean)"


@dataclass(frozen=True)
class ScoreResult:
    """Everything `Scorer.score` found out about one clip."""

    file: str
    tasks: dict[str, TaskScore]
    warnings: tuple[str, ...]
    attention: dict[str, np.ndarray]  # "temporal": (T,), "cross": pooled (<= 200 x 200)
    sync: Optional[SyncResult]
    valid: np.ndarray  # (T,) bool: a face was found
    fps: float
    info: dict = field(default_factory=dict)
    error: Optional[str] = None  # set instead of scores by `score_many` for a file that failed
    identity: dict = field(default_factory=dict)  # consistency, reference similarity
    out_of_distribution: Optional[str] = None  # why the inputs look unlike the training data
    signals: dict[str, SignalValue] = field(default_factory=dict)  # measured, `talkface.signals`
    lse: Optional[dict] = None  # SyncNet's LSE-D/LSE-C/offset when weights were given (sync.lse)
    timeline: dict[str, np.ndarray] = field(default_factory=dict)  # (T,) `signals.frame_course`

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def scores(self) -> dict[str, Optional[float]]:
        """{task: value in the task's range, or None where not judged}."""
        return {name: s.value for name, s in self.tasks.items()}

    @property
    def n_frames(self) -> int:
        return int(self.valid.shape[0])

    @property
    def boxes(self) -> list:
        """The scored face's box per frame ([x0, y0, x1, y1] source pixels, or None)."""
        return list(self.info.get("boxes") or [])

    def attended_frames(self, k: int = 3, most: bool = True) -> list[int]:
        """Indices of the k most (or least) attended frames among frames with a face."""
        weights = self.attention.get("temporal")
        candidates = np.flatnonzero(self.valid)
        if weights is None or candidates.size == 0:
            return []
        order = candidates[np.argsort(weights[candidates], kind="stable")]
        picked = order[::-1][:k] if most else order[:k]
        return [int(i) for i in picked]

    def to_dict(self, detail: bool = True) -> dict:
        """JSON-able, one schema for the CLI and the app. `detail=False` keeps the per-file
        summary: file, scores, mos, band, sync figures, paper-standard LSE (when SyncNet
        weights were given), identity, warnings, error."""
        ok = self.ok
        out = {"file": self.file, "scores": self.scores if ok else None,
               "mos": {n: s.mos for n, s in self.tasks.items()} if ok else None,
               "band": {n: s.band for n, s in self.tasks.items()} if ok else None,
               "percentile": {n: s.percentile for n, s in self.tasks.items()} if ok else None,
               "sync": self.sync.summary() if ok and self.sync is not None else None,
               "lse": dict(self.lse) if ok and self.lse is not None else None,
               "identity": dict(self.identity) if ok else None,
               "face": self.face_summary() if ok else None,
               "out_of_distribution": self.out_of_distribution,
               "signals": {n: s.value for n, s in self.signals.items()} if ok else None,
               "why": {n: list(s.why) for n, s in self.tasks.items()} if ok else None,
               "warnings": list(self.warnings), "error": self.error}
        if detail and ok:
            out["tasks"] = {name: s.to_dict() for name, s in self.tasks.items()}
            out["signal_detail"] = {name: s.to_dict() for name, s in self.signals.items()}
            out["fps"] = self.fps
            out["n_frames"] = self.n_frames
            out["valid"] = [bool(v) for v in self.valid]
            out["attention"] = {k: np.asarray(v).tolist() for k, v in self.attention.items()}
            out["sync_detail"] = self.sync.to_dict() if self.sync is not None else None
            out["info"] = {k: v for k, v in self.info.items()
                           if k not in ("warnings", "boxes", "identity", "sync", "repeat_diff")}
            out["boxes"] = self.boxes
            out["timeline"] = {k: _floats(v) for k, v in self.timeline.items()}
        return out

    def face_summary(self) -> dict:
        return {"scored_track": self.info.get("scored_track"),
                "choice": self.info.get("face_choice"),
                "tracks": self.info.get("tracks", []), "pose": self.info.get("pose")}

    @classmethod
    def failed(cls, file: str, error: str) -> "ScoreResult":
        return cls(str(file), {}, (), {}, None, np.zeros(0, bool), 0.0, error=error)


def _floats(values) -> list:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in np.asarray(values, float)]


# --- files -------------------------------------------------------------------------------------

def csv_row(record: dict) -> dict:
    """One CSV row per file from its `ScoreResult.to_dict()` record: scores (empty where not
    judged), the sync figures, SyncNet's LSE figures where there are some, identity, every
    measured signal, the signals behind each task (`why_<task>`), error and warnings."""
    sync, lse = record.get("sync") or {}, record.get("lse")
    lse_columns = {"lse_d": lse["lse_d"], "lse_c": lse["lse_c"],
                   "lse_offset_frames": lse["offset_frames"]} if lse else {}
    return {"file": record["file"], **(record["scores"] or {}),
            **{f"band_{k}": v for k, v in (record.get("band") or {}).items()},
            **{f"percentile_{k}": v for k, v in (record.get("percentile") or {}).items()},
            **{f"sync_{k}": sync.get(k) for k in ("offset_frames", "confidence", "judged",
                                                  "reliable")},
            **lse_columns,
            "identity_consistency": (record.get("identity") or {}).get("consistency"),
            **{f"signal_{k}": v for k, v in (record.get("signals") or {}).items()},
            **{f"why_{k}": "; ".join(v) for k, v in (record.get("why") or {}).items()},
            "error": record["error"], "warnings": "; ".join(record["warnings"])}


def write_records(records: list[dict], json_path=None, csv_path=None) -> None:
    """The per-file results as JSON (the records as they are) and as CSV (`csv_row`), the
    one format the CLI's `score` / `merge`, Compare's clip table and the app's exports share."""
    import json
    if json_path:
        Path(json_path).write_text(json.dumps(records, indent=1))
    if csv_path:
        import pandas as pd  # here: a run without CSV does not pay its import (0.3 s)
        pd.DataFrame([csv_row(r) for r in records]).to_csv(csv_path, index=False,
                                                           float_format="%.4f")


def no_face_message(name: str, info: Optional[dict] = None) -> str:
    """Why a clip without a face cannot be scored, from what the face stage saw
    (`info["no_face"]`: frames counted by reason): the most common reason among the frames, so a
    size hint only where faces were seen and were too small."""
    head = f"{Path(name).name}: no face was found in any frame, so the clip cannot be scored"
    seen = (info or {}).get("no_face") or {}
    reasons = {k: v for k, v in (seen.get("reasons") or {}).items() if v}
    if not reasons:
        return head
    reason = max(reasons, key=lambda k: (reasons[k], k == "none"))
    share = reasons[reason] / max(seen.get("frames") or sum(reasons.values()), 1)
    if reason == "small":
        largest = seen.get("small_face_px") or 0
        return (f"{head}: the faces seen were too small (the largest about {largest:.0f} px tall; "
                f"talkface needs a face of at least about 32 pixels)")
    if reason in ("turned", "unfitted"):
        return (f"{head}: a face was seen in {share:.0%} of frames but turned too far from the "
                f"camera (or too unclear) for its landmarks to be fitted")
    if reason == "dark":
        return f"{head}: the picture is too dark to see a face in ({share:.0%} of frames)"
    return head
