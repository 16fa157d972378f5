"""The sync model's training and evaluation inputs: each clip's pose-free lip points, mouth crops,
mel power and validity for its scored face (`SyncClip`), extracted once per file and cached by
content hash, and the footage pool with its speaker split."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from talkface.cache import file_hash
from talkface.constants import MAX_OFFSET_FRAMES
from talkface.errors import TalkfaceError
from talkface.features.extract import Extractor
from talkface.sync.frontend import crop_input, lip_input, mel_power, window_valid
from talkface.sync.model import SyncOptions
from talkface.synth.footage import read_footage, speaker_split

log = logging.getLogger(__name__)


@dataclass
class SyncClip:
    """One clip's sync inputs, prepared for the model."""

    name: str
    speaker: str
    lips: np.ndarray  # (T, 160)
    crops: np.ndarray  # (T, 24, 48)
    mel: np.ndarray  # (n_mels, 4T + 1) mel power
    valid: np.ndarray  # (T,)
    wvalid: np.ndarray  # (T - 4,)
    mouth_gap: np.ndarray  # (T,) for the correlation baseline
    audio: np.ndarray
    mouths: Optional[np.ndarray] = None  # (T, 48, 96) uint8 canonical crops, for degradation

    @property
    def n_frames(self) -> int:
        return len(self.valid)


def extract_inputs(paths: list[str], cache: Path) -> dict[str, Path]:
    """Lip points, mouth crops, validity and audio of each clip's scored face, cached by the
    file's content hash."""
    extractor = Extractor(identity_frames=0)
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, path in enumerate(paths):
        target = cache / f"{file_hash(path)}.npz"
        if not target.exists():
            try:
                _, visual, audio = extractor.analyse(path)
            except TalkfaceError as err:
                log.warning("skipped %s", err)
                continue
            np.savez_compressed(target.with_suffix(".part.npz"), lips=visual.lips,
                                mouths=visual.mouths, valid=visual.valid,
                                audio=audio if audio is not None else np.zeros(0, np.float32))
            target.with_suffix(".part.npz").replace(target)
            log.info("[%d/%d] %s: face in %.0f%% of %d frames", i + 1, len(paths), Path(path).name,
                     100 * visual.valid.mean(), len(visual.valid))
        out[path] = target
    return out


def prepare(name: str, speaker: str, npz: Path, opts: SyncOptions) -> Optional[SyncClip]:
    from talkface.sync.speaker import lip_gap
    with np.load(npz) as z:
        lips, mouths, valid, audio = z["lips"], z["mouths"], z["valid"].astype(bool), z["audio"]
    if audio.size == 0 or window_valid(valid).sum() < 2 * MAX_OFFSET_FRAMES:
        return None
    return SyncClip(name, speaker, lip_input(lips, valid), crop_input(mouths, valid),
                    mel_power(audio, len(valid), opts.n_mels), valid, window_valid(valid),
                    np.where(valid, lip_gap(np.nan_to_num(lips)), np.nan), audio, mouths)


def load_pool(real: Path, cache: Path, opts: SyncOptions, kinds=("talking_with_audio",)):
    """(footage table, {name: SyncClip} for the clips of `kinds`, speaker -> split over the
    whole folder)."""
    table = read_footage(real)
    split = speaker_split(table)
    table = table[table["kind"].isin(kinds)].reset_index(drop=True)
    inputs = extract_inputs(list(table["path"]), cache)
    clips = {}
    for row in table.itertuples():
        if row.path in inputs:
            clip = prepare(row.name, row.speaker, inputs[row.path], opts)
            if clip is not None:
                clips[row.name] = clip
    return table, clips, split
