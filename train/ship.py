"""Turn a training run into a shipped checkpoint folder with an honest card.

    python -m train.ship --run runs/NAME --data DATA --out talkface/checkpoints/default \
        --command "python -m train ..." [--notes notes.md]

The card puts the run's test metrics beside the no-learning baseline's on the same test clips,
says what the data was and how it was split, and appends `--notes` (e.g. other experiments).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from talkface.checkpoint import load_checkpoint, save_checkpoint
from talkface.markdown import markdown_table
from talkface.metrics import LABELS, SHOWN_METRICS

from .compare import baseline_metrics
from .evaluate import evaluate_clips, load_eval_data

def metrics_table(model: dict, baseline: dict | None, tasks: list[str]) -> str:
    head = ["task", *(f"{side} {LABELS[m]}" for side in ("model", "baseline")
                      for m in SHOWN_METRICS)]
    return markdown_table(head, (
        [task, *(f"{model[task][m]:.3f}" for m in SHOWN_METRICS),
         *(f"{baseline[task][m]:.3f}" if baseline and task in baseline else "n/a"
           for m in SHOWN_METRICS)] for task in tasks))


GROUPS = ("speaker", "face_identity", "face", "voice", "source", "generator")


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def data_description(manifest: pd.DataFrame, split: dict) -> str:
    """What the data was, from the manifest: clips, how many of each group, labels, split."""
    groups = ", ".join(f"{manifest[c].nunique()} {_plural(c.replace('_', ' '))}" for c in GROUPS
                       if c in manifest.columns)
    labels = "labels " + ", ".join(f"`{v}` ({n} clips)" for v, n in
                                   manifest["label_version"].value_counts().items()) \
        if "label_version" in manifest.columns else "labels as given in the manifest"
    kinds = ""
    if "source_kind" in manifest.columns:
        kinds = "; " + ", ".join(f"{n} {k}" for k, n in
                                 manifest["source_kind"].value_counts().items()) + " clips"
    how = split.get("split_by", "?")
    how = "the manifest's `split` column" if how in ("auto", "split") and "split" in \
        manifest.columns else f"whole `{how}` groups on one side (seed {split.get('seed')})"
    return (f"{len(manifest)} clips ({groups}){kinds}; {labels}. Split: {how}; the file -> "
            f"split map is stored in `meta.json`.")


def build_card(loaded, result: dict, manifest: pd.DataFrame, base: dict | None, command: str,
               notes: str) -> str:
    cfg = loaded.meta.options
    params = sum(p.numel() for p in loaded.model.parameters())
    tasks = [t.name for t in loaded.tasks] + ["mean"]
    sizes = result["data"]["sizes"]
    split = loaded.meta.data.get("split") or {}
    return f"""# talkface checkpoint: `{loaded.meta.model_name}` ({loaded.spec.backend} backend)

**Model.** `{loaded.meta.model_name}` with {json.dumps(cfg)} ({params / 1e6:.2f} M parameters).
Features: {loaded.spec.describe()}.

**Training data.** {data_description(manifest, split)} Sizes: {sizes}. Best epoch
{result['best_epoch']} of {result['epochs_run']} (early stopping on the validation metric).

**Command** (repository root):

    {command}

## Test metrics ({sizes['test']} clips) beside the no-learning baseline on the same clips

Computed with `talkface.predict` on exactly the scores users get (clipped to each task's range;
a task the clip does not allow judging is left out, `n` counts the rest).

{metrics_table(result['test'], base, tasks)}

Baseline: `talkface.baselines.baseline_scores` (hand-set signal measures, no learning).

