"""The zoo of simulated users: its fixed split, its calibration, its noise and its features."""

import time
import types

import numpy as np
import pytest

from ddjax.core.render import RenderConfig
from ddjax.raters import users, zoo

RENDER = RenderConfig()
BAR = RENDER.bar_samples
SR = RENDER.sr
FRESH_SEEDS = (2024, 2025)  # not users.calibration_audio's seed


@pytest.fixture(scope="module")
def calibration(bundled_kit):
    return users.calibration_audio(bundled_kit, RENDER)


@pytest.fixture(scope="module")
def fresh(bundled_kit):
    # 512 loops in batches of the calibration's size, which reuse its compiled render.
    return np.concatenate([users.calibration_audio(bundled_kit, RENDER, seed=seed)
                           for seed in FRESH_SEEDS])


@pytest.fixture(scope="module")
def everyone(bundled_kit, calibration):
    shared = zoo.calibrate(calibration, RENDER)
    return {name: zoo.make_zoo_user(name, bundled_kit, calibration=shared) for name in zoo.ZOO}


@pytest.fixture(scope="module")
def fresh_features(fresh):
    return zoo.audio_features(fresh, RENDER)


def _listening(bar):
    """A listening render whose steady-state bar is ``bar``."""
    return np.concatenate([np.tile(bar, RENDER.repeats),
                           np.zeros(RENDER.listening_samples - RENDER.repeats * BAR)])


def _features(bar):
    return {k: float(v[0]) for k, v in zoo.audio_features(_listening(bar)[None], RENDER).items()}


def _hits(steps, sound):
    bar = np.zeros(BAR)
    for step in steps:  # wrapping around the bar, as a loop does
        np.add.at(bar, (RENDER.step_offsets[step] + np.arange(sound.size)) % BAR, sound)
    return bar


def _burst(hz, seconds=0.03):
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * hz * t) * np.exp(-t / (seconds / 4))


# --- the split ------------------------------------------------------------------------------

def test_the_zoo_has_at_least_28_users_none_named_like_a_built_in_user():
    assert len(zoo.ZOO) >= 28
    assert not set(zoo.ZOO) & set(users.BUILT_IN)


def test_the_split_is_disjoint_complete_and_each_half_covers_every_kind():
    tune, held = set(zoo.TUNE), set(zoo.HELD_OUT)
    assert not tune & held
    assert tune | held == set(zoo.ZOO)
    for half in (zoo.TUNE, zoo.HELD_OUT):
        assert len(half) >= 14
        assert {zoo.ZOO[name].kind for name in half} == set(zoo.KINDS)


def test_the_split_alternates_within_each_kind_keeping_mirrors_and_twins_together():
    mirror_of = {a: b for a, b in zoo.MIRROR_PAIRS} | {b: a for a, b in zoo.MIRROR_PAIRS}
    expected = {}
    for kind in zoo.KINDS[:-1]:
        entries = []
        for name, spec in zoo.ZOO.items():
            if spec.kind == kind and mirror_of.get(name) not in {n for e in entries for n in e}:
                entries.append((name, mirror_of[name]) if name in mirror_of else (name,))
        for i, entry in enumerate(entries):
            expected.update({name: "tune" if i % 2 == 0 else "held" for name in entry})
    for name, spec in zoo.ZOO.items():
        if spec.kind == "noisy":
            expected[name] = expected[spec.twin]
    assert tuple(n for n in zoo.ZOO if expected[n] == "tune") == zoo.TUNE
    assert tuple(n for n in zoo.ZOO if expected[n] == "held") == zoo.HELD_OUT


def test_noisy_users_flip_between_10_and_20_percent_of_a_clean_twin():
    noisy = {n: s for n, s in zoo.ZOO.items() if s.kind == "noisy"}
    assert noisy
    for spec in noisy.values():
        assert 0.10 <= spec.flip <= 0.20
        assert zoo.ZOO[spec.twin].kind != "noisy" and spec.value is zoo.ZOO[spec.twin].value


def test_an_unknown_name_is_a_key_error_listing_the_zoo(bundled_kit, calibration):
    with pytest.raises(KeyError, match="shiny"):
        zoo.make_zoo_user("nobody", bundled_kit, audio=calibration)


# --- calibration and ratings on the bundled kit ---------------------------------------------

def test_every_user_likes_25_to_45_percent_of_fresh_random_loops(everyone, fresh_features):
    shares = {name: float(np.mean(user.values_of(fresh_features) > user.threshold))
              for name, user in everyone.items()}
    outside = {name: share for name, share in shares.items() if not 0.25 <= share <= 0.45}
    assert not outside, outside


