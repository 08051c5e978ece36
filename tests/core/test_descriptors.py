"""The bar's descriptors measure what they say, on audio whose answer is known."""

import jax.numpy as jnp
import numpy as np

from ddjax.core.descriptors import DescriptorConfig, descriptors
from ddjax.core.features import FeatureConfig, mfcc

SR, BAR = 44100, 88200
CONFIG = DescriptorConfig()
B, S = CONFIG.n_bands, CONFIG.n_steps


def parts(audio):
    x = np.asarray(descriptors(mfcc(jnp.asarray(audio, jnp.float32)), FeatureConfig(), CONFIG,
                               BAR), np.float64)
    level, rest = x[:B], x[B:]
    step_level, rest = rest[:B * S].reshape(B, S), rest[B * S:]
    attack, rest = rest[:B * S].reshape(B, S), rest[B * S:]
    names = ("total", "quarters", "backbeat", "offbeat")
    rhythm = {n: rest[i * B:(i + 1) * B] for i, n in enumerate(names)}
    rhythm.update(zip(("centroid", "overall", "hits", "density"), rest[4 * B:]))
    return dict(level=level, step_level=step_level, attack=attack, **rhythm)


def bursts(steps, hz, seconds=0.03, noise=False):
    """A bar with a decaying burst (sine at ``hz``, or noise) starting on each step."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    tone = rng.normal(size=t.size) if noise else np.sin(2 * np.pi * hz * t)
    burst = 0.5 * tone * np.exp(-t / (seconds / 4))
    bar = np.zeros(BAR)
    for step in steps:
        start = int(step * BAR / 16)
        bar[start:start + burst.size] += burst
    return bar + 1e-4 * rng.normal(size=BAR)  # a noise floor well below the bursts


def band_of(hz):
    edges = CONFIG.band_edges_hz(FeatureConfig())
    return int(np.searchsorted(edges, hz) - 1)


def test_the_descriptor_vector_has_the_documented_size():
    assert descriptors(mfcc(jnp.zeros((2, BAR))), FeatureConfig(), CONFIG, BAR).shape == (
        2, CONFIG.size)
    assert CONFIG.size == B + 2 * B * S + 4 * B + 4


def test_attacks_fall_on_the_steps_that_are_hit():
    quarters = parts(bursts(range(0, 16, 4), 2000))
    offbeats = parts(bursts(range(2, 16, 4), 2000))
    band = band_of(2000)
    hit = quarters["attack"][band]
    assert hit[::4].min() > 10.0  # each hit rises by more than 10 dB above the floor
    assert np.delete(hit, np.arange(0, 16, 4)).max() < 3.0
    assert quarters["quarters"][band] > 0.9 and quarters["offbeat"][band] < 0.05
    assert offbeats["offbeat"][band] > 0.9 and offbeats["quarters"][band] < 0.05
    assert parts(bursts(range(16), 2000))["hits"] > 14 > 3 < quarters["hits"] < 5


def test_level_is_in_db_and_attack_does_not_depend_on_it():
    audio = bursts(range(0, 16, 2), 1000, noise=True)
    quiet, loud = parts(audio), parts(10.0 * audio)  # +20 dB
    np.testing.assert_allclose(loud["level"] - quiet["level"], 20.0, atol=0.05)
    np.testing.assert_allclose(loud["overall"] - quiet["overall"], 20.0, atol=0.05)
    np.testing.assert_allclose(loud["attack"], quiet["attack"], atol=0.05)


def test_bands_and_centroid_follow_the_pitch():
    low, high = parts(bursts(range(0, 16, 4), 200)), parts(bursts(range(0, 16, 4), 9000))
    assert np.argmax(low["level"]) == band_of(200)
    assert np.argmax(high["level"]) == band_of(9000)
    assert high["centroid"] > low["centroid"] + 2
