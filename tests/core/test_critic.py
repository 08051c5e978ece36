"""The critic: the paper's architecture, its strided convolution, and its file format."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from ddjax.core.conv import strided_conv
from ddjax.core.critic import CriticConfig, count_params, init_critic, prob_like
from ddjax.errors import DdjaxError
from ddjax.io.critics import load_critic, save_critic


def numpy_conv(x, kernel, bias, stride):
    """VALID NHWC convolution, one output position at a time."""
    kh, kw, _, cout = kernel.shape
    sh, sw = stride
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, kernel) + bias
    return out


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 60, 442, 1), (4, 8, 1, 16), (2, 4)),    # first layer: few input channels
    ((2, 29, 109, 64), (4, 8, 64, 64), (2, 4)),  # second layer: many input channels
    ((1, 13, 26, 64), (4, 8, 64, 64), (2, 4)),
    ((2, 5, 5, 64), (1, 1, 64, 8), (1, 1)),
    ((1, 9, 11, 3), (3, 3, 3, 5), (2, 2)),       # kernel not a multiple of the stride
])
def test_strided_conv_matches_numpy(shape, kernel, stride):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s) for s in (shape, kernel, kernel[-1:]))
    got = strided_conv(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                       jnp.asarray(b, jnp.float32), stride)
    want = numpy_conv(x, w, b, stride)
    assert got.shape == want.shape
    scale = np.sqrt(np.prod(kernel[:3]))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 12, 40, 1), (4, 8, 1, 6), (2, 4)),     # few input channels: patches, one matmul
    ((2, 9, 26, 16), (4, 8, 16, 6), (2, 4)),    # many: one matmul, then shifted sums
])
def test_strided_conv_gradients_match_numpy(shape, kernel, stride):
    """The training path differentiates strided_conv: its gradients against the
    convolution's adjoint, written as loops over output positions."""
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s) for s in (shape, kernel, kernel[-1:]))
    kh, kw, _, _ = kernel
    sh, sw = stride
    r = rng.standard_normal(numpy_conv(x, w, b, stride).shape)
    loss = lambda x, w, b: jnp.sum(strided_conv(x, w, b, stride) * r)
    gx, gw, gb = jax.grad(loss, argnums=(0, 1, 2))(
        *(jnp.asarray(a, jnp.float32) for a in (x, w, b)))
    want_x, want_w = np.zeros_like(x), np.zeros_like(w)
    for i in range(r.shape[1]):
        for j in range(r.shape[2]):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            want_w += np.einsum("nhwc,no->hwco", x[:, rows, cols, :], r[:, i, j, :])
            want_x[:, rows, cols, :] += np.einsum("hwco,no->nhwc", w, r[:, i, j, :])
    np.testing.assert_allclose(np.asarray(gw), want_w, atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gx), want_x, atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gb), r.sum(axis=(0, 1, 2)), atol=1e-3, rtol=1e-5)


def test_bfloat16_matmuls_stay_close_to_float32():
    """bfloat16 inputs with float32 accumulation: the critic's scores within 1e-2 of the
    float32 critic's, and the training gradients within bfloat16's rounding."""
    rng = np.random.default_rng(2)
    features = jnp.asarray(rng.normal(0, 40, (64, 60, 442)), jnp.float32)
    variables = init_critic(jax.random.key(0))
    variables["params"] = jax.tree_util.tree_map(lambda p: 2.0 * p, variables["params"])
    f32 = np.asarray(prob_like(variables, features))
    bf16 = np.asarray(prob_like(variables, features, dtype="bfloat16"))
    assert np.std(f32) > 0.05  # scores spread out, so the comparison means something
    assert np.max(np.abs(bf16 - f32)) < 1e-2

    x, w = rng.standard_normal((300, 48)), rng.standard_normal((48, 24))
    r = rng.standard_normal((300, 24))
    def grads(dtype):
        loss = lambda x, w: jnp.sum(strided_conv(x[None, :, None, :], w[None, None], 0.0,
                                                 (1, 1), dtype)[0, :, 0, :] * r)
        return jax.grad(loss, argnums=(0, 1))(jnp.asarray(x, jnp.float32),
                                              jnp.asarray(w, jnp.float32))
    for want, got in zip(grads("float32"), grads("bfloat16")):
        want, got = np.asarray(want), np.asarray(got)
        assert np.max(np.abs(got - want)) < 0.02 * np.max(np.abs(want))
    np.testing.assert_allclose(np.asarray(grads("float32")[1]), x.T @ r, rtol=1e-4,
                               atol=1e-3)


