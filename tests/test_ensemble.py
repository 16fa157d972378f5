"""Ensembles: one checkpoint holding several members scores each task as the members' mean and
reports their spread (standard deviation) per task, and warns when they disagree.
Members are random-weight TEST FIXTURE checkpoints, not trained models."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from helpers import TASKS, make_random_checkpoint
from talkface.api import load_scorer
from talkface.checkpoint import load_checkpoint, save_checkpoint
from train.ensemble import build_ensemble

CLIP = Path(__file__).resolve().parent / "data" / "fixtures" / "00_clean.mp4"


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return [make_random_checkpoint(root / f"m{seed}", seed=seed) for seed in (0, 1)]


def save_ensemble(members, folder: Path, disagreement: float) -> Path:
    model = build_ensemble([load_checkpoint(m) for m in members], disagreement)
    config = {"members": [{"name": "improved", "options": load_checkpoint(m).meta.options}
                          for m in members], "disagreement": disagreement}
    return save_checkpoint(folder, model, config)


def test_ensemble_reports_mean_and_spread_per_task(members, tmp_path):
    cache = tmp_path / "cache"
    each = [load_scorer(m, cache=cache).score(CLIP).scores for m in members]
    folder = save_ensemble(members, tmp_path / "ensemble", disagreement=0.5)
    result = load_scorer(folder, cache=cache).score(CLIP)
    assert set(result.tasks) == set(TASKS)
    for task, score in result.tasks.items():
        a, b = each[0][task], each[1][task]
        assert score.value == pytest.approx((a + b) / 2, abs=1e-5)
        # the standard deviation of two values (n - 1 in the denominator): |a - b| / sqrt(2)
        assert score.spread == pytest.approx(abs(a - b) / math.sqrt(2), abs=1e-5)
        assert score.spread > 0  # different seeds, different scores
        assert result.to_dict()["tasks"][task]["spread"] == score.spread
    assert not any("disagree" in w for w in result.warnings)
    # a single model has no spread
    assert all(s.spread is None for s in load_scorer(members[0], cache=cache).score(CLIP)
               .tasks.values())


def test_members_that_disagree_are_flagged(members, tmp_path):
    folder = save_ensemble(members, tmp_path / "ensemble", disagreement=1e-6)
    result = load_scorer(folder, cache=tmp_path / "cache").score(CLIP)
    assert any("members disagree" in w for w in result.warnings)
