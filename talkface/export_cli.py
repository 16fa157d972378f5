"""`python -m talkface export`: the command line of `talkface.export` (ONNX or int8 for CPU
deployment), kept apart so that building the parser imports no torch.

    python -m talkface export --checkpoint DIR --format onnx --out DIR          # beside the weights
    python -m talkface export --checkpoint DIR --format onnx --out model.onnx   # or a folder
    python -m talkface export --checkpoint DIR --format int8 --out DIR_INT8

`--out DIR` naming the checkpoint's own folder adds model.onnx beside model.safetensors, which
scoring then runs by default (`talkface.export`). Sync checkpoints export to ONNX too.
"""
from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("onnx", "int8")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint for CPU deployment "
                              "(ONNX or int8)")
    p.add_argument("--checkpoint", help="checkpoint folder or shipped name, quality or sync "
                   "(default: the active one)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True,
                   help="onnx: a .onnx file, a folder, or the checkpoint's own folder (to add "
                   "model.onnx beside its weights); int8: a checkpoint folder")


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, read_meta, resolve
    from .errors import CheckpointError
    from .export import export_int8, export_onnx
    folder = resolve(args.checkpoint)
    kind = read_meta(folder).kind if folder.is_dir() else "quality"
    if kind == "sync" and args.format == "int8":
        raise CheckpointError(f"{folder} is a sync model: export it with --format onnx")
    loaded = load_checkpoint(folder, runtime="torch", kind=kind)
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