def test_training_dropout_drops_the_rate_and_rescales():
    """In training mode each Dropout zeroes about ``rate`` of its inputs and scales the
    rest by 1 / (1 - rate); in inference it is the identity."""
    from ddjax.core.cnn import Dropout
    x = jnp.ones((256, 1024))
    layer = Dropout(0.167, deterministic=False)
    y = np.asarray(layer.apply({}, x, rngs={"dropout": jax.random.key(0)}))
    dropped = np.mean(y == 0)
    assert abs(dropped - 0.167) < 5 * np.sqrt(0.167 * 0.833 / y.size)
    np.testing.assert_allclose(y[y != 0], 1 / 0.833, rtol=1e-6)
    again = np.asarray(layer.apply({}, x, rngs={"dropout": jax.random.key(1)}))
    assert np.mean((y == 0) & (again == 0)) < 0.167 ** 2 + 0.01  # fresh masks per key
    np.testing.assert_array_equal(
        np.asarray(Dropout(0.167, deterministic=True).apply({}, x)), np.asarray(x))


def test_the_fused_block_is_leaky_relu_then_flax_batch_norm():
    """``norm.BatchNorm`` without dropout is ``flax.linen.BatchNorm`` after a leaky ReLU:
    the same variables, output and running averages in training, and output in
    inference."""
    import flax.linen as nn

    from ddjax.core.norm import BatchNorm
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(0.3, 2.0, (4, 7, 9, 6)), jnp.float32)
    ours, theirs = BatchNorm(0.01, 0.0), nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    variables = ours.init(jax.random.key(0), x, False)
    assert jax.tree_util.tree_map(np.shape, variables) == jax.tree_util.tree_map(
        np.shape, theirs.init(jax.random.key(0), x, use_running_average=True))
    variables = jax.tree_util.tree_map(
        lambda v: v + jnp.asarray(rng.uniform(0.2, 0.5, v.shape), jnp.float32), variables)
    leaky = nn.leaky_relu(x, 0.01)
    got, got_stats = ours.apply(variables, x, True, mutable=["batch_stats"])
    want, want_stats = theirs.apply(variables, leaky, use_running_average=False,
                                    mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    for name in ("mean", "var"):
        np.testing.assert_allclose(np.asarray(got_stats["batch_stats"][name]),
                                   np.asarray(want_stats["batch_stats"][name]), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours.apply(variables, x, False)),
        np.asarray(theirs.apply(variables, leaky, use_running_average=True)), atol=1e-5)


def test_the_fused_blocks_gradient_is_autodiff_of_its_formula():
    """The hand-written backward pass against JAX's autodiff of the block written plainly
    (leaky ReLU, biased batch statistics, normalization, the same dropout mask), for a
    cotangent on the output and on both returned statistics."""
    from ddjax.core import noise
    from ddjax.core.norm import leaky_norm_dropout
    rng = np.random.default_rng(7)
    n, c, slope, eps, rate = 500, 5, 0.01, 1e-5, 0.3
    x, g_out = (jnp.asarray(rng.normal(0.2, 1.5, (n, c)), jnp.float32) for _ in range(2))
    scale, bias, g_mean, g_var = (jnp.asarray(rng.normal(1, 0.5, c), jnp.float32)
                                  for _ in range(4))
    seeds = noise.draw_seeds(jax.random.key(8))
    keep = noise.bits(seeds, (n, c)) >= noise.keep_threshold(rate)

    def plain(x, scale, bias):
        a = jnp.where(x >= 0, x, slope * x)
        mean = a.mean(0)
        var = jnp.mean((a - mean) ** 2, 0)
        y = (a - mean) / jnp.sqrt(var + eps) * scale + bias
        return jnp.where(keep, y / (1 - rate), 0.0), mean, var

    fused = lambda x, scale, bias: leaky_norm_dropout(x, scale, bias, seeds, slope, eps,
                                                      rate)
    assert 0.2 < 1 - float(keep.mean()) < 0.4
    for f_out, p_out in zip(fused(x, scale, bias), plain(x, scale, bias)):
        np.testing.assert_allclose(np.asarray(f_out), np.asarray(p_out), atol=2e-5)
    cotangents = (g_out, g_mean, g_var)
    got = jax.vjp(fused, x, scale, bias)[1](cotangents)
    want = jax.vjp(plain, x, scale, bias)[1](cotangents)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4,
                                   atol=1e-4 * float(np.abs(w).max()))


