"""A footage pool's clips with their features, for the fitting stages that read the pool
(`train.signals`, `train.realism`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from talkface.api import load_scorer
from talkface.errors import TalkfaceError
from talkface.synth.footage import read_footage, speaker_split

log = logging.getLogger(__name__)


def footage_bundles(footage: str | Path, checkpoint: Optional[str] = None,
                    kinds: Optional[tuple[str, ...]] = None, desc: str = "features"):
    """(row, split, bundle) for every clip of `footage` (of `kinds`, default all), its speaker's
    side of `speaker_split` and its features from the checkpoint's extractor, through the feature
    cache; a clip whose features fail is skipped with a warning."""
    table = read_footage(footage)
    split = speaker_split(table)
    if kinds is not None:
        table = table[table["kind"].isin(kinds)].reset_index(drop=True)
    scorer = load_scorer(checkpoint)
    for row in tqdm(list(table.itertuples()), desc=desc, unit="clip"):
        try:
            bundle = scorer.features(row.path)
        except TalkfaceError as err:
            log.warning("skipped %s", err)
            continue
        yield row, split[row.speaker], bundle