{notes}""".rstrip() + "\n"


def validity(manifest: pd.DataFrame, loaded, test: dict, calibration: dict | None) -> str:
    """The one line the app shows above every score: what the checkpoint saw and how far its
    test numbers go."""
    split = loaded.meta.split_map
    train = manifest[manifest["file"].astype(str).map(split).eq("train")] if split else manifest
    kinds = train["source_kind"].fillna("synthetic") if "source_kind" in train.columns else \
        pd.Series(["synthetic"] * len(train))
    real = int((kinds == "real").sum())
    speakers = train.loc[kinds == "real", "speaker"].nunique() if "speaker" in train else 0
    seen = (f"{real} clips of {speakers} real speakers and {len(train) - real} puppet clips"
            if real else f"{len(train)} synthetic puppet clips")
    mean = test.get("mean") or {}
    text = (f"trained on {seen}, with known degradations as labels (not human opinions); "
            f"test SRCC {mean.get('srcc', float('nan')):.2f} on {mean.get('n', '?')} clips of "
            f"unseen speakers and faces")
    if calibration and calibration.get("reference_note"):
        text += f"; percentiles against {calibration['reference_note']}"
    return text + ". Scores on other kinds of footage are not validated (see the Model tab)."


def fit_calibration(loaded, data, reference: list[str]) -> dict:
    """The calibration a shipped checkpoint carries (`talkface.calibration`): the monotone map
    fitted on the validation split, the reference percentiles (the dataset's val and test clips
    plus any `reference` videos, e.g. generator outputs) and the out-of-distribution statistics
    of the training clips."""
    from talkface.calibration import Calibration, clip_summary, fit_monotone, fit_ood
    from talkface.predict import predict_arrays
    raw, targets = predict_arrays(loaded.model, data.splits["val"])
    monotone = {t.name: fit_monotone(raw[:, i], targets[:, i], low=t.low, high=t.high)
                for i, t in enumerate(loaded.tasks) if np.isfinite(targets[:, i]).sum() >= 20}
    cal = Calibration(monotone=monotone)
    set_reference(loaded, cal, data, reference)
    summaries = np.stack([clip_summary(c.visual, c.audio, c.valid) for c in
                          data.splits["train"]])
    cal.ood_centre, cal.ood_scale, cal.ood_threshold = fit_ood(summaries, {})
    dv = loaded.spec.visual_dim
    cal.ood_groups = {**{g: list(v) for g, v in loaded.spec.visual_groups.items()},
                      **{f"audio {g}": [a + dv, b + dv] for g, (a, b) in
                         loaded.spec.audio_groups.items()}}
    return cal.to_meta()


def set_reference(loaded, cal, data, reference: list[str]) -> None:
    """Set `cal`'s reference percentiles (in place): every task's scores, through `cal` as it
    stands, on the dataset's val and test clips plus the `reference` videos. `train.signals`
    calls it again after adding penalties, so a percentile compares scores made the same way."""
    from talkface.predict import predict_arrays
    names = [t.name for t in loaded.tasks]
    clips = data.splits["val"] + data.splits["test"] + reference_clips(loaded, reference)
    scored, _ = predict_arrays(loaded.model, clips, calibration=cal)
    cal.reference = {t: [round(float(v), 5) for v in np.nanpercentile(scored[:, i],
                                                                      np.arange(101))]
                     for i, t in enumerate(names) if np.isfinite(scored[:, i]).any()}
    held = len(data.splits["val"]) + len(data.splits["test"])
    cal.reference_note = f"{held} held-out benchmark clips and {len(clips) - held} videos"


def reference_clips(loaded, paths: list[str]) -> list:
    """Extra reference videos (e.g. the pool's generator outputs), extracted as the checkpoint's
    features are."""
    if not paths:
        return []
    from talkface.cli import collect_videos
    from talkface.data import load_bundles
    from talkface.predict import ClipFeatures
    files = [str(p) for p in collect_videos(paths)]
    bundles = load_bundles(files, loaded.spec.extractor, progress=True)
    return [ClipFeatures.from_bundle(b, f) for b, f in zip(bundles, files)
            if not isinstance(b, str) and b.valid.any()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="training run folder (with best/ and metrics.json)")
    p.add_argument("--data", required=True, help="the dataset the run was trained on")
    p.add_argument("--out", default="talkface/checkpoints/default")
    p.add_argument("--command", required=True, help="the training command, for the card")
    p.add_argument("--notes", help="markdown file appended to the card")
    p.add_argument("--reference", nargs="*", default=[],
                   help="extra videos or folders for the reference percentiles")
    p.add_argument("--no-calibration", dest="calibrate", action="store_false")
    args = p.parse_args(argv)
    run = Path(args.run)
    loaded = load_checkpoint(run / "best")
    result = json.loads((run / "metrics.json").read_text())
    data = load_eval_data(args.data, loaded)  # the run's own split map
    calibration = fit_calibration(loaded, data, args.reference) if args.calibrate else None
    if calibration:
        loaded = replace(loaded, meta=loaded.meta.model_copy(update={"calibration": calibration}))
    test = evaluate_clips(loaded, data.splits["test"])["metrics"]  # the scores users get
    base, note = baseline_metrics(data)
    manifest = pd.read_csv(Path(args.data) / "manifest.csv")
    notes = Path(args.notes).read_text() if args.notes else ""
    card = build_card(loaded, {**result, "test": test}, manifest, base, args.command, notes)
    save_checkpoint(args.out, loaded.model, loaded.meta.options, metrics=test,
                    data={**loaded.meta.data, "metrics_split": "test",
                          "val_metrics": result["val"], "baseline_test_metrics": base,
                          "baseline_note": note or None,
                          "label_version": ",".join(sorted(set(manifest.get(
                              "label_version", pd.Series([""])).dropna().astype(str)))),
                          "validity": validity(manifest, loaded, test, calibration)},
                    command=args.command, card=card, shipping=True, calibration=calibration)
    from talkface.export import add_onnx
    add_onnx(args.out, shipping=True)  # scoring runs model.onnx: never ship a stale one
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
