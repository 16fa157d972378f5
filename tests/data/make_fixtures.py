"""Regenerate the tiny fixture clips under tests/data/fixtures (<= 1 MB, redistributable faces).

    python tests/data/make_fixtures.py

160-pixel, 2.4 s clips of the public-domain astronaut face speaking with espeak-ng, one per
condition other tests rely on: clean, audio late, audio early, blurred, frozen mouth, heavy
H.264 (CRF 42), no audio track, no face. manifest.csv has the columns of `python -m talkface synth`.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from talkface.synth.build import ClipJob, render_jobs, write_manifest  # noqa: E402
from talkface.synth.faces import load_faces  # noqa: E402
from talkface.synth.speech import list_voices  # noqa: E402

OUT = Path(__file__).with_name("fixtures")
SIZE, DURATION, SEED = 160, 2.4, 20240601
FACE, VOICE = "astronaut", "espeak-en-us+m1"
CLIPS = [("clean", {}), ("offset", {"offset_frames": 6.0}), ("offset", {"offset_frames": -4.0}),
         ("blur", {"blur_sigma": 3.0}), ("frozen_mouth", {"frozen_mouth": 1.0}),
         ("crf", {"crf": 42}), ("no_audio", {}), ("no_face", {})]


def main() -> None:
    faces = [f for f in load_faces(redistributable_only=True) if f.name == FACE]
    voices = [v for v in list_voices(recorded=False) if v.identity == VOICE]
    jobs = [ClipJob(f"{i:02d}_{cond}.mp4", "test", FACE, VOICE, cond, params, SEED, SIZE,
                    DURATION, family="fixtures") for i, (cond, params) in enumerate(CLIPS)]
    rows = render_jobs(jobs, OUT, faces, voices, workers=1, progress=False)
    write_manifest(rows, OUT / "manifest.csv")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(rows)} clips, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
