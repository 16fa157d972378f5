"""talkface.features.spectral against librosa itself: the scoring path computes librosa's
features without importing librosa's spectral stack, so these must stay the same numbers."""
import librosa
import numpy as np
import pytest

from talkface.features import spectral

SR = 16000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced tone with a moving pitch, noise bursts and a stretch of exact silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * (140 + 40 * np.sin(2 * np.pi * 0.7 * t)) * t)
    y *= (np.sin(2 * np.pi * 3 * t) > 0)  # syllable-like gating
    y += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 0.5 * t) > 0.6)
    y[len(y) // 3: len(y) // 3 + SR // 4] = 0.0
    return y.astype(np.float32)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(16000, 1024, 40, 0.0, None),
                                                       (16000, 512, 40, 55, 7600),
                                                       (16000, 512, 80, 55, 7600),
                                                       (22050, 2048, 128, 0.0, None)])
def test_mel_filters_are_librosas(sr, n_fft, n_mels, fmin, fmax):
    ours = spectral.mel_filters(sr, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seconds", [0.1, 1.3, 4.0])
def test_audio_features_are_librosas(seconds):
    y = _speechlike(seconds)
    hop, n_fft = 640, 1024
    mel = spectral.melspectrogram(y, SR, n_fft, hop, 40)
    ref = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=n_fft, hop_length=hop, n_mels=40,
                                         fmax=SR / 2)
    assert mel.dtype == np.float32
    np.testing.assert_allclose(mel, ref, rtol=2e-5, atol=1e-9)
    logmel = np.maximum(spectral.power_to_db(mel), -100.0)
    ref_log = np.maximum(librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=None), -100.0)
    np.testing.assert_allclose(logmel, ref_log, atol=1e-3)
    mfcc = spectral.mfcc(ref_log, 13)
    np.testing.assert_allclose(mfcc, librosa.feature.mfcc(S=ref_log, n_mfcc=13), atol=1e-4)
    if mfcc.shape[1] >= 3:
        np.testing.assert_allclose(spectral.delta(mfcc),
                                   librosa.feature.delta(mfcc, width=3, mode="nearest"),
                                   atol=1e-5)
    np.testing.assert_allclose(spectral.onset_strength(ref_log)[0],
                               librosa.onset.onset_strength(S=ref_log, sr=SR), atol=1e-4)
    np.testing.assert_allclose(
        spectral.spectral_centroid(y, SR, n_fft, hop),
        librosa.feature.spectral_centroid(y=y, sr=SR, n_fft=n_fft, hop_length=hop), rtol=1e-4,
        atol=1e-3)
    np.testing.assert_array_equal(
        spectral.zero_crossing_rate(y, n_fft, hop),
        librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop))


def test_sync_mel_is_librosas_with_a_shorter_window():
    y = _speechlike(2.0, seed=1)
    ours = spectral.melspectrogram(y, SR, 512, 160, 40, fmin=55, fmax=7600, win_length=400)
    theirs = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, win_length=400,
                                            hop_length=160, n_mels=40, fmin=55, fmax=7600)
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-9)


def test_stft_in_chunks_equals_one_pass():
    y = _speechlike(3.0, seed=2)
    np.testing.assert_array_equal(spectral.stft_power(y, 512, 160, chunk=7),
                                  spectral.stft_power(y, 512, 160, chunk=100000))


def test_silence_gives_finite_features():
    y = np.zeros(SR, np.float32)
    assert np.all(spectral.spectral_centroid(y, SR, 1024, 640) == 0)
    assert np.all(spectral.zero_crossing_rate(y, 1024, 640) == 0)
    assert np.isfinite(spectral.power_to_db(spectral.melspectrogram(y, SR, 1024, 640, 40))).all()
