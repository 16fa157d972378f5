"""SyncNet's 224 px face crops cut from talkface's face track, and the paper-standard LSE of a
scored clip (`clip_lse`), for `load_scorer(..., syncnet_weights=...)`.

The crop is syncnet_python's (`run_pipeline.py` / `SyncNetPipeline._crop`): over the face track,
each frame's box gives a half-size s = max(width, height) / 2 and a centre (x, y); the three
curves are median-filtered over 13 frames (`scipy.signal.medfilt`, zero-padded at the track's
ends as there); the frame is padded with grey 110 and the region from y - s to y + 1.8 s and
x - 1.4 s to x + 1.4 s (crop_scale 0.4) is resized to 224 x 224 (bilinear). Frames inside the
track where the face was missed get boxes interpolated linearly, as the reference interpolates
between detections. The boxes are talkface's (the FaceMesh points' extent of the scored face,
`ScoreResult.boxes`) instead of S3FD's, and the crops are cut from the decoded frames directly
instead of after the reference's JPEG and XVID round trips.

Why a second pass over the frames instead of collecting crops in the face stage: the smoothed
box of frame t depends on the boxes of frames t + 1..t + 6 and on which track is scored, both
known only at the end of the clip, so collecting crops while tracking would mean keeping every
tracked face's crops (150 kB a frame) for the whole clip. The second pass decodes the clip again
only when SyncNet weights were given, works as well on features read from the cache, and leaves
the face stage untouched. It decodes the frames the backend saw (`Extractor.frames`), so the
boxes and the pixels share one coordinate system.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import cv2
import numpy as np

from .. import media
from ..constants import FPS, HOP, SAMPLE_RATE
from ..media import NativeFrame
from .syncnet import CROP_SIZE, LoadedSyncNet, LSEResult, lse, reference_medfilt

CROP_SCALE = 0.40  # the pipeline's crop_scale
SMOOTH = 13  # median filter length over the track (frames)
GREY = 110  # padding value around the frame


def track_span(boxes: np.ndarray) -> Optional[tuple[int, int, np.ndarray]]:
    """(first, last, boxes (last - first + 1, 4)) of a face track given per frame as (T, 4)
    x0, y0, x1, y1 (NaN where absent), gaps interpolated; None when there is no box."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    seen = np.flatnonzero(np.isfinite(boxes).all(1))
    if seen.size == 0:
        return None
    first, last = int(seen[0]), int(seen[-1])
    frames = np.arange(first, last + 1)
    filled = np.stack([np.interp(frames, seen, boxes[seen, k]) for k in range(4)], 1)
    return first, last, filled


