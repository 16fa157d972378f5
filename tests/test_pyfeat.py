"""The `pyfeat` backend, offline: py-feat's own model classes with seeded random weights, saved
where py-feat's loader looks (a temporary hub cache, see pyfeat_weights.py), HF_HUB_OFFLINE on.

Random weights say nothing about faces: these tests check names, groups, shapes, masks, face
choice and errors, never what the numbers mean. torch runs on one thread here: on a shared 2-core
machine two threads contend with other work and run several times slower.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from talkface import media
from talkface.errors import BackendUnavailable
from talkface.features import Extractor, FeatureBundle, create_backend
from talkface.features.image_stats import CropStats

from conftest import ROOT
from pyfeat_weights import link_resources, pyfeat_resources_at, random_weights_hub


@pytest.fixture(scope="module")
def hub():
    """A temporary py-feat hub cache with random weights, in force for this module."""
    with random_weights_hub(seed=0) as root:
        yield root


@pytest.fixture(scope="module")
def backend(hub):
    return create_backend("pyfeat", threads=1)


@pytest.fixture(scope="module")
def face_frame(face_video) -> np.ndarray:
    """The first frame of a real face clip, as the extractor sees it (512 x 288)."""
    return next(media.iter_frames(face_video))


def _feat_names():
    from feat.pretrained import AU_LANDMARK_MAP
    from feat.utils import (FEAT_EMOTION_COLUMNS, FEAT_FACEPOSE_COLUMNS_6D,
                            openface_2d_landmark_columns)
    return {"pyfeat_landmarks": list(openface_2d_landmark_columns),
            "pyfeat_aus": list(AU_LANDMARK_MAP["Feat"]),
            "pyfeat_emotions": list(FEAT_EMOTION_COLUMNS),
            "pyfeat_pose": list(FEAT_FACEPOSE_COLUMNS_6D)}


@pytest.mark.slow
def test_columns_are_pyfeats_own_grouped(backend):
    groups = [(g, c) for g, c in backend.columns() if not g.endswith("_stats")]
    assert dict(groups) == _feat_names()
    assert [(g, len(c)) for g, c in groups] == [("pyfeat_landmarks", 136), ("pyfeat_pose", 6),
                                                ("pyfeat_aus", 20), ("pyfeat_emotions", 7)]
    # then the crop statistics every backend shares
    assert [g for g, _ in backend.columns()][-2:] == ["face_stats", "mouth_stats"]


@pytest.mark.slow
def test_names_and_order_match_pyfeats_public_output(hub, backend, feat_data):
    """Detectorv1.detect() (py-feat's public API, Fex output) has every column, in our order."""
    fex = backend._detector.detect([str(feat_data / "single_face.jpg")], data_type="image",
                                   progress_bar=False)
    ours = [name for g, cols in backend.columns() if not g.endswith("_stats") for name in cols]
    theirs = [c for c in fex.columns if c in set(ours)]
    assert theirs == ours


@pytest.mark.slow
def test_frame_gives_one_finite_row_and_boxes(backend, face_frame):
    result = backend.start().process(face_frame)
    dim = sum(len(c) for g, c in backend.columns() if not g.endswith("_stats"))
    assert result.values.shape == (dim,) and result.values.dtype == np.float32
    assert np.isfinite(result.values).all()
    assert result.n_faces == 1
    h, w = face_frame.shape[:2]
    fx0, fy0, fx1, fy1 = result.face_box
    mx0, my0, mx1, my1 = result.mouth_box
    assert 0 <= fx0 < fx1 <= w and 0 <= fy0 < fy1 <= h  # the fixture's face sits in the frame
    assert fx0 <= mx0 < mx1 <= fx1 and fy0 <= my0 < my1 <= fy1
    landmarks = result.values[:136]  # relative to py-feat's face box, not pixels
    assert landmarks.min() >= 0 and landmarks.max() <= 1


@pytest.mark.slow
def test_threshold_above_one_finds_no_face(hub, face_frame):
    blind = create_backend("pyfeat", face_detection_threshold=1.01, threads=1)
    result = blind.start().process(face_frame)
    assert result.values is None and result.n_faces == 0


@pytest.mark.slow
def test_extraction_bundle_matches_spec(hub, face_video, tmp_path):
    extractor = Extractor(backend="pyfeat", max_seconds=1.0, threads=1)
    bundle = extractor.extract(face_video)
    spec = extractor.spec
    backend_names = [n for _, cols in extractor.backend.columns() for n in cols]
    stat_names = [n for _, cols in CropStats.columns() for n in cols]
    assert list(spec.visual_names) == backend_names and backend_names[-16:] == stat_names
    assert bundle.visual.shape == (25, spec.visual_dim) == (25, 169 + len(stat_names))
    assert bundle.audio.shape == (25, spec.audio_dim)
    assert spec.visual_groups["pyfeat_landmarks"] == (0, 136)
    assert spec.visual_groups["pyfeat_emotions"] == (162, 169)
    assert bundle.valid.all() and np.isfinite(bundle.visual).all()
    assert spec.backend == "pyfeat" and spec.library_versions["py-feat"] == "2.1.5"
    assert spec.extractor.options["emotion_model"] == "svm"
    assert spec.extractor.options["identity_model"] is None
    again = FeatureBundle.load(bundle.save(tmp_path / "clip"))
    assert again.spec.visual_names == spec.visual_names


@pytest.mark.slow
def test_faceless_frames_are_zero_rows_and_masked(hub, face_video):
    bundle = Extractor(backend="pyfeat", max_seconds=1.0, face_detection_threshold=1.01,
                       threads=1).extract(face_video)
    assert not bundle.valid.any()
    assert not bundle.visual.any()
    assert bundle.info["face_missing_fraction"] == 1.0


@pytest.mark.slow
def test_largest_face_is_chosen_then_tracked(backend, face_frame, monkeypatch):
    """Two faces: the larger is chosen; it is then followed by overlap even when the other one
    grows larger; when it leaves, the remaining face is taken."""
    session = backend.start()
    real_table, _ = backend.detect(face_frame)
    lm_x = [f"x_{i}" for i in range(68)]
    lm_y = [f"y_{i}" for i in range(68)]

    def face(table_row, x, y, size):
        row = table_row.copy()
        row[["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight"]] = [x, y, size, size]
        unit = np.linspace(0.2, 0.8, 68)
        row[lm_x] = x + unit * size
        row[lm_y] = y + unit[::-1] * size
        return row

    def frames(*faces):
        import pandas as pd
        table = pd.DataFrame([face(real_table.iloc[0], *f) for f in faces])
        return table.reset_index(drop=True), len(faces)

    steps = [frames((10, 10, 60), (200, 40, 120)),  # B is larger: chosen
             frames((10, 10, 160), (205, 42, 118)),  # A grows larger; B moved a little: kept
             frames((12, 12, 160))]  # B has left: A
    monkeypatch.setattr(backend, "detect", lambda frame: steps.pop(0))
    chosen = [session.process(face_frame) for _ in range(3)]
    assert [r.n_faces for r in chosen] == [2, 2, 1]
    assert chosen[0].face_box[0] > 150 and chosen[1].face_box[0] > 150
    assert chosen[2].face_box[0] < 100
    x = chosen[1].values[:68]  # landmark x in box units: 0.2..0.8 across the chosen box
    assert x.min() == pytest.approx(0.2, abs=1e-4) and x.max() == pytest.approx(0.8, abs=1e-4)


@pytest.mark.slow
def test_building_leaves_autograd_and_threads_env_alone(hub):
    import torch
    omp, threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    try:
        create_backend("pyfeat", threads=2)
        assert torch.is_grad_enabled()  # py-feat's RetinaFace switches it off process-wide
        assert torch.get_num_threads() == 2
        assert os.environ.get("OMP_NUM_THREADS") == omp
    finally:
        torch.set_num_threads(threads)


def _hub_without(hub, tmp_path, repo: str):
    """A copy of `hub` (linked, not copied) that lacks one repo."""
    tmp_path.mkdir(parents=True)
    link_resources(tmp_path)
    for item in hub.iterdir():
        if item.name.startswith("models--") and item.name != repo:
            (tmp_path / item.name).symlink_to(item)
    return tmp_path


@pytest.mark.slow
def test_missing_weight_is_a_clear_error(hub, tmp_path):
    root = _hub_without(hub, tmp_path / "cache", "models--py-feat--svm_emo")
    with pyfeat_resources_at(root):
        with pytest.raises(BackendUnavailable) as err:
            create_backend("pyfeat", threads=1)
    message = str(err.value)
    assert "py-feat/svm_emo/svm_emo_classifier.skops" in message
    assert "retinaface" not in message  # only what is missing is named
    assert "HF_HUB_OFFLINE is set" in message and "huggingface.co/py-feat" in message
    assert str(root) in message


@pytest.mark.slow
def test_pyfeats_own_not_found_error_is_translated(hub, tmp_path, monkeypatch):
    """If the file table here drifts from py-feat's, its own hub error still becomes a clear one."""
    from talkface.features import pyfeat_backend
    root = _hub_without(hub, tmp_path / "cache", "models--py-feat--mobilefacenet")
    real = pyfeat_backend.missing_weights
    calls = []
    monkeypatch.setattr(pyfeat_backend, "missing_weights",
                        lambda *a: calls.append(1) or ([] if len(calls) == 1 else real(*a)))
    with pyfeat_resources_at(root):
        with pytest.raises(BackendUnavailable, match="mobilefacenet_model_best.pth.tar"):
            create_backend("pyfeat", threads=1)


def test_registry_import_does_not_load_pyfeat():
    code = ("import sys; from talkface.features import list_backends; "
            "assert 'pyfeat' in list_backends(); assert 'feat' not in sys.modules, 'feat loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_pyfeat_without_landmarks_is_refused_before_loading_anything():
    from talkface.errors import ConfigError
    with pytest.raises(ConfigError, match="landmark_model"):
        create_backend("pyfeat", landmark_model=None)


@pytest.mark.slow
def test_an_extractor_rebuilds_from_its_own_recorded_settings(hub):
    """A checkpoint's ExtractorConfig must rebuild the same extractor (options are constructor
    arguments only)."""
    first = Extractor(backend="pyfeat", threads=1)
    again = Extractor(first.config)
    assert again.spec.fingerprint == first.spec.fingerprint
