"""Every view of a loop against a plain NumPy loop over bars, tracks and steps, and one
gain per loop computed from that NumPy mix's own peak."""

import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core.groove import Humanize
from ddjax.core.loops import Loop
from ddjax.core.render import (
    RenderConfig,
    critic_view,
    host_listening_render,
    listening_render,
    loop_render,
    render_tables,
)
from ddjax.errors import DdjaxError

MINUS_1_DBFS = 10 ** (-1 / 20)


def numpy_render(kit_audio, grid, samples, bpm, sr=44100, bars=6, volume=0.5, swing=50.0,
                 velocity=None, timing_ms=None):
    """Every hit of `bars` bars placed one by one; step k of bar b starts at
    b * bar + int(j * sr * 60 / bpm / 4), which at these tempi is int(k * sr * 60 / bpm / 4)
    for k counted from the start; with swing (MPC scale), an odd step starts at swing% of its
    8th note, i.e. (2 * swing / 100 - 1) of a step later;
    with timing_ms[track, j], that many ms later (never before the bar's start); each hit at
    volume * velocity / 127."""
    step = sr * 60.0 / bpm / 4.0
    bar = int(round(16 * step))
    assert bar == 16 * step  # tempi with whole-sample bars: the formula exactly
    out = np.zeros((bars + 1) * bar, np.float64)
    for b in range(bars):
        for track in range(grid.shape[0]):
            clip = kit_audio[samples[track]].astype(np.float64)
            for j in range(grid.shape[1]):
                if grid[track, j]:
                    late = 0.0 if timing_ms is None else timing_ms[track, j] * sr / 1000
                    off = (j - 1 + 2 * swing / 100) if j % 2 else j  # steps into the bar
                    start = max(b * bar, int((16 * b + off) * step
                                             + late))
                    gain = volume * (1.0 if velocity is None else velocity[track, j] / 127)
                    out[start:start + clip.size] += gain * clip
    return out, bar


def numpy_gain(kit_audio, grid, samples, bpm, swing=50.0, velocity=None, timing_ms=None):
    """min(1, -1 dBFS / peak) over the first bar, the tails past it and their sum."""
    one, bar = numpy_render(kit_audio, grid, samples, bpm, bars=1, swing=swing,
                            velocity=velocity, timing_ms=timing_ms)
    first, tails = one[:bar], one[bar:]
    peak = max(np.abs(first).max(), np.abs(tails).max(), np.abs(first + tails).max())
    return min(1.0, MINUS_1_DBFS / peak)


def random_loops(rng, n_kit, n):
    grid = rng.random((n, 4, 16)) < 0.5
    samples = np.stack([rng.choice(n_kit, 4, replace=False) for _ in range(n)])
    return grid, samples.astype(np.int32)


