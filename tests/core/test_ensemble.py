"""Ensembles of critics: stacking, the mean/vote/std verdict, and the ensemble as the
sampler's target, each against critics scored one at a time with ``prob_like``."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.cli.main import main
from ddjax.core.critic import CriticConfig, init_critic, prob_like
from ddjax.core.ensemble import critic_probs, ensemble_score, ensemble_stats, stack_critics
from ddjax.core.features import mfcc
from ddjax.core.loops import Loop, allowed_samples, propose, random_loop
from ddjax.core.pipeline import Pipeline, ScoreParams
from ddjax.core.render import RenderConfig, critic_view, render_tables
from ddjax.errors import DdjaxError
from ddjax.io.critics import load_ensemble, save_critic
from ddjax.sampling import sampler

N_CRITICS = 3


@pytest.fixture(scope="module")
def critics():
    return [init_critic(jax.random.key(10 + k)) for k in range(N_CRITICS)]


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory, critics):
    folder = tmp_path_factory.mktemp("critics")
    for k, variables in enumerate(critics):
        save_critic(folder / f"user{k}.critic", variables, CriticConfig())
    return folder


_one_critic = jax.jit(prob_like)


def one_at_a_time(critics, features):
    """float64[n, K]: each critic alone, one clip at a time."""
    return np.array([[float(_one_critic(v, features[i])) for v in critics]
                     for i in range(features.shape[0])])


def test_stats_are_mean_vote_share_and_population_std():
    probs = np.random.default_rng(0).uniform(0, 1, (5, 7)).astype(np.float32)
    probs[0] = 0.5  # exactly 0.5 is not a vote for "like"
    stats = ensemble_stats(jnp.asarray(probs))
    np.testing.assert_allclose(np.asarray(stats.mean), probs.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(np.asarray(stats.std), probs.std(axis=1), atol=1e-6)
    want_vote = [sum(p > 0.5 for p in row) / 7 for row in probs]
    np.testing.assert_allclose(np.asarray(stats.vote), want_vote, atol=1e-7)
    assert float(stats.vote[0]) == 0.0


def test_stacked_critics_equal_each_critic_alone(critics):
    features = jnp.asarray(np.random.default_rng(1).standard_normal((4, 60, 442)) * 20,
                           jnp.float32)
    got = np.asarray(critic_probs(stack_critics(critics), features))
    assert got.shape == (4, N_CRITICS)
    np.testing.assert_allclose(got, one_at_a_time(critics, features), atol=1e-5, rtol=0)


def test_folder_of_critics_loads_in_name_order(critic_dir, critics):
    ensemble = load_ensemble([critic_dir])
    assert ensemble.names == ("user0", "user1", "user2") and len(ensemble) == N_CRITICS
    leaf = ensemble.variables["params"]["Dense_1"]["kernel"]
    for k, variables in enumerate(critics):
        np.testing.assert_array_equal(np.asarray(leaf[k]),
                                      np.asarray(variables["params"]["Dense_1"]["kernel"]))


def test_mismatched_or_corrupt_critic_is_an_error_naming_the_file(critic_dir, tmp_path):
    other = dataclasses.replace(CriticConfig(), hidden=64)
    save_critic(tmp_path / "small.critic", init_critic(jax.random.key(0), other), other)
    with pytest.raises(DdjaxError, match=r"small\.critic has another architecture.*hidden=64"):
        load_ensemble([critic_dir / "user0.critic", tmp_path / "small.critic"])
    (tmp_path / "broken.critic").write_bytes(b"\x93 definitely not msgpack")
    with pytest.raises(DdjaxError, match=r"broken\.critic"):
        load_ensemble([critic_dir, tmp_path / "broken.critic"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DdjaxError, match="holds no"):
        load_ensemble([tmp_path / "empty"])


@pytest.fixture(scope="module")
def target(bundled_kit, critics):
    pipeline = Pipeline()
    params = ScoreParams(render_tables(bundled_kit.audio, pipeline.render),
                         stack_critics(critics))
    allowed = jnp.asarray(allowed_samples(pipeline.loops, bundled_kit.is_kick))
    return pipeline, params, allowed


def reference_scores(critics, tables, loops, reduction):
    """Each critic alone on each loop's features, then numpy's mean or vote share."""
    features = mfcc(critic_view(tables, loops, RenderConfig()))
    probs = one_at_a_time(critics, features)
    return probs.mean(axis=1) if reduction == "mean" else (probs > 0.5).mean(axis=1)


@pytest.mark.parametrize("goal", [1.0, 0.0])
def test_climbing_the_ensemble_mean_moves_every_chain_toward_the_goal(target, critics, goal):
    reduction = "mean"
    pipeline, params, allowed = target
    score_fn = functools.partial(ensemble_score, pipeline=pipeline, reduction=reduction)
    propose_fn = functools.partial(propose, allowed=allowed, config=pipeline.loops)
    config = sampler.SamplerConfig("climb", n_iters=6, target=goal)

    @jax.jit
    def climb(key):
        starts = jax.vmap(lambda k: random_loop(k, allowed, pipeline.loops))(
            jax.random.split(key, 6))
        state = sampler.init(starts, params, score_fn)
        final, _ = sampler.run(sampler.chain_keys(key, 6), state, params, score_fn=score_fn, propose_fn=propose_fn,
                               config=config)
        return state, final

    start, final = climb(jax.random.key(3))
    before, after = np.asarray(start.score), np.asarray(final.score)
    # The scores the sampler climbed are the ensemble's, computed one critic at a time.
    want = reference_scores(critics, params.tables, final.loop, reduction)
    np.testing.assert_allclose(after, want, atol=1e-5)
    assert np.all(np.abs(after - goal) <= np.abs(before - goal) + 1e-7)
    assert np.any(np.abs(after - goal) < np.abs(before - goal) - 1e-4)


def test_generate_with_a_folder_of_critics_and_vote(critic_dir, critics, bundled_kit,
                                                    tmp_path):
    out = tmp_path / "voted"
    assert main(["generate", "--critic", str(critic_dir), "--vote", "--n", "2", "--chains",
                 "2", "--iters", "3", "--climb", "1", "--out", str(out)]) == 0
    tables = render_tables(bundled_kit.audio, RenderConfig())
    written = sorted(out.glob("loop_*.json"))
    assert written  # climbing keeps only loops that reached a majority
    for path in written:
        record = json.loads(path.read_text())
        loop = Loop(jnp.asarray([record["grid"]], bool), jnp.asarray(
            [[bundled_kit.names.index(s) for s in record["samples"]]], jnp.int32),
            jnp.asarray([record["velocity"]], jnp.int32))
        want = reference_scores(critics, tables, loop, "vote")[0]
        assert record["score"] == pytest.approx(want, abs=1e-6)
        assert round(want * N_CRITICS, 6) in (2.0, 3.0)  # climbed to a majority vote


def test_vote_without_critics_is_a_one_line_error(capsys, tmp_path):
    assert main(["generate", "--vote", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--vote needs critics" in err and len(err.strip().splitlines()) == 1
