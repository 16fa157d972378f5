"""Models: registry, forward shapes and ranges, gradients everywhere, mask invariance, checkpoint
round trip and spec mismatch refusal, for both registered variants."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.checkpoint import load_checkpoint, save_checkpoint
from talkface.errors import CheckpointError, ConfigError, SpecMismatch, TalkfaceError
from talkface.models import create_model, list_models
from talkface.models.losses import multitask_loss, smooth_targets
from talkface.spec import FeatureSpec, tasks_from_names

from helpers import make_spec as spec

TASKS = tasks_from_names(["lip_sync", "visual_quality", "temporal_quality", "overall"])
SMALL = {"encoder_dim": 16, "num_layers": 2, "num_heads": 2}
VARIANTS = ["original", "improved"]


def inputs(b: int = 3, t: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    visual, audio = torch.randn(b, t, 7, generator=g), torch.randn(b, t, 5, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 8:] = False  # padding at the end
    mask[1, 2:4] = False  # face-less frames in the middle
    return visual, audio, mask


def test_both_variants_are_registered_and_a_second_registration_is_refused():
    from talkface.models import register_model
    assert {"original", "improved"} <= set(list_models())
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("nope", spec(), TASKS)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("improved")(type("Other", (torch.nn.Module,), {}))


def test_options_are_validated_per_model():
    with pytest.raises(ConfigError, match="improved.*not_an_option"):
        create_model("improved", spec(), TASKS, not_an_option=1)
    # an option of the other model is not this model's option
    with pytest.raises(ConfigError, match="original.*encoder_layers"):
        create_model("original", spec(), TASKS, encoder_layers=2)
    with pytest.raises(ConfigError, match="dropout"):
        create_model("improved", spec(), TASKS, dropout=1.5)


def test_visual_tasks_never_see_the_audio():
    """Changing only the audio cannot move visual or temporal quality (no cross-talk), while it
    does move lip sync (the test can fail)."""
    torch.manual_seed(0)
    model = create_model("improved", spec(), TASKS, **SMALL).eval()
    visual, audio, mask = inputs()
    before = model(visual, audio, mask).scores
    after = model(visual, torch.randn_like(audio) * 3, mask).scores
    for task in ("visual_quality", "temporal_quality"):
        torch.testing.assert_close(before[task], after[task], rtol=0, atol=0)
    assert not torch.allclose(before["lip_sync"], after["lip_sync"])


def test_input_sizes_come_from_the_spec():
    model = create_model("improved", spec(11, 3), TASKS, **SMALL)
    assert model.visual_encoder.skip.in_features == 2 * 11  # features and their deltas
    assert model.audio_encoder.skip.in_features == 2 * 3


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_is_finite_and_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, spec(), TASKS, **SMALL)
    visual, audio, mask = inputs()
    out = model(visual, audio, mask)
    assert set(out.scores) == {t.name for t in TASKS}
    for score in out.scores.values():
        assert score.shape == (3,) and torch.isfinite(score).all()
    temporal = out.attention["temporal"]
    assert temporal.shape == (3, 12) and torch.allclose(temporal.sum(1), torch.ones(3), atol=1e-5)
    assert (temporal[~mask] == 0).all()
    targets = {t.name: torch.rand(3) for t in TASKS}
    loss, per_task, _ = multitask_loss(model, out, targets, consistency_weight=0.1)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"parameters without gradient: {missing}"


def test_improved_scores_lie_in_the_task_range_and_returns_cross_attention():
    tasks = tasks_from_names(["overall", "mos"], {"mos": (1.0, 5.0)})
    model = create_model("improved", spec(), tasks, **SMALL)
    visual, audio, mask = inputs()
    out = model(visual * 100, audio * 100, mask)  # extreme inputs: still inside the range
    assert ((out.scores["overall"] >= 0) & (out.scores["overall"] <= 1)).all()
    assert ((out.scores["mos"] >= 1) & (out.scores["mos"] <= 5)).all()
    assert out.attention["cross"].shape == (3, 12, 12)
    assert out.attention["av_temporal"].shape == (3, 12)


@pytest.mark.parametrize("name", VARIANTS)
def test_masked_frames_never_change_a_score(name):
    torch.manual_seed(0)
    model = create_model(name, spec(), TASKS, **SMALL).eval()
    visual, audio, mask = inputs()
    before = model(visual, audio, mask).scores
    noisy_v, noisy_a = visual.clone(), audio.clone()
    noisy_v[~mask] = torch.randn(int((~mask).sum()), 7) * 50
    noisy_a[~mask] = torch.randn(int((~mask).sum()), 5) * 50
    after = model(noisy_v, noisy_a, mask).scores
    for task in before:
        torch.testing.assert_close(before[task], after[task], rtol=0, atol=1e-5)
    noisy_v[~mask] = float("nan")  # garbage in padding must not leak as NaN * 0
    nan_padded = model(noisy_v, noisy_a, mask).scores
    for task in before:
        torch.testing.assert_close(before[task], nan_padded[task], rtol=0, atol=1e-5)
    noisy_v[~mask] = torch.randn(int((~mask).sum()), 7) * 50
    # and the test can fail: changing a *valid* frame does change the scores
    noisy_v[0, 0] += 5.0
    changed = model(noisy_v, noisy_a, mask).scores
    assert any(not torch.allclose(before[t][0], changed[t][0]) for t in before)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_clip_without_any_valid_frame_stays_finite(name):
    model = create_model(name, spec(), TASKS, **SMALL).eval()
    visual, audio, mask = inputs()
    mask[2] = False
    out = model(visual, audio, mask)
    assert all(torch.isfinite(s).all() for s in out.scores.values())


def test_a_long_clip_is_scored_as_its_windows_weighted_by_face_frames(monkeypatch):
    """`talkface.predict`: past WINDOW frames a clip is scored in equal windows (its attention
    would cost memory quadratic in its length); its score is the windows' mean weighted by their
    face frames, its attention maps cover every frame."""
    import talkface.predict as P
    monkeypatch.setattr(P, "WINDOW", 40)
    assert P.windows(30) == [(0, 30)] and P.windows(100) == [(0, 33), (33, 67), (67, 100)]
    torch.manual_seed(0)
    model = create_model("improved", spec(), TASKS, **SMALL).eval()
    rng = np.random.default_rng(0)
    visual = rng.normal(size=(100, 7)).astype(np.float32)
    audio = rng.normal(size=(100, 5)).astype(np.float32)
    valid = np.ones(100, bool)
    valid[40:60] = False  # the middle window has 13 face frames of 34
    whole = P.predict(model, [P.ClipFeatures(visual, audio, valid)], attention=True)[0]
    parts = P.predict(model, [P.ClipFeatures(visual[a:b], audio[a:b], valid[a:b])
                              for a, b in P.windows(100)])
    weights = np.array([valid[a:b].sum() for a, b in P.windows(100)], float)
    for task in whole.scores:
        expected = np.average([p.scores[task] for p in parts], weights=weights)
        assert whole.scores[task] == pytest.approx(expected, abs=1e-5)
    assert whole.attention["temporal"].shape == (100,)
    assert whole.attention["temporal"].sum() == pytest.approx(1.0, abs=1e-3)
    assert whole.attention["cross"].shape[0] == whole.attention["cross"].shape[1] <= 100
    assert not whole.attention["cross"][:20, -20:].any()  # windows do not attend to each other
    monkeypatch.setattr(P, "WINDOW", 1000)  # one window: the whole clip as the model sees it
    single = P.predict(model, [P.ClipFeatures(visual, audio, valid)])[0]
    assert any(abs(single.scores[t] - whole.scores[t]) > 1e-4 for t in whole.scores)


def test_uncertainty_weights_follow_kendall():
    model = create_model("improved", spec(), TASKS, **SMALL)
    with torch.no_grad():
        model.log_vars.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    losses = {t.name: torch.tensor(0.2) for t in TASKS}
    expected = sum(torch.exp(-s) * 0.2 + s for s in model.log_vars.detach())
    torch.testing.assert_close(model.loss_weights(losses), expected)
    equal = create_model("original", spec(), TASKS, **SMALL)
    torch.testing.assert_close(equal.loss_weights(losses), torch.tensor(0.2))


def test_consistency_loss_is_zero_when_overall_matches_the_combination():
    model = create_model("improved", spec(), TASKS, **SMALL)
    with torch.no_grad():
        model.consistency.weight.fill_(1 / 3)
        model.consistency.bias.zero_()
    others = {n: torch.rand(4) for n in ("lip_sync", "visual_quality", "temporal_quality")}
    scores = {**others, "overall": sum(others.values()) / 3}
    assert model.consistency_loss(scores) < 1e-10
    scores["overall"] = scores["overall"] + 0.5
    assert model.consistency_loss(scores).item() == pytest.approx(0.25)


def test_label_smoothing_shrinks_toward_the_mean():
    out = smooth_targets({"a": torch.tensor([0.0, 1.0, float("nan")])}, {"a": 0.5}, 0.1)
    torch.testing.assert_close(out["a"][:2], torch.tensor([0.05, 0.95]))
    assert torch.isnan(out["a"][2])


@pytest.mark.parametrize("name", VARIANTS)
def test_checkpoint_round_trip(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name, spec(), TASKS, **SMALL).eval()
    model.set_normalization(torch.rand(7), torch.rand(7) + 0.5, torch.rand(5), torch.rand(5) + .5)
    save_checkpoint(tmp_path / "ck", model, SMALL, metrics={"overall": {"mse": 0.1}})
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.model.model_name == name and loaded.spec == model.spec
    visual, audio, mask = inputs()
    for task, score in model(visual, audio, mask).scores.items():
        torch.testing.assert_close(loaded.model(visual, audio, mask).scores[task], score)


def test_checkpoint_refuses_a_different_spec_naming_both(tmp_path):
    model = create_model("improved", spec(), TASKS, **SMALL)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "ck", model, SMALL))
    live = spec(dv=9)
    with pytest.raises(SpecMismatch, match="visual=7.*visual=9"):
        loaded.spec.check_compatible(live)


def test_checkpoint_with_missing_weights_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    model = create_model("improved", spec(), TASKS, **SMALL)
    folder = save_checkpoint(tmp_path / "ck", model, SMALL)
    state = load_file(str(folder / "model.safetensors"))
    state.pop("log_vars")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="log_vars"):
        load_checkpoint(folder)


# --- the shipped checkpoint ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "talkface" / "checkpoints" / "default"
FIXTURES = ROOT / "tests" / "data" / "fixtures"
SAMPLES = ROOT / "talkface" / "app" / "samples"
# Six of the app's bundled samples, one per condition, over three faces and three voice sources
# (flite, espeak, recorded speech); 00011 and 00014 are the same face and voice, clean and with
# the mouth frozen.
APP_SAMPLES = ("clips/00011_clean.mp4", "clips/00014_frozen_mouth.mp4", "clips/00023_offset.mp4",
               "clips/00018_noise.mp4", "clips/00030_shake.mp4", "clips/00006_freeze.mp4")
# The shipped checkpoint's scores on the fixtures ("scores") and on APP_SAMPLES
# ("app_sample_scores"): the behaviour refactors must keep. After a change that is meant to move
# them (a retrained checkpoint, new features), regenerate from the repository root with
# REGENERATE (PYTHONPATH=. scores this checkout's code, whatever talkface is installed).
EXPECTED = ROOT / "tests" / "data" / "expected_scores.json"
REGENERATE = "PYTHONPATH=. python tests/test_models.py --write-expected"


def shipped_scores(folder: Path, files: list[str] | tuple[str, ...]) -> dict:
    """{file: {task: score}} of the shipped checkpoint on `folder`'s `files`, through the same
    path a user takes (`load_scorer(...).score`), features extracted fresh (no cache)."""
    from talkface.api import load_scorer
    scorer = load_scorer(SHIPPED, cache=False)
    scores = {}
    for name in files:
        try:
            result = scorer.score(folder / name)
        except TalkfaceError as err:  # a fixture meant to fail (no face, no video...) is skipped
            scores[name] = {"error": str(err).split(":")[0]}
            continue
        scores[name] = dict(result.scores)
    return scores


def fixture_files() -> list[str]:
    import pandas as pd
    return pd.read_csv(FIXTURES / "manifest.csv")["file"].astype(str).tolist()


def assert_same_scores(actual: dict, expected: dict) -> None:
    """Every stored score within 1e-4, "not judged" still not judged, the same errors."""
    assert set(actual) == set(expected)
    for name, scores in expected.items():
        for task, value in scores.items():
            if task == "error":
                assert actual[name].get("error") == value
            elif value is None:
                assert actual[name][task] is None, (name, task)  # not judged stays not judged
            else:
                assert actual[name][task] == pytest.approx(value, abs=1e-4), (name, task)


def test_shipped_checkpoint_is_improved_small_and_matches_the_default_extractor():
    if not (SHIPPED / "model.safetensors").exists():
        pytest.fail(f"no shipped checkpoint at {SHIPPED}")
    from talkface.features.extract import Extractor
    loaded = load_checkpoint(SHIPPED)
    members = loaded.meta.options.get("members")
    assert loaded.meta.model_name == "improved" or (
        loaded.meta.model_name == "ensemble" and {m["name"] for m in members} == {"improved"})
    assert (SHIPPED / "model.safetensors").stat().st_size <= 20 * 2 ** 20
    loaded.spec.check_compatible(Extractor(loaded.spec.extractor).spec, "checkpoint",
                                 "extractor")
    assert loaded.spec.backend == "mesh"  # the backend for real footage


def test_the_shipped_checkpoints_command_names_the_recipe_it_was_trained_with():
    """The command stored with the shipped checkpoint, and shown on its card, rebuilds it: the
    config it names, with its overrides, gives the shipped architecture (every member of an
    ensemble, as many as --members) and the shipped feature settings."""
    import argparse
    import shlex

    from talkface.features.extract import Extractor
    from train.config import load_config
    loaded = load_checkpoint(SHIPPED)
    command = loaded.meta.command
    assert command in (SHIPPED / "card.md").read_text()
    words = shlex.split(command)
    assert words[:2] == ["python", "-m"] and words[2] in ("train", "train.ensemble"), command
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="optimized")  # train.ensemble's default
    parser.add_argument("--model")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args, _ = parser.parse_known_args(words[3:])
    cfg = load_config(args.config, args.overrides, model=args.model)
    recipe = {"name": cfg.model.name, "options": cfg.model.kwargs()}
    if words[2] == "train.ensemble":
        members = loaded.meta.options["members"]
        assert len(members) == args.members
    else:
        members = [{"name": loaded.meta.model_name, "options": loaded.meta.options}]
    assert all(member == recipe for member in members), (recipe, members)
    loaded.spec.check_compatible(Extractor(cfg.data.features).spec, "checkpoint",
                                 f"config {args.config}")


@pytest.mark.slow
def test_shipped_checkpoint_reproduces_stored_scores():
    if not (FIXTURES / "manifest.csv").exists():
        pytest.skip(f"no fixture clips at {FIXTURES}")
    assert EXPECTED.exists(), f"regenerate with: {REGENERATE}"
    actual = shipped_scores(FIXTURES, fixture_files())
    assert_same_scores(actual, json.loads(EXPECTED.read_text())["scores"])
    # behaviour, not only golden numbers: each degradation lowers its own task
    clean = actual["00_clean.mp4"]
    assert actual["01_offset.mp4"]["lip_sync"] < clean["lip_sync"]
    assert actual["04_frozen_mouth.mp4"]["lip_sync"] < clean["lip_sync"]
    assert actual["03_blur.mp4"]["visual_quality"] < clean["visual_quality"]
    assert actual["05_crf.mp4"]["visual_quality"] < clean["visual_quality"]
    assert actual["06_no_audio.mp4"]["lip_sync"] is None


@pytest.mark.slow
def test_shipped_checkpoint_reproduces_stored_scores_on_the_apps_samples():
    """The clips a user first tries in the app score as they did when the scores were stored."""
    assert EXPECTED.exists(), f"regenerate with: {REGENERATE}"
    actual = shipped_scores(SAMPLES, APP_SAMPLES)
    assert_same_scores(actual, json.loads(EXPECTED.read_text())["app_sample_scores"])
    frozen, clean = actual["clips/00014_frozen_mouth.mp4"], actual["clips/00011_clean.mp4"]
    assert frozen["lip_sync"] < clean["lip_sync"]  # same face and voice, the mouth frozen


def _variants(tmp_path) -> dict:
    """The speaking fixture clip as it is, with its audio 8 frames late, and blurred."""
    import cv2

    from talkface import media
    from talkface.api import load_scorer
    clip = media.load_clip(FIXTURES / "00_clean.mp4")
    shift = 8 * 16000 // 25  # 8 frames late, from silence before the clip
    late = np.concatenate([np.zeros(shift, np.float32), clip.audio[:-shift]])
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in clip.frames])
    scorer = load_scorer(SHIPPED, cache=False)
    scores = {}
    for name, frames, audio in (("same", clip.frames, clip.audio), ("late", clip.frames, late),
                                ("blur", blurred, clip.audio)):
        path = tmp_path / f"{name}.mp4"
        media.write_video(path, frames, 25, audio, crf=18)
        scores[name] = scorer.score(path)
    return scores


@pytest.mark.slow
def test_shifting_the_audio_does_not_move_visual_or_temporal_quality(tmp_path):
    """Issue 10's cross-talk bound: an audio offset alone moves visual and temporal quality by
    < 0.03 (they never see the audio), while the offset is found and the overall score drops
    (the test can fail). On this puppet the lip_sync score itself barely moves (the sync
    model's confidence on puppet mouths is below its reliability threshold): docs/results.md."""
    r = _variants(tmp_path)
    s = {name: result.scores for name, result in r.items()}
    for task in ("visual_quality", "temporal_quality"):
        assert abs(s["late"][task] - s["same"][task]) < 0.03, (task, s["same"], s["late"])
    assert 6 <= r["late"].sync.offset_frames <= 10  # the shift itself is seen
    assert s["late"]["overall"] < s["same"]["overall"]
    assert s["blur"]["visual_quality"] < s["same"]["visual_quality"] - 0.05


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known shortfall, measured: a blur of sigma 2.5 moves "
                   "the shipped checkpoint's lip_sync by about 0.13 on this fixture (issue 10 "
                   "asks < 0.03); see docs/results.md. Passing means it is fixed: drop this mark")
def test_blurring_the_picture_does_not_move_lip_sync(tmp_path):
    s = {name: result.scores for name, result in _variants(tmp_path).items()}
    assert abs(s["blur"]["lip_sync"] - s["same"]["lip_sync"]) < 0.03, (s["same"], s["blur"])


if __name__ == "__main__" and "--write-expected" in sys.argv:
    EXPECTED.parent.mkdir(parents=True, exist_ok=True)
    meta = json.loads((SHIPPED / "meta.json").read_text())
    EXPECTED.write_text(json.dumps({"checkpoint": str(SHIPPED.relative_to(ROOT)),
                                    "model": meta["model_name"],
                                    "feature_fingerprint": FeatureSpec.model_validate(
                                        meta["feature_spec"]).fingerprint,
                                    "scores": shipped_scores(FIXTURES, fixture_files()),
                                    "app_sample_scores": shipped_scores(SAMPLES, APP_SAMPLES)},
                                   indent=1) + "\n")
    print(f"wrote {EXPECTED}")
