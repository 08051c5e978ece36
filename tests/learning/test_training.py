"""Training: the critic learns a separable toy set; the optimizer is the original's."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_features import librosa_mel

from ddjax.core.critic import init_critic, prob_like
from ddjax.core.features import mel_power, mfcc
from ddjax.core.loops import Loop
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import critic_view, render_tables
from ddjax.learning.training import (
    AUGMENTATIONS,
    Ratings,
    TrainConfig,
    augment,
    init_train_state,
    train_steps,
)


def cross_entropy(variables, tables, loops, liked, pipeline):
    """Mean cross-entropy of P(like) on the clean views, computed here from prob_like."""
    p = np.asarray(prob_like(variables, mfcc(critic_view(tables, loops, pipeline.render))),
                   np.float64)
    y = np.asarray(liked, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_training_lowers_the_loss_on_a_separable_set(bundled_kit, augmentation):
    pipeline = Pipeline()
    tables = render_tables(bundled_kit.audio, pipeline.render)
    kicks = np.nonzero([n.startswith("kick/") for n in bundled_kit.names])[0]
    hats = np.nonzero([n.startswith("closed_hat/") for n in bundled_kit.names])[0]
    others = np.nonzero([n.startswith(("tom/", "rim/")) for n in bundled_kit.names])[0]
    rng = np.random.default_rng(0)
    n = 24
    liked = np.arange(n) % 2 == 0  # liked loops have kicks on every track, disliked hats
    samples = np.stack([rng.choice(kicks if l else hats, 3, replace=False).tolist()
                        + [rng.choice(others)] for l in liked]).astype(np.int32)
    grid = rng.random((n, 4, 16)) < 0.5
    loops = Loop(jnp.asarray(grid), jnp.asarray(samples))
    mel = mel_power(critic_view(tables, loops, pipeline.render))
    ratings = Ratings(loops, jnp.asarray(liked), jnp.int32(n), mel)
    config = TrainConfig(learning_rate=3e-4, batch_size=8, augmentation=augmentation)
    state = init_train_state(init_critic(jax.random.key(0)), config)
    before = cross_entropy(state.variables, tables, loops, liked, pipeline)
    run = jax.jit(functools.partial(train_steps, n_steps=40, pipeline=pipeline, config=config))
    state, losses = run(jax.random.key(1), state, ratings, tables)
    after = cross_entropy(state.variables, tables, loops, liked, pipeline)
    assert np.all(np.isfinite(np.asarray(losses)))
    assert after < 0.5 * before and after < 0.35


def test_batches_are_half_likes_half_dislikes():
    from ddjax.learning.training import _balanced_indices
    liked = jnp.asarray([True] + [False] * 20 + [False] * 11)  # 1 like among 21 real rows
    ratings = Ratings(None, liked, jnp.int32(21))
    rows = np.asarray(jax.vmap(lambda k: _balanced_indices(k, ratings, 16))(
        jax.random.split(jax.random.key(0), 200)))
    assert rows.max() < 21
    np.testing.assert_array_equal(np.asarray(liked)[rows].sum(axis=1), 8)


def test_augmentation_statistics():
    config = TrainConfig()
    audio = jnp.zeros((4000, 64))
    out = np.asarray(augment(jax.random.key(0), audio, config))
    dc = out.mean(axis=1)
    assert abs(dc.std() - 0.05) < 0.005  # DC offset N(0, 0.05) plus a little noise
    assert abs((out - dc[:, None]).std() - 0.006) < 0.0005  # noise sigma 0.006
    impulse = jnp.zeros((2000, 300)).at[:, 0].set(1.0)
    shifted = np.asarray(augment(jax.random.key(1), impulse, config))
    peaks = np.argmax(shifted, axis=1)
    assert peaks.min() == 0 and peaks.max() == 128  # circular shift of 0..128 samples
    gains = shifted.max(axis=1) - np.median(shifted, axis=1)
    assert abs(gains.mean() - 1.0) < 0.01 and abs(gains.std() - 0.05) < 0.01


def test_optimizer_is_adam_with_coupled_weight_decay():
    from ddjax.learning.training import make_optimizer
    config = TrainConfig(learning_rate=0.1, weight_decay=0.5)
    params = {"w": jnp.asarray([2.0, -1.0])}
    grads = {"w": jnp.asarray([0.3, 0.0])}
    opt = make_optimizer(config)
    updates, _ = opt.update(grads, opt.init(params), params)
    # torch.optim.Adam: g' = g + wd * w; first step moves by -lr * sign(g').
    g = np.array([0.3, 0.0]) + 0.5 * np.array([2.0, -1.0])
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.1 * g / (np.abs(g) + 1e-8),
                               rtol=1e-5)


def test_mel_augmentation_gain_is_the_gain_of_the_audio():
    from ddjax.core.features import FeatureConfig, mfcc_from_mel
    from ddjax.learning.training import augment_mel
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.2, (3, 4000)) * np.exp(-np.arange(4000) / 800.0)
    mel = jnp.asarray(np.stack([librosa_mel(a) for a in audio]), jnp.float32)
    config = TrainConfig(dc_std=0.0, noise_std=0.0, max_shift_samples=0, gain_std=0.3)
    out = np.asarray(augment_mel(jax.random.key(0), mel, config, FeatureConfig()))
    gains = np.sqrt(out.sum(axis=(1, 2)) / np.asarray(mel).sum(axis=(1, 2)))
    assert np.std(gains) > 0.05  # the gains differ from row to row
    for row, clip, g in zip(out, audio, gains):
        want = np.asarray(mfcc_from_mel(jnp.asarray(librosa_mel(g * clip), jnp.float32)))
        np.testing.assert_allclose(np.asarray(mfcc_from_mel(jnp.asarray(row))), want,
                                   atol=2e-2)


def test_mel_augmentation_adds_the_power_of_dc_and_noise():
    """On silence, the added power is that of real DC offsets and white noise through the
    same analysis (librosa): exactly for the DC offset, on average over clips for noise."""
    from ddjax.core.features import FeatureConfig
    from ddjax.learning.training import augment_mel
    silence = jnp.zeros((4000, 3, 128), jnp.float32)
    dc_only = TrainConfig(noise_std=0.0, gain_std=0.0, max_shift_samples=0)
    got = np.asarray(augment_mel(jax.random.key(2), silence, dc_only, FeatureConfig()))
    want = dc_only.dc_std ** 2 * librosa_mel(np.ones(2000))[3]  # E[c^2] times a DC of 1
    np.testing.assert_allclose(got.mean(axis=(0, 1)), want, rtol=0.07, atol=1e-9)

    noise_only = TrainConfig(dc_std=0.0, gain_std=0.0, max_shift_samples=0)
    rng = np.random.default_rng(1)
    real = np.stack([librosa_mel(a)[1:-1]  # the edge frames see the reflect padding
                     for a in rng.normal(0, noise_only.noise_std, (600, 2000))])
    fake = np.asarray(augment_mel(jax.random.key(3), silence, noise_only, FeatureConfig()))
    live = real.mean(axis=(0, 1)) > 0
    assert live.sum() > 100
    # 5,400 real and 12,000 augmented frames: a band of one bin has a mean within 2% (sd)
    np.testing.assert_allclose(fake.mean(axis=(0, 1))[live], real.mean(axis=(0, 1))[live],
                               rtol=0.1)
    # Band by band, the spread over frames and clips is about the real noise's.
    cv = lambda x: x.std(axis=(0, 1))[live] / x.mean(axis=(0, 1))[live]
    assert np.median(np.abs(cv(fake) / cv(real) - 1)) < 0.3


def test_mel_augmentation_shifts_by_a_fraction_of_a_hop():
    from ddjax.core.features import FeatureConfig
    from ddjax.learning.training import augment_mel
    config = TrainConfig(dc_std=0.0, noise_std=0.0, gain_std=0.0, max_shift_samples=128)
    mel = jnp.zeros((2000, 20, 128)).at[:, 5, :].set(1.0)  # one frame lit
    out = np.asarray(augment_mel(jax.random.key(4), mel, config, FeatureConfig()))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)  # power is moved, not made
    assert np.all(out[:, :5] == 0) and np.all(out[:, 7:] == 0)
    moved = out[:, 6, 0]  # the share that moved one frame later = shift / hop
    assert moved.min() == 0.0 and abs(moved.max() - 128 / 200) < 1e-6
    assert abs(moved.mean() - 64 / 200) < 0.02  # shifts uniform over 0..128


def test_precision_auto_follows_the_cpu_and_bad_settings_are_refused():
    from ddjax.errors import DdjaxError
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    native = jax.default_backend() != "cpu" or bool({"amx_bf16", "avx512_bf16"} & set(flags))
    assert TrainConfig().matmul_dtype() == ("bfloat16" if native else "float32")
    assert TrainConfig(precision="float32").matmul_dtype() == "float32"
    for bad in ({"precision": "float16"}, {"augmentation": "spectrum"}):
        with pytest.raises(DdjaxError):
            TrainConfig(**bad)
