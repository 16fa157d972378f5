"""How often the face stage finds the face on real footage, and how fast, clip by clip.

    python benchmarks/faces.py --real ../shared/real-videos [--kinds talking_with_audio generated]
        [--seconds 30] [--out artifacts/faces.csv]
    python benchmarks/faces.py --real FOLDER_OF_CLIPS   # no manifest.csv: every video in it

For every clip of the chosen kinds in the pool's manifest (or every video of a folder without
one, kind "clip"): the fraction of frames in which the scored face (the `mesh` backend's choice)
was found with fitted landmarks, the fraction in which it was followed at all (fitted or held:
turned beyond the landmarks' range), the number of face tracks, the frame size, the face's height
in the source, and milliseconds per frame for decoding + detection + tracking + crops. Prints the clips below 98% with the frame where the face is missing, and the share of clips
at 98% or more. The pool is not part of the repository (see its README); nothing here copies it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkface.features.extract import Extractor  # noqa: E402


VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg"}


def clips(folder: Path, kinds: list[str]) -> pd.DataFrame:
    """The manifest's clips of `kinds`, or every video in a folder without a manifest."""
    if (folder / "manifest.csv").exists():
        manifest = pd.read_csv(folder / "manifest.csv")
        return manifest[manifest["kind"].isin(kinds)]
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return pd.DataFrame({"file": [p.name for p in files], "kind": "clip"})


def run(real: Path, kinds: list[str], seconds: float, out: Path | None) -> pd.DataFrame:
    manifest = clips(real, kinds)
    extractor = Extractor(max_seconds=seconds, identity_frames=0)
    rows = []
    for row in manifest.itertuples():
        start = time.perf_counter()
        bundle = extractor.extract(real / row.file)
        took = time.perf_counter() - start
        tracks = bundle.info.get("tracks", [])
        scored = [t for t in tracks if t["id"] == bundle.info.get("scored_track")]
        missing = np.flatnonzero(~bundle.valid)
        rows.append({"file": Path(row.file).name, "kind": row.kind,
                     "size": f"{bundle.info['width']}x{bundle.info['height']}",
                     "face_height_px": scored[0]["height_px"] if scored else 0,
                     "frames": bundle.n_frames, "found": float(bundle.valid.mean()),
                     "followed": scored[0]["frames"] / bundle.n_frames if scored else 0.0,
                     "tracks": len(tracks), "first_missing": int(missing[0]) if missing.size
                     else None, "ms_per_frame": 1000 * took / max(bundle.n_frames, 1)})
        print(f"{rows[-1]['found']:7.1%} (followed {rows[-1]['followed']:6.1%})  "
              f"{rows[-1]['ms_per_frame']:5.1f} ms/frame  "
              f"{len(tracks)} track(s)  {row.file}", flush=True)
    table = pd.DataFrame(rows)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--real", required=True, type=Path,
                   help="the real-footage pool folder, or any folder of videos")
    p.add_argument("--kinds", nargs="+", default=["talking_with_audio", "generated"])
    p.add_argument("--seconds", type=float, default=30.0, help="analyse at most this much")
    p.add_argument("--out", type=Path, default=Path("artifacts/faces.csv"))
    args = p.parse_args(argv)
    table = run(args.real, args.kinds, args.seconds, args.out)
    short = table[table["found"] < 0.98].sort_values("found")
    with pd.option_context("display.width", 200, "display.max_colwidth", 70):
        print("\nclips below 98%:\n" + (short.to_string(index=False) if len(short) else "none"))
    print(f"\n{(table['found'] >= 0.98).mean():.1%} of {len(table)} clips have a face in >= 98% "
          f"of frames; mean {table['found'].mean():.1%}; median "
          f"{table['ms_per_frame'].median():.1f} ms per frame; "
          f"{(table['followed'] >= 0.95).mean():.1%} followed (fitted or held) in >= 95%; "
          f"{int((table['found'] == 0).sum())} refused (no scored frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
