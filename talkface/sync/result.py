"""`SyncResult`: what talkface says about a clip's audio-visual timing.

The figures follow syncnet_python's, which every talking-face paper reports: over candidate
offsets (audio shifted by -15..+15 frames) the model's audio-visual distance is averaged over the
clip's windows; the offset is where that curve is lowest, `min_dist` its minimum (LSE-D) and
`confidence` the median minus the minimum (LSE-C). Positive offsets mean the audio is late.
Beside the clip-level figures it keeps the curve over offsets, a per-window curve over time (where
a clip drifts or breaks), the mouth opening and loudness for plotting, and a "not judged" state
with its reason (no audio, no speech, no face, too short, face in profile).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..constants import FPS

RELIABLE_CONFIDENCE = 1.0  # below this the estimated offset is not to be trusted (see the card)
# a trusted offset this large (120 ms at 25 fps) is visible: ITU-R BT.1359 puts the threshold of
# detection near 45 ms audio early and 125 ms audio late; lip sync then reads as at most "good"
VISIBLE_OFFSET_FRAMES = 3


@dataclass(frozen=True)
class SyncResult:
    judged: bool
    reason: str = ""
    offset_frames: Optional[int] = None
    confidence: Optional[float] = None  # LSE-C style: median - min of the distance curve
    min_dist: Optional[float] = None  # LSE-D style
    fps: float = FPS
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    curve: np.ndarray = field(default_factory=lambda: np.zeros(0))  # distance per offset
    window_times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # seconds
    window_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mouth_open: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,), NaN: no face
    audio_level: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) dB
    method: str = ""
    reliable_confidence: float = RELIABLE_CONFIDENCE

    @property
    def offset_ms(self) -> Optional[float]:
        return None if self.offset_frames is None else 1000.0 * self.offset_frames / self.fps

    @property
    def reliable(self) -> bool:
        """The offset estimate can be trusted: judged, and confident enough."""
        return bool(self.judged and self.confidence is not None
                    and self.confidence >= self.reliable_confidence)

    def summary(self) -> dict:
        """The figures `score --json` and the app's JSON carry per file."""
        return {"judged": self.judged, "reason": self.reason or None,
                "offset_frames": self.offset_frames,
                "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1),
                "confidence": _round(self.confidence), "min_dist": _round(self.min_dist),
                "reliable": self.reliable, "method": self.method}

    def to_dict(self) -> dict:
        return {**self.summary(), "offsets": [int(o) for o in self.offsets],
                "curve": _floats(self.curve), "window_times": _floats(self.window_times),
                "window_offsets": _floats(self.window_offsets),
                "window_confidence": _floats(self.window_confidence),
                "mouth_open": _floats(self.mouth_open), "audio_level": _floats(self.audio_level)}

    @classmethod
    def from_dict(cls, data: dict, fps: float) -> "SyncResult":
        """Rebuild from the dict a sync model stored in a bundle's info."""
        arrays = {k: np.asarray([np.nan if v is None else v for v in data.get(k) or []], float)
                  for k in ("curve", "window_times", "window_offsets", "window_confidence",
                            "mouth_open", "audio_level")}
        return cls(bool(data.get("judged")), data.get("reason") or "",
                   data.get("offset_frames"), data.get("confidence"), data.get("min_dist"), fps,
                   np.asarray(data.get("offsets") or [], int), method=data.get("method", ""),
                   reliable_confidence=data.get("reliable_confidence", RELIABLE_CONFIDENCE),
                   **arrays)


def _round(x: Optional[float], digits: int = 4) -> Optional[float]:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def _floats(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float).ravel()]
