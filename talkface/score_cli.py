"""`python -m talkface score` and `python -m talkface compare`.

    python -m talkface score clip.mp4 folder/ --json scores.json --csv scores.csv
    python -m talkface compare --group wav2lip=out/wav2lip --group sadtalker=out/sad --csv board.csv
    python -m talkface score folder/ --shard 3/8 --json part_3.json   # one of 8 jobs
    python -m talkface merge part_*.json --json all.json --csv all.csv
    python -m talkface score folder/ --workers 4 --json scores.json  # 4 local processes
    python -m talkface score --ray auto folder/ --json scores.json   # on a running Ray cluster

`score --json` writes one object per file in the schema the app's download uses
(`ScoreResult.to_dict(detail=False)`): "file", "scores" (null for a task that cannot be judged),
"mos", "band", "percentile", "sync" (offset_frames, offset_ms, confidence, min_dist, judged,
reliable), "lse" (with `--syncnet-weights`: SyncNet's lse_d, lse_c, offset_frames, windows,
weights, weights_sha256, reason; else null), "identity", "face", "warnings", "error"; the CSV
then gains lse_d, lse_c and lse_offset_frames columns. A file that cannot be scored gets
"scores": null and its error message, the batch goes on, and the exit status is 1 (2 when nothing
could run: a bad checkpoint or arguments).

`--shard I/N` (I from 1 to N) scores every N-th file of the sorted file list, starting at the
I-th, so N jobs (a Slurm array, a Kubernetes indexed job) given the same paths split them between
them with no file scored twice or left out. `merge` joins their JSON files into one (sorted by
file; a file found in two parts is an error) and exits 1 when any merged file had failed.

`--workers N` makes the features in N local processes, one Scorer each; `--ray [ADDRESS]` makes
them on Ray actors: alone it starts a local Ray, `auto` joins the cluster this machine is part
of, `HOST:PORT` or `ray://HOST:PORT` connects to one (with `--workers N`: N actors, else one per
CPU of the cluster). Either way the JSON equals a one-process run's (`talkface.parallel` says
why), and the closing line reports clips per minute. docs/scaling.md shows a multi-node launch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from .errors import TalkfaceError

LOCAL_RAY = ""  # `--ray` given without an address: start a local Ray


def add_parsers(subparsers) -> None:
    score = subparsers.add_parser("score", help="score talking-face videos with a checkpoint")
    score.add_argument("paths", nargs="*", help="video files or folders (searched recursively)")
    score.add_argument("--json", dest="json_out", help="write per-file results as JSON here")
    score.add_argument("--csv", dest="csv_out", help="write per-file scores as CSV here")
    score.add_argument("--face", type=int, help="score this face track (see the JSON's "
                       "face.tracks) instead of the speaking one; one file at a time")
    score.add_argument("--reference", help="a portrait of the person the clips should show: "
                       "adds identity.reference_similarity (CSIM)")
    score.add_argument("--shard", type=parse_shard, metavar="I/N",
                       help="score only part I of N (1 <= I <= N) of the sorted file list; "
                       "join the parts' --json files with `talkface merge`")
    score.add_argument("--workers", type=int, metavar="N",
                       help="score with N local worker processes, one Scorer each (default 1); "
                       "with --ray, N Ray actors (default: one per CPU of the cluster)")
    score.add_argument("--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
                       help="score on Ray (pip install 'talkface[ray]'): alone, a local Ray; "
                       "'auto' or HOST:PORT, a running cluster")
    score.add_argument("--syncnet-weights", dest="syncnet_weights", metavar="PATH",
                       help="SyncNet's own weights (syncnet_v2.model, not shipped): adds "
                       "paper-standard LSE-D, LSE-C and SyncNet's offset to every result")
    _common(score)
    score.set_defaults(func=run_score)

    merge = subparsers.add_parser("merge", help="join the --json files of `score --shard` jobs")
    merge.add_argument("parts", nargs="+", help="JSON files written by `talkface score --json`")
    merge.add_argument("--json", dest="json_out", required=True, help="write all results here")
    merge.add_argument("--csv", dest="csv_out", help="write per-file scores as CSV here")
    merge.set_defaults(func=run_merge)

    compare = subparsers.add_parser("compare", help="leaderboard of generators (groups of clips)")
    compare.add_argument("--group", action="append", required=True, metavar="NAME=PATH",
                         help="a generator: a name and a file or folder of its clips (repeat)")
    compare.add_argument("--csv", dest="csv_out",
                         help="write the leaderboard here (and *_pairwise.csv beside it)")
    _common(compare)
    compare.set_defaults(func=run_compare_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    parser.add_argument("--no-cache", dest="no_cache", action="store_true",
                        help="do not read or write the feature cache")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--runtime", choices=("onnx", "torch", "int8"),
                        help="what runs the models (default: onnx where the checkpoint has a "
                        "current model.onnx, as the shipped ones do, else torch)")


def _scorer(args):
    from .api import load_scorer
    return load_scorer(args.checkpoint, cache=not args.no_cache, device=args.device,
                       runtime=args.runtime,
                       syncnet_weights=getattr(args, "syncnet_weights", None))


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 1 <= I <= N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use I/N, e.g. 1/4") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"{text!r}: I must be between 1 and N")
    return index, count


def shard_files(files: list[Path], index: int, count: int) -> list[Path]:
    """Part `index` of `count` (1-based) of `files`: every count-th file of the sorted list."""
    return sorted(files, key=str)[index - 1::count]


def _videos(paths: list[str]) -> list[Path]:
    from .cli import collect_videos
    return collect_videos(paths)


def ray_address(value: str, paths: list[str]) -> tuple[Optional[str], list[str]]:
    """`--ray`'s optional ADDRESS told apart from a path that argparse gave it
    (`--ray folder/`): 'auto', 'HOST:PORT' and 'ray://...' are addresses. Returns (address or
    None for a local Ray, paths)."""
    if not value:
        return None, paths
    if value == "auto" or "://" in value or (":" in value and not os.path.exists(value)):
        return value, paths
    return None, [value, *paths]


def _score_files(scorer, files: list[Path], args: argparse.Namespace) -> list:
    from tqdm import tqdm

    from .parallel import score_files, score_files_ray
    with tqdm(total=len(files), desc="score", unit="file", file=sys.stderr) as bar:
        options = dict(batch_size=args.batch_size, progress=lambda *_: bar.update(),
                       reference=args.reference)
        if args.ray is not None:
            return score_files_ray(scorer, files, args.ray_address, args.workers, **options)
        return score_files(scorer, files, args.workers or 1, **options)


def _score_one(scorer, file: Path, face: int, reference):
    from .results import ScoreResult
    try:
        return scorer.score(file, face=face, reference=reference)
    except TalkfaceError as err:
        return ScoreResult.failed(str(file), str(err))


def run_score(args: argparse.Namespace) -> int:
    if args.ray is not None:
        args.ray_address, args.paths = ray_address(args.ray, args.paths)
    if not args.paths:
        raise TalkfaceError("give at least one video file or folder to score")
    if args.workers is not None and args.workers < 1:
        raise TalkfaceError(f"--workers {args.workers}: give 1 or more")
    files = _videos(args.paths)
    if not files:
        raise TalkfaceError(f"no video files found in {', '.join(args.paths)}")
    if args.face is not None and len(files) != 1:
        raise TalkfaceError("--face picks a face track of one clip; give one file")
    if args.shard is not None:
        files = shard_files(files, *args.shard)
    if args.ray is not None:
        from .parallel import import_ray
        import_ray()  # before loading anything: a missing extra is a quick, readable error
    scorer = _scorer(args)
    start = time.perf_counter()
    if not files:  # more parts than files: this one has none
        results = []
    elif args.face is not None:
        results = [_score_one(scorer, files[0], args.face, args.reference)]
    else:
        results = _score_files(scorer, files, args)
    elapsed = time.perf_counter() - start
    records = [r.to_dict(detail=False) for r in results]
    _write(records, args.json_out, args.csv_out)
    for result in results:
        _print_result(result)
    failed = sum(not r.ok for r in results)
    print(f"scored {len(results) - failed} of {len(results)} file(s) with {scorer.loaded.path} "
          f"in {elapsed:.1f} s, {len(results) / max(elapsed, 1e-9) * 60:.1f} clips/min "
          f"({_where(args, len(results))})", file=sys.stderr)
    return 1 if failed else 0


def _where(args: argparse.Namespace, count: int) -> str:
    workers = min(args.workers or 1, count)
    if args.ray is not None:
        return "on Ray"
    return f"{workers} worker processes" if workers > 1 else "1 process"


def _write(records: list[dict], json_out, csv_out) -> None:
    from .results import write_records  # here, so `--help` stays instant
    write_records(records, json_out, csv_out)


def run_merge(args: argparse.Namespace) -> int:
    records, where = [], {}
    for part in args.parts:
        try:
            items = json.loads(Path(part).read_text())
        except (OSError, ValueError) as err:
            raise TalkfaceError(f"{part}: not a `talkface score --json` file ({err})") from None
        if not isinstance(items, list) or not all(isinstance(r, dict) and "file" in r
                                                  for r in items):
            raise TalkfaceError(f"{part}: not a `talkface score --json` file (a list of "
                                f"per-file results)")
        for record in items:
            if record["file"] in where:
                raise TalkfaceError(f"{record['file']} is in both {where[record['file']]} and "
                                    f"{part}: were the parts made with the same --shard?")
            where[record["file"]] = part
            records.append(record)
    records.sort(key=lambda r: r["file"])
    _write(records, args.json_out, args.csv_out)
    failed = sum(r.get("error") is not None for r in records)
    print(f"merged {len(records)} file(s) from {len(args.parts)} part(s), {failed} failed",
          file=sys.stderr)
    return 1 if failed else 0


def _print_result(result) -> None:
    if not result.ok:
        print(f"{result.file}: FAILED {result.error}")
        return
    scores = "  ".join(f"{n}={s.value:.3f} ({s.mos:.1f}/5)" if s.judged else f"{n}=not judged"
                       for n, s in result.tasks.items())
    print(f"{result.file}: {scores}")
    sync = result.sync
    if sync is not None and sync.judged:
        print(f"  sync: offset {sync.offset_frames:+d} frames, confidence {sync.confidence:.2f}"
              + ("" if sync.reliable else " (not reliable)"))
    for name, task in result.tasks.items():
        if task.why:
            print(f"  {name} pulled down by: " + ", ".join(
                f"{result.signals[s].to_dict()['label'].lower()} "
                f"{result.signals[s].value:.3g}" for s in task.why))
    if result.lse is not None:
        from .sync.lse import lse_line
        print(f"  {lse_line(result.lse)}")
    for warning in result.warnings:
        print(f"  warning: {warning}")


def run_compare_command(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm
    from .leaderboard import compare_groups, format_leaderboard, parse_group
    groups: dict[str, list[Path]] = {}
    for item in args.group:
        name, path = parse_group(item)
        files = _videos([path])
        if not files:
            raise TalkfaceError(f"group {name!r}: no video files found in {path}")
        groups.setdefault(name, []).extend(files)
    scorer = _scorer(args)
    total = sum(len(f) for f in groups.values())
    with tqdm(total=total, desc="compare", unit="file", file=sys.stderr) as bar:
        comparison = compare_groups(scorer, groups, progress=lambda *_: bar.update())
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
