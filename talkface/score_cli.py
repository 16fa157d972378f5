"""`python -m talkface score` and `python -m talkface compare`.

    python -m talkface score clip.mp4 folder/ --json scores.json --csv scores.csv
    python -m talkface compare --group wav2lip=out/wav2lip --group sadtalker=out/sad --csv board.csv

`score` writes one JSON object per file: {"file", "scores", "warnings", "error"} (plus the 1-5
scores as "mos"); a file that cannot be scored gets "scores": null and its error message, the batch
goes on, and the exit code is 1 if any file failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .errors import TalkfaceError


def add_parsers(subparsers) -> None:
    score = subparsers.add_parser("score", help="score talking-face videos with a checkpoint")
    score.add_argument("paths", nargs="+", help="video files or folders (searched recursively)")
    score.add_argument("--json", dest="json_out", help="write per-file results as JSON here")
    score.add_argument("--csv", dest="csv_out", help="write per-file scores as CSV here")
    _common(score)
    score.set_defaults(func=run_score)

    compare = subparsers.add_parser("compare", help="leaderboard of generators (groups of clips)")
    compare.add_argument("--group", action="append", required=True, metavar="NAME=PATH",
                         help="a generator: a name and a file or folder of its clips (repeat)")
    compare.add_argument("--csv", dest="csv_out",
                         help="write the leaderboard here (and *_pairwise.csv beside it)")
    _common(compare)
    compare.set_defaults(func=run_compare)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    parser.add_argument("--no-cache", dest="no_cache", action="store_true",
                        help="do not read or write the feature cache")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=8)


def _scorer(args):
    from .api import load_scorer
    return load_scorer(args.checkpoint, cache=not args.no_cache)


def _videos(paths: list[str]) -> list[Path]:
    from .cli import collect_videos
    return collect_videos(paths)


def _score_files(scorer, files: list[Path], batch_size: int, desc: str) -> list:
    with tqdm(total=len(files), desc=desc, unit="file", file=sys.stderr) as bar:
        return scorer.score_many(files, batch_size=batch_size, progress=lambda _: bar.update())


def run_score(args: argparse.Namespace) -> int:
    files = _videos(args.paths)
    if not files:
        raise TalkfaceError(f"no video files found in {', '.join(args.paths)}")
    scorer = _scorer(args)
    results = _score_files(scorer, files, args.batch_size, "score")
    records = [r.to_dict(detail=False) for r in results]
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(records, indent=1))
    if args.csv_out:
        rows = [{"file": r["file"], **(r["scores"] or {}), "error": r["error"],
                 "warnings": "; ".join(r["warnings"])} for r in records]
        pd.DataFrame(rows).to_csv(args.csv_out, index=False, float_format="%.4f")
    for result in results:
        _print_result(result)
    failed = sum(not r.ok for r in results)
    print(f"scored {len(results) - failed} of {len(results)} file(s) with {scorer.loaded.path}",
          file=sys.stderr)
    return 1 if failed else 0


def _print_result(result) -> None:
    if not result.ok:
        print(f"{result.file}: FAILED {result.error}")
        return
    scores = "  ".join(f"{n}={s.value:.3f} ({s.mos:.1f}/5)" for n, s in result.tasks.items())
    print(f"{result.file}: {scores}")
    for warning in result.warnings:
        print(f"  warning: {warning}")


def run_compare(args: argparse.Namespace) -> int:
    from .compare import compare_results, format_leaderboard, parse_group
    groups: dict[str, list[Path]] = {}
    for item in args.group:
        name, path = parse_group(item)
        files = _videos([path])
        if not files:
            raise TalkfaceError(f"group {name!r}: no video files found in {path}")
        groups.setdefault(name, []).extend(files)
    scorer = _scorer(args)
    scored = {name: _score_files(scorer, files, args.batch_size, name)
              for name, files in groups.items()}
    comparison = compare_results(scored, scorer.tasks)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(format_leaderboard(comparison.leaderboard, comparison.tasks).to_string(index=False))
        significant = comparison.pairwise[comparison.pairwise["p_value"] < 0.05]
        if not significant.empty:
            print("\nsignificant pairwise differences (Mann-Whitney U, p < 0.05):")
            print(significant.to_string(index=False, float_format="%.3g"))
    if args.csv_out:
        comparison.to_csv(args.csv_out)
    failed = comparison.scores["error"].notna()
    for _, row in comparison.scores[failed].iterrows():
        print(f"{row['group']}/{row['file']}: FAILED {row['error']}", file=sys.stderr)
    return 1 if failed.any() else 0
