"""The Score tab's face picker and reference portrait, computed without Gradio.

Both are options of the one scoring call (`Scorer.score(video, face=..., reference=...)`, as the
CLI's `--face` and `--reference`): the picker lists the face tracks a scored clip holds
(`ScoreResult.face_summary()`), with a crop of each from a middle frame, so the user can ask for
another one; the reference line shows the identity similarity (CSIM) to the portrait.
"""
from __future__ import annotations

import html
from typing import Optional

import numpy as np

from ..errors import TalkfaceError

AUTO = "auto"  # the Scorer's own choice: the speaking face, else the largest
AUTO_LABEL = "automatic (the speaking face)"
PICKER_HINT = ("automatic scores the face whose lips move with the speech, else the largest; "
               "after scoring, every face found is listed")
REFERENCE_HINT = ("A photo of the person the clip should show (e.g. the generator's source "
                  "portrait): the scores then include identity similarity (CSIM).")
CSIM_MEANING = ("cosine similarity of face-identity embeddings (dlib), the clip's face against "
                "the portrait: 1 = identical; above 0.82 counts as the same person")


def face_value(choice) -> Optional[int]:
    """The dropdown's value -> the Scorer's `face` (None: its own choice)."""
    if choice in (None, "", AUTO):
        return None
    try:
        return int(choice)
    except (TypeError, ValueError):
        raise TalkfaceError(f"{choice!r} is not a face of this clip; pick one from the list") \
            from None


def _largest(tracks: list[dict]) -> Optional[int]:
    if not tracks:
        return None
    return max(tracks, key=lambda t: t.get("frames", 0) * t.get("height_px", 0))["id"]


def face_label(track: dict, fps: float, scored: Optional[int], largest: Optional[int]) -> str:
    """'face 2 · 0.0-3.0 s · 118 px · largest · scored'."""
    first, last = track.get("first", 0), track.get("last", 0)
    parts = [f"face {track['id']}", f"{first / fps:.1f}-{(last + 1) / fps:.1f} s" if fps else "",
             f"{track.get('height_px', 0):.0f} px high"]
    parts += ["largest"] if track["id"] == largest else []
    parts += ["scored"] if track["id"] == scored else []
    return " · ".join(p for p in parts if p)


def face_choices(result) -> list[tuple[str, str]]:
    """(label, value) pairs for the picker: automatic, then each face the clip holds."""
    faces = result.face_summary() if result is not None and result.ok else {}
    tracks = faces.get("tracks") or []
    largest = _largest(tracks)
    return [(AUTO_LABEL, AUTO)] + [
        (face_label(t, result.fps, faces.get("scored_track"), largest), str(t["id"]))
        for t in tracks]


def picker_note(result) -> str:
    """One line under the picker: how many faces, which was scored and why."""
    faces = result.face_summary() if result is not None and result.ok else {}
    tracks = faces.get("tracks") or []
    if len(tracks) < 2:
        return "One face in this clip: nothing to choose." if tracks else ""
    return (f"{len(tracks)} faces found; face {faces.get('scored_track')} was scored: "
            f"{faces.get('choice')}. Pick another and press Score to score it.")


def face_crops(result, path: str, side: int = 480, margin: float = 0.25) \
        -> list[tuple[int, np.ndarray, str]]:
    """A crop of each face from a middle frame of its track, as (face id, image, "face N"); the
    whole frame where the track's box is not recorded (features cached before it was)."""
    from ..api import read_frames
    faces = result.face_summary() if result is not None and result.ok else {}
    tracks = faces.get("tracks") or []
    if len(tracks) < 2:
        return []
    at = {t["id"]: t.get("frame", (t.get("first", 0) + t.get("last", 0)) // 2) for t in tracks}
    frames = read_frames(path, at.values(), result.fps, max_side=side)
    size = (int(result.info.get("width") or 0), int(result.info.get("height") or 0))
    items = []
    for track in tracks:
        frame = frames.get(at[track["id"]])
        if frame is None:
            continue
        box = track.get("box")
        if box is not None and max(size):
            frame = _crop(frame, box, max(frame.shape[:2]) / max(size), margin)
        scored = " (scored)" if track["id"] == faces.get("scored_track") else ""
        items.append((track["id"], frame, f"face {track['id']}{scored}"))
    return items


def _crop(frame: np.ndarray, box, scale: float, margin: float) -> np.ndarray:
    x0, y0, x1, y1 = (v * scale for v in box)
    pad = margin * max(x1 - x0, y1 - y0)
    h, w = frame.shape[:2]
    left, top = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    right, bottom = int(min(w, x1 + pad)), int(min(h, y1 + pad))
    if right - left < 4 or bottom - top < 4:
        return frame
    return np.ascontiguousarray(frame[top:bottom, left:right])


def identity_html(result, asked: bool = True) -> str:
    """The identity similarity to the reference portrait (CSIM) with one line on what it is;
    "" when no portrait was given (`asked` False)."""
    identity = result.identity if result is not None and result.ok else {}
    if not asked:
        return ""
    value = identity.get("reference_similarity")
    if "reference_similarity" not in identity:
        verdict = "the clip gave no identity embedding of its face"
        shown = "not measured"
    elif value is None:
        verdict = html.escape(identity.get("reference_note") or "not measured")
        shown = "not measured"
    else:
        shown = f"{value:.2f}"
        verdict = ("the same person" if identity.get("reference_same_person")
                   else "not the same person")
    return (f'<div class="tf-identity"><b>Identity similarity to the reference (CSIM): '
            f'{shown}</b> &middot; {verdict}<div class="tf-meaning">'
            f'{html.escape(CSIM_MEANING)}.</div></div>')
