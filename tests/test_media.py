"""Decoding: containers, frame-rate resampling, rotation, audio, length cap, and clear errors."""
from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from talkface import media
from talkface.errors import (CorruptMedia, MediaError, NoDecodableFrames, NotAMediaFile,
                             NoVideoStream, TooShort)

from conftest import index_frames, tone


@pytest.mark.parametrize("suffix,codec", [("mp4", "libx264"), ("mov", "libx264"),
                                          ("mkv", "libx264"), ("webm", "libvpx-vp9"),
                                          ("avi", "mjpeg")])
def test_common_containers_decode_with_audio(tmp_path, suffix, codec):
    path = tmp_path / f"clip.{suffix}"
    media.write_video(path, index_frames(50), 25, tone(2.0), codec=codec)
    clip = media.load_clip(path)
    assert clip.frames.shape == (50, 64, 80, 3)
    assert clip.has_audio
    assert abs(clip.audio.size - 32000) < 2000  # codecs pad to their frame size


def test_audio_is_sample_aligned_with_video(tmp_path):
    """An impulse at 0.5 s must come back at 0.5 s: a codec's priming delay would shift lip sync."""
    audio = np.zeros(32000, np.float32)
    audio[8000:8160] = 0.8 * np.sin(np.arange(160) * 0.5)
    for suffix in ("mp4", "mkv", "avi"):
        path = tmp_path / f"impulse.{suffix}"
        media.write_video(path, index_frames(50), 25, audio,
                          codec="mjpeg" if suffix == "avi" else "libx264")
        decoded = media.load_audio(path)
        assert abs(int(np.argmax(np.abs(decoded) > 0.1)) - 8000) <= 40, suffix  # <= 2.5 ms


@pytest.mark.parametrize("src_fps", [24, 30, 60])
def test_frames_are_resampled_by_timestamp(tmp_path, src_fps):
    n = src_fps * 2
    path = tmp_path / f"f{src_fps}.mp4"
    media.write_video(path, index_frames(n), src_fps, crf=0)
    frames = list(media.iter_frames(path, fps=25))
    assert len(frames) == 50
    for k in (0, 7, 24, 49):
        shown = int(round(frames[k].mean() / 2))
        assert shown == int(np.floor(k * src_fps / 25 + 1e-6)), (k, shown)


