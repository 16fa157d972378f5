"""Each source recording's own picture quality, so that not every clean source is labelled 1.0
(`real-labels-3`): `python -m talkface synth --rate-sources BENCH`.

A benchmark built from real footage (`talkface.synth.real`) labels a clean segment's visual
quality 1.0 whatever the recording looks like, so a soft webcam clip and a sharp studio clip
are both "perfect" and a blurred studio clip looks like a clean webcam clip. Rating the sources
replaces that 1.0 by the source's measured quality, in the units the degradation labels already
use:

    visual_quality = q_source * q_blur * q_crf * ...          (`labels.compute_labels`)
    q_source       = q(anchor - sharpness; 1.075, 1.73)       (1 at or above the anchor)

- sharpness: the median sharpness of the canonical face crop (log Laplacian energy,
  `talkface.signals.face_sharpness`) of the family's clean clip. A face smaller than the crop is
  enlarged into it and reads soft, as it looks; compression that wipes out detail lowers it too.
- anchor: the 75th percentile of the clean clips of the training speakers (of all clean clips
  when fewer than MIN_ANCHOR_CLIPS are on the training side): only sharp sources are top anchors.
- q(x; x50, k) = 1 / (1 + (x / x50)^k), the curve of every factor in `talkface.synth.labels`,
  with x50 and k fitted on the benchmark's own blur families (the label a blur strength gets
  against the sharpness it took away: real_vt, seed 0, 96 clips, Pearson r 0.79). A source as
  soft as a sharp source blurred to label 0.6 is labelled 0.6.

Noise is not a term: on clean real recordings the noise signal follows facial detail (Spearman
0.72 with face detail on real_vt's 280 clean clips), so it would mark the sharpest sources down.

Rating reads the labels' parameters again and recomputes every label, so rating twice gives the
same labels; lip sync is untouched. The anchors and each family's measures go to
`sources.json` beside the manifest.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..errors import DatasetError
from . import labels

log = logging.getLogger(__name__)
RATED_LABEL_VERSION = "real-labels-3"  # real-labels-2 with each source's own quality
# measure -> (direction the quality falls, anchor percentile over clean training clips, x50, k)
TERMS = {"sharpness": ("below", 75.0, 1.075, 1.73)}
MIN_ANCHOR_CLIPS = 20
FAMILY_KEY = ["source", "start_s"]


def clip_measures(bundle) -> dict[str, Optional[float]]:
    """The measures a source is rated by, from one clip's features."""
    from ..signals import face_sharpness
    return {"sharpness": face_sharpness(bundle)}


def source_quality(measures: dict, anchors: dict[str, float]) -> float:
    """q_source in (0, 1] of a clean clip's `measures` against the `anchors`; a measure that is
    missing does not lower it."""
    q = 1.0
    for name, (direction, _, x50, k) in TERMS.items():
        value = measures.get(name)
        if value is None or not np.isfinite(value) or name not in anchors:
            continue
        gap = anchors[name] - value if direction == "below" else value - anchors[name]
        q *= labels.q_curve(max(gap, 0.0), x50, k)
    return float(q)


def anchors_of(table: pd.DataFrame) -> dict[str, float]:
    """Each measure's anchor: its percentile (TERMS) over the clean clips of the training split
    (all clean clips when fewer than MIN_ANCHOR_CLIPS are on the training side)."""
    train = table[table["split"] == "train"] if "split" in table else table
    train = train if len(train) >= MIN_ANCHOR_CLIPS else table
    return {name: float(np.nanpercentile(train[name].astype(float), pct))
            for name, (_, pct, _, _) in TERMS.items() if train[name].notna().any()}


def relabel(frame: pd.DataFrame, quality: pd.Series) -> pd.DataFrame:
    """`frame` with `source_quality` (per row) and every task label recomputed from its
    parameters and that quality."""
    out = frame.copy()
    out["source_quality"] = quality.to_numpy(float)
    params = [p for p in labels.PARAMS if p in out]
    for i, row in enumerate(out.itertuples(index=False)):
        values = {p: float(getattr(row, p)) for p in params}
        task_labels = labels.compute_labels(values, bool(getattr(row, "has_audio", True)),
                                            source_quality=float(out["source_quality"].iat[i]))
        for task, value in task_labels.items():
            if task in out:
                out.iat[i, out.columns.get_loc(task)] = value
    out["label_version"] = RATED_LABEL_VERSION
    return out


def rate_sources(folder: str | Path, extractor=None, cache_dir: Optional[str] = None,
                 workers: int = 1, progress: bool = True) -> Path:
    """Rate every family's source by its clean clip and rewrite `folder/manifest.csv` with the
    new labels (and `folder/sources.json`); returns the manifest's path."""
    from ..data import load_bundles, read_manifest
    frame, root = read_manifest(folder)
    missing = [c for c in FAMILY_KEY + ["condition", "visual_quality"] if c not in frame]
    if missing:
        raise DatasetError(f"{folder}: not a real-footage benchmark (no {', '.join(missing)} "
                           f"column; build one with `talkface synth --from-real`)")
    clean = frame[frame["condition"] == "clean"].drop_duplicates(FAMILY_KEY)
    if clean.empty:
        raise DatasetError(f"{folder}: no clean clip to rate the sources by")
    paths = [str(root / f) for f in clean["file"]]
    bundles = load_bundles(paths, extractor, cache_dir, workers, progress)
    rows = []
    for (_, row), bundle in zip(clean.iterrows(), bundles):
        measures = clip_measures(bundle) if not isinstance(bundle, str) else {}
        if isinstance(bundle, str):
            log.warning("not rated (quality 1.0): %s", bundle)
        rows.append({**{k: row[k] for k in FAMILY_KEY}, "split": row.get("split", ""),
                     "file": row["file"], **{n: measures.get(n) for n in TERMS}})
    table = pd.DataFrame(rows)
    anchors = anchors_of(table)
    table["source_quality"] = [source_quality(r, anchors) for r in table.to_dict("records")]
    keyed = table.set_index(FAMILY_KEY)["source_quality"]
    quality = pd.Series([keyed.get(tuple(k), 1.0) for k in frame[FAMILY_KEY].itertuples(
        index=False, name=None)], index=frame.index)
    out = relabel(frame, quality)
    csv = root / "manifest.csv" if Path(folder).is_dir() else Path(folder)
    out.to_csv(csv, index=False)
    summary = {"label_version": RATED_LABEL_VERSION, "anchors": anchors,
               "terms": {k: dict(zip(("direction", "anchor_percentile", "x50", "k"), v))
                         for k, v in TERMS.items()},
               "families": table.replace({np.nan: None}).to_dict("records")}
    (csv.parent / "sources.json").write_text(json.dumps(summary, indent=1))
    q = table["source_quality"]
    log.info("rated %d sources: quality median %.2f, 10th-90th percentile %.2f-%.2f",
             len(q), q.median(), q.quantile(0.1), q.quantile(0.9))
    return csv
