"""The MFCC front end against librosa in float64, computed clip by clip."""

import jax.numpy as jnp
import librosa
import numpy as np

from ddjax.core.features import FeatureConfig, mfcc
from ddjax.core.loops import Loop
from ddjax.core.render import RenderConfig, critic_view, render_tables


def librosa_mel(y):
    """librosa's mel power spectrogram with the project's settings: [frames, bands]."""
    return librosa.feature.melspectrogram(
        y=np.asarray(y, np.float64), sr=44100, n_fft=400, hop_length=200, window="hann",
        center=True, pad_mode="reflect", power=2.0, n_mels=128, fmin=0.0, fmax=22050.0,
        htk=True, norm=None).T


def librosa_mfcc(y):
    db = librosa.power_to_db(librosa_mel(y).T, ref=1.0, amin=1e-10, top_db=80.0)
    return librosa.feature.mfcc(S=db, n_mfcc=60, dct_type=2, norm="ortho")


def rendered_bars(kit, seed, n=4):
    rng = np.random.default_rng(seed)
    grid = rng.random((n, 4, 16)) < 0.5
    samples = np.stack([rng.choice(len(kit), 4, replace=False) for _ in range(n)])
    config = RenderConfig()
    loop = Loop(jnp.asarray(grid), jnp.asarray(samples.astype(np.int32)))
    return np.asarray(critic_view(render_tables(kit.audio, config), loop, config))


def assert_matches_librosa(audio):
    ours = np.asarray(mfcc(jnp.asarray(audio, jnp.float32)))
    assert ours.shape == (audio.shape[0], 60, 442)
    for clip, got in zip(audio, ours):
        np.testing.assert_allclose(got, librosa_mfcc(clip), atol=1e-2, rtol=0)


def test_matches_librosa_on_bundled_kit_loops(bundled_kit):
    assert_matches_librosa(rendered_bars(bundled_kit, 0))


def test_matches_librosa_on_paper_kit_loops(shared_kit):
    assert_matches_librosa(rendered_bars(shared_kit, 1))


def test_matches_librosa_on_noise():
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((3, 88200)) * np.array([[1.0], [1e-3], [0.3]])
    assert_matches_librosa(noise)


def test_silence_gives_finite_values():
    out = np.asarray(mfcc(jnp.zeros((2, 88200), jnp.float32)))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], librosa_mfcc(np.zeros(88200)), atol=1e-2)


def test_batched_equals_per_clip():
    audio = jnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 88200)), jnp.float32)
    batched = np.asarray(mfcc(audio))
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(batched[i, j], np.asarray(mfcc(audio[i, j])),
                                       atol=1e-4, rtol=0)


def test_frame_count_follows_the_hop():
    config = FeatureConfig()
    assert config.n_frames(88200) == 442
    assert mfcc(jnp.zeros((1000,)), config).shape == (60, 6)


def test_mel_power_matches_librosa_and_the_mfcc_is_computed_from_it(bundled_kit):
    from ddjax.core.features import mel_power, mfcc_from_mel
    audio = rendered_bars(bundled_kit, 1, n=2)
    power = np.asarray(mel_power(jnp.asarray(audio, jnp.float32)))
    assert power.shape == (2, 442, 128)
    for clip, got in zip(audio, power):
        want = librosa_mel(clip)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * want.max())
    for clip, got in zip(audio, np.asarray(mfcc_from_mel(jnp.asarray(power)))):
        # float32 throughout, on coefficients in the hundreds
        np.testing.assert_allclose(got, librosa_mfcc(clip), atol=2e-2, rtol=0)
