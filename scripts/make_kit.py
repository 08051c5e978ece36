#!/usr/bin/env python3
"""Synthesise the project's drum kit: a folder of one-shot WAV samples.

The kit stands in for the sample collection of the DeepDrummer paper. Each sound is
made with a classic analogue drum-machine recipe (808/909 style):

* ``kick``       sine with an exponential pitch sweep (~150 -> 45 Hz), exponential
                 amplitude decay and a short low-passed click;
* ``snare``      two-partial tonal body (~180-250 Hz) plus band-passed noise;
* ``clap``       several noise bursts ~10 ms apart, then a band-passed noise tail;
* ``closed_hat`` / ``open_hat``  six detuned square waves (808 style) or white noise,
                 high-passed, with a short (30-80 ms) or long (300-600 ms) decay;
* ``tom``        pitched sine sweeps at low, mid and high pitch with an attack noise;
* ``rim``        short high click (two damped partials and a noise tick);
* ``cowbell``    two square waves (~540 / 800 Hz) band-passed, with a two-stage decay;
* ``shaker``     short enveloped high noise;
* ``crash`` / ``ride``  long metallic noise decays (1-2.5 s);
* ``harsh``      deliberately unpleasant sounds (white-noise bursts, piercing sine and
                 square tones at 3-8 kHz, bit-crushed and clipped noise), as the
                 DeepDrummer collection deliberately included unpleasant samples.

Files are written as ``<out>/<kind>/<kind>_NN.wav`` (NN from 01): 44.1 kHz, mono,
16-bit PCM, peak-normalised to 0.9 (0.95 for ``harsh``) with a 5 ms fade-out, plus
``<out>/README.md``.

The output is deterministic: every sound draws its parameters and noise from its own
generator ``numpy.random.default_rng([seed, kind_index, instance_index])``, and
nothing depends on time or on the order of unordered containers, so re-running with
the same ``--seed`` rewrites byte-identical files. Existing files are overwritten;
nothing is deleted.

Only numpy, soundfile and the standard library are needed::

    python scripts/make_kit.py                 # writes <repo>/samples/
    python scripts/make_kit.py --out /tmp/kit --seed 3
"""

from __future__ import annotations

import argparse
import math
import pathlib

import numpy as np
import soundfile as sf

SR = 44100
PEAK = 0.9
HARSH_PEAK = 0.95
FADE_S = 0.005

# (kind, number of instances). The position in this tuple is the kind's index in the
# per-sound seed, so append new kinds at the end to keep existing sounds unchanged.
KINDS: tuple[tuple[str, int], ...] = (
    ("kick", 8),
    ("snare", 8),
    ("clap", 5),
    ("closed_hat", 8),
    ("open_hat", 5),
    ("tom", 6),
    ("rim", 4),
    ("cowbell", 3),
    ("shaker", 4),
    ("crash", 2),
    ("ride", 2),
    ("harsh", 6),
)

# Square-wave oscillator frequencies of the TR-808 cymbal / hi-hat circuit, in Hz.
TR808_METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)

DESCRIPTIONS = {
    "kick": "sine with exponential pitch sweep (~150 -> 45 Hz), fast exponential decay, short click",
    "snare": "tonal body ~180-250 Hz plus band-passed noise",
    "clap": "3-4 noise bursts ~10 ms apart, then a decaying band-passed noise tail",
    "closed_hat": "808-style detuned square waves or white noise, high-passed, 30-80 ms decay",
    "open_hat": "808-style detuned square waves or white noise, high-passed, 300-600 ms decay",
    "tom": "pitched sine sweeps (low / mid / high, fundamentals >= 90 Hz) with attack noise",
    "rim": "short high click",
    "cowbell": "two square waves ~540 / 800 Hz, band-passed, two-stage decay",
    "shaker": "short enveloped high-passed noise",
    "crash": "long metallic noise decay (square-wave cluster + noise, high-passed)",
    "ride": "long metallic decay with a bell ping",
    "harsh": "deliberately unpleasant: white-noise bursts, piercing 3-8 kHz sine/square tones, "
             "bit-crushed / clipped noise",
}


# ----------------------------------------------------------------------------- DSP


def n_samples(duration_s: float) -> int:
    return int(round(duration_s * SR))


