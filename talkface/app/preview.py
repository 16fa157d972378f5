"""What was scored, as a small H.264 clip any browser plays: the frames on the scoring grid
(the model's fps), the scored face boxed, and the clip's audio.

Uploads in codecs browsers do not play (mp4v, HEVC, ProRes...) would otherwise leave an empty
player; this preview is made from what talkface decoded, so it shows exactly what was judged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from .. import media
from ..constants import MAX_SECONDS

PREVIEW_SIDE = 360  # long side of the preview, pixels
BOX_COLOUR = (46, 204, 64)  # RGB


def boxed_frames(path: str, fps: float, boxes: list, source_size: tuple[int, int],
                 max_side: int = PREVIEW_SIDE,
                 max_seconds: float = MAX_SECONDS) -> Iterator[np.ndarray]:
    """Frames of `path` on the k / fps grid, long side `max_side`, with the scored face's box
    (given in source pixels, upright) drawn where there is one."""
    import cv2
    long_side = max(source_size) or 1
    for i, frame in enumerate(media.iter_frames(path, fps, max_side, max_seconds)):
        box = boxes[i] if i < len(boxes) else None
        if box is not None:
            scale = max(frame.shape[:2]) / long_side
            x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
            frame = np.ascontiguousarray(frame)
            thickness = max(2, max(frame.shape[:2]) // 180)
            cv2.rectangle(frame, (x0, y0), (x1, y1), BOX_COLOUR, thickness)
        yield frame


def write_preview(result, path: str, folder: Path, max_side: int = PREVIEW_SIDE) -> Path:
    """An H.264/AAC mp4 of what `result` scored, with the scored face boxed; returns its path."""
    info = result.info
    size = (int(info.get("width") or 0), int(info.get("height") or 0))
    if not all(size):
        probed = media.probe(path)
        size = (probed.width, probed.height)
    out = Path(folder) / f"{Path(result.file).stem}_preview.mp4"
    seconds = result.n_frames / result.fps if result.fps else MAX_SECONDS
    audio = media.load_audio(path, max_seconds=seconds) if info.get("has_audio", True) else None
    frames = boxed_frames(path, result.fps, result.boxes, size, max_side, seconds)
    media.write_video(out, frames, result.fps, audio, crf=28, options={"preset": "veryfast"})
    return out
