"""The warnings a clip's features come with: what about the input limits what can be judged.

Each names the problem and its consequence in one line ("no audio track: lip sync cannot be
judged"), so the API, CLI and app can show them as they are.
"""
from __future__ import annotations

from .. import media


def clip_warnings(info: media.MediaInfo, out: dict, max_seconds: float) -> list[str]:
    """Warnings for one extracted clip. `out` is the bundle's info so far (see `Extractor`)."""
    warnings = list(info.warnings)
    capped = media.length_warning(info, max_seconds)
    if capped:
        warnings.append(capped)
    if not out["has_audio"]:
        warnings.append("no audio track: lip sync cannot be judged")
    elif out["silent_audio"]:
        warnings.append("the audio track is silent: lip sync cannot be judged")
    elif out.get("sync") and not out["sync"].get("judged", True):
        warnings.append(f"lip sync not judged: {out['sync'].get('reason')}")
    missing = out["face_missing_fraction"]
    if missing >= 1.0:
        warnings.append("no face found in any frame")
    elif missing > 0:
        warnings.append(f"no face found in {missing:.0%} of frames")
    tracks = out.get("tracks") or []
    if len(tracks) > 1 and out.get("scored_track") is not None:
        warnings.append(f"{len(tracks)} faces seen; face {out['scored_track']} was scored "
                        f"({out.get('face_choice')})")
    elif out["max_faces"] > 1 and not tracks:
        warnings.append(f"{out['max_faces']} faces seen; the largest one was scored")
    unfitted = out.get("unfitted") or {}
    why = "too dark" if unfitted.get("dark", 0) > unfitted.get("frames", 0) / 2 else \
        "turned beyond the range where landmarks can be fitted (profile or strong tilt)"
    if unfitted.get("scored"):
        warnings.append(f"face {why} throughout: scored on unfitted landmarks, less reliable")
    elif unfitted.get("fraction", 0.0) >= 0.05:
        warnings.append(f"face {why} in {unfitted['fraction']:.0%} of frames: those frames are "
                        f"not scored")
    pose = out.get("pose") or {}
    if pose.get("profile_fraction", 0.0) >= 0.05:
        warnings.append(f"face in profile (|yaw| > {pose['profile_yaw']:g} degrees) for "
                        f"{pose['profile_fraction']:.0%} of frames: lip sync less reliable")
    return warnings
