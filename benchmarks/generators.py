"""Score every generator output of a footage folder and summarise per generator.

    python benchmarks/generators.py --real ../shared/real-videos [--checkpoint DIR]
        [--kinds generated talking_with_audio] [--out artifacts/generators.csv]

Reads the footage `manifest.csv` (file, kind, repo, ...), scores the clips of the given kinds with
the checkpoint (the users' path: `Scorer.score_many`), and prints per generator (the source
repository; real recordings as one group for reference) the median and range of every task, the
share of clips flagged out of distribution or not judged, and the best- and worst-scored clip per
task, to look at in the app. The per-clip table goes to `--out`.

Then the figures of issue 19, on real recordings of the speakers held out of the footage's
speaker split (`talkface.synth.footage.speaker_split`, the side no signal reference or penalty
was fitted on) against every generator output (no generator output was used to fit anything but
the reporting percentiles; a checkpoint with a generated-look model, `talkface.realism`, is
scored fold by fold with one fitted without the clip's generator or real source): the AUC that a real clip's score is above a generator clip's, over
all generators and per generator; the share of generator outputs at visual quality >= 0.95; the
number of distinct values each task takes on the generator outputs (ties are what a step-shaped
calibration makes).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkface.api import load_scorer  # noqa: E402
from talkface.metrics import auc  # noqa: E402
from talkface.synth.footage import read_footage, speaker_split  # noqa: E402
from talkface.tasks import TASKS  # noqa: E402


def held_out_realism(real: Path, checkpoint) -> list[tuple[set, object]]:
    """(file names, generated-look model) per fold of `train.realism.held_out`: each model
    (`talkface.realism.Realism`) was fitted on the footage without those clips' generators or
    real sources."""
    from train.realism import held_out, statistics_table
    table, columns = statistics_table(real, checkpoint)
    names = [n for n in table.columns if n not in
             ("name", "path", "kind", "speaker", "split", "group")]
    _, models = held_out(table, columns, names)
    return [(set(table.loc[test, "name"]), model) for test, model in models]


def score_table(real: Path, kinds: list[str], checkpoint, in_sample: bool = False
                ) -> pd.DataFrame:
    footage = read_footage(real)
    split = speaker_split(footage)
    footage["split"] = footage["speaker"].map(split)
    footage = footage[footage["kind"].isin(kinds)].reset_index(drop=True)
    scorer = load_scorer(checkpoint)
    files = [str(real / f) for f in footage["file"]]
    shipped = scorer.calibration.realism
    folds = [] if shipped is None or in_sample else held_out_realism(real, checkpoint)
    names, left = list(footage["name"]), list(range(len(files)))
    batches = []  # (generated-look model, rows it scores)
    for fold_names, model in folds:
        batches.append((model, [i for i in left if names[i] in fold_names]))
        left = [i for i in left if names[i] not in fold_names]
    batches.append((shipped, left))  # in-sample, or clips no fold measured (too few face frames)
    results = [None] * len(files)
    done = 0
    for model, rows in batches:
        if not rows:
            continue
        scorer.calibration.realism = model  # the fold's model: never saw this clip's group
        for i, result in zip(rows, scorer.score_many([files[i] for i in rows])):
            results[i] = result
        done += len(rows)
        print(f"\r{done}/{len(files)}", end="", file=sys.stderr, flush=True)
    scorer.calibration.realism = shipped
    print(file=sys.stderr)
    rows = []
    for (_, row), result in zip(footage.iterrows(), results):
        group = row["repo"] if row["kind"] == "generated" else "real recordings"
        out = {"file": row["file"], "group": group, "kind": row["kind"], "split": row["split"],
               "error": getattr(result, "error", None)}
        if out["error"] is None:
            out.update({t: s for t, s in result.scores.items()})
            out["ood"] = bool(result.out_of_distribution)
            out["sync_reliable"] = bool(result.sync is not None and result.sync.reliable)
            look = result.signals.get("generated_look")
            out["generated_look"] = look.value if look is not None else None
        rows.append(out)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    rows = []
    for group, g in table.groupby("group"):
        row = {"group": group, "clips": len(g), "failed": int(g["error"].notna().sum()),
               "ood": int(g.get("ood", pd.Series(dtype=bool)).fillna(False).sum())}
        for t in tasks:
            v = pd.to_numeric(g[t], errors="coerce").dropna()
            row[t] = (f"{v.median():.2f} [{v.min():.2f}, {v.max():.2f}]" if len(v) else
                      "not judged")
        rows.append(row)
    return pd.DataFrame(rows).sort_values("clips", ascending=False)


def extremes(table: pd.DataFrame, tasks: list[str]) -> list[str]:
    lines = []
    for t in tasks:
        v = table.dropna(subset=[t])
        v = v[v["kind"] == "generated"]
        if len(v):
            best, worst = v.loc[v[t].idxmax()], v.loc[v[t].idxmin()]
            lines.append(f"{t}: best {best['file']} ({best[t]:.2f}), worst {worst['file']} "
                         f"({worst[t]:.2f})")
    return lines


def separation(table: pd.DataFrame, tasks: list[str]) -> dict:
    """Issue 19's figures: real held-out recordings against generator outputs."""
    scored = table[table["error"].isna()]
    gen = scored[scored["kind"] == "generated"]
    real = scored[(scored["kind"] != "generated") & (scored["split"] == "test")]
    out = {"real_test_clips": len(real), "generated_clips": len(gen), "auc": {},
           "auc_per_generator": {}, "distinct": {}}
    for t in tasks:
        r, g = pd.to_numeric(real[t]).dropna(), pd.to_numeric(gen[t]).dropna()
        if len(r) and len(g):
            out["auc"][t] = auc(r.to_numpy(), g.to_numpy())
        out["distinct"][t] = [int(g.round(6).nunique()), int(len(g))]
    r = pd.to_numeric(real["overall"]).dropna().to_numpy()
    for group, part in gen.groupby("group"):
        g = pd.to_numeric(part["overall"]).dropna().to_numpy()
        if len(g) and len(r):
            out["auc_per_generator"][group] = [auc(r, g), int(len(g))]
    visual = pd.to_numeric(gen["visual_quality"]).dropna()
    out["generated_visual_at_least_0.95"] = float((visual >= 0.95).mean()) if len(visual) else None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--real", required=True, type=Path, help="footage folder with manifest.csv")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the active one)")
    p.add_argument("--kinds", nargs="+", default=["generated", "talking_with_audio",
                                                   "video_only"])
    p.add_argument("--out", type=Path, default=Path("artifacts/generators.csv"))
    p.add_argument("--in-sample", action="store_true", help="score with the checkpoint's own "
                   "generated-look model, fitted on every clip of this footage (optimistic); by "
                   "default each clip is scored with one fitted without its generator or source")
    args = p.parse_args(argv)
    table = score_table(args.real, args.kinds, args.checkpoint, args.in_sample)
    tasks = [c for c in TASKS if c in table.columns]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(summary(table, tasks).to_string(index=False))
    print()
    print("\n".join(extremes(table, tasks)))
    scored = table[table["error"].isna()]
    gen, real = scored[scored["kind"] == "generated"], scored[scored["kind"] != "generated"]
    if len(gen) and len(real):
        print("\nmedian, generated vs real recordings: " + ", ".join(
            f"{t} {np.nanmedian(pd.to_numeric(gen[t])):.2f} vs "
            f"{np.nanmedian(pd.to_numeric(real[t])):.2f}" for t in tasks))
    fig = separation(table, tasks)
    print(f"\nreal held-out recordings ({fig['real_test_clips']}) vs generator outputs "
          f"({fig['generated_clips']}): AUC " + ", ".join(f"{t} {v:.3f}" for t, v in
                                                        fig["auc"].items()))
    worst = sorted(fig["auc_per_generator"].items(), key=lambda kv: kv[1][0])
    print("overall AUC per generator (lowest first): " + ", ".join(
        f"{g} {a:.2f} (n={n})" for g, (a, n) in worst))
    print(f"generator outputs at visual >= 0.95: {fig['generated_visual_at_least_0.95']:.0%}")
    print("distinct values on generator outputs: " + ", ".join(
        f"{t} {d}/{n}" for t, (d, n) in fig["distinct"].items()))
    args.out.with_suffix(".json").write_text(json.dumps(fig, indent=1))
    print(f"per clip: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
