"""Features: spec names every column, faces are found and tracked, crop statistics see blur and
noise, audio columns line up with video frames, bundles and the cache round-trip. The default
(`mesh`) backend throughout, and the per-frame `landmarks` backend where it differs; the face
stage itself (small faces, several faces, pose, scale) is tested in test_faces.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkface import media
from talkface.cache import FeatureCache
from talkface.errors import BackendUnavailable, SpecMismatch, TooShort
from talkface.features import Extractor, FeatureBundle, create_backend, list_backends
from talkface.features.audio import extract_audio_features
from talkface.features.image_stats import region_stats

from conftest import ROOT, index_frames, tone


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor()


@pytest.fixture(scope="module")
def face_bundle(extractor, face_video) -> FeatureBundle:
    return extractor.extract(face_video)


def test_spec_names_every_column(extractor, face_bundle):
    spec = extractor.spec
    assert face_bundle.visual.shape == (face_bundle.n_frames, spec.visual_dim)
    assert face_bundle.audio.shape == (face_bundle.n_frames, spec.audio_dim)
    assert len(set(spec.visual_names)) == spec.visual_dim
    covered = sorted(i for a, b in spec.visual_groups.values() for i in range(a, b))
    assert covered == list(range(spec.visual_dim))
    assert {"landmarks", "lips", "geometry", "motion", "face_stats", "mouth_stats"} == set(
        spec.visual_groups)
    assert spec.backend == "mesh" and "ai-edge-litert" in spec.library_versions
    # the extractor's settings, defaults filled in, travel in the spec
    assert spec.extractor.options["detect_every"] == 10


def test_fingerprint_is_stable_and_tracks_settings(extractor):
    assert Extractor().spec.fingerprint == extractor.spec.fingerprint
    assert Extractor(max_seconds=10).spec.fingerprint == extractor.spec.fingerprint
    other = Extractor(detect_every=2).spec
    assert other.fingerprint != extractor.spec.fingerprint
    with pytest.raises(SpecMismatch, match="detect_every"):
        extractor.spec.check_compatible(other)
    with pytest.raises(SpecMismatch, match="backend"):
        extractor.spec.check_compatible(Extractor(backend="landmarks").spec)


def test_real_face_is_found_in_every_frame(face_bundle):
    assert face_bundle.n_frames == 60  # 2.4 s at 25 fps
    assert face_bundle.valid.all()
    assert face_bundle.info["max_faces"] == 1 and face_bundle.info["has_audio"]
    mouth = face_bundle.visual_column("mouth_width")
    assert np.all((mouth > 0.6) & (mouth < 1.4))  # mouth corners in inter-ocular distances
    yaw = face_bundle.visual_column("yaw") * 90
    assert np.abs(yaw).max() < 15  # a frontal face reads as frontal, frame after frame
    assert face_bundle.info["scored_track"] == 0 and len(face_bundle.info["tracks"]) == 1
    boxes = face_bundle.info["boxes"]
    assert len(boxes) == 60 and all(b is not None and b[2] > b[0] for b in boxes)
    assert np.isfinite(face_bundle.visual).all() and np.isfinite(face_bundle.audio).all()


def test_faceless_clip_is_masked_and_warned(extractor, noface_video):
    bundle = extractor.extract(noface_video)
    assert not bundle.valid.any()
    assert not bundle.visual.any()
    assert bundle.info["face_missing_fraction"] == 1.0
    assert any("no face found in any frame" in w for w in bundle.warnings)


def test_largest_of_several_faces_is_chosen(feat_data):
    image = cv2.cvtColor(cv2.imread(str(feat_data / "multi_face.jpg")), cv2.COLOR_BGR2RGB)
    scale = 512 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale)
    # enlarge the left face so "largest" is unambiguous
    x0, y0, x1, y1 = 130, 100, 240, 215
    big = cv2.resize(image[y0:y1, x0:x1], None, fx=1.6, fy=1.6)
    image[20:20 + big.shape[0], 20:20 + big.shape[1]] = big
    backend = create_backend("landmarks")
    result = backend.start().process(image)
    assert result.n_faces >= 2
    cx = (result.face_box[0] + result.face_box[2]) / 2
    assert cx < 20 + big.shape[1], "the enlarged face (left) should be the one scored"


def test_faces_are_counted_in_a_clip(tmp_path, feat_data):
    image = cv2.cvtColor(cv2.imread(str(feat_data / "multi_face.jpg")), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (512, 342))[:, :, :]
    image = image[: image.shape[0] // 2 * 2]
    path = tmp_path / "two.mp4"
    media.write_video(path, np.repeat(image[None], 20, axis=0), 25)
    bundle = Extractor().extract(path)
    assert bundle.info["max_faces"] >= 2 and len(bundle.info["tracks"]) >= 2
    assert any("faces seen" in w and "was scored" in w for w in bundle.warnings)
    assert any("no audio" in w for w in bundle.warnings)


def test_crop_stats_see_blur_and_noise(face_video):
    frame = next(media.iter_frames(face_video))
    box = (160.0, 90.0, 300.0, 250.0)
    clean, _ = region_stats(frame, box, (128, 128), None)
    blurred, _ = region_stats(cv2.GaussianBlur(frame, (0, 0), 3), box, (128, 128), None)
    noisy_frame = np.clip(frame + np.random.default_rng(0).normal(0, 20, frame.shape), 0, 255)
    noisy, _ = region_stats(noisy_frame.astype(np.uint8), box, (128, 128), None)
    assert blurred[0] < clean[0] - 1.0  # sharpness (log Laplacian variance)
    assert noisy[1] > clean[1] + 0.5  # noise sigma
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, 5])
    blocky = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    blocky_stats, _ = region_stats(blocky, box, (128, 128), None)
    assert blocky_stats[2] > clean[2] + 0.2  # blockiness: jumps on the 8x8 grid


def test_audio_columns_align_with_video_frames():
    audio = np.zeros(16000 * 2, np.float32)
    audio[640 * 30: 640 * 31] = 0.5 * np.sin(np.arange(640) * 0.3)  # a burst in frame 30
    feats = extract_audio_features(audio, 50, 25, 16000)
    names = Extractor().spec.audio_names
    log_rms = feats[:, names.index("log_rms")]
    assert abs(int(np.argmax(log_rms)) - 30) <= 1
    assert feats.shape == (50, len(names))


def test_silent_and_missing_audio_are_flagged(tmp_path, extractor, face_video):
    clip = media.load_clip(face_video)
    path = tmp_path / "muted.mp4"
    media.write_video(path, clip.frames, 25, np.zeros_like(clip.audio))
    bundle = extractor.extract(path)
    assert bundle.info["has_audio"] and bundle.info["silent_audio"]
    assert any("silent" in w for w in bundle.warnings)
    assert np.isfinite(bundle.audio).all()


def test_bundle_round_trip_without_pickle(tmp_path, face_bundle):
    path = face_bundle.save(tmp_path / "clip")
    assert path.suffix == ".npz" and path.with_suffix(".json").exists()
    loaded = FeatureBundle.load(path)
    np.testing.assert_array_equal(loaded.visual, face_bundle.visual)
    np.testing.assert_array_equal(loaded.valid, face_bundle.valid)
    assert loaded.spec.fingerprint == face_bundle.spec.fingerprint
    with np.load(path, allow_pickle=False) as arrays:
        assert set(arrays.files) == {"visual", "audio", "valid"}


def test_cache_turns_a_second_extraction_into_a_lookup(tmp_path, face_video, monkeypatch):
    extractor = Extractor(backend="landmarks")
    cache = FeatureCache(tmp_path / "cache")
    first = cache.get_or_extract(extractor, face_video)
    calls = []
    monkeypatch.setattr(extractor, "extract", lambda *a, **k: calls.append(a))
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(face_video.read_bytes())  # same bytes, other name: still a hit
    second = cache.get_or_extract(extractor, copy)
    assert calls == []
    np.testing.assert_array_equal(first.visual, second.visual)
    assert cache.get(Extractor(backend="landmarks", detect_every=3), face_video) is None


def test_unknown_backend_is_a_clear_error():
    assert {"mesh", "landmarks", "pyfeat"} <= set(list_backends())
    with pytest.raises(BackendUnavailable, match="unknown visual backend 'openface'"):
        Extractor(backend="openface")


def test_too_short_clip_is_refused_by_the_extractor(tmp_path, extractor):
    path = tmp_path / "short.mp4"
    media.write_video(path, index_frames(6), 25, tone(0.24))
    with pytest.raises(TooShort, match="short.mp4.*too short"):
        extractor.extract(path)


@pytest.mark.parametrize("backend", ["mesh", "landmarks"])
def test_an_extractor_rebuilds_from_its_recorded_settings(backend):
    """What the spec records (options with defaults) rebuilds the same extractor: a checkpoint
    can always be scored with the features it was trained on."""
    first = Extractor(backend=backend)
    assert Extractor(first.spec.extractor).spec.fingerprint == first.spec.fingerprint


# The shipped checkpoint's features on a few fixtures (a clean face, a blurred one, a heavily
# compressed one, one without audio): what a faster decoder or face stage must keep, since the
# quality model is trained on them. Regenerate only after a change meant to move features (and
# then bump the backend's revision, which keys the feature cache), from the repository root:
#     PYTHONPATH=. python tests/test_features.py --write-expected
STORED = ("00_clean", "03_blur", "05_crf", "06_no_audio")
EXPECTED_FEATURES = ROOT / "tests" / "data" / "expected_features.npz"


def shipped_features() -> dict[str, np.ndarray]:
    """{"<fixture>/<visual|audio|valid>": array} with the shipped checkpoint's own extractor."""
    from talkface.api import extractor_for
    from talkface.checkpoint import load_checkpoint
    extractor = extractor_for(load_checkpoint(ROOT / "talkface" / "checkpoints" / "default").spec)
    out = {}
    for name in STORED:
        bundle = extractor.extract(ROOT / "tests" / "data" / "fixtures" / f"{name}.mp4")
        out.update({f"{name}/visual": bundle.visual, f"{name}/audio": bundle.audio,
                    f"{name}/valid": bundle.valid})
    return out


@pytest.mark.slow
def test_shipped_extractor_reproduces_stored_features():
    """Every visual and audio column within 1e-4 of the stored features, the same face frames."""
    with np.load(EXPECTED_FEATURES, allow_pickle=False) as stored:
        expected = {k: stored[k] for k in stored.files}
    actual = shipped_features()
    assert set(actual) == set(expected)
    for key, want in expected.items():
        if key.endswith("/valid"):
            np.testing.assert_array_equal(actual[key], want, err_msg=key)
        else:
            assert actual[key].shape == want.shape, key
            worst = np.abs(actual[key].astype(np.float64) - want).max(axis=0)
            assert (worst <= 1e-4).all(), (key, np.flatnonzero(worst > 1e-4)[:10],
                                           float(worst.max()))


if __name__ == "__main__" and "--write-expected" in __import__("sys").argv:
    np.savez_compressed(EXPECTED_FEATURES, **shipped_features())
    print(f"wrote {EXPECTED_FEATURES}")