def test_variable_frame_rate(tmp_path):
    """Irregular timestamps: output frame k shows the last source frame at or before k / 25 s."""
    times_ms = [0, 30, 50, 130, 140, 300, 320, 500, 900, 1000]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "yuv420p"
        stream.options = {"crf": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((64, 80, 3), i * 20, np.uint8), "rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    frames = list(media.iter_frames(path, fps=25))
    for k, frame in enumerate(frames[:25]):
        expected = max(i for i, ms in enumerate(times_ms) if ms <= k * 40 + 1e-6)
        assert int(round(frame.mean() / 20)) == expected, k


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI (apt ffmpeg)")
def test_rotation_metadata_is_applied_like_ffmpeg(tmp_path):
    frames = np.zeros((25, 64, 96, 3), np.uint8)
    frames[:, :10] = 255  # a white band along the top edge
    src, rotated, reference = tmp_path / "src.mp4", tmp_path / "rot.mp4", tmp_path / "ref.mp4"
    media.write_video(src, frames, 25)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(rotated), "-c:v", "libx264",
                    str(reference)], check=True)  # the CLI's own autorotation
    ours, theirs = next(media.iter_frames(rotated)), next(media.iter_frames(reference))
    assert ours.shape == (96, 64, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 3


def test_large_frames_are_downscaled(tmp_path):
    path = tmp_path / "big.mp4"
    media.write_video(path, np.zeros((13, 720, 1280, 3), np.uint8), 25)
    frame = next(media.iter_frames(path, max_side=512))
    assert max(frame.shape[:2]) == 512 and frame.shape[:2] == (288, 512)


def test_stereo_44k_audio_becomes_16k_mono(face_video):
    info = media.probe(face_video)
    assert info.audio_channels == 2 and info.audio_rate == 44100
    audio = media.load_audio(face_video)
    assert audio.ndim == 1 and audio.dtype == np.float32
    assert abs(audio.size / 16000 - info.duration) < 0.1


def test_video_without_audio_is_allowed(tmp_path):
    path = tmp_path / "silent_film.mp4"
    media.write_video(path, index_frames(30), 25)
    clip = media.load_clip(path)
    assert not clip.has_audio and not media.probe(path).has_audio


def test_length_cap_warns_and_truncates(tmp_path):
    path = tmp_path / "long.mp4"
    media.write_video(path, index_frames(100), 25, tone(4.0))
    clip = media.load_clip(path, max_seconds=2.0)
    assert len(clip.frames) == 50 and clip.capped
    assert abs(clip.audio.size - 32000) <= 1
    assert any("first 2 s" in w for w in clip.info.warnings)


# --- errors a user sees ------------------------------------------------------------------------

def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(NotAMediaFile, match="empty"):
        media.load_clip(path)


def test_text_file_is_not_media(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(NotAMediaFile, match="not a video file"):
        media.probe(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, tone(1.0), 16000)
    with pytest.raises(NoVideoStream, match="no video track.*audio"):
        media.load_clip(path)


def test_truncated_file_is_reported(tmp_path):
    good = tmp_path / "good.mp4"
    media.write_video(good, (np.random.default_rng(0).integers(0, 255, (50, 64, 80, 3))
                             ).astype(np.uint8), 25, tone(2.0))
    data = good.read_bytes()
    # keep the header, destroy the media data: the container opens, no frame decodes
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[:64] + bytes(len(data) - 64))
    with pytest.raises(MediaError) as info:
        media.load_clip(broken)
    assert isinstance(info.value, (NotAMediaFile, NoDecodableFrames, CorruptMedia))
    assert "broken.mp4" in str(info.value)


def test_half_file_still_decodes_its_first_part(tmp_path):
    good = tmp_path / "good.mkv"
    media.write_video(good, index_frames(75), 25, tone(3.0))
    half = tmp_path / "half.mkv"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    clip = media.load_clip(half)
    assert 10 < len(clip.frames) < 75


def test_too_short_names_the_minimum(tmp_path):
    path = tmp_path / "blink.mp4"
    media.write_video(path, index_frames(5), 25)
    with pytest.raises(TooShort, match=r"at least 0\.5 s"):
        media.load_clip(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        media.probe(tmp_path / "nope.mp4")
    with pytest.raises(MediaError, match="folder"):
        media.probe(tmp_path)


def test_write_video_is_deterministic(tmp_path):
    frames = (np.random.default_rng(96).integers(0, 255, (40, 96, 96, 3))).astype(np.uint8)
    # noisy frames: with x264's default macroblock tree, about 1 encode in 8 came out different
    first = tmp_path / "first.mp4"
    media.write_video(first, frames, 25, tone(1.6))
    for i in range(8):
        again = tmp_path / f"again{i}.mp4"
        media.write_video(again, frames, 25, tone(1.6))
        assert again.read_bytes() == first.read_bytes(), i


def test_prefetched_frames_match_and_errors_reach_the_caller(tmp_path):
    path = tmp_path / "clip.mp4"
    media.write_video(path, index_frames(40), 25)
    direct = list(media.iter_frames(path))
    ahead = list(media.prefetched(media.iter_frames(path), size=2))
    assert len(ahead) == len(direct) == 40
    assert all(np.array_equal(a, b) for a, b in zip(direct, ahead))
    broken = tmp_path / "broken.mp4"
    broken.write_text("nope")
    with pytest.raises(NotAMediaFile):
        list(media.prefetched(media.iter_frames(broken)))
    early = media.prefetched(media.iter_frames(path), size=2)
    next(early)
    early.close()  # stopping early must not leave the decoder thread blocked


def test_the_long_clip_warning_says_what_the_user_can_do():
    """It said "raise max_seconds", which neither the app nor `talkface score` offers."""
    from talkface.media import MediaInfo, length_warning
    info = MediaInfo("long.mp4", "mp4", "h264", 640, 360, 25.0, 75.0, True)
    text = length_warning(info, 60)
    assert text.startswith("clip is 75.0 s long; only the first 60 s were analysed")
    assert "trim the clip" in text and "load_scorer(max_seconds=N)" in text
    assert "raise max_seconds" not in text
    assert length_warning(MediaInfo("short.mp4", "mp4", "h264", 640, 360, 25.0, 10.0, True),
                          60) is None
