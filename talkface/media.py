"""Decoding and writing talking-face clips with PyAV (which bundles FFmpeg).

Frames are streamed and resampled by presentation timestamp to a fixed frame rate (sample and
hold: output frame k shows the last source frame whose timestamp is <= k / fps), so 24, 30, 60 fps
and variable-frame-rate sources all yield the same time grid. Rotation metadata is applied and
frames are downscaled before anyone looks at them. Audio is resampled to mono float32 at 16 kHz.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import av
import cv2
import numpy as np

from .constants import FPS, MAX_SECONDS, MAX_SIDE, MIN_SECONDS, SAMPLE_RATE
from .errors import (CorruptMedia, FileTooLarge, MediaError, NoDecodableFrames, NotAMediaFile,
                     NoVideoStream, TooShort)

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 2 * 1024 ** 3


@dataclass
class MediaInfo:
    """What a file holds, read from its headers without decoding frames."""

    path: str
    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    duration: float
    has_audio: bool
    audio_codec: Optional[str] = None
    audio_rate: Optional[int] = None
    audio_channels: Optional[int] = None
    warnings: list[str] = field(default_factory=list)


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    path = str(path)
    if not os.path.exists(path):
        raise MediaError(f"{path}: file not found")
    if os.path.isdir(path):
        raise MediaError(f"{path}: is a folder, not a video file")
    size = os.path.getsize(path)
    if size == 0:
        raise NotAMediaFile(f"{os.path.basename(path)}: the file is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise FileTooLarge(f"{os.path.basename(path)}: {size / 1e9:.1f} GB is above the "
                           f"{MAX_FILE_BYTES / 1e9:.1f} GB limit")
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise NotAMediaFile(f"{os.path.basename(path)}: not a video file FFmpeg can read "
                            f"({err.strerror or type(err).__name__})") from None


def _video_stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NoVideoStream(f"{os.path.basename(str(path))}: no video track "
                            f"(found: {', '.join(kinds)})")
    return container.streams.video[0]


def _stream_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _start_time(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read container headers: codecs, size, frame rate, duration, audio presence."""
    with _open(path) as container:
        vs = _video_stream(container, path)
        rate = vs.average_rate or vs.guessed_rate or 0
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            path=str(path), container=container.format.name, video_codec=vs.codec_context.name,
            width=vs.codec_context.width, height=vs.codec_context.height, fps=float(rate),
            duration=_stream_duration(container, vs), has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else None,
            audio_rate=audio.codec_context.sample_rate if audio else None,
            audio_channels=audio.codec_context.channels if audio else None)


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # even sizes keep yuv420 and most filters happy
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _turns(frame: av.VideoFrame) -> int:
    """Quarter turns (counter-clockwise) that display the frame upright. PyAV reports the
    display-matrix angle counter-clockwise; np.rot90 also turns counter-clockwise."""
    return int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4


def _to_rgb(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    w, h = _target_size(frame.width, frame.height, max_side)
    img = frame.to_ndarray(width=w, height=h, format="rgb24")
    turns = _turns(frame)
    return np.ascontiguousarray(np.rot90(img, k=turns)) if turns else img


def _plane_view(plane: av.video.plane.VideoPlane, rows: int, cols: int) -> np.ndarray:
    """The pixels of one 8-bit plane as a (rows, cols) view of the decoder's buffer: no copy
    (rows keep the decoder's padding as their stride; OpenCV and numpy read such views as they
    are). The view holds a reference to the frame, so the buffer lives as long as it does."""
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows, :cols]