def test_conv_into_blocks_is_the_convolution_in_the_next_layers_blocks():
    from ddjax.core.conv import conv_into_blocks
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s) for s in ((2, 13, 41, 1), (4, 8, 1, 5), (5,)))
    full = numpy_conv(x, w, b, (2, 4))  # [2, 5, 9, 5]: the next conv reads rows < 4, cols < 8
    rows, n_read, shape = conv_into_blocks(*(jnp.asarray(a, jnp.float32) for a in (x, w, b)),
                                           (2, 4), (4, 8), (2, 4))
    rows = np.asarray(rows)
    assert shape == (2, 2, 2, 2 * 4 * 5) and n_read == 2 * 2 * 2 * 2 * 4
    blocks = full[:, :4, :8].reshape(2, 2, 2, 2, 4, 5).transpose(0, 1, 3, 2, 4, 5)
    np.testing.assert_allclose(rows[:n_read].reshape(shape), blocks.reshape(shape), atol=1e-4)
    edges = np.concatenate([full[:, 4:, :, :].reshape(-1, 5), full[:, :4, 8:].reshape(-1, 5)])
    np.testing.assert_allclose(rows[n_read:], edges, atol=1e-4)


def reference_logits(variables, features, train):
    """The paper's network with XLA's own convolution and batch norm written out in NumPy:
    running statistics in inference, the batch's (biased variance) in training."""
    params, stats = variables["params"], variables["batch_stats"]
    x = np.asarray(features, np.float64)[..., None]
    def norm(x, i):
        bn, st = params[f"BatchNorm_{i}"], stats[f"BatchNorm_{i}"]
        axes = tuple(range(x.ndim - 1))
        mean, var = (x.mean(axes), x.var(axes)) if train else (st["mean"], st["var"])
        return (x - mean) / np.sqrt(np.asarray(var) + 1e-5) * bn["scale"] + bn["bias"]
    leaky = lambda x: np.where(x >= 0, x, 0.01 * x)
    for i, stride in enumerate([(2, 4)] * 3 + [(1, 1)]):
        conv = params[f"StridedConv_{i}"]
        y = jax.lax.conv_general_dilated(
            jnp.asarray(x, jnp.float32), conv["kernel"], stride, "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")
        x = norm(leaky(np.asarray(y, np.float64) + np.asarray(conv["bias"])), i)
    x = x.reshape(x.shape[0], -1)
    x = leaky(x @ np.asarray(params["Dense_0"]["kernel"]) + params["Dense_0"]["bias"])
    return x @ np.asarray(params["Dense_1"]["kernel"]) + params["Dense_1"]["bias"]


@pytest.mark.parametrize("train", [False, True])
def test_critic_matches_a_reference_network(train):
    from ddjax.core.cnn import Critic
    rng = np.random.default_rng(4)
    features = jnp.asarray(rng.normal(0, 30, (3, 60, 442)), jnp.float32)
    config = CriticConfig(dropout=0.0)
    variables = init_critic(jax.random.key(5), config)
    variables["batch_stats"] = jax.tree_util.tree_map(
        lambda s: s + jnp.asarray(rng.uniform(0.2, 0.5, s.shape), jnp.float32),
        variables["batch_stats"])
    if train:
        got, _ = Critic(config).apply(variables, features, train=True, mutable=["batch_stats"])
    else:
        got = Critic(config).apply(variables, features)
    want = reference_logits(jax.device_get(variables), np.asarray(features), train)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-3 * np.abs(want).max())


def test_parameter_count_is_the_originals():
    variables = init_critic(jax.random.key(0))
    assert abs(count_params(variables) - 291_290) <= 0.01 * 291_290
    shapes = jax.tree_util.tree_map(np.shape, variables["params"])
    assert shapes["StridedConv_0"]["kernel"] == (4, 8, 1, 64)
    assert shapes["StridedConv_3"]["kernel"] == (1, 1, 64, 8)
    assert shapes["Dense_0"]["kernel"] == (8 * 5 * 5, 128)
    assert shapes["Dense_1"]["kernel"] == (128, 2)