def test_calling_a_user_on_a_loop_thresholds_its_value_of_the_second_bar(everyone, fresh):
    user = everyone["beat-low"]
    for audio in fresh[:8]:
        liked = user(types.SimpleNamespace(audio=audio))
        assert liked == (user.value(audio) > user.threshold)
        # Only the second bar counts.
        other = audio.copy()
        other[:BAR] = 0.0
        other[2 * BAR:] = 0.0
        assert user.value(other) == pytest.approx(user.value(audio), rel=1e-9, abs=1e-12)


def test_a_noisy_user_disagrees_with_its_clean_twin_at_its_flip_rate(everyone, fresh,
                                                                     fresh_features):
    loops = [types.SimpleNamespace(audio=a) for a in fresh[:200]]
    for name, user in everyone.items():
        if user.spec.kind != "noisy":
            continue
        twin = everyone[user.spec.twin]
        clean = (twin.values_of(fresh_features) > twin.threshold)[:len(loops)]
        noisy = np.array([user(loop) for loop in loops])
        disagree = float(np.mean(noisy != clean))
        tolerance = 3 * np.sqrt(user.flip * (1 - user.flip) / len(loops))
        assert abs(disagree - user.flip) < tolerance, (name, disagree)


def test_the_same_seed_gives_the_same_ratings(bundled_kit, everyone, fresh):
    loops = [types.SimpleNamespace(audio=a) for a in fresh[:64]]
    shared = everyone["warm-sparse-noisy"].calibration

    def ratings(seed):
        user = zoo.make_zoo_user("warm-sparse-noisy", bundled_kit, seed=seed,
                                 calibration=shared)
        return [user(loop) for loop in loops]

    assert ratings(3) == ratings(3)
    assert ratings(3) != ratings(4)


def test_users_built_from_the_audio_or_from_its_calibration_agree(bundled_kit, calibration,
                                                                  everyone):
    user = zoo.make_zoo_user("sync-xor-busy", bundled_kit, audio=calibration)
    assert user.threshold == pytest.approx(everyone["sync-xor-busy"].threshold, rel=1e-9)
    # The threshold is the 65th percentile of the user's values on the calibration loops.
    assert np.mean(user.values_of(user.calibration.raw) > user.threshold) == pytest.approx(0.35, abs=0.01)


def test_make_zoo_renders_the_calibration_loops_once_for_all_its_users(
        bundled_kit, calibration, everyone, monkeypatch):
    calls = []
    monkeypatch.setattr(zoo, "calibration_audio",
                        lambda kit, render: calls.append(kit) or calibration)
    made = zoo.make_zoo(["no-harsh", "beat-low-noisy"], bundled_kit, seed=5, render=RENDER)
    assert len(calls) == 1
    assert made["beat-low-noisy"].seed == 5
    for name, user in made.items():
        assert user.threshold == pytest.approx(everyone[name].threshold, rel=1e-9)


def test_a_rating_takes_well_under_25_ms(everyone, fresh):
    user = everyone["dense-if-beat-low-noisy"]
    loop = types.SimpleNamespace(audio=fresh[0])
    user(loop)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        user(loop)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.025  # about 2-4 ms here; the bound only catches a slow path


# --- features against plain references on synthetic audio ----------------------------------

def test_a_sines_centroid_is_its_frequency_and_a_bright_sine_beats_a_dark_one():
    t = np.arange(BAR) / SR
    for hz in (200.0, 1000.0, 6000.0):
        assert _features(0.3 * np.sin(2 * np.pi * hz * t))["centroid_hz"] == pytest.approx(
            hz, rel=0.01)


def test_band_shares_of_two_equal_sines_low_and_high():
    t = np.arange(BAR) / SR
    f = _features(0.3 * np.sin(2 * np.pi * 60.0 * t) + 0.3 * np.sin(2 * np.pi * 10000.0 * t))
    assert f["low_share"] == pytest.approx(0.5, abs=0.01)
    assert f["high_share"] == pytest.approx(0.5, abs=0.01)
    assert f["mid_share"] == pytest.approx(0.0, abs=0.01)


def test_rms_level_of_a_sine_is_its_amplitude_over_root_two_in_dbfs():
    t = np.arange(BAR) / SR
    assert _features(0.5 * np.sin(2 * np.pi * 441.0 * t))["rms_db"] == pytest.approx(
        20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)


def test_white_noise_is_flat_and_a_sine_is_not():
    noise = np.random.default_rng(0).normal(0.0, 0.1, BAR)
    sine = 0.3 * np.sin(2 * np.pi * 1000.0 * np.arange(BAR) / SR)
    # Power of Gaussian noise in one bin is exponential: geometric / arithmetic mean = e^-gamma.
    assert _features(noise)["flatness"] == pytest.approx(np.exp(-np.euler_gamma), abs=0.05)
    assert _features(sine)["flatness"] < 0.05