class NativeFrame:
    """One frame at the source's own resolution, kept as its YUV 4:2:0 planes (upright).

    Converting a 1080x1920 frame to RGB costs more than decoding it, and the face stage only ever
    needs small images: a thumbnail to detect faces on and warped crops of one face. Both are cut
    from the planes here and converted after resizing, so their cost does not grow with the
    source's size. Colour conversion is BT.601 (OpenCV's YUV -> RGB), as FFmpeg's default.
    """

    def __init__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        self.y, self.u, self.v = y, u, v

    @classmethod
    def from_av(cls, frame: av.VideoFrame) -> "NativeFrame":
        if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or \
                frame.height % 2:
            frame = frame.reformat(width=frame.width // 2 * 2 or 2,
                                   height=frame.height // 2 * 2 or 2, format="yuv420p")
        h, w = frame.height, frame.width
        y, u, v = (_plane_view(p, rows, cols) for p, rows, cols in
                   zip(frame.planes, (h, h // 2, h // 2), (w, w // 2, w // 2)))
        turns = _turns(frame)
        if turns:
            y, u, v = (np.ascontiguousarray(np.rot90(p, k=turns)) for p in (y, u, v))
        return cls(y, u, v)

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> "NativeFrame":
        """For tests and tools that already hold an RGB image (H, W, 3) uint8."""
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        i420 = cv2.cvtColor(np.ascontiguousarray(rgb[:h, :w]), cv2.COLOR_RGB2YUV_I420)
        chroma = i420[h:].reshape(2, h // 2, w // 2)
        return cls(i420[:h], chroma[0], chroma[1])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @staticmethod
    def _rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Planes of an even-sized image -> RGB with FFmpeg's default conversion (BT.601,
        limited range), which is OpenCV's I420 conversion."""
        h, w = y.shape
        i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)

    def region(self, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
        """RGB image of the frame's pixels box = (x0, y0, x1, y1), resized to size = (w, h)
        (area averaging when shrinking); both sizes even."""
        x0, y0, x1, y1 = (int(v) // 2 * 2 for v in box)
        x1, y1 = min(max(x1, x0 + 2), self.width), min(max(y1, y0 + 2), self.height)
        w, h = size
        shrink = (x1 - x0) > w or (y1 - y0) > h
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        y = self.y[y0:y1, x0:x1]
        u, v = (p[y0 // 2:y1 // 2, x0 // 2:x1 // 2] for p in (self.u, self.v))
        if (x1 - x0, y1 - y0) != (w, h):
            y = cv2.resize(y, (w, h), interpolation=interp)
            u, v = (cv2.resize(p, (w // 2, h // 2), interpolation=interp) for p in (u, v))
        return self._rgb(np.ascontiguousarray(y), np.ascontiguousarray(u),
                         np.ascontiguousarray(v))

    def thumbnail(self, max_side: int) -> np.ndarray:
        """The whole frame as RGB with its long side at most `max_side`: (h, w, 3) uint8."""
        return self.region((0, 0, self.width, self.height),
                           _target_size(self.width, self.height, max_side))

    def warp(self, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """RGB image (size[1], size[0], 3) of `matrix` (2x3, source pixels -> output pixels)
        applied to the frame; pixels outside the frame repeat its border. Sizes must be even."""
        m = np.asarray(matrix, np.float64)
        y = cv2.warpAffine(self.y, m, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        # the same map between the half-size chroma planes (pixel centres: x_c = x / 2 - 1/4)
        m_c = m.copy()
        m_c[:, 2] = m[:, :2] @ np.array([0.25, 0.25]) + m[:, 2] / 2 - 0.25
        half = (size[0] // 2, size[1] // 2)
        u, v = (cv2.warpAffine(p, m_c, half, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for p in (self.u, self.v))
        return self._rgb(y, u, v)

    def warp_gray(self, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Luma only, as `warp`: (size[1], size[0]) uint8."""
        return cv2.warpAffine(self.y, np.asarray(matrix, np.float64), size,
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def to_rgb(self) -> np.ndarray:
        """The full frame as RGB (costly for large frames; for display and tests)."""
        return self.thumbnail(max(self.width, self.height))


def _grid(path: str | os.PathLike, fps: float, max_seconds: float, convert) -> Iterator:
    """`convert(frame)` of the source frame shown at each instant k / fps, k = 0, 1, ...
    (sample and hold). Each source frame is converted once, however often it is repeated."""
    name = os.path.basename(str(path))
    with _open(path) as container:
        vs = _video_stream(container, path)
        vs.thread_type = "AUTO"
        limit = int(np.floor(max_seconds * fps + 1e-6))
        k, prev, prev_t, decoded = 0, None, 0.0, 0
        try:
            for frame in container.decode(vs):
                if frame.time is None:
                    continue
                decoded += 1
                if prev is None:  # the time grid starts at the first frame
                    t0 = float(frame.time)
                    prev, prev_t = frame, 0.0
                    continue
                t = float(frame.time) - t0
                converted = None
                while k < limit and k / fps < t - 1e-6:
                    converted = convert(prev) if converted is None else converted
                    yield converted
                    k += 1
                if k >= limit:
                    return
                prev, prev_t = frame, t
        except av.error.FFmpegError as err:
            if decoded == 0:
                raise NoDecodableFrames(f"{name}: no video frame could be decoded "
                                        f"({err.strerror or type(err).__name__})") from None
            if decoded < 3:
                raise CorruptMedia(f"{name}: the video data is damaged after {decoded} "
                                   f"frame(s) ({err.strerror})") from None
            log.warning("%s: decoding stopped early at frame %d (%s); using what was read",
                        name, decoded, err.strerror)
        if prev is None:
            raise NoDecodableFrames(f"{name}: the video track holds no decodable frames")
        frame_dur = 1.0 / float(vs.average_rate or fps)
        end = prev_t + frame_dur
        converted = None
        while k < limit and k / fps < end - 1e-6:
            converted = convert(prev) if converted is None else converted
            yield converted
            k += 1


def iter_frames(path: str | os.PathLike, fps: float = FPS,
                max_side: int = MAX_SIDE,
                max_seconds: float = MAX_SECONDS) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames (H, W, 3), long side at most `max_side`, on the time grid k / fps.

    Only the previous source frame is held, never the whole clip. Stops at `max_seconds`.
    """
    return _grid(path, fps, max_seconds, lambda frame: _to_rgb(frame, max_side))


def iter_native_frames(path: str | os.PathLike, fps: float = FPS,
                       max_seconds: float = MAX_SECONDS) -> Iterator[NativeFrame]:
    """Yield `NativeFrame`s (source resolution, upright) on the time grid k / fps."""
    return _grid(path, fps, max_seconds, NativeFrame.from_av)


def prefetched(items: Iterator, size: int = 16) -> Iterator:
    """Run `items` in a background thread, `size` ahead of the consumer.

    FFmpeg decodes and converts frames without holding the GIL, so decoding the next frames
    overlaps with analysing the current one. Errors are re-raised in the consumer; closing the
    consumer stops the thread.
    """
    q: queue.Queue = queue.Queue(size)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as err:  # handed to the consumer, which re-raises it
            q.put((done, err))

    thread = threading.Thread(target=produce, daemon=True, name="talkface-decode")
    thread.start()
    try:
        while True:
            item, err = q.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               max_seconds: float = MAX_SECONDS) -> Optional[np.ndarray]:
    """Decode the first audio track to mono float32 at `sample_rate`; None when there is none.

    Sample 0 is the instant of video frame 0: audio that starts later than the video is padded
    with silence, audio that starts earlier is trimmed.
    """
    name = os.path.basename(str(path))
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        video_start = _start_time(container.streams.video[0]) if container.streams.video else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks, total, lead = [], 0, None
        limit = int(max_seconds * sample_rate)
        try:
            for frame in container.decode(stream):
                if lead is None:
                    start = float(frame.time) if frame.time is not None else video_start
                    lead = int(round((start - video_start) * sample_rate))
                frame.pts = None  # let the resampler count samples; some files have broken pts
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total + (lead or 0) >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as err:
            log.warning("%s: audio decoding stopped early (%s)", name, err.strerror)
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        lead = lead or 0
        audio = np.concatenate([np.zeros(lead, np.float32), audio]) if lead > 0 else audio[-lead:]
        return audio[:limit].astype(np.float32)


@dataclass
class DecodedClip:
    """A decoded clip: frames on the fps grid plus mono audio. Frames are already downscaled."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    audio: Optional[np.ndarray]  # (N,) float32, or None when the file has no audio track
    fps: float
    sample_rate: int
    info: MediaInfo
    capped: bool = False

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


def check_length(n_frames: int, fps: float, name: str, min_seconds: float = MIN_SECONDS) -> None:
    if n_frames / fps < min_seconds:
        raise TooShort(f"{name}: {n_frames / fps:.2f} s is too short to score; talkface needs at "
                       f"least {min_seconds:g} s ({int(np.ceil(min_seconds * fps))} frames at "
                       f"{fps:g} fps)")


def length_warning(info: MediaInfo, max_seconds: float) -> Optional[str]:
    if info.duration > max_seconds + 1e-3:
        return (f"clip is {info.duration:.1f} s long; only the first {max_seconds:g} s were "
                f"analysed (to judge another part, trim the clip to that part; to analyse more, "
                f"score it in Python with `talkface.load_scorer(max_seconds=N)`)")
    return None


def load_clip(path: str | os.PathLike, fps: float = FPS,
              sample_rate: int = SAMPLE_RATE, max_side: int = MAX_SIDE,
              max_seconds: float = MAX_SECONDS) -> DecodedClip:
    """Decode a whole (downscaled, capped) clip into memory. For short clips, tests and tools;
    feature extraction streams with `iter_frames` instead."""
    info = probe(path)
    frames = list(iter_frames(path, fps, max_side, max_seconds))
    check_length(len(frames), fps, Path(path).name)
    warning = length_warning(info, max_seconds)
    if warning:
        info.warnings.append(warning)
    return DecodedClip(np.stack(frames), load_audio(path, sample_rate, max_seconds), fps,
                       sample_rate, info, capped=warning is not None)


def write_video(path: str | os.PathLike, frames, fps: float = FPS,
                audio: Optional[np.ndarray] = None, sample_rate: int = SAMPLE_RATE,
                codec: str = "libx264", crf: Optional[int] = 18,
                options: Optional[dict] = None) -> None:
    """Encode RGB uint8 frames (an array (T, H, W, 3) or any iterable of (H, W, 3)) and optional
    mono float32 audio in [-1, 1] into `path`, atomically. Deterministic for identical inputs
    (one encoder thread, no timestamps in the container metadata)."""
    path = str(path)
    tmp = path + ".part" + Path(path).suffix
    opts = dict(options or {})
    if crf is not None and codec in ("libx264", "libx265", "libvpx-vp9"):
        opts.setdefault("crf", str(int(crf)))
    if codec == "libx264":
        # x264's macroblock-tree rate control gave different bytes for the same noisy frames in
        # about 1 run of 8 here, even with one thread; without it, output repeats exactly
        opts.setdefault("x264-params", "threads=1:mbtree=0")
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    with av.open(tmp, "w", format=_format_for(path)) as out:
        vs = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        vs.options = opts
        vs.codec_context.thread_count = 1  # x264's output depends on its thread count
        ast = None
        if audio is not None:
            acodec, arate = _AUDIO_CODEC.get(Path(path).suffix.lower(), ("aac", sample_rate))
            ast = out.add_stream(acodec, rate=arate or sample_rate, layout="mono")
        for img in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, np.uint8), format="rgb24")
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if ast is not None:
            _encode_audio(out, ast, audio, sample_rate)
    os.replace(tmp, path)


# AVI has no edit lists to hide AAC's priming delay, so it gets PCM; WebM allows Opus/Vorbis only.
_AUDIO_CODEC = {".avi": ("pcm_s16le", None), ".webm": ("libopus", 48000)}


def _chain(first, rest):
    yield first
    yield from rest


def _format_for(path: str) -> Optional[str]:
    ext = Path(path).suffix.lower()
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
            ".avi": "avi"}.get(ext)


def _encode_audio(out, stream, audio: np.ndarray, sample_rate: int) -> None:
    samples = np.clip(np.asarray(audio, np.float32), -1, 1).reshape(1, -1)
    rate = stream.codec_context.sample_rate
    frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                  rate=rate, frame_size=stream.codec_context.frame_size or 1024)
    frame.pts = None
    n = 0
    for chunk in list(resampler.resample(frame)) + list(resampler.resample(None)):
        # explicit timestamps from 0 let the encoder mark its priming samples (AAC: 1024) as
        # negative time, so the MP4 muxer writes an edit list and players stay in sync
        chunk.pts, chunk.time_base = n, Fraction(1, rate)
        n += chunk.samples
        for packet in stream.encode(chunk):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