def time_axis(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / SR


def exp_env(n: int, tau_s: float) -> np.ndarray:
    """exp(-t / tau)."""
    return np.exp(-time_axis(n) / tau_s)


def attack_decay_env(n: int, attack_s: float, tau_s: float) -> np.ndarray:
    """Linear rise over ``attack_s`` then exponential decay."""
    t = time_axis(n)
    rise = np.minimum(1.0, t / max(attack_s, 1.0 / SR))
    return rise * np.exp(-np.maximum(t - attack_s, 0.0) / tau_s)


def swept_sine(n: int, f_start: float, f_end: float, tau_pitch_s: float,
               phase: float = 0.0) -> np.ndarray:
    """Sine whose frequency glides exponentially from ``f_start`` to ``f_end``."""
    freq = f_end + (f_start - f_end) * exp_env(n, tau_pitch_s)
    ph = phase + 2.0 * np.pi * (np.cumsum(freq) - freq[0]) / SR
    return np.sin(ph)


def square(n: int, freq: float, phase: float = 0.0) -> np.ndarray:
    """Naive +-1 square wave (its aliasing is part of the metallic 808 character)."""
    ph = phase + 2.0 * np.pi * freq * time_axis(n)
    return np.where(np.sin(ph) >= 0.0, 1.0, -1.0)


def _biquad_coefficients(kind: str, f0: float, q: float) -> tuple[float, ...]:
    """RBJ audio-EQ-cookbook coefficients, normalised by a0."""
    f0 = min(f0, 0.45 * SR)
    w0 = 2.0 * math.pi * f0 / SR
    cos_w0, sin_w0 = math.cos(w0), math.sin(w0)
    alpha = sin_w0 / (2.0 * q)
    if kind == "lowpass":
        b0, b1, b2 = (1.0 - cos_w0) / 2.0, 1.0 - cos_w0, (1.0 - cos_w0) / 2.0
    elif kind == "highpass":
        b0, b1, b2 = (1.0 + cos_w0) / 2.0, -(1.0 + cos_w0), (1.0 + cos_w0) / 2.0
    elif kind == "bandpass":  # constant 0 dB peak gain
        b0, b1, b2 = alpha, 0.0, -alpha
    else:
        raise ValueError(f"unknown filter kind {kind!r}")
    a0, a1, a2 = 1.0 + alpha, -2.0 * cos_w0, 1.0 - alpha
    return b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0


def biquad(x: np.ndarray, kind: str, f0: float, q: float = 0.7071) -> np.ndarray:
    """Second-order IIR filter (direct form I), run sample by sample on Python floats."""
    b0, b1, b2, a1, a2 = _biquad_coefficients(kind, f0, q)
    out = [0.0] * len(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, xi in enumerate(x.tolist()):
        yi = b0 * xi + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        out[i] = yi
        x2, x1, y2, y1 = x1, xi, y1, yi
    return np.asarray(out, dtype=np.float64)


def dc_block(x: np.ndarray, cutoff_hz: float = 8.0) -> np.ndarray:
    """One-pole DC blocker y[n] = x[n] - x[n-1] + r * y[n-1]."""
    r = math.exp(-2.0 * math.pi * cutoff_hz / SR)
    out = [0.0] * len(x)
    x1 = y1 = 0.0
    for i, xi in enumerate(x.tolist()):
        y1 = xi - x1 + r * y1
        x1 = xi
        out[i] = y1
    return np.asarray(out, dtype=np.float64)


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, n)


def finish(x: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Remove DC, fade out over the last 5 ms and normalise to ``peak``."""
    x = dc_block(x)
    fade = min(len(x), n_samples(FADE_S))
    x[-fade:] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, fade + 1) / fade))
    return x * (peak / np.max(np.abs(x)))


# ----------------------------------------------------------------------- recipes


def make_kick(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(0.3, 0.55))
    f_start = rng.uniform(130.0, 180.0)
    f_end = rng.uniform(42.0, 55.0)
    body = swept_sine(n, f_start, f_end, rng.uniform(0.025, 0.05))
    body *= exp_env(n, rng.uniform(0.06, 0.11))
    drive = rng.uniform(1.0, 1.6)  # gentle saturation adds some harmonics
    body = np.tanh(drive * body) / np.tanh(drive)
    click_n = n_samples(rng.uniform(0.002, 0.004))
    click = np.zeros(n)
    click[:click_n] = noise(rng, click_n) * exp_env(click_n, 0.001)
    click = biquad(click, "lowpass", rng.uniform(1200.0, 2000.0))
    return body + rng.uniform(0.1, 0.18) * click


def make_snare(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(0.2, 0.35))
    f = rng.uniform(180.0, 250.0)
    body_env = exp_env(n, rng.uniform(0.035, 0.07))
    body = (swept_sine(n, 1.25 * f, f, 0.01)
            + 0.5 * swept_sine(n, 1.25 * f * 1.62, f * 1.62, 0.01)) * body_env
    snares = biquad(noise(rng, n), "bandpass", rng.uniform(2500.0, 5500.0), rng.uniform(0.5, 1.0))
    snares = biquad(snares, "highpass", 800.0) * exp_env(n, rng.uniform(0.06, 0.12))
    return rng.uniform(0.5, 0.8) * body + rng.uniform(1.2, 1.8) * snares


def make_clap(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(0.25, 0.45))
    t = time_axis(n)
    n_bursts = int(rng.integers(3, 5))
    spacing = rng.uniform(0.008, 0.012)
    env = np.zeros(n)
    for b in range(n_bursts):
        start = b * spacing
        env += np.where(t >= start, np.exp(-np.maximum(t - start, 0.0) / 0.003), 0.0)
    tail_start = n_bursts * spacing
    env += 0.7 * np.where(t >= tail_start,
                          np.exp(-np.maximum(t - tail_start, 0.0) / rng.uniform(0.06, 0.12)), 0.0)
    x = biquad(noise(rng, n), "bandpass", rng.uniform(1000.0, 1600.0), rng.uniform(0.8, 1.5))
    x = biquad(x, "highpass", 500.0)
    return x * env


def _metal(rng: np.random.Generator, n: int, ratio: float) -> np.ndarray:
    """Sum of six square waves at the 808 cymbal frequencies, scaled by ``ratio``."""
    x = np.zeros(n)
    for f in TR808_METAL_HZ:
        x += square(n, f * ratio * rng.uniform(0.99, 1.01), rng.uniform(0.0, 2.0 * np.pi))
    return x / len(TR808_METAL_HZ)


def _hat(rng: np.random.Generator, i: int, dur: tuple[float, float],
         tau: tuple[float, float]) -> np.ndarray:
    n = n_samples(rng.uniform(*dur))
    if i % 2 == 0:
        src = _metal(rng, n, rng.uniform(0.9, 1.3))
        src = biquad(src, "bandpass", rng.uniform(8000.0, 11000.0), 1.0)
    else:
        src = noise(rng, n)
    src = biquad(biquad(src, "highpass", rng.uniform(6000.0, 8000.0)), "highpass", 6000.0)
    return src * attack_decay_env(n, 0.0005, rng.uniform(*tau))


def make_closed_hat(rng: np.random.Generator, i: int) -> np.ndarray:
    return _hat(rng, i, (0.05, 0.09), (0.008, 0.018))


def make_open_hat(rng: np.random.Generator, i: int) -> np.ndarray:
    return _hat(rng, i, (0.3, 0.6), (0.07, 0.14))


def make_tom(rng: np.random.Generator, i: int) -> np.ndarray:
    pitch = ("low", "mid", "high")[i % 3]
    f = {"low": rng.uniform(90.0, 115.0),
         "mid": rng.uniform(130.0, 170.0),
         "high": rng.uniform(190.0, 260.0)}[pitch]
    n = n_samples(rng.uniform(0.35, 0.6) if pitch == "low" else rng.uniform(0.25, 0.45))
    tau_pitch = rng.uniform(0.04, 0.08)
    body = np.zeros(n)
    # Membrane modes (ratios of an ideal circular membrane: 1, 1.59, 2.14, 2.30).
    for ratio, amp in ((1.0, 1.0), (1.59, 0.6), (2.14, 0.4), (2.30, 0.3)):
        body += amp * swept_sine(n, 1.5 * f * ratio, f * ratio, tau_pitch,
                                 rng.uniform(0.0, 0.2))
    body *= exp_env(n, rng.uniform(0.12, 0.22))
    hit = biquad(noise(rng, n), "bandpass", rng.uniform(2000.0, 4000.0), 0.8)
    hit *= exp_env(n, rng.uniform(0.015, 0.03))
    return body + rng.uniform(1.5, 2.2) * hit


def make_rim(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(0.05, 0.09))
    f = rng.uniform(1600.0, 2200.0)
    t = time_axis(n)
    tone = (np.sin(2 * np.pi * f * t) + 0.6 * np.sin(2 * np.pi * rng.uniform(450.0, 550.0) * t))
    tone *= exp_env(n, rng.uniform(0.006, 0.012))
    tick = biquad(noise(rng, n), "highpass", 3000.0) * exp_env(n, 0.002)
    return biquad(tone + 0.8 * tick, "highpass", 300.0)


def make_cowbell(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(0.3, 0.5))
    ratio = rng.uniform(0.95, 1.05)
    x = square(n, 540.0 * ratio) + square(n, 800.0 * ratio)
    x = biquad(x, "bandpass", rng.uniform(900.0, 1300.0), rng.uniform(1.0, 2.0))
    env = 0.6 * exp_env(n, rng.uniform(0.01, 0.02)) + 0.4 * exp_env(n, rng.uniform(0.1, 0.18))
    return x * env


def make_shaker(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(0.1, 0.2))
    x = biquad(noise(rng, n), "highpass", rng.uniform(4000.0, 6000.0))
    x = biquad(x, "bandpass", rng.uniform(6000.0, 9000.0), 0.7)
    return x * attack_decay_env(n, rng.uniform(0.01, 0.025), rng.uniform(0.02, 0.045))


def make_crash(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(1.6, 2.4))
    x = 0.6 * _metal(rng, n, rng.uniform(1.3, 1.8)) + noise(rng, n)
    x = biquad(biquad(x, "highpass", rng.uniform(4000.0, 5500.0)), "highpass", 3000.0)
    return x * attack_decay_env(n, 0.002, rng.uniform(0.35, 0.55))


def make_ride(rng: np.random.Generator, i: int) -> np.ndarray:
    n = n_samples(rng.uniform(1.8, 2.5))
    x = _metal(rng, n, rng.uniform(1.0, 1.4)) + 0.4 * noise(rng, n)
    x = biquad(x, "bandpass", rng.uniform(5000.0, 7000.0), 0.8)
    x = biquad(x, "highpass", 3000.0) * exp_env(n, rng.uniform(0.5, 0.8))
    bell_f = rng.uniform(3000.0, 4500.0)
    bell = np.sin(2 * np.pi * bell_f * time_axis(n)) * exp_env(n, rng.uniform(0.25, 0.4))
    return x + 0.25 * bell


def make_harsh(rng: np.random.Generator, i: int) -> np.ndarray:
    variant = i % 4
    n = n_samples(rng.uniform(0.3, 0.6))
    t = time_axis(n)
    gate = np.minimum(1.0, t / 0.001)  # flat, unpleasant sustain
    if variant == 0:  # raw white-noise burst
        x = rng.standard_normal(n)
    elif variant == 1:  # piercing sine
        x = np.sin(2 * np.pi * rng.uniform(3000.0, 8000.0) * t)
    elif variant == 2:  # piercing square
        x = square(n, rng.uniform(3000.0, 8000.0))
    else:  # clipped, bit-crushed, sample-and-hold noise
        levels = 2 ** int(rng.integers(2, 4))
        hold = int(rng.integers(3, 8))
        x = np.clip(4.0 * rng.standard_normal(n), -1.0, 1.0)
        x = np.round(x * levels) / levels
        x = np.repeat(x[::hold], hold)[:n]
    return x * gate


RECIPES = {
    "kick": make_kick,
    "snare": make_snare,
    "clap": make_clap,
    "closed_hat": make_closed_hat,
    "open_hat": make_open_hat,
    "tom": make_tom,
    "rim": make_rim,
    "cowbell": make_cowbell,
    "shaker": make_shaker,
    "crash": make_crash,
    "ride": make_ride,
    "harsh": make_harsh,
}


# ------------------------------------------------------------------------- output


def synthesize(kind: str, kind_index: int, instance: int, seed: int) -> np.ndarray:
    """One sound, float64 in [-peak, peak]; depends only on its arguments."""
    rng = np.random.default_rng([seed, kind_index, instance])
    x = RECIPES[kind](rng, instance)
    return finish(x, HARSH_PEAK if kind == "harsh" else PEAK)


def readme_text(seed: int) -> str:
    total = sum(count for _, count in KINDS)
    lines = [
        "# Drum kit",
        "",
        f"{total} synthetic drum one-shots (44.1 kHz, mono, 16-bit PCM WAV), generated by",
        "",
        "    python scripts/make_kit.py" + ("" if seed == 0 else f" --seed {seed}"),
        "",
        f"(seed {seed}). Generation is deterministic: rerunning the command rewrites",
        "byte-identical files. Each sound is peak-normalised to 0.9 (harsh ones to 0.95)",
        "and ends with a 5 ms fade-out.",
        "",
        "| folder | files | recipe |",
        "|---|---|---|",
    ]
    for kind, count in KINDS:
        lines.append(f"| `{kind}/` | {count} | {DESCRIPTIONS[kind]} |")
    lines += [
        "",
        "The `harsh/` folder is deliberately unpleasant, like the DeepDrummer paper's",
        "sample collection, which included such sounds on purpose.",
        "",
        "License: part of this project, under its MIT license.",
        "",
    ]
    return "\n".join(lines)


def write_kit(out: pathlib.Path, seed: int) -> list[pathlib.Path]:
    written = []
    for kind_index, (kind, count) in enumerate(KINDS):
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for instance in range(count):
            path = folder / f"{kind}_{instance + 1:02d}.wav"
            x = synthesize(kind, kind_index, instance, seed)
            sf.write(str(path), x, SR, subtype="PCM_16", format="WAV")
            written.append(path)
    (out / "README.md").write_text(readme_text(seed), encoding="utf-8", newline="\n")
    return written


def main(argv: list[str] | None = None) -> int:
    default_out = pathlib.Path(__file__).resolve().parents[1] / "samples"
    parser = argparse.ArgumentParser(
        description="Synthesise the deterministic drum one-shot kit (WAV files).")
    parser.add_argument("--out", type=pathlib.Path, default=default_out,
                        help=f"output folder (default: {default_out})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    written = write_kit(args.out, args.seed)
    print(f"wrote {len(written)} wav files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
