"""Turn a training run into a shipped checkpoint folder with an honest card.

    python -m train.ship --run runs/ship_voice --data data/synth --split_by voice \
        --out checkpoints/default --command "python -m train ..." [--notes docs/results.md]

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


def split_description(manifest: pd.DataFrame, split_by: str) -> str:
    if split_by in ("auto", "split"):
        ids = manifest.groupby("split").face_identity.unique().to_dict()
        return ("the benchmark's own split, by face identity and voice (test face: "
                f"{', '.join(ids.get('test', []))}, unseen in training)")
    return (f"grouped by `{split_by}`: test clips use {split_by}s never heard/seen in training; "
            "the same face identities appear in every split")


def build_card(loaded, result: dict, manifest: pd.DataFrame, base: dict | None, split_by: str,
               command: str, notes: str) -> str:
    cfg = loaded.meta["model_config"]
    params = sum(p.numel() for p in loaded.model.parameters())
    tasks = [t.name for t in loaded.tasks] + ["mean"]
    sizes = result["data"]["sizes"]
    return f"""# talkface checkpoint: `{loaded.meta['model_name']}` ({loaded.spec.backend} backend)

**Model.** `{loaded.meta['model_name']}` with {json.dumps(cfg)} ({params / 1e6:.2f} M parameters).
Features: {loaded.spec.describe()}.

**Training data.** Only the synthetic benchmark made by `talkface.synth` ({len(manifest)} clips,
labels `{manifest.label_version.iloc[0]}` known by construction from the degradation parameters;
{manifest.face_identity.nunique()} face identities, {manifest.voice.nunique()} voices). No human
opinion scores and no real generator output were used. Split: {split_description(manifest, split_by)}.
Sizes: {sizes}. Best epoch {result['best_epoch']} of {result['epochs_run']} (early stopping on
validation mean MSE).

**Command** (repository root):

    python -m talkface synth --n 600 --size 256 --seed 0 --out data/synth --workers 1
    {command}

## Test metrics ({sizes['test']} clips) beside the no-learning baseline on the same clips

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
    split_by = (loaded.meta.get("data") or {}).get("split", {}).get("split_by", "auto")
    card = build_card(loaded, {**result, "test": test}, manifest, base, split_by, args.command,
                      notes)
    save_checkpoint(args.out, loaded.model, loaded.meta["model_config"], metrics=test,
                    data={**loaded.meta.get("data", {}), "metrics_split": "test",
                          "val_metrics": result["val"], "baseline_test_metrics": base,
                          "label_version": str(manifest.label_version.iloc[0])},
                    command=args.command, card=card)
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
