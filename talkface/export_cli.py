"""`python -m talkface export`: the command line of `talkface.export` (ONNX or int8 for CPU
deployment), kept apart so that building the parser imports no torch.

    python -m talkface export --checkpoint DIR --format onnx --out model.onnx   # or a folder
    python -m talkface export --checkpoint DIR --format int8 --out DIR_INT8
"""
from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("onnx", "int8")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint for CPU deployment "
                              "(ONNX or int8)")
    p.add_argument("--checkpoint", help="checkpoint folder (default: the active one)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True,
                   help="onnx: a .onnx file or a folder; int8: a checkpoint folder")


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .errors import CheckpointError
    from .export import export_int8, export_onnx
    loaded = load_checkpoint(args.checkpoint)
    if loaded.meta.quantization:
        raise CheckpointError(f"{loaded.path} is already quantised; export the fp32 checkpoint")
    if args.format == "onnx":
        path = export_onnx(loaded, args.out)
    else:
        path = export_int8(loaded, args.out)
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) \
        if Path(path).is_dir() else Path(path).stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB, {args.format}) from {loaded.path}")
    return 0