def crop_geometry(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) boxes of consecutive frames -> (n, 3) smoothed half-size, centre x, centre y."""
    s = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    x, y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([reference_medfilt(v, SMOOTH) for v in (s, x, y)], 1)


def _rgb_rect(frame, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """RGB pixels [y0:y1, x0:x1] of an RGB array or a NativeFrame (bounds inside the frame)."""
    if isinstance(frame, np.ndarray):
        return frame[y0:y1, x0:x1]
    ex0, ey0 = x0 // 2 * 2, y0 // 2 * 2  # the chroma planes are cut on even pixels
    ex1, ey1 = min(-(-x1 // 2) * 2, frame.width), min(-(-y1 // 2) * 2, frame.height)
    rgb = frame.region((ex0, ey0, ex1, ey1), (ex1 - ex0, ey1 - ey0))
    return rgb[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]


def syncnet_crop(frame: NativeFrame | np.ndarray, s: float, x: float, y: float) -> np.ndarray:
    """The reference's 224 x 224 RGB crop around centre (x, y) with half-size s (frame pixels).

    Same pixels as padding the whole frame with GREY by int(1.8 s) and slicing it, as the
    reference does, without building the padded frame."""
    h, w = (frame.shape[:2] if isinstance(frame, np.ndarray) else (frame.height, frame.width))
    pad = int(s * (1 + 2 * CROP_SCALE))
    my, mx = y + pad, x + pad
    # slices of the padded frame, clipped to it as numpy clips them
    top, bottom = (min(max(int(v), 0), h + 2 * pad)
                   for v in (my - s, my + s * (1 + 2 * CROP_SCALE)))
    left, right = (min(max(int(v), 0), w + 2 * pad)
                   for v in (mx - s * (1 + CROP_SCALE), mx + s * (1 + CROP_SCALE)))
    canvas = np.full((max(bottom - top, 1), max(right - left, 1), 3), GREY, np.uint8)
    y0, y1 = max(top - pad, 0), min(bottom - pad, h)
    x0, x1 = max(left - pad, 0), min(right - pad, w)
    if y1 > y0 and x1 > x0:
        canvas[y0 + pad - top:y1 + pad - top, x0 + pad - left:x1 + pad - left] = \
            _rgb_rect(frame, x0, y0, x1, y1)
    return cv2.resize(canvas, (CROP_SIZE, CROP_SIZE))


def face_crops(frames: Iterable, first: int, geometry: np.ndarray) -> Iterator[np.ndarray]:
    """SyncNet crops of frames first..first + len(geometry) - 1 of a frame stream."""
    end = first + len(geometry)
    for i, frame in enumerate(frames):
        if i >= end:
            return
        if i >= first:
            yield syncnet_crop(frame, *geometry[i - first])


def clip_lse(net: LoadedSyncNet, frames: Iterable, boxes, audio: Optional[np.ndarray],
             fps: float = FPS, sample_rate: int = SAMPLE_RATE,
             device: str = "cpu") -> LSEResult:
    """Paper-standard LSE of one clip's scored face.

    frames: the clip's frames as the face stage saw them (RGB arrays or NativeFrames);
    boxes: (T, 4) or a list of [x0, y0, x1, y1] / None per frame, in those frames' pixels;
    audio: the clip's mono audio at `sample_rate` from frame 0 (None: no audio track)."""
    def none(reason: str) -> LSEResult:
        return LSEResult(weights=net.weights, sha256=net.sha256, reason=reason)

    if abs(fps - FPS) > 1e-6 or sample_rate != SAMPLE_RATE:
        return none(f"SyncNet is defined on {FPS:g} fps and {SAMPLE_RATE} Hz")
    if audio is None:
        return none("no audio track")
    table = np.array([[np.nan] * 4 if b is None else b for b in boxes], np.float64)
    span = track_span(table)
    if span is None:
        return none("no face")
    first, last, filled = span
    pcm = audio[first * HOP:(last + 1) * HOP]
    return lse(net, face_crops(frames, first, crop_geometry(filled)), pcm, device=device)


def video_lse(net: LoadedSyncNet, extractor, video, boxes, device: str = "cpu") -> LSEResult:
    """`clip_lse` of a video file: its frames as `extractor` (a `talkface.features.Extractor`)
    decodes them, decoding running ahead in a thread, and its audio. What `Scorer.score` runs
    with `syncnet_weights`."""
    cfg = extractor.config
    audio = media.load_audio(video, cfg.sample_rate, cfg.max_seconds)
    frames = media.prefetched(extractor.frames(video))
    try:
        return clip_lse(net, frames, boxes, audio, cfg.fps, cfg.sample_rate, device)
    finally:
        frames.close()  # stops the decoding thread once the face track's frames are in


def lse_line(figures: dict) -> str:
    """One line for the CLI and the app from `LSEResult.to_dict()`."""
    if figures.get("lse_d") is None:
        return f"SyncNet LSE ({figures.get('weights')}): not measured ({figures.get('reason')})."
    return (f"SyncNet LSE ({figures['weights']}): LSE-D {figures['lse_d']:.3f}, LSE-C "
            f"{figures['lse_c']:.3f}, offset {figures['offset_frames']:+d} frames (SyncNet's "
            f"sign: positive = audio leads), over {figures['windows']} windows.")
