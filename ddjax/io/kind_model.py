"""Kind model: what a one-shot is (kick, snare, closed hat...) from its audio alone.

``features`` describes a one-shot by a fixed-length vector that depends neither on its
level nor (up to resampling) on its sample rate: the share of its energy in half-octave
bands from 30 Hz to 15 kHz; spectral centroid, rolloff and flatness of the whole hit and
of its first 40 ms; its decay times to -10, -20 and -40 dB; the roughness of its attack
envelope (a clap's bursts); zero-crossing rate; the pitch of its strongest low partial
(30 Hz .. 1 kHz) and how far that pitch falls; its low (< 150 Hz) and high (> 5 kHz)
energy shares; and the octave-band shares of its tail (after 50 ms).

The classifier is a multinomial logistic regression with an L2 penalty on standardized
features, fit deterministically by damped Newton steps from zero (``fit``, ``predict``). The shipped
model, ``ddjax/pretrained/kind-model.json``, is written by ``scripts/make_kind_model.py``,
which also measures it across collections; ``classify`` says a kind only when the model
is confident, else None: an unknown stays unknown rather than being wrong.
"""

from __future__ import annotations

import importlib.resources
import json

import numpy as np

MODEL_FORMAT = "ddjax-kind-model"
MODEL_FILE = "kind-model.json"
BAND_EDGES_HZ = 30.0 * 2.0 ** (np.arange(19) / 2.0)  # half octaves, 30 Hz .. 15.4 kHz
ATTACK_SECONDS = 0.040
BODY_SECONDS = 1.0
FRAME_SECONDS = 0.005
FLOOR_DB = -60.0
DECAY_DBS = (10.0, 20.0, 40.0)
_EPS = 1e-9
BAND_FLOOR = 1e-3


def _band_shares(segment: np.ndarray, sr: int) -> np.ndarray:
    """log10 of each band's share of the segment's energy (Hann window, >= 8192 bins)."""
    n_fft = max(8192, 1 << int(np.ceil(np.log2(max(segment.size, 2)))))
    power = np.square(np.abs(np.fft.rfft(segment * np.hanning(segment.size), n=n_fft)))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    idx = np.searchsorted(BAND_EDGES_HZ, freqs, side="right") - 1
    inside = (idx >= 0) & (idx < BAND_EDGES_HZ.size - 1)
    bands = np.bincount(idx[inside], power[inside], minlength=BAND_EDGES_HZ.size - 1)
    return np.log10(bands / (bands.sum() + _EPS) + BAND_FLOOR), power, freqs


def _spectral_shape(power: np.ndarray, freqs: np.ndarray) -> list[float]:
    """log2 centroid and 85% rolloff (re 1 kHz) and log10 flatness, 30 Hz .. 16 kHz."""
    keep = (freqs >= BAND_EDGES_HZ[0]) & (freqs <= 16000.0)
    p, f = power[keep] + _EPS, freqs[keep]
    centroid = float(np.sum(f * p) / np.sum(p))
    rolloff = float(f[np.searchsorted(np.cumsum(p), 0.85 * np.sum(p))])
    flatness = float(np.exp(np.mean(np.log(p))) / np.mean(p))
    return [np.log2(centroid / 1000.0), np.log2(rolloff / 1000.0), np.log10(flatness)]


