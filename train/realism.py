"""Fit and measure the generated-look model (`talkface.realism`) on a footage pool.

    python -m train.realism --real FOOTAGE [--checkpoint DIR]      # held-out report only

The model is a logistic regression (scikit-learn) on the normal scores of each clip's pooled
face statistics, real recordings (`talking_with_audio`, `video_only`) against generator outputs
(`generated`), classes weighted equally. It is measured the way it will be used, on generators
and real footage it has not seen: clips are grouped by generator (the source repository of a
generator output) and by source (the repository a real recording came from), and every clip's
probability comes from a model fitted without its group (`held_out`, scikit-learn's
GroupKFold). The shipped model is then fitted on every clip.

`train.signals --realism` stores it in a checkpoint together with
- the `generated_look` reference: the held-out probabilities of the real recordings of the
  training speakers, so a real clip the model never saw reads as typical;
- an `overall` penalty on it, chosen on the training speakers' real recordings against every
  generator output (held-out probabilities; `choose_penalty`): where it starts and its weight,
  from a small grid, that rank real above generated best while at most a fifth of those real
  recordings lose more than 0.1, so no test speaker chooses it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from talkface.calibration import excess, penalty_term, percentiles
from talkface.errors import TalkfaceError
from talkface.metrics import auc
from talkface.realism import Realism, clip_statistics, normal_scores, pooled_columns, \
    statistic_names
from train.footage import footage_bundles

log = logging.getLogger(__name__)
REAL_KINDS = ("talking_with_audio", "video_only")
C = 0.3  # inverse L2 strength; 0.03-1 gave held-out AUCs within 0.05 of each other
FOLDS = 30
WEIGHTS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))
EDGES = (10, 25, 50)  # the typical range of real recordings ends at their 90th, 75th, 50th pct.
PAYING = 0.2  # at most this share of the training speakers' real recordings may lose > 0.1


def statistics_table(footage, checkpoint: Optional[str] = None) -> tuple[pd.DataFrame, list]:
    """(table, columns): one row per clip with name, kind, speaker, split, group (generator or
    real source) and the pooled statistics (`talkface.realism.statistic_names`), and the visual
    column indices they were taken over. Features come from the checkpoint's extractor through
    the feature cache."""
    columns: list[int] = []
    rows = []
    for row, side, bundle in footage_bundles(footage, checkpoint, desc="statistics"):
        if not columns:  # every bundle has the checkpoint's spec
            names = bundle.spec.visual_names
            columns, stat_names = pooled_columns(names), statistic_names(names)
        stats = clip_statistics(bundle.visual, bundle.valid, columns)
        if stats is None:
            continue
        repo = getattr(row, "repo", "") or ""
        rows.append({"name": row.name, "path": row.path, "kind": row.kind,
                     "speaker": row.speaker, "split": side,
                     "group": ("generator: " if row.kind == "generated" else "source: ") + repo,
                     **dict(zip(stat_names, stats))})
    return pd.DataFrame(rows), columns


def _xy(table: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    table = table[table["kind"].isin(REAL_KINDS + ("generated",))]
    return table[names].to_numpy(np.float64), (table["kind"] == "generated").to_numpy(int)


def fit(table: pd.DataFrame, columns: list[int], names: list[str], c: float = C,
        note: str = "") -> Realism:
    """A Realism fitted on every real recording and generator output of `table`."""
    from sklearn.linear_model import LogisticRegression
    x, y = _xy(table, names)
    quantiles = np.nanpercentile(x, np.arange(101), axis=0).T
    quantiles = np.where(np.isfinite(quantiles), quantiles, 0.0)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    model.fit(normal_scores(x, quantiles), y)
    return Realism(list(columns), list(names), quantiles, model.coef_[0], float(model.intercept_[0]),
                   note)


def folds(table: pd.DataFrame, n: int = FOLDS) -> list[np.ndarray]:
    """Row masks of `table`, one per fold: whole groups (a generator, a real source) held out."""
    from sklearn.model_selection import GroupKFold
    groups = table["group"].to_numpy()
    n = min(n, len(set(groups)))
    return [np.isin(np.arange(len(table)), test)
            for _, test in GroupKFold(n_splits=n).split(table, groups=groups)]


def held_out(table: pd.DataFrame, columns: list[int], names: list[str], c: float = C
             ) -> tuple[np.ndarray, list[tuple[np.ndarray, Realism]]]:
    """(probabilities, fold models): each clip's generated look from a model fitted without
    its group, and (test mask, model) per fold."""
    p = np.full(len(table), np.nan)
    models = []
    for test in folds(table):
        model = fit(table[~test], columns, names, c)
        p[test] = model.probability_of(table.loc[test, names].to_numpy(np.float64))
        models.append((test, model))
    return p, models


def report(table: pd.DataFrame, p: np.ndarray, real_split: Optional[str] = None) -> dict:
    """AUC that a real recording looks less generated than a generator output (held-out
    probabilities), over all and per generator with at least 3 clips; `real_split` keeps only
    the real recordings of that speaker split."""
    generated = (table["kind"] == "generated").to_numpy()
    real = table["kind"].isin(REAL_KINDS).to_numpy().copy()
    if real_split:
        real &= (table["split"] == real_split).to_numpy()
    out = {"real": int(real.sum()), "generated": int(generated.sum()),
           "auc": round(auc(-p[real], -p[generated]), 3), "per_generator": {}}
    for group, g in table[generated].groupby("group"):
        if len(g) >= 3:
            out["per_generator"][group.split(": ", 1)[1]] = round(
                auc(-p[real], -p[g.index.to_numpy()]), 3)
    return out


def choose_penalty(overall: np.ndarray, p: np.ndarray, table: pd.DataFrame,
                   reference: list[float]) -> tuple[Optional[dict], dict]:
    """The overall penalty on the generated look (`talkface.calibration.penalty_term`: where
    the real recordings' typical range ends, EDGES, and the weight, WEIGHTS) that best ranks
    the training speakers' real recordings above every generator output by overall score minus
    the penalty, among those that take more than 0.1 off at most PAYING of those real
    recordings. Returns (term or None for no penalty, its edge, {"edge/weight": AUC})."""
    real = (table["kind"].isin(REAL_KINDS) & (table["split"] == "train")).to_numpy()
    generated = (table["kind"] == "generated").to_numpy()
    ok = np.isfinite(overall) & np.isfinite(p)
    real, generated = real & ok, generated & ok
    aucs, best, best_edge = {}, None, None
    best_key = (auc(overall[real], overall[generated]), 0.0)
    for edge in EDGES:
        term = penalty_term("generated_look", "lower", reference, edge)
        cost = np.array([excess(term, v) for v in p])
        for w in WEIGHTS[1:]:
            final = overall - w * cost
            aucs[f"{edge}/{w:g}"] = round(auc(final[real], final[generated]), 4)
            if (w * cost[real] > 0.1).mean() <= PAYING and (aucs[f"{edge}/{w:g}"], -w) > best_key:
                best, best_edge = {**term, "weight": float(w)}, edge
                best_key = (aucs[f"{edge}/{w:g}"], -w)
    return best, best_edge, aucs


def overall_scores(loaded, cal, table: pd.DataFrame, checkpoint: Optional[str]) -> np.ndarray:
    """Every clip's overall score through `talkface.predict` with calibration `cal` (no
    generated look in it yet)."""
    from talkface.api import load_scorer
    from talkface.predict import ClipFeatures, predict
    scorer = load_scorer(checkpoint)
    names = [t.name for t in loaded.tasks]
    out = np.full(len(table), np.nan)
    for start in range(0, len(table), 16):
        rows = table.iloc[start:start + 16]
        clips = [ClipFeatures.from_bundle(scorer.features(path), path) for path in rows["path"]]
        for k, pred in enumerate(predict(loaded.model, clips, calibration=cal)):
            out[start + k] = pred.scores[names[names.index("overall")]]
    return out


def add_realism(loaded, cal, footage: str, checkpoint: Optional[str]) -> dict:
    """Fit the generated-look model on `footage` and add it, its reference and its overall
    penalty to `cal` (in place). Returns the report for the card."""
    table, columns = statistics_table(footage, checkpoint)
    names = [n for n in table.columns if n not in
             ("name", "path", "kind", "speaker", "split", "group")]
    p, _ = held_out(table, columns, names)
    result = {"held_out": report(table, p), "held_out_test_speakers": report(table, p, "test")}
    real_train = table["kind"].isin(REAL_KINDS) & (table["split"] == "train")
    reference = percentiles(p[real_train.to_numpy()])
    overall = overall_scores(loaded, cal, table, checkpoint)
    term, edge, aucs = choose_penalty(overall, p, table, reference)
    generated = (table["kind"] == "generated").to_numpy()
    ok = np.isfinite(overall)
    result.update({"weight": term["weight"] if term else 0.0, "edge": edge, "penalty_auc": aucs,
                   "overall_auc_before": round(auc(overall[real_train.to_numpy() & ok],
                                                   overall[generated & ok]), 4),
                   "overall_auc_after": aucs[f"{edge}/{term['weight']:g}"] if term else None})
    n_real, n_gen = int(table["kind"].isin(REAL_KINDS).sum()), int((table["kind"] ==
                                                                      "generated").sum())
    cal.realism = fit(table, columns, names, note=(
        f"{n_real} real recordings and {n_gen} generator outputs of {Path(footage).name}"))
    cal.realism.report = result
    cal.signals["generated_look"] = reference
    if term:
        cal.penalties.setdefault("overall", []).append(term)
    log.info("generated look: held-out AUC %.3f, penalty weight %.2f (edge %s)",
             result["held_out"]["auc"], result["weight"], result["edge"])
    return result


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.realism", description=__doc__.split("\n")[0])
    p.add_argument("--real", required=True, help="footage folder (with manifest.csv)")
    p.add_argument("--checkpoint", help="checkpoint whose extractor makes the features")
    p.add_argument("--c", type=float, default=C, help="inverse L2 strength")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        table, columns = statistics_table(args.real, args.checkpoint)
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = [n for n in table.columns if n not in
             ("name", "path", "kind", "speaker", "split", "group")]
    prob, _ = held_out(table, columns, names, args.c)
    for label, split in (("all real recordings", None), ("test speakers' real", "test")):
        r = report(table, prob, split)
        per = r["per_generator"]
        print(f"{label} ({r['real']}) vs {r['generated']} generator outputs, every group held "
              f"out: AUC {r['auc']:.3f}; generators with >= 3 clips at AUC >= 0.8: "
              f"{sum(v >= 0.8 for v in per.values())} of {len(per)}")
        for g, v in sorted(per.items(), key=lambda kv: kv[1]):
            print(f"    {v:.3f}  {g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
