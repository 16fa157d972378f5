"""From a video file to a `FeatureBundle`: aligned per-frame visual and audio matrices.

`Extractor` is built from one `ExtractorConfig` (backend and its options, frame rate, sample rate,
sync model). Per clip it opens a backend session (all per-clip state lives there, so one extractor
serves several threads), streams frames into it from `talkface.media` (frames and the audio
track decode ahead in threads), computes librosa audio features on the same frame grid and, where the config names a sync
model, the sync columns; then it writes warnings a reader can act on. Everything is recorded in one
`FeatureSpec`. A bundle is saved as `.npz` (arrays) + `.json` (spec and info): no pickle.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import media
from ..spec import ExtractorConfig, FeatureSpec
from .audio import audio_config, audio_feature_names, extract_audio_features
from .base import VisualBackend, VisualResult, create_backend

log = logging.getLogger(__name__)
BUNDLE_FORMAT = 3  # 3: the mesh backend reports held frames and per-frame repeat differences
Progress = Callable[[int, int, str], None]  # (done, total, what): one shape everywhere


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

    @property
    def unjudged(self) -> dict[str, str]:
        """Tasks this clip's inputs do not allow judging, with the reason: lip sync without an
        audio track, with a silent one, or where the sync model could not judge."""
        if not self.info.get("has_audio", True):
            return {"lip_sync": "no audio track"}
        if self.info.get("silent_audio", False):
            return {"lip_sync": "the audio track is silent"}
        sync = self.info.get("sync") or {}
        if sync and not sync.get("judged", True):
            return {"lip_sync": sync.get("reason", "cannot be judged")}
        return {}

    def visual_column(self, name: str) -> np.ndarray:
        return self.visual[:, self.spec.visual_index(name)]

    def audio_column(self, name: str) -> np.ndarray:
        return self.audio[:, self.spec.audio_index(name)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write `<path>.npz` and `<path>.json` atomically; returns the .npz path. The temporary
        files are named per writer, so processes writing the same cache entry at once (two
        scoring workers given copies of one clip) cannot mix their bytes."""
        base = Path(path).with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        npz, meta = base.with_suffix(".npz"), base.with_suffix(".json")
        part = f".{os.getpid()}-{threading.get_ident()}.part"
        tmp_npz = npz.with_name(npz.stem + part + ".npz")
        np.savez_compressed(tmp_npz, visual=self.visual, audio=self.audio, valid=self.valid)
        tmp_meta = meta.with_name(meta.name + part)
        tmp_meta.write_text(json.dumps({"format": BUNDLE_FORMAT, "info": self.info,
                                        "spec": json.loads(self.spec.to_json())}, indent=1))
        os.replace(tmp_npz, npz)
        os.replace(tmp_meta, meta)
        return npz

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureBundle":
        base = Path(path).with_suffix("")
        meta = json.loads(base.with_suffix(".json").read_text())
        if meta.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"bundle format {meta.get('format')}, expected {BUNDLE_FORMAT}")
        with np.load(base.with_suffix(".npz"), allow_pickle=False) as arrays:
            return cls(arrays["visual"], arrays["audio"], arrays["valid"].astype(bool),
                       FeatureSpec.model_validate(meta["spec"]), meta.get("info", {}))


def _versions() -> dict[str, str]:
    import av
    import librosa
    return {"av": av.__version__, "librosa": librosa.__version__, "numpy": np.__version__}


