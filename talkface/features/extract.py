"""From a video file to a `FeatureBundle`: aligned per-frame visual and audio matrices.

`Extractor` streams frames from `talkface.media`, hands each to a visual backend, adds face-crop
statistics, computes librosa features on the same frame grid and records everything in one
`FeatureSpec`. A bundle is saved as `.npz` (arrays) + `.json` (spec and info): no pickle.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import media
from ..spec import FeatureSpec
from .audio import audio_config, audio_feature_names, extract_audio_features
from .base import VisualBackend, create_backend
from .image_stats import CropStats

log = logging.getLogger(__name__)
BUNDLE_FORMAT = 1


@dataclass
class FeatureBundle:
    """Per-frame features of one clip. `valid[t]` is False where no face was found (those rows of
    `visual` are zero)."""

    visual: np.ndarray  # (T, Dv) float32
    audio: np.ndarray  # (T, Da) float32
    valid: np.ndarray  # (T,) bool
    spec: FeatureSpec
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.visual.shape[0])

    @property
    def warnings(self) -> list[str]:
        return list(self.info.get("warnings", []))

    def visual_column(self, name: str) -> np.ndarray:
        return self.visual[:, self.spec.visual_index(name)]

    def audio_column(self, name: str) -> np.ndarray:
        return self.audio[:, self.spec.audio_index(name)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write `<path>.npz` and `<path>.json` atomically; returns the .npz path."""
        base = Path(path).with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        npz, meta = base.with_suffix(".npz"), base.with_suffix(".json")
        tmp_npz = npz.with_name(npz.stem + ".part.npz")
        np.savez_compressed(tmp_npz, visual=self.visual, audio=self.audio, valid=self.valid)
        tmp_meta = meta.with_name(meta.name + ".part")
        tmp_meta.write_text(json.dumps({"format": BUNDLE_FORMAT, "info": self.info,
                                        "spec": json.loads(self.spec.to_json())}, indent=1))
        os.replace(tmp_npz, npz)
        os.replace(tmp_meta, meta)
        return npz

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureBundle":
        base = Path(path).with_suffix("")
        meta = json.loads(base.with_suffix(".json").read_text())
        with np.load(base.with_suffix(".npz"), allow_pickle=False) as arrays:
            return cls(arrays["visual"], arrays["audio"], arrays["valid"].astype(bool),
                       FeatureSpec.model_validate(meta["spec"]), meta.get("info", {}))


def _versions() -> dict[str, str]:
    import av
    import librosa
    return {"av": av.__version__, "librosa": librosa.__version__, "numpy": np.__version__}


class Extractor:
    """Video file -> FeatureBundle with one visual backend. Build once, call many times."""

    def __init__(self, backend: str | VisualBackend = "landmarks", fps: float = media.DEFAULT_FPS,
                 sample_rate: int = media.DEFAULT_SAMPLE_RATE,
                 max_side: int = media.DEFAULT_MAX_SIDE,
                 max_seconds: float = media.DEFAULT_MAX_SECONDS,
                 min_seconds: float = media.MIN_SECONDS, **backend_options) -> None:
        self.backend = backend if isinstance(backend, VisualBackend) \
            else create_backend(backend, **backend_options)
        self.fps, self.sample_rate = float(fps), int(sample_rate)
        self.max_side, self.max_seconds, self.min_seconds = max_side, max_seconds, min_seconds
        self._spec: Optional[FeatureSpec] = None

    @property
    def spec(self) -> FeatureSpec:
        if self._spec is None:
            self._spec = self._build_spec()
        return self._spec

    def _build_spec(self) -> FeatureSpec:
        visual, vgroups = _flatten(self.backend.columns() + CropStats.columns())
        audio, agroups = audio_feature_names()
        return FeatureSpec(
            visual_names=tuple(visual), audio_names=tuple(audio), visual_groups=vgroups,
            audio_groups=agroups, fps=self.fps, sample_rate=self.sample_rate,
            backend=self.backend.name, backend_version=self.backend.version,
            backend_config={**self.backend.config(), "max_side": self.max_side},
            audio_config=audio_config(self.fps, self.sample_rate),
            library_versions={**_versions(), **self.backend.library_versions()})

    @property
    def cache_key(self) -> str:
        """Hash of every setting that changes a bundle (without running the backend)."""
        blob = json.dumps({"backend": self.backend.name, "version": self.backend.version,
                           "config": self.backend.config(), "fps": self.fps,
                           "sr": self.sample_rate, "max_side": self.max_side,
                           "max_seconds": self.max_seconds, "bundle": BUNDLE_FORMAT,
                           "audio": audio_config(self.fps, self.sample_rate)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def extract(self, path: str | os.PathLike,
                progress: Optional[Callable[[int, int], None]] = None) -> FeatureBundle:
        """Decode `path` and return its features. `progress(done, total)` is called per frame."""
        name = Path(path).name
        info = media.probe(path)
        total = int(min(info.duration, self.max_seconds) * self.fps) or None
        self.backend.reset()
        stats = CropStats()
        rows, valid, faces = [], [], []
        dim = self.spec.visual_dim
        frames = media.prefetched(media.iter_frames(path, self.fps, self.max_side,
                                                    self.max_seconds))
        for i, frame in enumerate(frames):
            result = self.backend.process(frame)
            if result.values is None:
                rows.append(np.zeros(dim, np.float32))
            else:
                rows.append(np.concatenate([result.values,
                                            stats(frame, result.face_box, result.mouth_box)]))
            valid.append(result.values is not None)
            faces.append(result.n_faces)
            if progress is not None:
                progress(i + 1, total or i + 1)
        media.check_length(len(rows), self.fps, name, self.min_seconds)
        audio = media.load_audio(path, self.sample_rate, self.max_seconds)
        afeat = extract_audio_features(audio, len(rows), self.fps, self.sample_rate)
        return FeatureBundle(np.stack(rows).astype(np.float32), afeat, np.array(valid, bool),
                             self.spec, self._info(info, audio, valid, faces))

    def _info(self, info: media.MediaInfo, audio, valid: list[bool], faces: list[int]) -> dict:
        warnings = list(info.warnings)
        capped = media.length_warning(info, self.max_seconds)
        if capped:
            warnings.append(capped)
        has_audio = audio is not None
        silent = has_audio and (audio.size == 0 or float(np.abs(audio).max()) < 1e-4)
        if not has_audio:
            warnings.append("no audio track: lip sync cannot be judged")
        elif silent:
            warnings.append("the audio track is silent: lip sync cannot be judged")
        missing = 1.0 - float(np.mean(valid)) if valid else 1.0
        if missing > 0:
            warnings.append(f"no face found in {missing:.0%} of frames")
        if max(faces, default=0) > 1:
            warnings.append(f"{max(faces)} faces seen; the largest one was scored")
        return {"source": Path(info.path).name, "duration": info.duration,
                "source_fps": info.fps, "width": info.width, "height": info.height,
                "video_codec": info.video_codec, "container": info.container,
                "has_audio": has_audio, "silent_audio": bool(silent), "capped": bool(capped),
                "face_missing_fraction": missing, "max_faces": int(max(faces, default=0)),
                "warnings": warnings}


def _flatten(groups: list[tuple[str, list[str]]]) -> tuple[list[str], dict]:
    names, spans = [], {}
    for group, cols in groups:
        spans[group] = (len(names), len(names) + len(cols))
        names += cols
    return names, spans