def _envelope_db(x: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """RMS envelope in dB re its peak, in frames of ``seconds``."""
    hop = max(1, int(round(seconds * sr)))
    n = max(1, x.size // hop)
    frames = np.pad(x, (0, max(0, n * hop - x.size)))[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(np.square(frames), axis=1)) + _EPS
    return 20.0 * np.log10(rms / rms.max())


def _low_pitch(segment: np.ndarray, sr: int) -> float:
    """Frequency of the strongest partial between 30 Hz and 1 kHz, in Hz."""
    n_fft = max(16384, 1 << int(np.ceil(np.log2(max(segment.size, 2)))))
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size), n=n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    band = (freqs >= 30.0) & (freqs <= 1000.0)
    return float(freqs[band][np.argmax(spectrum[band])])


def features(mono: np.ndarray, sr: int) -> np.ndarray:
    """float64[N_FEATURES]: the description of one one-shot (see the module docstring).

    Invariant to gain (the hit is scaled to peak 1 first) and, up to resampling, to the
    sample rate (every window is a duration, every band a frequency range). Leading and
    trailing audio below -60 dB re the peak is ignored.
    """
    x = np.asarray(mono, np.float64).ravel()
    if x.size == 0 or not np.max(np.abs(x)) > 0.0:
        return np.zeros(N_FEATURES)
    x = x / np.max(np.abs(x))
    env = _envelope_db(x, sr, FRAME_SECONDS)
    audible = np.nonzero(env > FLOOR_DB)[0]
    start, stop = audible[0], audible[-1] + 1
    hop = max(1, int(round(FRAME_SECONDS * sr)))
    x, env = x[start * hop: stop * hop], env[start:stop]
    peak = int(np.argmax(env))
    body = x[: int(BODY_SECONDS * sr)]
    bands, power, freqs = _band_shares(body, sr)
    _, attack_power, attack_freqs = _band_shares(x[: max(16, int(ATTACK_SECONDS * sr))], sr)
    tail = x[int(0.05 * sr): int(BODY_SECONDS * sr)]
    tail_bands, _, _ = _band_shares(tail if tail.size >= int(0.01 * sr) else x[-int(0.01 * sr):], sr)
    decays = [np.log10((np.nonzero(env >= -db)[0][-1] + 1 - peak) * FRAME_SECONDS + 1e-3)
              for db in DECAY_DBS]
    below = np.nonzero(env[peak:] < -20.0)[0]
    first_fall = (below[0] if below.size else env.size - peak) * FRAME_SECONDS
    fine = _envelope_db(x[: int(0.08 * sr)], sr, 0.001)
    roughness = float(np.mean(np.abs(np.diff(fine)))) if fine.size > 1 else 0.0
    zcr = np.mean(np.abs(np.diff(np.signbit(body).astype(np.int8)))) * sr if body.size > 1 else 0.0
    pitch_early, pitch_whole = _low_pitch(x[: int(0.03 * sr)], sr), _low_pitch(body, sr)
    total = np.sum(power) + _EPS
    return np.concatenate([
        bands, _spectral_shape(power, freqs), _spectral_shape(attack_power, attack_freqs),
        decays, [np.log10(first_fall + 1e-3), roughness / 10.0, np.log10(zcr + 1.0),
                 np.log2(pitch_early / 100.0), np.log2(pitch_whole / 100.0),
                 np.log2(pitch_early / pitch_whole),
                 np.log10(np.sum(power[freqs < 150.0]) / total + 1e-2),
                 np.log10(np.sum(power[freqs > 5000.0]) / total + 1e-2)],
        0.5 * (tail_bands[::2] + tail_bands[1::2]),
    ])


N_FEATURES = 44


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _design(params: dict, X: np.ndarray) -> np.ndarray:
    Z = (np.asarray(X, np.float64) - np.asarray(params["mean"])) / np.asarray(params["scale"])
    return np.hstack([Z, np.ones((Z.shape[0], 1))])


def fit(X: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 10.0,
        iterations: int = 50) -> dict:
    """A multinomial logistic regression on standardized features, by Newton's method.

    Args:
      X: float[n, d] features; y: int[n] classes in ``range(n_classes)``.
      l2: the penalty on the weights (not on the biases), in units of one example.

    Returns:
      ``{"mean", "scale", "weights"}``: float[d], float[d], float[d + 1, n_classes]
      (the last row is the biases). Deterministic: it starts from zero and takes full
      Newton steps, halved until the penalized loss does not grow.
    """
    X, y = np.asarray(X, np.float64), np.asarray(y)
    params = {"mean": X.mean(axis=0), "scale": X.std(axis=0) + 1e-9}
    Z = _design(params, X)
    d = Z.shape[1]
    Y = np.eye(n_classes)[y]
    reg = np.full(d, float(l2))
    reg[-1] = 1e-6
    W = np.zeros((d, n_classes))

    def loss(W):
        P = _softmax(Z @ W)
        return -np.sum(np.log(np.sum(P * Y, axis=1) + 1e-300)) + 0.5 * np.sum(reg[:, None] * W * W)

    current = loss(W)
    for _ in range(iterations):
        P = _softmax(Z @ W)
        grad = Z.T @ (P - Y) + reg[:, None] * W
        H = np.diag(np.tile(reg, n_classes))
        for a in range(n_classes):
            for b in range(a, n_classes):
                block = (Z * (P[:, a] * ((a == b) - P[:, b]))[:, None]).T @ Z
                H[a * d:(a + 1) * d, b * d:(b + 1) * d] += block
                if a != b:
                    H[b * d:(b + 1) * d, a * d:(a + 1) * d] += block
        step = np.linalg.solve(H, grad.T.ravel()).reshape(n_classes, d).T
        t = 1.0
        while loss(W - t * step) > current and t > 1e-4:
            t *= 0.5
        W, previous = W - t * step, current
        current = loss(W)
        if previous - current < 1e-9 * (1.0 + abs(current)):
            break
    params["weights"] = W
    return params


def predict(params: dict, X: np.ndarray) -> np.ndarray:
    """float[n, n_classes]: each row's class probabilities under ``fit``'s params."""
    return _softmax(_design(params, np.atleast_2d(X)) @ np.asarray(params["weights"]))


def load_model(path=None) -> dict:
    """The shipped kind model (``ddjax/pretrained/kind-model.json``), or the one at ``path``.

    Keys: ``format``, ``version``, ``kinds`` (class order), ``n_features``, ``l2``,
    ``threshold``, ``mean``, ``scale``, ``weights``, ``training`` (what it was fit on and
    its leave-one-collection-out figures).
    """
    if path is None:
        text = (importlib.resources.files("ddjax.pretrained") / MODEL_FILE).read_text()
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    model = json.loads(text)
    if model.get("format") != MODEL_FORMAT or model.get("n_features") != N_FEATURES:
        raise ValueError(f"not a {MODEL_FORMAT} with {N_FEATURES} features")
    return model


_SHIPPED: list[dict] = []


def _shipped() -> dict:
    if not _SHIPPED:
        _SHIPPED.append(load_model())
    return _SHIPPED[0]


def kind_probabilities(mono: np.ndarray, sr: int, model: dict | None = None) -> dict:
    """``{kind: probability}`` for one one-shot under ``model`` (default: the shipped one)."""
    model = _shipped() if model is None else model
    probs = predict(model, features(mono, sr)[None])[0]
    return dict(zip(model["kinds"], probs.tolist()))


def classify(mono: np.ndarray, sr: int, model: dict | None = None,
             threshold: float | None = None) -> str | None:
    """The kind the audio sounds like, or None when the model's top probability is
    below ``threshold`` (default: the model's own, chosen across collections)."""
    model = _shipped() if model is None else model
    probs = kind_probabilities(mono, sr, model)
    kind = max(probs, key=probs.get)
    limit = model["threshold"] if threshold is None else threshold
    return kind if probs[kind] >= limit else None