def test_prob_like_is_a_probability_per_clip():
    variables = init_critic(jax.random.key(1))
    features = jnp.asarray(np.random.default_rng(0).standard_normal((3, 2, 60, 442)) * 20,
                           jnp.float32)
    p = np.asarray(prob_like(variables, features))
    assert p.shape == (3, 2) and np.all((p > 0) & (p < 1))
    np.testing.assert_allclose(p[1, 0], np.asarray(prob_like(variables, features[1, 0])),
                               atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    config = CriticConfig(dropout=0.2)
    variables = init_critic(jax.random.key(2), config)
    variables = jax.tree_util.tree_map(lambda x: x + 0.01, variables)  # batch stats too
    save_critic(tmp_path / "c.critic", variables, config)
    loaded, loaded_config = load_critic(tmp_path / "c.critic")
    assert loaded_config == config
    for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_wrong_version_shape_or_garbage_is_a_clear_error(tmp_path):
    config = CriticConfig()
    variables = init_critic(jax.random.key(3), config)
    path = tmp_path / "c.critic"
    save_critic(path, variables, config)
    payload = serialization.msgpack_restore(path.read_bytes())

    bad_version = tmp_path / "v2.critic"
    bad_version.write_bytes(serialization.msgpack_serialize({**payload, "version": 2}))
    with pytest.raises(DdjaxError, match="version 2"):
        load_critic(bad_version)

    small = init_critic(jax.random.key(3), dataclasses.replace(config, hidden=64))
    bad_shape = tmp_path / "shape.critic"
    bad_shape.write_bytes(serialization.msgpack_serialize(
        {**payload, "variables": serialization.to_state_dict(jax.device_get(small))}))
    with pytest.raises(DdjaxError, match="shape.critic does not match"):
        load_critic(bad_shape)

    garbage = tmp_path / "garbage.critic"
    garbage.write_bytes(b"\x00\x01 not a critic")
    with pytest.raises(DdjaxError, match="garbage.critic"):
        load_critic(garbage)
    with pytest.raises(DdjaxError, match="cannot read"):
        load_critic(tmp_path / "missing.critic")


def test_a_critic_is_checked_field_by_field_against_the_pipeline(tmp_path):
    from ddjax.core.pipeline import Pipeline
    from ddjax.core.render import RenderConfig
    honest = CriticConfig(n_mfcc=40)
    save_critic(tmp_path / "m.critic", init_critic(jax.random.key(0), honest), honest)
    assert load_critic(tmp_path / "m.critic")[1] == honest  # alone it is a fine file
    with pytest.raises(DdjaxError, match=r"m\.critic .*n_mfcc is 40 in the file but 60 here"):
        load_critic(tmp_path / "m.critic", Pipeline())
    config = CriticConfig()
    save_critic(tmp_path / "c.critic", init_critic(jax.random.key(0), config), config)
    with pytest.raises(DdjaxError, match="bar_samples is 88200 in the file but 105840 here"):
        load_critic(tmp_path / "c.critic", Pipeline(render=RenderConfig(bpm=100)))
    save_critic(tmp_path / "s.critic", init_critic(jax.random.key(0), config), config, sr=22050)
    with pytest.raises(DdjaxError, match="sr is 22050 in the file but 44100 here"):
        load_critic(tmp_path / "s.critic", Pipeline())


def test_a_critic_file_without_audio_fields_is_read_as_the_old_defaults(tmp_path):
    from ddjax.core.pipeline import Pipeline
    from ddjax.core.render import RenderConfig
    config = CriticConfig()
    path = tmp_path / "old.critic"
    save_critic(path, init_critic(jax.random.key(1), config), config)
    payload = serialization.msgpack_restore(path.read_bytes())
    del payload["audio"]  # as version 1 files were written before it was recorded
    path.write_bytes(serialization.msgpack_serialize(payload))
    assert load_critic(path, Pipeline())[1] == config
    with pytest.raises(DdjaxError, match="bar_samples is 88200"):
        load_critic(path, Pipeline(render=RenderConfig(bpm=90)))