@pytest.mark.parametrize("bpm", [120.0, 100.0, 90.0])
def test_views_match_a_numpy_loop_on_the_bundled_kit(bundled_kit, bpm):
    config = RenderConfig(bpm=bpm)
    audio = np.asarray(bundled_kit.audio)
    grid, samples = random_loops(np.random.default_rng(int(bpm)), len(bundled_kit), 3)
    # Fill one loop with the kit's longest samples so tails wrap around the bar.
    samples[0] = np.argsort(bundled_kit.lengths)[-4:]
    grid[0, :, 15] = True
    loop = Loop(jnp.asarray(grid), jnp.asarray(samples))
    critic = np.asarray(critic_view(render_tables(bundled_kit.audio, config), loop, config))
    listening = np.asarray(listening_render(bundled_kit.audio, loop, config))
    one_bar = np.asarray(loop_render(bundled_kit.audio, loop, config))
    gains = []
    for i in range(3):
        ref, bar = numpy_render(audio, grid[i], samples[i], bpm, bars=4)
        gains.append(numpy_gain(audio, grid[i], samples[i], bpm))
        assert critic.shape[-1] == bar == one_bar.shape[-1]
        np.testing.assert_allclose(critic[i], gains[i] * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(one_bar[i], gains[i] * ref[bar:2 * bar], atol=1e-5, rtol=0)
        total = 4 * bar + 44100
        assert listening.shape[-1] == total
        np.testing.assert_allclose(listening[i], gains[i] * ref[:total], atol=1e-5, rtol=0)
    assert min(gains) < 0.9  # these loops are loud: the gain is at work
    for audio_out in (critic, listening, one_bar):
        assert np.abs(audio_out).max() <= MINUS_1_DBFS + 1e-6


def test_views_match_a_numpy_loop_on_the_paper_kit(shared_kit):
    config = RenderConfig()
    longest = np.argsort(shared_kit.lengths)[-4:]
    grid = np.ones((1, 4, 16), bool)
    loop = Loop(jnp.asarray(grid), jnp.asarray(longest[None].astype(np.int32)))
    critic = np.asarray(critic_view(render_tables(shared_kit.audio, config), loop, config))
    audio = np.asarray(shared_kit.audio)
    ref, bar = numpy_render(audio, grid[0], longest, 120.0, bars=3)
    gain = numpy_gain(audio, grid[0], longest, 120.0)
    assert gain < 0.5
    np.testing.assert_allclose(critic[0], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)


def test_odd_tempo_is_a_periodic_loop():
    # 130 BPM: a bar is 81415.38 samples, rounded; the loop must still repeat exactly.
    config = RenderConfig(bpm=130.0, repeats=3, tail_seconds=0.0)
    rng = np.random.default_rng(3)
    kit = rng.standard_normal((5, 30000)).astype(np.float32)
    grid, samples = random_loops(rng, 5, 2)
    loop = Loop(jnp.asarray(grid), jnp.asarray(samples))
    bar = config.bar_samples
    assert bar == 81415
    listening = np.asarray(listening_render(jnp.asarray(kit), loop, config))
    critic = np.asarray(critic_view(render_tables(jnp.asarray(kit), config), loop, config))
    step = 44100 * 60 / 130 / 4
    for i in range(2):
        ref = np.zeros(3 * bar + 30000)
        for b in range(3):
            for t in range(4):
                for j in range(16):
                    if grid[i, t, j]:
                        start = b * bar + int(j * step)
                        ref[start:start + 30000] += 0.5 * kit[samples[i, t]]
        first, tails = ref[:bar], ref[bar:2 * bar] - ref[:bar]  # bar 2 = bar 1 + tails
        peak = max(np.abs(first).max(), np.abs(tails).max(), np.abs(first + tails).max())
        gain = min(1.0, MINUS_1_DBFS / peak)
        assert gain < 0.5  # unit-variance noise, many hits
        np.testing.assert_allclose(listening[i], gain * ref[:3 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(critic[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)


@pytest.mark.parametrize("swing,bpm", [(54.0, 120.0), (66.7, 100.0), (75.0, 120.0)])
def test_swing_moves_the_off_beats_in_every_view(bundled_kit, swing, bpm):
    """Against the NumPy loop with off-beat 16ths at swing% of their 8th: the critic's bar,
    the preview and the 1-bar loop, to 1e-5."""
    config = RenderConfig(bpm=bpm, swing=swing)
    audio = np.asarray(bundled_kit.audio)
    grid, samples = random_loops(np.random.default_rng(7), len(bundled_kit), 2)
    grid[:, :, 15] = True  # the last off-beat, swung, wraps its tail around the bar
    loop = Loop(jnp.asarray(grid), jnp.asarray(samples))
    critic = np.asarray(critic_view(render_tables(bundled_kit.audio, config), loop, config))
    listening = np.asarray(listening_render(bundled_kit.audio, loop, config))
    one_bar = np.asarray(loop_render(bundled_kit.audio, loop, config))
    straight = np.asarray(critic_view(render_tables(bundled_kit.audio, RenderConfig(bpm=bpm)),
                                      loop, RenderConfig(bpm=bpm)))
    for i in range(2):
        ref, bar = numpy_render(audio, grid[i], samples[i], bpm, bars=4, swing=swing)
        gain = numpy_gain(audio, grid[i], samples[i], bpm, swing=swing)
        np.testing.assert_allclose(critic[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(one_bar[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(listening[i], gain * ref[:4 * bar + 44100], atol=1e-5,
                                   rtol=0)
        assert np.abs(critic[i] - straight[i]).max() > 0.01  # swing is heard


# At 44100 Hz and 120 BPM an 8th note is 0.25 s = 11025 samples. Swing S% puts the odd 16th
# at S% of it: 50% -> 5512.5 (sample 5512), 66.67% (the triplet, 2/3 of the 8th) -> 7350,
# 75% -> 8268.75 (sample 8268). The second pair of the bar starts one 8th later.
@pytest.mark.parametrize("swing,onset", [(50.0, 5512), (66.67, 7350), (75.0, 8268)])
def test_an_odd_step_lands_at_swing_percent_of_its_eighth_note(swing, onset):
    """A click on steps 1 and 3 of a one-track loop: its first non-zero sample in the host
    render and in the compiled listening render is where the hand count above says."""
    config = RenderConfig(swing=swing, repeats=1, tail_seconds=0.0)
    click = np.zeros((1, 100), np.float32)
    click[0, 0] = 1.0
    grid = np.zeros((1, 16), bool)
    grid[0, [1, 3]] = True
    for audio in (host_listening_render(click, grid, None, config),
                  np.asarray(listening_render(jnp.asarray(click), Loop(
                      jnp.asarray(grid[None]), jnp.zeros((1, 1), jnp.int32)), config))[0]):
        assert list(np.flatnonzero(audio)) == [onset, onset + 11025]


def test_swing_out_of_range_is_an_error():
    for swing in (76.0, 49.0, 0.0):  # 0 was straight on the old scale: now a mistake
        with pytest.raises(DdjaxError, match="swing must be 50 to 75"):
            RenderConfig(swing=swing)


def test_velocities_and_swing_together_against_the_numpy_loop(bundled_kit):
    """Each hit at volume * velocity / 127, odd steps swung: every view to 1e-5."""
    config = RenderConfig(swing=62.5)
    audio = np.asarray(bundled_kit.audio)
    rng = np.random.default_rng(9)
    grid, samples = random_loops(rng, len(bundled_kit), 3)
    velocity = rng.integers(1, 128, grid.shape).astype(np.int32)
    loop = Loop(jnp.asarray(grid), jnp.asarray(samples), jnp.asarray(velocity))
    critic = np.asarray(critic_view(render_tables(bundled_kit.audio, config), loop, config))
    listening = np.asarray(listening_render(bundled_kit.audio, loop, config))
    one_bar = np.asarray(loop_render(bundled_kit.audio, loop, config))
    for i in range(3):
        ref, bar = numpy_render(audio, grid[i], samples[i], 120.0, bars=4, swing=62.5,
                                velocity=velocity[i])
        gain = numpy_gain(audio, grid[i], samples[i], 120.0, swing=62.5, velocity=velocity[i])
        np.testing.assert_allclose(critic[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(one_bar[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(listening[i], gain * ref[:4 * bar + 44100], atol=1e-5,
                                   rtol=0)
    full = Loop(jnp.asarray(grid), jnp.asarray(samples), jnp.full(grid.shape, 127, jnp.int32))
    np.testing.assert_allclose(  # velocity 127 everywhere is the loop without velocities
        np.asarray(critic_view(render_tables(bundled_kit.audio, config), full, config)),
        np.asarray(critic_view(render_tables(bundled_kit.audio, config),
                               Loop(jnp.asarray(grid), jnp.asarray(samples)), config)),
        atol=1e-6)


def spec_jitter(seed, n_tracks, n_steps, ms, velocity):
    """The humanize jitter as ``ddjax.core.groove`` documents it: PCG64 seeded with [seed,
    n_steps], uniform in [-1, 1] over (2, 8 tracks, steps); timing ms * u, velocity
    round(velocity * w)."""
    u = np.random.default_rng([seed, n_steps]).uniform(-1.0, 1.0, (2, 8, n_steps))
    return ms * u[0, :n_tracks], np.round(velocity * u[1, :n_tracks]).astype(int)


@pytest.mark.parametrize("bpm,swing", [(120.0, 50.0), (100.0, 60.0)])
def test_humanize_moves_each_hit_and_its_velocity_in_every_view(bundled_kit, bpm, swing):
    """Seeded per-cell jitter against the NumPy loop with each hit moved by its own ms (the
    downbeat never early) and its velocity moved and clipped to 1..127: every view, 1e-5."""
    config = RenderConfig(bpm=bpm, swing=swing, humanize=Humanize(12.0, 30, 4))
    audio = np.asarray(bundled_kit.audio)
    rng = np.random.default_rng(11)
    grid, samples = random_loops(rng, len(bundled_kit), 2)
    grid[:, :, 0] = grid[:, :, 15] = True  # the downbeat, and a tail that wraps around
    velocity = rng.choice([70, 100, 127], grid.shape).astype(np.int32)
    velocity[0, 0, :] = 127  # jitter above 127 is clipped
    timing, jitter = spec_jitter(4, 4, 16, 12.0, 30)
    assert (timing[:, 0] < 0).any() and np.abs(jitter).max() > 20  # the cases are covered
    loop = Loop(jnp.asarray(grid), jnp.asarray(samples), jnp.asarray(velocity))
    critic = np.asarray(critic_view(render_tables(bundled_kit.audio, config), loop, config))
    listening = np.asarray(listening_render(bundled_kit.audio, loop, config))
    one_bar = np.asarray(loop_render(bundled_kit.audio, loop, config))
    for i in range(2):
        moved = np.clip(velocity[i] + jitter, 1, 127)
        ref, bar = numpy_render(audio, grid[i], samples[i], bpm, bars=4, swing=swing,
                                velocity=moved, timing_ms=timing)
        gain = numpy_gain(audio, grid[i], samples[i], bpm, swing=swing, velocity=moved,
                          timing_ms=timing)
        np.testing.assert_allclose(critic[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(one_bar[i], gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
        np.testing.assert_allclose(listening[i], gain * ref[:4 * bar + 44100], atol=1e-5,
                                   rtol=0)


def test_humanize_out_of_range_is_an_error():
    with pytest.raises(DdjaxError, match="humanize timing must be 0 to 30 ms"):
        RenderConfig(humanize=Humanize(31.0))
    with pytest.raises(DdjaxError, match="humanize velocity must be 0 to 40"):
        Humanize(5.0, 41)


@pytest.mark.parametrize("bpm,swing,humanize", [(120.0, 50.0, Humanize()),
                                                 (100.0, 60.0, Humanize(12.0, 30, 4))])
def test_the_host_render_of_an_audition_is_the_numpy_loop(bundled_kit, bpm, swing, humanize):
    """``host_listening_render`` (the page's auditions, no compile) against the NumPy loop:
    the same hits, velocities, swing, jitter and gain, 1e-5."""
    config = RenderConfig(bpm=bpm, swing=swing, humanize=humanize)
    audio = np.asarray(bundled_kit.audio)
    rng = np.random.default_rng(13)
    grid, samples = random_loops(rng, len(bundled_kit), 1)
    grid[0, :, 15] = True  # tails that wrap around
    velocity = rng.choice([70, 100, 127], grid[0].shape).astype(np.int32)
    timing, jitter = spec_jitter(humanize.seed, 4, 16, humanize.ms, humanize.velocity)
    moved = np.clip(velocity + jitter, 1, 127)
    got = host_listening_render(audio[samples[0]], grid[0], velocity, config)
    ref, bar = numpy_render(audio, grid[0], samples[0], bpm, bars=4, swing=swing,
                            velocity=moved, timing_ms=timing)
    gain = numpy_gain(audio, grid[0], samples[0], bpm, swing=swing, velocity=moved,
                      timing_ms=timing)
    assert got.dtype == np.float32 and got.shape == (config.listening_samples,)
    np.testing.assert_allclose(got, gain * ref[:4 * bar + 44100], atol=1e-5, rtol=0)
