"""Does each score follow its own factor on people it never saw, and only its own?

    python benchmarks/families.py --checkpoint talkface/checkpoints/default --data data/mixed
        [--split test] [--out artifacts/families.json]

On the benchmark's families (a clean segment and graded versions of one factor, truth monotone
in the factor) from the checkpoint's held-out split:

- per factor, the mean over families of the Spearman correlation between the score of the
  factor's task and its label (the issue's targets: lip sync >= 0.9 for offsets and another
  speaker's audio, visual >= 0.9 for blur, CRF and the pasted low-resolution mouth, temporal
  >= 0.85 for freezes, shake and pasted-region jitter);
- cross-talk: how far the *other* tasks move within a family (they should not move);
- the clean clips: their score on every task (target >= 0.8), real and puppet separately.

Scores are the users' (`talkface.predict` with the checkpoint's calibration).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkface.checkpoint import load_checkpoint  # noqa: E402
from talkface.data import DataSettings, load_dataset  # noqa: E402
from talkface.markdown import markdown_table  # noqa: E402
from talkface.metrics import srcc  # noqa: E402
from talkface.predict import predict_arrays  # noqa: E402
from talkface.synth import labels  # noqa: E402
from train.evaluate import load_eval_data  # noqa: E402

TARGETS = {"lip_sync": 0.9, "visual_quality": 0.9, "temporal_quality": 0.85}


def family_table(checkpoint: str, data: str, split: str = "test",
                 manifest_split: bool = False) -> pd.DataFrame:
    """Scores and labels of the `split` clips: split as the checkpoint was trained (its stored
    map; clips it does not name are unseen, hence test), or with `manifest_split` as the
    benchmark's own manifest says (a benchmark built after the checkpoint, split by the same
    speakers)."""
    loaded = load_checkpoint(checkpoint)
    manifest = pd.read_csv(Path(data) / "manifest.csv")
    if manifest_split:
        # a benchmark of silent footage has no lip-sync labels: load the tasks it labels
        settings = DataSettings(tasks=[t.name for t in loaded.tasks if t.name in manifest
                                       and manifest[t.name].notna().any()],
                                features=loaded.spec.extractor)
        dataset = load_dataset(data, settings, progress=True)
    else:
        dataset = load_eval_data(data, loaded)
    clips = dataset.splits[split]
    preds, _ = predict_arrays(loaded.model, clips, calibration=loaded.calibration)
    manifest = manifest.set_index("file")
    rows = []
    for clip, p in zip(clips, preds):
        row = manifest.loc[clip.file]
        # a family is named within its benchmark folder: merged folders may reuse a name
        family = row.get("family")
        rows.append({"file": clip.file, "family": f"{Path(clip.file).parent.parent.name}/"
                     f"{family}" if isinstance(family, str) and family else None,
                     "condition": row["condition"],
                     "kind": row.get("source_kind", "synthetic") if isinstance(
                         row.get("source_kind"), str) else "synthetic",
                     **{f"{t}_true": row[t] for t in labels.TASKS},
                     **{f"{t}_pred": p[i] for i, t in enumerate(t.name for t in loaded.tasks)}})
    return pd.DataFrame(rows)


def family_figures(table: pd.DataFrame) -> dict:
    out = {"factors": {}, "clean": {}}
    families = table[table["family"].notna() & (table["family"] != "")]
    for fam, part in families.groupby("family"):
        factor = next((c for c in part["condition"] if c != "clean"), None)
        if factor is None or len(part) < 3:
            continue
        param = factor if factor in labels.PARAMS else labels.CONDITION_PARAM.get(factor)
        task = "lip_sync" if param == "offset_frames" else labels.FACTORS[param].task
        if part[f"{task}_true"].nunique() < 2 or part[f"{task}_pred"].isna().any():
            continue
        entry = out["factors"].setdefault(factor, {"task": task, "srcc": [], "crosstalk": {}})
        entry["srcc"].append(srcc(part[f"{task}_pred"], part[f"{task}_true"]))
        for other in TARGETS:
            if other != task and part[f"{other}_pred"].notna().all():
                entry["crosstalk"].setdefault(other, []).append(
                    float(part[f"{other}_pred"].max() - part[f"{other}_pred"].min()))
    for factor, e in out["factors"].items():
        e["families"] = len(e["srcc"])
        e["mean_srcc"] = float(np.nanmean(e["srcc"]))
        e["crosstalk"] = {t: float(np.mean(v)) for t, v in e["crosstalk"].items()}
        del e["srcc"]
    real = table[table["kind"] != "synthetic"]
    out["pooled_real"] = {t: {"srcc": srcc(real[f"{t}_pred"], real[f"{t}_true"]),
                              "n": int(real[f"{t}_pred"].notna().sum())}
                          for t in labels.TASKS if len(real) and f"{t}_pred" in real}
    clean = table[table["condition"] == "clean"]
    for kind, part in clean.groupby("kind"):
        out["clean"][kind] = {t: {"mean": float(part[f"{t}_pred"].mean()),
                                  "share_at_least_0.8": float((part[f"{t}_pred"] >= 0.8).mean()),
                                  "n": int(part[f"{t}_pred"].notna().sum())}
                              for t in labels.TASKS if f"{t}_pred" in part}
    return out


def report(fig: dict) -> str:
    factors = []
    for factor, e in sorted(fig["factors"].items(), key=lambda kv: kv[1]["task"]):
        other = max(e["crosstalk"].items(), key=lambda kv: kv[1], default=("", float("nan")))
        factors.append([factor, e["task"], e["families"], f"{e['mean_srcc']:.3f}",
                        TARGETS[e["task"]], f"{other[0]} {other[1]:.3f}"])
    clean = [[f"{kind} (n={tasks['visual_quality']['n']})",
              *(f"{tasks[t]['mean']:.2f} ({tasks[t]['share_at_least_0.8']:.0%} >= 0.8)"
                for t in labels.TASKS)] for kind, tasks in fig["clean"].items()]
    pooled = [[t, f"{v['srcc']:.3f}", v["n"]] for t, v in fig.get("pooled_real", {}).items()]
    return "\n".join([
        markdown_table(["factor", "task", "families", "mean SRCC", "target",
                        "largest other-task range"], factors), "",
        markdown_table(["task (real clips pooled)", "SRCC", "clips"], pooled), "",
        markdown_table(["clean clips", *labels.TASKS], clean)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="talkface/checkpoints/default")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--manifest-split", action="store_true",
                   help="split as the benchmark's manifest says, not as the checkpoint's map")
    p.add_argument("--out", type=Path, default=Path("artifacts/families.json"))
    args = p.parse_args(argv)
    table = family_table(args.checkpoint, args.data, args.split, args.manifest_split)
    fig = family_figures(table)
    print(report(fig))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
