"""Command line: `talkface COMMAND ...` (or `python -m talkface COMMAND ...`).

`extract` and `app` live here; other commands register themselves from their own modules, each
of which exposes `add_parsers(subparsers)` (setting `func`) or `add_parser(subparsers)` +
`run(args)`. Building the parser imports those modules, so they keep their heavy imports (torch,
pandas, cv2, av, gradio...) inside the functions that run a command: `talkface --help` and
`talkface score --help` import none of them.

Exit status, for every command: 0 all done; 1 it ran but some inputs failed (each named with its
reason); 2 it could not run (bad arguments, config, checkpoint or backend).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Iterable, Optional

from .constants import DEFAULT_BACKEND, FPS, MAX_SECONDS, MAX_SIDE, VIDEO_SUFFIXES
from .errors import TalkfaceError

COMMAND_MODULES = ["talkface.synth.cli", "talkface.legacy_cli", "talkface.score_cli",
                   "talkface.export_cli"]


def collect_videos(paths: Iterable[str]) -> list[Path]:
    """Files as given, plus video files found recursively in folders (sorted, no duplicates)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*")
                            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            found.append(item)
    seen, unique = set(), []
    for path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


# --- extract -----------------------------------------------------------------------------------

def _extract_and_save(extractor, job: tuple[str, str]) -> None:
    source, target = job
    extractor.extract(source).save(target)


def _output_path(video: Path, roots: list[Path], out: Path) -> Path:
    for root in roots:
        if root.is_dir() and video.resolve().is_relative_to(root.resolve()):
            return out / video.resolve().relative_to(root.resolve()).with_suffix(".npz")
    return out / (video.stem + ".npz")


def run_extract(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from .features import Extractor
    from .features.batch import run_per_file
    from .features.extract import resolve_config
    config = resolve_config(backend=args.backend, max_seconds=args.max_seconds,
                            max_side=args.max_side, fps=args.fps, sync=args.sync)
    extractor = Extractor(config)  # fail fast on a bad backend
    videos = collect_videos(args.paths)
    out = Path(args.out)
    roots = [Path(p) for p in args.paths]
    jobs, skipped = [], 0
    for video in videos:
        target = _output_path(video, roots, out)
        if target.exists() and target.with_suffix(".json").exists() and not args.overwrite:
            skipped += 1
            continue
        jobs.append((str(video), str(target)))
    results = run_per_file(_extract_and_save, jobs, [source for source, _ in jobs], config,
                           args.workers, extractor)
    failures = [error for _, error in tqdm(results, total=len(jobs), desc="extract", unit="file")
                if error]
    done = len(jobs) - len(failures)
    print(f"extracted {done}, skipped {skipped} already done, failed {len(failures)} "
          f"(backend {args.backend}: {extractor.spec.describe()})")
    for message in failures:
        print(f"  FAILED {message}", file=sys.stderr)
    return 1 if failures else 0


def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="extract per-frame audio-visual features from videos")
    p.add_argument("paths", nargs="+", help="video files or folders (searched recursively)")
    p.add_argument("--backend", default=DEFAULT_BACKEND,
                   help="visual backend (mesh, landmarks, pyfeat)")
    p.add_argument("--sync", default=None, help="sync model for the sync columns (a shipped "
                   "name such as 'sync', or a folder; default none)")
    p.add_argument("--out", required=True, help="output folder for .npz + .json bundles")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--fps", type=float, default=FPS)
    p.add_argument("--max-side", dest="max_side", type=int, default=MAX_SIDE)
    p.add_argument("--max-seconds", dest="max_seconds", type=float, default=MAX_SECONDS)
    p.add_argument("--overwrite", action="store_true", help="redo files already extracted")
    p.set_defaults(func=run_extract)


def _add_app(sub) -> None:
    p = sub.add_parser("app", help="serve the web app (see `talkface app --help`)",
                       add_help=False)
    p.add_argument("app_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: _run_app(args.app_args))


def _run_app(argv: list[str]) -> int:
    from .app.ui import main as app_main
    app_main(argv)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkface", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_extract(sub)
    _add_app(sub)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            if err.name and name.startswith(err.name):
                continue  # that command is not installed in this tree
            raise
        before = set(sub.choices)
        if hasattr(module, "add_parsers"):
            module.add_parsers(sub)
        else:
            module.add_parser(sub)
        for command in set(sub.choices) - before:
            if sub.choices[command].get_default("func") is None:
                sub.choices[command].set_defaults(func=module.run)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main_exit() -> None:
    """The `talkface` console script."""
    sys.exit(main())
