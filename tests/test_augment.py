"""Augmentation on features is the effect of the media change it stands for: the features of a
louder recording are the augmented features of the original."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tone
from talkface.augment import AugmentConfig, Columns, audio_gain
from talkface.errors import ConfigError
from talkface.features.audio import audio_feature_names, extract_audio_features
from talkface.spec import ExtractorConfig, FeatureSpec

FPS, SR, FRAMES = 25.0, 16000, 40


def audio_spec() -> FeatureSpec:
    names = tuple(n for _, cols in audio_feature_names() for n in cols)
    return FeatureSpec(visual_names=("v0",), audio_names=names,
                       extractor=ExtractorConfig(backend="test"), backend_version="1")


@pytest.mark.parametrize("gain_db", [6.0, -9.0])
def test_gain_equals_extracting_the_louder_audio(gain_db):
    rng = np.random.default_rng(0)
    wave = tone(FRAMES / FPS, SR) + rng.normal(0, 0.01, int(FRAMES / FPS * SR)).astype(np.float32)
    before = extract_audio_features(wave, FRAMES, FPS, SR)
    louder = extract_audio_features(wave * 10 ** (gain_db / 20), FRAMES, FPS, SR)
    augmented = audio_gain(before, Columns.of(audio_spec()), gain_db)
    assert not np.allclose(augmented, before)  # the gain did move something
    np.testing.assert_allclose(augmented, louder, atol=2e-3, rtol=1e-4)


def test_augment_is_off_by_default_and_rejects_unknown_keys():
    from train.config import load_config
    assert not load_config("tiny").augment.enabled
    assert load_config("tiny", ["augment.gain_p=0.5"]).augment.enabled
    with pytest.raises(ConfigError, match="augment.gainp"):
        load_config("tiny", ["augment.gainp=0.5"])
    with pytest.raises(ValueError):
        AugmentConfig(gain_p=1.5)