class _OneBlasThread:
    """numpy's BLAS on one thread while any extraction runs: the last bits of its products
    depend on its thread count (the mel bands and the sync distances of a 1-CPU Ray worker and
    of a 2-core process differed at 1e-7), and a file must give the same features on any
    machine, in one process or on many workers. Counted, so that concurrent extractions (the
    app's threads) restore the caller's limit only when the last one ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter = None

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                from threadpoolctl import threadpool_limits
                self._limiter = threadpool_limits(1, user_api="blas")
            self._users += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


ONE_BLAS_THREAD = _OneBlasThread()


def resolve_config(config: Optional[ExtractorConfig] = None, **overrides) -> ExtractorConfig:
    """`config` with `overrides` applied: ExtractorConfig fields by name, anything else is a
    backend option (changing the backend drops the old backend's options)."""
    base = (config or ExtractorConfig()).model_dump()
    fields = set(ExtractorConfig.model_fields)
    if "backend" in overrides and overrides["backend"] != base["backend"]:
        base["options"] = {}
    for key, value in overrides.items():
        if key in fields:
            base[key] = value
        else:
            base["options"] = {**base["options"], key: value}
    return ExtractorConfig.model_validate(base)


class Extractor:
    """Video file -> FeatureBundle. Build once (models load here), call `extract` many times,
    from several threads if you like."""

    def __init__(self, config: Optional[ExtractorConfig] = None,
                 visual_backend: Optional[VisualBackend] = None,
                 sync_runtime: Optional[str] = None, **overrides) -> None:
        """`Extractor()` (defaults), `Extractor(config)`, `Extractor(backend="landmarks",
        max_seconds=10)`: ExtractorConfig fields by name, other keywords are backend options.
        `visual_backend`: an already built backend to use (its settings win). `sync_runtime`:
        "onnx" or "torch" for the sync model (None: ONNX where its checkpoint has a current
        model.onnx, `talkface.sync.estimate.load_sync_model`)."""
        config = resolve_config(config, **overrides)
        self.backend = visual_backend or create_backend(config.backend, **config.options)
        self.config = config.model_copy(update={"backend": self.backend.name,
                                                "options": self.backend.options()})
        self.sync = None
        if self.config.sync:
            from ..sync.estimate import load_sync_model
            self.sync = load_sync_model(self.config.sync, sync_runtime)
        self._identity = None
        self._spec: Optional[FeatureSpec] = None

    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def spec(self) -> FeatureSpec:
        if self._spec is None:
            self._spec = self._build_spec()
        return self._spec

    def _build_spec(self) -> FeatureSpec:
        visual, vgroups = _flatten(self.backend.columns())
        audio_groups = audio_feature_names()
        if self.sync is not None:
            audio_groups = audio_groups + [("sync", self.sync.column_names())]
        audio, agroups = _flatten(audio_groups)
        cfg = self.config
        return FeatureSpec(
            visual_names=tuple(visual), audio_names=tuple(audio), visual_groups=vgroups,
            audio_groups=agroups, extractor=cfg, backend_version=self.backend.version,
            audio_config=audio_config(cfg.fps, cfg.sample_rate),
            sync_version=self.sync.fingerprint if self.sync is not None else None,
            library_versions={**_versions(), **self.backend.library_versions()})

    def cache_key(self, face: Optional[int] = None) -> str:
        """Hash of every setting that changes a bundle (without running the backend)."""
        blob = json.dumps({"config": self.config.model_dump(), "version": self.backend.version,
                           "revision": self.backend.revision, "bundle": BUNDLE_FORMAT,
                           "face": face,
                           "sync": self.spec.sync_version,
                           "audio": audio_config(self.fps, self.config.sample_rate)},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def frames(self, path):
        """The frames of `path` as the backend sees them (NativeFrames or downscaled RGB), on
        the fps grid: what the face boxes in a bundle's info are measured in."""
        cfg = self.config
        if self.backend.frame_kind == "native":
            return media.iter_native_frames(path, cfg.fps, cfg.max_seconds)
        return media.iter_frames(path, cfg.fps, cfg.max_side, cfg.max_seconds)

    def _start(self, n_frames: Optional[int]):
        if self.backend.frame_kind == "native":
            return self.backend.start(identity_frames=self.config.identity_frames,
                                      n_frames=n_frames)
        return self.backend.start()

    def analyse(self, path: str | os.PathLike, progress: Optional[Progress] = None,
                info: Optional[media.MediaInfo] = None, face: Optional[int] = None
                ) -> tuple[media.MediaInfo, VisualResult, Optional[np.ndarray]]:
        """Decode `path` through the visual backend: (its MediaInfo, the scored face's
        VisualResult, the audio or None). `extract` turns this into a FeatureBundle; the sync
        model's training reads the lip points and mouth crops from it."""
        name = Path(path).name
        info = info or media.probe(path)
        cfg = self.config
        total = int(min(info.duration, cfg.max_seconds) * cfg.fps) or None
        session = self._start(total)
        n = 0
        # the audio track decodes beside the frames (FFmpeg works without the GIL), on a core
        # the face stage leaves idle; its errors are raised here, after the frames' own
        with ThreadPoolExecutor(1, thread_name_prefix="talkface-audio") as pool:
            audio_job = pool.submit(media.load_audio, path, cfg.sample_rate, cfg.max_seconds)
            for i, frame in enumerate(media.prefetched(self.frames(path))):
                session.update(frame, i)
                n = i + 1
                if progress is not None:
                    progress(n, max(total or n, n), f"frames of {name}")
            media.check_length(n, cfg.fps, name, cfg.min_seconds)
            audio = audio_job.result()
        return info, session.finish(audio, self._choose_speaker, face), audio

    def extract(self, path: str | os.PathLike, progress: Optional[Progress] = None,
                info: Optional[media.MediaInfo] = None,
                face: Optional[int] = None) -> FeatureBundle:
        """Decode `path` and return its features. `progress(done, total, what)` is called per
        frame; `info` is the file's `media.probe` (read here when not given); `face` scores that
        face track instead of the speaking one."""
        cfg = self.config
        with ONE_BLAS_THREAD:
            info, visual, audio = self.analyse(path, progress, info, face)
            n = len(visual.valid)
            afeat = extract_audio_features(audio, n, cfg.fps, cfg.sample_rate)
            sync_info = None
            if self.sync is not None:
                sync_cols, sync_info = self.sync.clip_features(visual, audio, cfg.fps,
                                                               cfg.sample_rate)
                afeat = np.concatenate([afeat, sync_cols], axis=1)
            extra = self._identity_info(visual.info.pop("identity_samples", None))
        bundle_info = self._info(info, audio, visual, sync_info, extra)
        return FeatureBundle(visual.values, afeat.astype(np.float32), visual.valid, self.spec,
                             bundle_info)

    def _choose_speaker(self, candidates, audio) -> Optional[int]:
        from ..sync.speaker import choose_speaker
        return choose_speaker(candidates, audio, self.config.fps, self.config.sample_rate,
                              self.sync)

    def _identity_info(self, samples: Optional[dict]) -> dict:
        if not samples:
            return {}
        if self._identity is None:
            from ..faces.identity import IdentityEncoder
            self._identity = IdentityEncoder()
        from ..faces.identity import consistency
        frames = sorted(samples)
        vectors = [self._identity.from_face(*samples[i]) for i in frames]
        return {"identity": {"frames": frames, "consistency": consistency(vectors),
                             "descriptors": [[round(float(x), 5) for x in v] for v in vectors]}}

    def _info(self, info: media.MediaInfo, audio, visual: VisualResult, sync_info,
              extra: dict) -> dict:
        from .clip_warnings import clip_warnings
        valid, faces = visual.valid, visual.n_faces
        has_audio = audio is not None
        silent = has_audio and (audio.size == 0 or float(np.abs(audio).max()) < 1e-4)
        out = {"source": Path(info.path).name, "duration": info.duration,
               "source_fps": info.fps, "width": info.width, "height": info.height,
               "video_codec": info.video_codec, "container": info.container,
               "has_audio": has_audio, "silent_audio": bool(silent),
               "capped": bool(media.length_warning(info, self.config.max_seconds)),
               "face_missing_fraction": 1.0 - float(np.mean(valid)) if len(valid) else 1.0,
               "max_faces": int(faces.max(initial=0)),
               "boxes": [None if not np.isfinite(b).all() else [round(float(v), 1) for v in b]
                         for b in visual.boxes],
               **visual.info, **extra}
        if sync_info is not None:
            out["sync"] = sync_info
        out["warnings"] = clip_warnings(info, out, self.config.max_seconds)
        return out


def _flatten(groups: list[tuple[str, list[str]]]) -> tuple[list[str], dict]:
    names, spans = [], {}
    for group, cols in groups:
        spans[group] = (len(names), len(names) + len(cols))
        names += cols
    return names, spans
