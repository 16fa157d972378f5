"""Turn a training run into a shipped checkpoint folder with an honest card.

    python -m train.ship --run runs/NAME --data DATA --out talkface/checkpoints/default \
        --command "python -m train ..." [--notes notes.md]

The card puts the run's test metrics beside the no-learning baseline's on the same test clips,
says what the data was and how it was split, and appends `--notes` (e.g. other experiments).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from talkface.checkpoint import load_checkpoint, save_checkpoint

from .compare import baseline_metrics
from .evaluate import evaluate_clips, load_eval_data

METRICS = ("mse", "r2", "srcc", "pearson")


def metrics_table(model: dict, baseline: dict | None, tasks: list[str]) -> str:
    head = ["task"] + [f"model {m}" for m in METRICS] + [f"baseline {m}" for m in METRICS]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in tasks:
        cells = [f"{model[task][m]:.3f}" for m in METRICS]
        cells += [f"{baseline[task][m]:.3f}" if baseline and task in baseline else "n/a"
                  for m in METRICS]
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


GROUPS = ("speaker", "face_identity", "face", "voice", "source", "generator")


def data_description(manifest: pd.DataFrame, split: dict) -> str:
    """What the data was, from the manifest: clips, how many of each group, labels, split."""
    groups = ", ".join(f"{manifest[c].nunique()} {c.replace('_', ' ')}s" for c in GROUPS
                       if c in manifest.columns)
    labels = f"labels `{manifest['label_version'].iloc[0]}`" \
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
    cfg = loaded.meta["model_config"]
    params = sum(p.numel() for p in loaded.model.parameters())
    tasks = [t.name for t in loaded.tasks] + ["mean"]
    sizes = result["data"]["sizes"]
    split = (loaded.meta.get("data") or {}).get("split") or {}
    return f"""# talkface checkpoint: `{loaded.meta['model_name']}` ({loaded.spec.backend} backend)

**Model.** `{loaded.meta['model_name']}` with {json.dumps(cfg)} ({params / 1e6:.2f} M parameters).
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="training run folder (with best/ and metrics.json)")
    p.add_argument("--data", required=True, help="the dataset the run was trained on")
    p.add_argument("--out", default="checkpoints/default")
    p.add_argument("--command", required=True, help="the training command, for the card")
    p.add_argument("--notes", help="markdown file appended to the card")
    args = p.parse_args(argv)
    run = Path(args.run)
    loaded = load_checkpoint(run / "best")
    result = json.loads((run / "metrics.json").read_text())
    data = load_eval_data(args.data, loaded)  # the run's own split map
    test = evaluate_clips(loaded, data.splits["test"])["metrics"]  # the scores users get
    base, note = baseline_metrics(data)
    manifest = pd.read_csv(Path(args.data) / "manifest.csv")
    notes = Path(args.notes).read_text() if args.notes else ""
    card = build_card(loaded, {**result, "test": test}, manifest, base, args.command, notes)
    save_checkpoint(args.out, loaded.model, loaded.meta["model_config"], metrics=test,
                    data={**loaded.meta.get("data", {}), "metrics_split": "test",
                          "val_metrics": result["val"], "baseline_test_metrics": base,
                          "baseline_note": note or None,
                          "label_version": str(manifest.get("label_version",
                                                            pd.Series([""])).iloc[0])},
                    command=args.command, card=card, shipping=True)
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
