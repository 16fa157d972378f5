"""`python -m talkface synth`: build a benchmark with labels by construction and a manifest.

    python -m talkface synth --n 600 --size 256 --seed 0 --out data/synth --workers 2 \
        [--faces DIR] [--speech DIR]
    python -m talkface synth --from-real ../shared/real-videos --out data/real --workers 2

Same arguments, same bytes. `add_parser` / `run` plug into talkface's command line; `main` runs the
subcommand on its own (`python -m talkface.synth.cli ...`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from ..errors import TalkfaceError

log = logging.getLogger(__name__)


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--n", type=int, default=600, help="number of clips (default 600)")
    p.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--out", default="data/synth", help="output folder (default data/synth)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per clip (default 3)")
    p.add_argument("--faces", default=None, metavar="DIR",
                   help="extra face photos (sub-folder name = identity)")
    p.add_argument("--speech", default=None, metavar="DIR",
                   help="extra speech recordings (sub-folder name = speaker)")
    p.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=None,
                   help="only make clips of these splits (e.g. a test set)")
    p.add_argument("--redistributable-only", action="store_true",
                   help="use only faces whose licence allows redistribution")
    p.add_argument("--specials", action="store_true",
                   help="also make a clip without audio and a clip without a face")
    p.add_argument("--family-fraction", type=float, default=0.3,
                   help="share of clips in paired families (clean + graded steps)")
    p.add_argument("--balanced", action="store_true",
                   help="cycle single clips through every condition (demo sets)")
    p.add_argument("--from-real", dest="from_real", default=None, metavar="DIR_OR_MANIFEST",
                   help="build from real recordings instead of the puppet (see "
                        "talkface.synth.real): a folder of videos or a footage manifest")
    p.add_argument("--segments", type=int, default=4,
                   help="--from-real: segments per recording (one family each)")
    p.add_argument("--steps", type=int, default=3,
                   help="--from-real: graded versions per family besides the clean one")
    p.add_argument("--factors", default="", metavar="A,B",
                   help="--from-real: only these factors (e.g. the lip-sync ones: "
                        "offset_frames,other_speaker,mouth_time,frozen_lower); default: all")
    p.add_argument("--rate-sources", dest="rate_sources", default=None, metavar="BENCH",
                   help="rate each source of a --from-real benchmark by its clean clip and "
                        "relabel visual quality (talkface.synth.sources); nothing is built")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `synth` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser("synth", help="build a synthetic talking-head benchmark",
                              description=__doc__.split("\n\n")[0])
    return _configure(p)


def run(args: argparse.Namespace) -> int:
    """Run `synth` with parsed arguments; returns the exit status."""
    from .build import build_dataset
    if args.rate_sources:
        from .sources import rate_sources
        try:
            manifest = rate_sources(args.rate_sources, workers=args.workers,
                                    progress=not args.no_progress)
        except TalkfaceError as err:
            print(f"synth: {err}", file=sys.stderr)
            return 2
        print(f"relabelled {manifest}")
        return 0
    if args.from_real:
        from .real import build_from_real
        try:
            manifest = build_from_real(args.from_real, args.out, seed=args.seed,
                                       segments=args.segments, seconds=args.duration,
                                       steps=args.steps, workers=args.workers,
                                       progress=not args.no_progress,
                                       factors=[f for f in args.factors.split(",") if f])
        except TalkfaceError as err:
            print(f"synth: {err}", file=sys.stderr)
            return 2
        print(f"wrote {manifest}")
        return 0
    if args.n < 1 or args.size < 64 or args.size % 2:
        print("synth: --n must be >= 1 and --size an even number >= 64", file=sys.stderr)
        return 2
    try:
        manifest = build_dataset(args.out, n=args.n, size=args.size, seed=args.seed,
                                 workers=args.workers, faces_dir=args.faces,
                                 speech_dir=args.speech, duration=args.duration,
                                 redistributable_only=args.redistributable_only,
                                 specials=args.specials, family_fraction=args.family_fraction,
                                 splits=args.splits, balanced=args.balanced,
                                 progress=not args.no_progress)
    except TalkfaceError as err:
        print(f"synth: {err}", file=sys.stderr)
        return 1
    print(f"wrote {manifest}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _configure(argparse.ArgumentParser(prog="talkface synth"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
