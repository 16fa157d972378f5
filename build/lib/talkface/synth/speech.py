"""Speech sources for the synthetic benchmark: TTS voices and recorded speech.

Voices are identities, as faces are: an espeak-ng voice+variant, a flite voice, or a recorded
speaker. Rate and pitch vary within a voice; they do not make a new identity. Sources:

- Debian `espeak-ng` (GPL-3; its output is not covered by the GPL) and `flite` (BSD-like) voices,
  speaking sentences written for talkface.
- Debian `pocketsphinx-testdata` recordings (BSD-2): a LibriVox reader, a "cards" speaker and the
  AN4/TIDIGITS test utterances (speakers unknown: each file is taken as its own speaker).
- A user folder (`--speech DIR`, any format FFmpeg reads): files in a sub-folder share that
  sub-folder's name as speaker identity; loose files are each their own speaker.

All audio comes back as mono float32 at 16 kHz, peak-normalised, so identical arguments give
identical samples.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import librosa
import numpy as np
import soundfile as sf

from ..constants import SAMPLE_RATE
from ..errors import DatasetError

log = logging.getLogger(__name__)

POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".raw"}
SENTENCES = [
    "The little boat drifted slowly past the old stone bridge at dawn.",
    "Please remember to water the garden before you leave for work today.",
    "We watched the storm roll in over the hills from the kitchen window.",
    "My brother bought a yellow bicycle with a basket on the front.",
    "Every morning she walks the dog along the beach and back again.",
    "The museum opens at nine, but the queue starts much earlier than that.",
    "Could you pass me the map? I think we missed the turn a mile ago.",
    "He played the piano for an hour while the rain tapped on the roof.",
    "A cup of warm tea and a good book make a perfect winter evening.",
    "The children laughed as the puppet danced across the tiny stage.",
    "Open the window a little, the room is getting very warm in here.",
    "Our train was late again, so we shared a sandwich on the platform.",
    "Bright red apples filled the baskets at the market on Saturday.",
    "I never thought the old clock would start ticking again so loudly.",
    "The baker rolls out the dough and shapes it into twelve round loaves.",
    "Turn left at the second light and park behind the blue building.",
]
ESPEAK_VOICES = ["en-us+m1", "en-us+f2", "en-us+m3", "en-gb+f4", "en-gb+m2", "en-gb-scotland+m4",
                 "en-gb-scotland+f1", "en-029+m5", "en-gb-x-rp+f3", "en-us+m7", "en-gb+f5",
                 "en-gb-x-rp+m6"]
FLITE_VOICES = ["awb", "rms", "slt", "kal16"]


@dataclass
class Voice:
    """A speaker identity: `kind` is 'espeak', 'flite' or 'file' (recordings in `files`)."""

    identity: str
    kind: str
    name: str = ""
    files: list[Path] = field(default_factory=list)
    licence: str = ""


@dataclass
class Utterance:
    audio: np.ndarray  # (N,) float32 at SAMPLE_RATE
    voice: str
    text: str
    details: dict = field(default_factory=dict)


def _tts_voices() -> list[Voice]:
    voices = []
    if shutil.which("espeak-ng"):
        voices += [Voice(f"espeak-{v}", "espeak", v, licence="espeak-ng (GPL-3 program; output "
                         "free)") for v in ESPEAK_VOICES]
    if shutil.which("flite"):
        voices += [Voice(f"flite-{v}", "flite", v, licence="flite (BSD-like)")
                   for v in FLITE_VOICES]
    return voices


def _recorded_voices() -> list[Voice]:
    if not POCKETSPHINX_DIR.is_dir():
        return []
    groups = {"psphinx-librivox": sorted((POCKETSPHINX_DIR / "librivox").glob("*.wav")),
              "psphinx-cards": sorted((POCKETSPHINX_DIR / "cards").glob("*.wav"))}
    for raw in sorted(POCKETSPHINX_DIR.glob("*.raw")) + sorted(
            (POCKETSPHINX_DIR / "tidigits").glob("*.raw")):
        groups[f"psphinx-{raw.stem.split('.')[0]}"] = [raw]
    return [Voice(name, "file", name, files, "BSD-2 (pocketsphinx-testdata)")
            for name, files in groups.items() if files]


def _user_voices(folder: str | Path) -> list[Voice]:
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"--speech {folder}: not a folder")
    groups: dict[str, list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        rel = path.relative_to(root)
        groups.setdefault(f"user-{rel.parts[0] if len(rel.parts) > 1 else path.stem}",
                          []).append(path)
    if not groups:
        raise DatasetError(f"--speech {folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return [Voice(name, "file", name, files, "user-supplied") for name, files in groups.items()]


def list_voices(extra_dir: Optional[str | Path] = None, recorded: bool = True) -> list[Voice]:
    """Every available voice identity (TTS, pocketsphinx recordings, user folder)."""
    voices = _tts_voices() + (_recorded_voices() if recorded else [])
    if extra_dir is not None:
        voices += _user_voices(extra_dir)
    if not voices:
        raise DatasetError("no speech source: install espeak-ng or flite, or pass --speech DIR")
    return voices


def read_audio_file(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz from a recording (.raw = 16-bit little-endian PCM at 16 kHz)."""
    if path.suffix.lower() == ".raw":
        return np.fromfile(path, "<i2").astype(np.float32) / 32768.0
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    except sf.LibsndfileError:
        from ..media import load_audio  # mp3, m4a... through FFmpeg
        audio, rate = load_audio(path, SAMPLE_RATE), SAMPLE_RATE
        if audio is None:
            raise DatasetError(f"{path}: no audio track") from None
    if rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    return audio.astype(np.float32)


