"""Original vs improved on the same split: `python -m train.compare --data DIR --seeds 3`.

Trains `original` with original and `improved` with optimized once per
seed (the split is fixed by `data.split_seed`; the seed changes initialisation, crops and order),
scores the test split, and prints mean ± std per task beside the no-learning baseline
(`talkface.baselines.baseline_scores`, when that module exists) and the relative change in MSE and
R2 next to the original report's claim ("MSE -20-30%, R2 +15-25%"), whatever the numbers say.
Writes compare.json and compare.md into --output_dir. A seed whose run folder already holds
metrics.json is read, not trained again: a killed job resumes, and the members of a
`train.ensemble` run of the same config and seeds can be linked in as the `improved` seeds.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from talkface.data import TalkfaceData, load_dataset
from talkface.errors import TalkfaceError
from talkface.features.extract import FeatureBundle
from talkface.markdown import markdown_table
from talkface.metrics import LABELS, SHOWN_METRICS, task_metrics

from .config import Config, load_config
from .loop import train

log = logging.getLogger(__name__)
CLAIM = {"mse": "-20% to -30%", "r2": "+15% to +25%"}


def clip_bundle(clip, spec) -> FeatureBundle:
    """A dataset clip as a FeatureBundle again, for measures that look columns up by name; what
    it does not allow judging is carried in the bundle's info, where the extractor puts it."""
    reason = clip.unjudged.get("lip_sync")
    info = {"sync": {"judged": False, "reason": reason}} if reason else {}
    return FeatureBundle(clip.visual, clip.audio, clip.valid, spec, info)


def baseline_metrics(data: TalkfaceData) -> tuple[Optional[dict], str]:
    """Test metrics of the no-learning baseline, or (None, why it is missing)."""
    from talkface.baselines import baseline_scores
    clips, names = data.splits["test"], data.task_names
    try:
        scores = [baseline_scores(clip_bundle(c, data.spec)) for c in clips]
    except Exception as err:  # noqa: BLE001 - e.g. a legacy spec without named columns
        return None, f"no-learning baseline skipped: {type(err).__name__}: {err}"
    targets = np.stack([c.targets for c in clips])
    preds = {t: np.array([s.get(t, np.nan) for s in scores], float) for t in names}
    # a clip the baseline cannot judge for a task (no speech, no face...) is left out of that
    # task, as the model's own metrics leave out what it does not judge (`n` says how many)
    usable = [t for t in names if np.isfinite(preds[t]).any()]
    return task_metrics({t: preds[t] for t in usable},
                        {t: targets[:, names.index(t)] for t in usable}), ""


def summarise(runs: list[dict]) -> dict:
    """[{task: {metric: v}}] over seeds -> {task: {metric: (mean, std)}}."""
    out: dict = {}
    for task in runs[0]:
        out[task] = {}
        for metric in runs[0][task]:
            values = np.array([r[task][metric] for r in runs], float)
            out[task][metric] = (float(np.mean(values)),
                                 float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
    return out


def relative_change(new: float, old: float) -> float:
    return (new - old) / abs(old) * 100.0 if old else math.nan


def markdown(summary: dict, baseline: Optional[dict], note: str, seeds: list[int],
             data: dict, epochs: dict) -> str:
    """The comparison as Markdown; `data` is `TalkfaceData.describe()` (so compare.json can be
    re-rendered)."""
    tasks = [*data["tasks"], "mean"]
    shown = [(t, m) for t in tasks for m in SHOWN_METRICS]
    rows = [[name, *(f"{summary[name][t][m][0]:.4f} ± {summary[name][t][m][1]:.4f}"
                     for t, m in shown)] for name in ("original", "improved")]
    if baseline is not None:
        rows.append(["no-learning baseline", *(f"{baseline[t][m]:.4f}" if t in baseline else "n/a"
                                               for t, m in shown)])
    changes = []
    for t in tasks:
        o, i = summary["original"][t], summary["improved"][t]
        changes.append([t, f"{relative_change(i['mse'][0], o['mse'][0]):+.1f}%",
                        f"{relative_change(i['r2'][0], o['r2'][0]):+.1f}%",
                        f"{i['r2'][0] - o['r2'][0]:+.3f}"])
    changes.append(["original report's claim", CLAIM["mse"], CLAIM["r2"], ""])
    lines = [f"Test split of {data['source']}: {data['sizes']}; seeds {seeds}; epochs {epochs}",
             "", markdown_table(["model", *(f"{t} {LABELS[m]}" for t, m in shown)], rows), "",
             markdown_table(["improved vs original", "MSE change", "R2 change (relative)",
                             "R2 change (absolute)"], changes), ""]
    lines.append("Relative R2 change is (R2_improved - R2_original) / |R2_original|; it is "
                 "meaningless when R2_original is near 0 or negative, hence the absolute column.")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def run_compare(data_path: str, seeds: list[int], out: Path, original: Config,
                improved: Config) -> dict:
    data = load_dataset(data_path, improved.data, progress=True)
    if not data.splits["test"]:
        raise TalkfaceError(f"{data_path}: the test split is empty")
    runs: dict[str, list[dict]] = {"original": [], "improved": []}
    for seed in seeds:
        for name, cfg in (("original", original), ("improved", improved)):
            run = cfg.model_copy(deep=True)
            run.train.seed, run.output_dir = seed, str(out / name / f"seed{seed}")
            done = Path(run.output_dir) / "metrics.json"
            if done.exists():  # a finished run (a killed job resumes; runs can be shared)
                log.info("%s, seed %d: reusing %s", name, seed, run.output_dir)
                result = json.loads(done.read_text())
            else:
                log.info("training %s, seed %d", name, seed)
                result = train(run, data=data, command=f"python -m train.compare (seed {seed})")
            runs[name].append(result["test"])
    summary = {name: summarise(r) for name, r in runs.items()}
    baseline, note = baseline_metrics(data)
    epochs = {"original": original.train.epochs, "improved": improved.train.epochs}
    table = markdown(summary, baseline, note, seeds, data.describe(), epochs)
    result = {"summary": summary, "runs": runs, "baseline": baseline, "note": note,
              "seeds": seeds, "data": data.describe(), "claim": CLAIM, "table": table,
              "configs": {"original": original.model_dump(), "improved": improved.model_dump()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    (out / "compare.md").write_text(table)
    return result


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.compare", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--output_dir", default="runs/compare")
    p.add_argument("--original", default="original")
    p.add_argument("--improved", default="optimized")
    p.add_argument("--epochs", type=int, help="epochs for both (default: each config's)")
    p.add_argument("--set", dest="both", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--set_original", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--set_improved", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        original = load_config(args.original, args.both + args.set_original, epochs=args.epochs)
        improved = load_config(args.improved, args.both + args.set_improved, epochs=args.epochs)
        result = run_compare(args.data, list(range(args.seeds)), Path(args.output_dir),
                             original, improved)
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
