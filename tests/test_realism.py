"""The generated-look model (`talkface.realism`, fitted by `train.realism`): its statistics, its
fit measured on held-out groups, and its place in the one inference path (a signal, and a
penalty on overall)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from talkface.calibration import Calibration, excess, penalty_term, percentiles
from talkface.realism import Realism, clip_statistics, statistic_names

NAMES = tuple(f"v{i}" for i in range(7))


def _clip(rng, generated: bool, frames: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A made clip's visual columns: a generator's is too clean (column 0 lower and steadier)
    and moves too smoothly (column 1); the other columns carry the same clip-to-clip variety."""
    visual = rng.normal(rng.normal(0, 1, len(NAMES)), 0.5, (frames, len(NAMES)))
    level, wobble = (1.0, 0.1) if generated else (2.0, 0.5)
    visual[:, 0] = rng.normal(level, 0.3) + rng.normal(0, wobble, frames)
    visual[:, 1] = np.cumsum(rng.normal(0, 0.05 if generated else 0.3, frames))
    return visual.astype(np.float32), np.ones(frames, bool)


def _table(rng) -> tuple[pd.DataFrame, list[int], list[str]]:
    """8 real sources and 5 generators, 6 clips each, as `train.realism.statistics_table`
    gives them."""
    columns, names = list(range(len(NAMES))), statistic_names(NAMES)
    rows = []
    for kind, groups in (("talking_with_audio", 8), ("generated", 5)):
        for g in range(groups):
            for k in range(6):
                stats = clip_statistics(*_clip(rng, kind == "generated"), columns)
                rows.append({"name": f"{kind}{g}_{k}.mp4", "kind": kind, "speaker": f"{g}",
                             "split": "train" if g % 2 else "test", "group": f"{kind}: {g}",
                             **dict(zip(names, stats))})
    return pd.DataFrame(rows), columns, names


def test_statistics_need_enough_face_frames_and_follow_the_columns():
    visual = np.tile(np.arange(7, dtype=np.float32), (20, 1))
    valid = np.ones(20, bool)
    stats = clip_statistics(visual, valid, [0, 3]).reshape(2, 4)
    assert stats[:, 0].tolist() == [0.0, 3.0] and not stats[:, 1:].any()  # still: no change
    valid[5:] = False
    assert clip_statistics(visual, valid, [0, 3]) is None  # 5 face frames are too few
    assert statistic_names(("face_x_00", "face_sharpness", "lip_y_03"))[0] == \
        "face_sharpness_mean"  # raw landmarks are left out


def test_the_fitted_model_tells_held_out_generators_from_held_out_real_sources():
    from train.realism import fit, held_out, report
    table, columns, names = _table(np.random.default_rng(0))
    p, models = held_out(table, columns, names)
    assert np.isfinite(p).all() and len(models) >= 5
    for test, model in models:  # no fold's model saw a clip of the groups it scores
        assert not set(table.loc[test, "group"]) & set(table.loc[~test, "group"])
    result = report(table, p)
    assert result["auc"] > 0.9 and min(result["per_generator"].values()) > 0.8
    model = fit(table, columns, names)
    stored = Calibration.from_meta(json.loads(json.dumps(Calibration(realism=model).to_meta())))
    fresh = np.random.default_rng(1)
    real, generated = _clip(fresh, False), _clip(fresh, True)
    assert stored.realism.probability(*real) == pytest.approx(model.probability(*real), abs=1e-5)
    assert model.probability(*generated) > 0.5 > model.probability(*real)
    assert model.probability(real[0][:4], real[1][:4]) is None


def test_predict_adds_the_generated_look_and_takes_its_penalty_off_overall_only():
    from talkface.models import create_model
    from talkface.predict import ClipFeatures, predict
    from talkface.spec import tasks_from_names
    from train.realism import fit
    from helpers import SMALL, TASKS, make_spec
    table, columns, names = _table(np.random.default_rng(2))
    realism = fit(table, columns, names)
    model = create_model("improved", make_spec(), tasks_from_names(TASKS), **SMALL)
    rng = np.random.default_rng(3)
    clips = []
    for generated in (False, True):
        visual, valid = _clip(rng, generated)
        clips.append(ClipFeatures(visual, rng.normal(size=(40, 5)).astype(np.float32), valid))
    plain = predict(model, clips, calibration=Calibration())
    term = penalty_term("generated_look", "lower", percentiles(np.linspace(0, 0.3, 101)))
    cal = Calibration(realism=realism, penalties={"overall": [{**term, "weight": 0.4}]})
    scored = predict(model, clips, calibration=cal)
    looks = [c.signals["generated_look"] for c in clips]
    assert looks[1] > 0.5 > looks[0]
    for before, after, look in zip(plain, scored, looks):
        assert after.scores["overall"] == pytest.approx(
            max(before.scores["overall"] - 0.4 * excess(term, look), 0.0), abs=1e-6)
        for task in ("lip_sync", "visual_quality", "temporal_quality"):
            assert after.scores[task] == pytest.approx(before.scores[task], abs=1e-6)
    assert excess(term, looks[1]) > 0.5  # the generator-like clip pays


def test_the_chosen_penalty_ranks_real_higher_and_spares_most_real_recordings():
    """`train.realism.choose_penalty`: generator outputs that score too high but look generated
    are pushed down, and no more than a fifth of the training speakers' real recordings lose
    over 0.1 to it; where nothing helps, no penalty is chosen."""
    from train.realism import PAYING, choose_penalty
    rng = np.random.default_rng(4)
    n_real, n_gen = 60, 40
    table = pd.DataFrame({"kind": ["talking_with_audio"] * n_real + ["generated"] * n_gen,
                          "split": "train"})
    overall = np.r_[rng.uniform(0.6, 0.9, n_real), rng.uniform(0.7, 1.0, n_gen)]
    look = np.r_[rng.beta(2, 6, n_real), rng.beta(6, 2, n_gen)]
    reference = percentiles(look[:n_real])
    term, edge, aucs = choose_penalty(overall, look, table, reference)
    assert term is not None and edge in (10, 25, 50) and 0 < term["weight"] <= 1
    cost = term["weight"] * np.array([excess(term, v) for v in look])
    from talkface.metrics import auc
    assert auc(overall[:n_real] - cost[:n_real], overall[n_real:] - cost[n_real:]) > \
        auc(overall[:n_real], overall[n_real:]) + 0.2
    assert (cost[:n_real] > 0.1).mean() <= PAYING
    ranked = np.r_[overall[:n_real] + 1.0, overall[n_real:]]  # real already above every output
    assert choose_penalty(ranked, look, table, reference)[0] is None