def _run_tts(voice: Voice, text: str, rate: float, pitch: float) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="talkface-tts-") as tmp:
        wav = Path(tmp) / "speech.wav"
        if voice.kind == "espeak":
            cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(160 * rate)),
                   "-p", str(int(pitch)), "-w", str(wav), text]
        else:
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.3f}",
                   "-t", text, "-o", str(wav)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return read_audio_file(wav)


def _normalise(audio: np.ndarray, peak: float = 0.7) -> np.ndarray:
    top = float(np.abs(audio).max()) if audio.size else 0.0
    return (audio * (peak / top)).astype(np.float32) if top > 1e-6 else audio.astype(np.float32)


def _trim_or_pad(audio: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    out = audio[start:start + n]
    return np.pad(out, (0, n - out.size)).astype(np.float32)


def make_utterance(voice: Voice, rng: np.random.Generator, seconds: float) -> Utterance:
    """An utterance of exactly `seconds` from `voice`, choices drawn from `rng`."""
    n = int(round(seconds * SAMPLE_RATE))
    if voice.kind in ("espeak", "flite"):
        text = " ".join(rng.choice(SENTENCES, size=2, replace=False))
        rate, pitch = float(rng.uniform(0.85, 1.2)), float(rng.uniform(30, 70))
        audio = _run_tts(voice, text, rate, pitch)
        lead = int(0.15 * SAMPLE_RATE)  # a breath of silence before speech, as in real clips
        audio = _trim_or_pad(np.concatenate([np.zeros(lead, np.float32),
                                             _trim_silence(audio)]), n)
        details = {"rate": round(rate, 3), "pitch": round(pitch, 1) if voice.kind == "espeak"
                   else None}
        return Utterance(_normalise(audio), voice.identity, text, details)
    path = voice.files[int(rng.integers(len(voice.files)))]
    audio = read_audio_file(path)
    start = int(rng.integers(0, max(1, audio.size - n)))
    return Utterance(_normalise(_trim_or_pad(audio, n, start)), voice.identity, "",
                     {"file": path.name, "start_s": round(start / SAMPLE_RATE, 3)})


def _trim_silence(audio: np.ndarray) -> np.ndarray:
    _, (start, end) = librosa.effects.trim(audio, top_db=40)
    return audio[start:end]
