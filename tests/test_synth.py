"""Synthetic benchmark: labels, splits, determinism, degradations, and the generator's realism."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talkface import media
from talkface.synth import degrade, labels
from talkface.synth.build import (COLUMNS, ClipJob, Pools, assign_splits, plan_jobs,
                                  render_jobs, sample_params)
from talkface.synth.faces import load_faces
from talkface.synth.generator import opening_from_audio
from talkface.synth.speech import list_voices

FIXTURES = Path(__file__).parent / "data" / "fixtures"

param_values = st.fixed_dictionaries({
    "offset_frames": st.floats(-15, 15),
    **{name: st.floats(f.neutral, f.neutral + f.max_strength) for name, f in
       labels.FACTORS.items()}})


# ---- labels ----

@settings(max_examples=300, deadline=None)
@given(params=param_values, which=st.sampled_from(labels.PARAMS), step=st.floats(0.01, 20))
def test_labels_never_rise_as_a_degradation_worsens(params, which, step):
    worse = dict(params)
    if which == "offset_frames":  # worse = further from 0 on the same side
        worse[which] = params[which] + math.copysign(step, params[which] or 1.0)
    else:
        worse[which] = params[which] + step
    before, after = labels.compute_labels(params), labels.compute_labels(worse)
    for task in labels.TASKS:
        assert 0.0 <= after[task] <= before[task] + 1e-12 <= 1.0 + 1e-9, (task, params, worse)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(labels.FACTORS)), target=st.floats(0.0, 1.0))
def test_strength_inverts_the_quality_curve(name, target):
    lo = labels.min_quality(name)
    value = labels.strength_for(name, max(target, lo))
    assert labels.q_factor(name, value) == pytest.approx(max(target, lo), abs=1e-6)


def test_offset_label_follows_bt1359_asymmetry():
    from talkface.constants import FPS
    ms = 1000 / FPS
    assert labels.q_offset(-45 / ms) == pytest.approx(0.8, abs=1e-6)  # audio early, detectable
    assert labels.q_offset(125 / ms) == pytest.approx(0.8, abs=1e-6)  # audio late, detectable
    assert labels.q_offset(-90 / ms) == pytest.approx(0.5) == labels.q_offset(185 / ms)
    for frames in (1, 2, 3, 5):  # audio early is worse than the same amount late
        assert labels.q_offset(-frames) < labels.q_offset(frames)
    assert labels.q_offset(0) == 1.0
    assert labels.offset_for(0.5, audio_late=True) == pytest.approx(185 / ms)


def test_clean_clip_is_perfect_and_no_audio_has_no_lip_sync():
    assert labels.compute_labels({}) == {t: 1.0 for t in labels.TASKS}
    no_audio = labels.compute_labels({"blur_sigma": 2.0}, has_audio=False)
    assert math.isnan(no_audio["lip_sync"]) and no_audio["visual_quality"] < 1.0


def test_sampled_targets_spread_labels_uniformly():
    rng = np.random.default_rng(0)
    lo = labels.min_quality("blur_sigma")
    targets = rng.uniform(lo, 1, 400)
    values = [labels.compute_labels(sample_params("blur", t, rng))["visual_quality"]
              for t in targets]
    hist, _ = np.histogram(values, bins=4, range=(lo, 1))
    assert hist.min() > 60, hist  # not piled up near 1.0


# ---- identities and splits ----

def test_variants_keep_the_identity_of_the_person():
    faces = {f.name: f for f in load_faces(redistributable_only=True)}
    assert faces["astronaut-mirror"].identity == faces["astronaut"].identity
    assert len({f.identity for f in faces.values()}) >= 3
    assert all(f.redistributable and f.licence for f in faces.values())


def test_splits_share_no_face_or_voice_identity():
    faces, voices = load_faces(redistributable_only=True), list_voices()
    pools = Pools.make(faces, voices, seed=3)
    jobs = plan_jobs(300, 128, 3, pools)
    face_id = {f.name: f.identity for f in faces}
    seen_face, seen_voice = {}, {}
    for job in jobs:
        assert seen_face.setdefault(face_id[job.face], job.split) == job.split
        assert seen_voice.setdefault(job.voice, job.split) == job.split
    assert set(seen_face.values()) == {"train", "val", "test"}


def test_assign_splits_is_deterministic_and_fills_every_split():
    ids = [f"id{i}" for i in range(20)]
    a, b = assign_splits(ids, 1), assign_splits(list(reversed(ids)), 1)
    assert a == b
    assert sorted(set(a.values())) == ["test", "train", "val"]


def test_families_vary_one_factor_in_graded_steps():
    pools = Pools.make(load_faces(redistributable_only=True), list_voices(), seed=0)
    jobs = plan_jobs(200, 128, 0, pools, family_fraction=1.0)
    family = [j for j in jobs if j.family == jobs[0].family]
    assert family[0].condition == "clean" and len(family) == 5
    assert len({(j.face, j.voice, j.seed) for j in family}) == 1
    (name,) = family[1].params
    quality = [labels.compute_labels(j.params) for j in family]
    task = labels.FACTORS[name].task if name in labels.FACTORS else "lip_sync"
    assert all(a[task] > b[task] for a, b in zip(quality, quality[1:]))


# ---- determinism ----

def _tiny_job(seed: int, condition: str = "noise", params=None) -> ClipJob:
    return ClipJob(f"clip_{seed}.mp4", "test", "luispedro", "espeak-en-us+f2", condition,
                   params if params is not None else {"noise_sigma": 6.0}, seed, 96, 0.8)


def test_same_seed_gives_the_same_bytes(tmp_path):
    faces, voices = load_faces(redistributable_only=True), list_voices(recorded=False)
    for out in ("a", "b"):
        render_jobs([_tiny_job(7)], tmp_path / out, faces, voices, progress=False)
    render_jobs([_tiny_job(8)], tmp_path / "c", faces, voices, progress=False)
    a = (tmp_path / "a" / "clip_7.mp4").read_bytes()
    b = (tmp_path / "b" / "clip_7.mp4").read_bytes()
    assert a == b
    assert (tmp_path / "c" / "clip_8.mp4").read_bytes() != a


# ---- degradations change what they claim to change ----

def _frames(n=12, size=64):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), (0, 0), 1.5)
    return np.stack([np.roll(img, i, axis=1) for i in range(n)])


def _laplacian_var(frames):
    return np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()
                    for f in frames])


def test_frame_degradations_change_their_measurable_thing():
    frames, rng = _frames(), np.random.default_rng(1)
    assert _laplacian_var(degrade.gaussian_blur(frames, 6.0)) < 0.5 * _laplacian_var(frames)
    noisy = degrade.additive_noise(frames, 10.0, rng)
    assert 8 < np.std(noisy.astype(float) - frames) < 12
    shaken = degrade.shake(frames, 4.0, rng)
    assert np.abs(np.diff(shaken.astype(float), axis=0)).mean() > \
        1.5 * np.abs(np.diff(frames.astype(float), axis=0)).mean()
    frozen = degrade.freeze_frames(frames, 0.5, rng)
    repeats = np.all(frozen[1:] == frozen[:-1], axis=(1, 2, 3)).mean()
    assert repeats == pytest.approx(6 / 11, abs=0.1)
    flick = degrade.colour_flicker(frames, 0.1, rng)
    assert np.std(flick.mean(axis=(1, 2, 3))) > 5 * np.std(frames.mean(axis=(1, 2, 3)))


def test_offset_shifts_audio_the_documented_way():
    audio = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    late = degrade.shift_audio(audio, 2.0)  # positive = audio late: starts 2 frames later
    assert np.array_equal(late[1280:], audio[:-1280]) and not late[:1280].any()
    early = degrade.shift_audio(audio, -2.0)
    assert np.array_equal(early[:-1280], audio[1280:])


def test_mouth_drive_degradations():
    t = np.arange(75)
    opening = 0.5 + 0.5 * np.sin(t / 3)
    assert np.std(degrade.freeze_mouth(opening, 1.0)) == pytest.approx(0)
    other = 0.5 + 0.5 * np.sin(t / 2.1 + 1)
    mixed = degrade.swap_drive(opening, other, 0.8)
    assert np.corrcoef(mixed, opening)[0, 1] < np.corrcoef(mixed, other)[0, 1]


def test_crf_degrades_the_encoding(tmp_path):
    frames = _frames(10, 96)
    sizes, errors = [], []
    for crf in (18, 45):
        path = tmp_path / f"crf{crf}.mp4"
        media.write_video(path, frames, crf=crf)
        decoded = np.stack(list(media.iter_frames(path)))
        sizes.append(path.stat().st_size)
        errors.append(np.abs(decoded.astype(float) - frames[:len(decoded)]).mean())
    assert sizes[1] < sizes[0] and errors[1] > errors[0]


# ---- fixtures and generator realism ----

def test_fixture_manifest_is_complete():
    rows = list(csv.DictReader(open(FIXTURES / "manifest.csv")))
    assert list(rows[0]) == COLUMNS
    conditions = {r["condition"] for r in rows}
    assert {"clean", "offset", "blur", "frozen_mouth", "no_audio", "no_face"} <= conditions
    assert all((FIXTURES / r["file"]).exists() for r in rows)
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 1_000_000
    assert {r["label_version"] for r in rows} == {labels.LABEL_VERSION}


@pytest.mark.parametrize("backend", ["mesh", "landmarks"])
def test_the_face_is_found_and_its_mouth_follows_the_speech(backend):
    from talkface.features.extract import Extractor
    path = FIXTURES / "00_clean.mp4"
    bundle = Extractor(backend=backend).extract(path)
    assert bundle.valid.mean() > 0.95
    opening = opening_from_audio(media.load_audio(path), bundle.n_frames)
    mouth = bundle.visual_column("mouth_open")
    assert np.corrcoef(mouth, opening)[0, 1] > 0.6


@pytest.mark.slow
def test_cli_builds_a_dataset_reproducibly(tmp_path):
    from talkface.synth.cli import main
    args = ["--n", "3", "--size", "96", "--duration", "0.8", "--seed", "5", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    ra = (tmp_path / "a" / "manifest.csv").read_text()
    assert ra == (tmp_path / "b" / "manifest.csv").read_text()
    for row in csv.DictReader(open(tmp_path / "a" / "manifest.csv")):
        assert (tmp_path / "a" / row["file"]).read_bytes() == \
            (tmp_path / "b" / row["file"]).read_bytes()


def test_swap_driver_is_really_another_utterance():
    """Single-file recorded voices used to give back their own speech as the 'different
    utterance': the mouth then followed the audio while the label said sync was bad."""
    from talkface.synth.build import SWAP_MAX_CORRELATION, swap_driver
    from talkface.sync.correlation import max_correlation as lag_correlation
    from talkface.synth.generator import opening_from_audio
    from talkface.synth.speech import list_voices, make_utterance
    voices = list_voices()
    single = [v for v in voices if v.kind == "file" and len(v.files) == 1]
    assert single, "pocketsphinx-testdata provides single-file recorded voices"
    for seed in range(3):
        voice = single[seed % len(single)]
        speech = make_utterance(voice, np.random.default_rng([seed, 0]), 3.0)
        opening = opening_from_audio(speech.audio, 75)
        driver = swap_driver(opening, voice, voices, seed, 3.0)
        assert lag_correlation(opening, driver) < SWAP_MAX_CORRELATION
        assert lag_correlation(opening, opening) > 0.99  # the measure does see a copy