def test_noise_above_8_khz_is_harsher_than_a_tone_there():
    rng = np.random.default_rng(1)
    spectrum = np.fft.rfft(rng.normal(0.0, 0.1, BAR))
    spectrum[np.fft.rfftfreq(BAR, 1 / SR) < 8000.0] = 0.0
    hiss = np.fft.irfft(spectrum, BAR)
    tone = 0.3 * np.sin(2 * np.pi * 10000.0 * np.arange(BAR) / SR)
    assert _features(hiss)["harsh"] > 0.4 > 0.05 > _features(tone)["harsh"]


def _reference_low_on_beats(bar):
    """Plain reference: brick-wall low-pass below 150 Hz, energy in the 20 ms after each step."""
    spectrum = np.fft.rfft(bar)
    spectrum[np.fft.rfftfreq(BAR, 1 / SR) >= 150.0] = 0.0
    low = np.fft.irfft(spectrum, BAR)
    width = int(0.02 * SR)
    energy = np.array([np.sum(low[o:o + width] ** 2) for o in RENDER.step_offsets])
    return energy[::4].sum() / energy.sum()


def test_clicks_on_the_quarter_notes_have_more_low_end_on_the_beats_than_on_the_off_beats():
    click = np.array([1.0, -0.5])
    on_beats, off_beats = _hits([0, 4, 8, 12], click), _hits([2, 6, 10, 14], click)
    assert _reference_low_on_beats(on_beats) > 0.9 > 0.1 > _reference_low_on_beats(off_beats)
    assert _features(on_beats)["beat_low"] > 0.9
    assert _features(off_beats)["beat_low"] < 0.1
    assert _features(on_beats)["four_floor"] > 0.9 > 0.1 > _features(off_beats)["four_floor"]


def test_a_kick_only_on_the_downbeat_is_low_on_the_beats_but_not_four_on_the_floor():
    kick = _hits([0], _burst(60.0, 0.1))
    assert _features(kick)["beat_low"] > 0.9
    assert _features(kick)["downbeat"] > 0.9
    assert _features(kick)["four_floor"] == pytest.approx(0.25, abs=0.05)


def test_bursts_on_steps_4_and_12_are_a_backbeat():
    snare = _burst(1000.0)
    assert _features(_hits([4, 12], snare))["backbeat"] > 0.9
    assert _features(_hits([0, 8], snare))["backbeat"] < 0.1


def test_hi_frequency_bursts_on_the_odd_eighths_are_off_beat_hats():
    hat = _burst(9000.0, 0.02)
    assert _features(_hits([2, 6, 10, 14], hat))["offbeat_high"] > 0.9
    assert _features(_hits([0, 4, 8, 12], hat))["offbeat_high"] < 0.1


def test_syncopation_is_0_on_the_downbeat_and_1_on_the_odd_sixteenths():
    click = np.array([1.0, -0.5])
    assert _features(_hits([0], click))["syncopation"] < 0.05
    assert _features(_hits([1, 3, 7, 13], click))["syncopation"] > 0.95
    assert _features(_hits([4, 12], click))["syncopation"] == pytest.approx(0.5, abs=0.05)


def test_density_counts_equal_hits():
    click = np.array([1.0, -0.5])
    for steps in ([0], [0, 8], [0, 4, 8, 12], list(range(0, 16, 2))):
        assert _features(_hits(steps, click))["density"] == pytest.approx(len(steps), rel=0.05)


def test_a_ringing_tone_rings_more_than_a_short_one():
    assert (_features(_hits([0, 4, 8, 12], _burst(440.0, 0.5)))["ringing_db"]
            > _features(_hits([0, 4, 8, 12], _burst(440.0, 0.01)))["ringing_db"] + 20.0)


def test_a_long_low_boom_and_a_long_cymbal_have_louder_tails_than_short_ones():
    boom, thud = _hits([0, 8], _burst(50.0, 0.5)), _hits([0, 8], _burst(50.0, 0.02))
    assert _features(boom)["low_tail_db"] > _features(thud)["low_tail_db"] + 10.0
    rng = np.random.default_rng(2)
    decay = np.exp(-np.arange(int(0.5 * SR)) / SR / np.array([[0.125], [0.004]]))
    wash, tick = (_hits([0, 8], np.diff(rng.normal(0.0, 0.1, d.size + 1)) * d) for d in decay)
    assert _features(wash)["high_tail_db"] > _features(tick)["high_tail_db"] + 10.0
