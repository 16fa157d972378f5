"""Metrics against scipy/known values, including ties, constants and unlabelled (NaN) targets."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from talkface.metrics import krcc, mae, mse, pearson, r2, rankdata, regression_metrics, srcc, \
    task_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(seed, ties):
    rng = np.random.default_rng(seed)
    true = rng.normal(size=200)
    pred = 0.6 * true + rng.normal(size=200)
    if ties:
        true, pred = np.round(true, 1), np.round(pred, 1)
    assert pearson(pred, true) == pytest.approx(stats.pearsonr(pred, true)[0], abs=1e-10)
    assert srcc(pred, true) == pytest.approx(stats.spearmanr(pred, true)[0], abs=1e-10)
    assert krcc(pred, true) == pytest.approx(stats.kendalltau(pred, true)[0], abs=1e-10)
    np.testing.assert_allclose(rankdata(true), stats.rankdata(true))


def test_kendall_chunking_does_not_change_the_result():
    rng = np.random.default_rng(5)
    true, pred = rng.integers(0, 5, 301).astype(float), rng.normal(size=301)
    assert krcc(pred, true, chunk=7) == pytest.approx(stats.kendalltau(pred, true)[0], abs=1e-10)


def test_errors_and_r2_known_values():
    true, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0])
    assert mse(pred, true) == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert mae(pred, true) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert r2(pred, true) == pytest.approx(1 - 2.25 / 5.0)
    assert r2(np.full(4, true.mean()), true) == pytest.approx(0.0)
    assert r2(true, true) == 1.0


def test_degenerate_inputs_give_nan_not_errors():
    assert math.isnan(r2([1, 2, 3], [2, 2, 2]))
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(krcc([1.0], [2.0]))


def test_unlabelled_targets_are_left_out():
    true = np.array([0.1, np.nan, 0.5, 0.9])
    pred = np.array([0.2, 100.0, 0.5, 0.7])
    assert mse(pred, true) == pytest.approx((0.01 + 0 + 0.04) / 3)
    with pytest.raises(ValueError):
        mse([1, 2], [1, 2, 3])


def test_task_metrics_mean_row():
    rng = np.random.default_rng(0)
    trues = {"a": rng.random(30), "b": rng.random(30)}
    preds = {"a": trues["a"] + 0.1, "b": trues["b"] * 0.5}
    out = task_metrics(preds, trues)
    assert out["a"] == regression_metrics(preds["a"], trues["a"])
    assert out["mean"]["mse"] == pytest.approx((out["a"]["mse"] + out["b"]["mse"]) / 2)


def test_metric_table_direction_matches_each_function():
    """Each metric's higher_is_better agrees with what its function does: a close prediction
    scores better than a poor one in the stated direction."""
    from talkface.metrics import METRICS
    rng = np.random.default_rng(1)
    true = rng.random(50)
    close, poor = true + rng.normal(0, 0.05, 50), true + rng.normal(0, 0.5, 50)
    for metric in METRICS:
        good, bad = metric.function(close, true), metric.function(poor, true)
        assert (good > bad) == metric.higher_is_better, metric.name


def test_markdown_table_has_one_rule_and_equal_rows():
    from talkface.markdown import markdown_table
    text = markdown_table(["task", "MSE"], [["a", "0.1"], ["b", 2]])
    assert text.splitlines() == ["| task | MSE |", "|---|---|", "| a | 0.1 |", "| b | 2 |"]
