"""The learned loop prior: its normalisation by exact enumeration, its fit and held-out
likelihood against plain counting, and its draws against their probabilities."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core import loops as loops_lib
from ddjax.core import patterns as patterns_lib
from ddjax.core.drums import KINDS
from ddjax.io import patterns as patterns_io

CORPUS = """
# a comment
pattern: house/a
style: house
source: test
kick       X...x...X...x...
clap       ....x.......x...
closed_hat ..x...x...x...x.

pattern: house/b
style: house
source: test
kick       X...x...X...x...
clap       ....X.......X...
open_hat   ..x...x...x...x.
closed_hat x.g.x.g.x.g.x.g.

pattern: rock/a
style: rock
source: test
kick       X.......X.x.....
snare      ....X.......X...
closed_hat x.x.x.x.x.x.x.x.

pattern: rock/b
style: rock
source: test
kick       X.....x.X.......
snare      ....X.......X..g
closed_hat x.x.x.x.x.x.x.x.
tom        ..............xx
tom        ............xx..
"""


@pytest.fixture(scope="module")
def corpus():
    return patterns_io.parse_corpus(CORPUS)


def small_prior(seed: int, n_styles: int = 2, n_steps: int = 3) -> patterns_lib.PatternPrior:
    """A random prior over ``n_steps`` steps, for enumeration."""
    rng = np.random.default_rng(seed)
    n_roles = len(patterns_lib.ROLES)
    weight = rng.dirichlet(np.ones(n_styles))
    on = rng.uniform(0.05, 0.95, (n_styles, n_roles, n_steps))
    level = rng.dirichlet(np.ones(3), (n_styles, n_roles, n_steps))
    presence = rng.uniform(0.1, 0.9, (n_styles, n_roles))
    fitted = {"weight": weight, "on": on, "level": level, "presence": presence,
              "repeat": rng.uniform(0.1, 1.0, (n_styles, len(KINDS))),
              "role_repeat": rng.uniform(0.1, 1.0, (n_styles, n_roles)),
              "track_role": rng.dirichlet(np.ones(n_roles), (n_styles, 4))}
    return patterns_io.to_arrays(fitted)


def test_grid_probabilities_sum_to_one_over_every_grid_and_accent():
    prior = small_prior(0)
    roles = jnp.array([0, 2], jnp.int32)  # two tracks of 3 steps
    # Every cell off or one of 3 accents: 4**6 loops, each grid with every accent on it.
    cells = np.array(list(itertools.product(range(4), repeat=6))).reshape(-1, 2, 3)
    grid, level = cells > 0, (cells - 1).astype(np.int32)
    with_accents = patterns_lib.log_grid_prob(
        prior, jnp.asarray(grid), jnp.broadcast_to(roles, grid.shape[:-1]), jnp.asarray(level))
    assert float(jnp.sum(jnp.exp(with_accents))) == pytest.approx(1.0, abs=1e-4)
    grids = np.array(list(itertools.product([False, True], repeat=6))).reshape(-1, 2, 3)
    alone = patterns_lib.log_grid_prob(prior, jnp.asarray(grids),
                                       jnp.broadcast_to(roles, grids.shape[:-1]))
    assert float(jnp.sum(jnp.exp(alone))) == pytest.approx(1.0, abs=1e-4)


def test_log_grid_prob_is_the_mixture_of_per_style_bernoullis():
    prior = small_prior(1, n_styles=3)
    rng = np.random.default_rng(2)
    grid = rng.random((4, 3)) < 0.5
    roles = np.array([0, 1, 2, 5])
    on = np.exp(np.asarray(prior.log_on, np.float64))
    weight = np.exp(np.asarray(prior.log_weight, np.float64))
    expected = 0.0
    for s in range(3):  # a plain loop over styles, tracks and steps
        p = weight[s]
        for t in range(4):
            for j in range(3):
                q = on[s, roles[t], j]
                p *= q if grid[t, j] else 1.0 - q
        expected += p
    got = float(patterns_lib.log_grid_prob(prior, jnp.asarray(grid), jnp.asarray(roles)))
    assert got == pytest.approx(math.log(expected), abs=1e-4)


def test_fit_matches_plain_counting(corpus):
    strength = 2.0
    fitted = patterns_io.fit(corpus, strength)
    assert fitted["styles"] == ["house", "rock"]
    # Reference: counts by hand-written loops over the corpus text's patterns.
    role = {"kick": 0, "snare": 1, "clap": 1, "closed_hat": 2, "open_hat": 3, "tom": 4}
    hits = np.zeros((6, 16))
    tracks = np.zeros(6)
    style_hits = np.zeros((2, 6, 16))
    style_tracks = np.zeros((2, 6))
    for pattern in corpus:
        s = ["house", "rock"].index(pattern.style)
        for kind, row in zip(pattern.kinds, pattern.level):
            r = role[kind]
            tracks[r] += 1
            style_tracks[s, r] += 1
            for j in range(16):
                if row[j] >= 0:
                    hits[r, j] += 1
                    style_hits[s, r, j] += 1
    for s in range(2):
        for r in range(6):
            for j in range(16):
                overall = (hits[r, j] + 1) / (tracks[r] + 2)
                expected = (style_hits[s, r, j] + strength * overall) / (
                    style_tracks[s, r] + strength)
                assert fitted["on"][s, r, j] == pytest.approx(expected)
    # Kick on step 1 in every pattern: near 1 in both styles; a backbeat voice on 5.
    assert fitted["on"][:, 0, 0].min() > 0.6
    assert fitted["on"][:, 1, 4].min() > 0.6
    # The rock patterns repeat toms; the house ones repeat nothing.
    tom = KINDS.index("tom")
    assert fitted["repeat"][1, tom] > 5 * fitted["repeat"][0, tom]


def test_held_out_loglik_against_counting_and_the_other_priors(corpus):
    fitted = patterns_io.fit(corpus[:3], 1.0, styles=["house", "rock"])
    prior = patterns_io.to_arrays(fitted)
    held = corpus[3]
    loglik = patterns_io.held_out_loglik([held], prior)
    grid = held.grid[:4]
    roles = [patterns_io.role_index(k) for k in held.kinds[:4]]
    expected = np.logaddexp.reduce([
        math.log(fitted["weight"][s]) + sum(
            math.log(fitted["on"][s, r, j] if grid[t, j] else 1.0 - fitted["on"][s, r, j])
            for t, r in enumerate(roles) for j in range(16))
        for s in range(2)])
    assert loglik["learned"][0] == pytest.approx(expected, abs=1e-3)
    assert loglik["uniform"][0] == pytest.approx(-64 * math.log(2))
    # The musical prior's Beta(1, 3)-binomial per track, by its formula.
    beta = sum(math.lgamma(1 + h) + math.lgamma(3 + 16 - h) - math.lgamma(4 + 16)
               - (math.lgamma(1) + math.lgamma(3) - math.lgamma(4))
               for h in grid.sum(axis=1))
    assert loglik["musical"][0] == pytest.approx(beta, abs=1e-3)


def test_corpus_errors_name_the_line():
    with pytest.raises(Exception, match="corpus:1: a track needs 16"):
        patterns_io.parse_corpus("pattern: a/b\nstyle: a\nsource: s\nkick x...\n")
    with pytest.raises(Exception, match="used twice"):
        patterns_io.parse_corpus("\n\n".join([CORPUS.split("\n\n")[0]] * 2))


def test_draws_follow_the_style_probabilities_and_every_track_plays():
    prior = patterns_io.to_arrays(patterns_io.fit(patterns_io.parse_corpus(CORPUS), 2.0))
    prior = prior._replace(log_weight=jnp.array([0.0, -jnp.inf]))  # house only
    roles = jnp.array([0, 1, 2, 3], jnp.int32)
    keys = jax.random.split(jax.random.key(0), 4000)
    grids, _ = jax.vmap(lambda k: patterns_lib.draw(k, prior, roles, jnp.int32(0), 16))(keys)
    grids = np.asarray(grids)
    assert grids.any(axis=-1).all()  # no silent track
    on = np.exp(np.asarray(prior.log_on))[0][np.asarray(roles)]
    # Where a row is rarely empty, the frequencies are the probabilities.
    empty = np.prod(1.0 - on, axis=-1)
    for t in np.nonzero(empty < 1e-3)[0]:
        assert np.abs(grids[:, t].mean(axis=0) - on[t]).max() < 0.035


def test_chain_starts_fill_the_core_roles_and_repeat_no_kind():
    prior = patterns_io.to_arrays(patterns_io.fit(patterns_io.parse_corpus(CORPUS), 2.0))
    kinds = np.array([KINDS.index(k) for k in
                      ["kick", "kick", "snare", "clap", "closed_hat", "open_hat", "tom",
                       "tom", "crash", "cowbell"]], np.int32)
    allowed = jnp.ones((4, kinds.size), bool)
    config = loops_lib.LoopConfig(prior="learned")
    loops = jax.vmap(lambda k: loops_lib.random_loop(k, allowed, config, jnp.asarray(kinds),
                                                     prior))(
        jax.random.split(jax.random.key(1), 500))
    track_kinds = kinds[np.asarray(loops.samples)]
    roles = np.asarray(patterns_lib.role_ids(jnp.asarray(track_kinds)))
    assert (roles[:, 0] == 0).mean() > 0.85  # the low voice
    assert (roles[:, 1] == 1).mean() > 0.85  # the backbeat
    assert (roles[:, 2] == 2).mean() > 0.85  # the timekeeper
    assert np.asarray(loops.grid).any(axis=-1).all()
    assert np.asarray(loops_lib.is_valid(loops)).all()
    # The soft roles: a loop of three kicks' kinds weighs far less than the start it
    # came from.
    lp = loops_lib.log_prior(loops, jnp.asarray(kinds), config, prior)
    kicks = loops._replace(samples=loops.samples.at[:, 1:3].set(jnp.array([1, 0])))
    lp_kicks = loops_lib.log_prior(kicks, jnp.asarray(kinds), config, prior)
    assert float(jnp.median(lp - lp_kicks)) > 3.0
