"""`python -m train --config optimized --data DIR --output_dir runs/NAME
[--model original|improved] [--batch_size N] [--epochs N] [--set key=value ...] [--resume]`

Launch with `torchrun --nproc_per_node N -m train ...` for DDP (only rank 0 writes).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from typing import Optional

import torch.distributed as dist

from talkface.errors import TalkfaceError

from .config import load_config
from .loop import train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="YAML config: a file, or a shipped config name (optimized, original, tiny)")
    p.add_argument("--data", help="dataset folder with manifest.csv (or the CSV itself)")
    p.add_argument("--output_dir", required=True, help="run folder: config, metrics, checkpoints")
    p.add_argument("--model", help="registered model name (overrides model.name)")
    p.add_argument("--batch_size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue from OUTPUT_DIR/last.pt")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load_config(args.config, args.overrides, data=args.data, model=args.model,
                          batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
                          seed=args.seed, output_dir=args.output_dir, resume=args.resume)
        result = train(cfg, command="python -m train " + shlex.join(argv))
    except TalkfaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    summary = {k: result[k] for k in ("best_epoch", "epochs_run", "stopped_early", "stopped")
               if k in result}
    summary["test_mean"] = (result.get("test") or {}).get("mean")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
