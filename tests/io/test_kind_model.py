"""The audio-only kind model (ddjax.io.kind_model): specifications, not snapshots.

Synthetic one-shots are built here with plain NumPy from textbook recipes (a kick is a
sine falling to ~50 Hz with a fast decay; a closed hat is a short burst of high-passed
white noise; a crash is a long one), independent of the model's own code.
"""

import json
import pathlib
import warnings

import numpy as np
import pytest

from ddjax.core.drums import KINDS
from ddjax.io import kind_model
from ddjax.io.kinds import kind_from_name

REPO = pathlib.Path(__file__).resolve().parents[2]
PAPER_KIT = REPO.parent / "shared" / "kits" / "deepdrummer"
SR = 44100
# Leave-one-collection-out agreement on the paper kit's 270 named files, originals only
# (no processed copies, so it fits in a test): measured 0.674. The script's figure, with
# the processed copies, is 0.700. The target of 0.90 is NOT reached.
LOCO_FLOOR = 0.65


def _highpass(x, sr, cutoff_hz):
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1.0 / sr) < cutoff_hz] = 0.0
    return np.fft.irfft(spectrum, n=x.size)


def _kick(sr):
    t = np.arange(int(0.5 * sr)) / sr
    freq = 50.0 + 100.0 * np.exp(-t / 0.03)  # 150 Hz falling to 50 Hz
    return np.sin(2.0 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.08)


def _noise_hit(sr, seconds, cutoff_hz, tau, seed):
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).normal(size=t.size)
    return _highpass(noise, sr, cutoff_hz) * np.exp(-t / tau)


def _decaying_sine(sr, f0=200.0, tau=0.15):
    t = np.arange(int(0.6 * sr)) / sr
    return np.sin(2.0 * np.pi * f0 * t) * np.exp(-t / tau)


def test_features_have_fixed_length_and_are_finite():
    for x in (_kick(SR), _noise_hit(SR, 0.2, 6000.0, 0.02, 0), np.zeros(100), np.ones(3)):
        f = kind_model.features(x, SR)
        assert f.shape == (kind_model.N_FEATURES,)
        assert np.all(np.isfinite(f))


def test_features_ignore_gain():
    for x in (_kick(SR), _noise_hit(SR, 0.2, 6000.0, 0.02, 1)):
        np.testing.assert_allclose(kind_model.features(0.3 * x, SR),
                                   kind_model.features(x, SR), atol=1e-6)


def test_features_nearly_ignore_sample_rate():
    a = kind_model.features(_decaying_sine(44100), 44100)
    b = kind_model.features(_decaying_sine(48000), 48000)
    np.testing.assert_allclose(a, b, atol=0.1)


def test_shipped_model_loads_with_documented_keys():
    text = (REPO / "ddjax" / "pretrained" / kind_model.MODEL_FILE).read_text()
    model = json.loads(text)
    for key in ("format", "version", "kinds", "n_features", "l2", "threshold", "mean",
                "scale", "weights", "training"):
        assert key in model
    assert model["kinds"] == list(KINDS)
    assert len(model["mean"]) == len(model["scale"]) == kind_model.N_FEATURES
    assert np.array(model["weights"]).shape == (kind_model.N_FEATURES + 1, len(KINDS))
    assert 0.0 <= model["threshold"] < 1.0
    assert kind_model.load_model()["weights"] == model["weights"]


@pytest.mark.parametrize("sr", [44100, 48000])
def test_shipped_model_hears_textbook_sounds(sr):
    assert kind_model.classify(_kick(sr), sr) == "kick"
    assert kind_model.classify(_noise_hit(sr, 0.2, 6000.0, 0.02, 2), sr) in (
        "closed_hat", "open_hat")
    probs = kind_model.kind_probabilities(_noise_hit(sr, 1.5, 3000.0, 0.4, 3), sr)
    assert max(probs, key=probs.get) in ("crash", "open_hat", "ride")
    assert abs(sum(probs.values()) - 1.0) < 1e-9


def test_classify_says_none_below_the_threshold():
    x = _kick(SR)
    assert kind_model.classify(x, SR, threshold=1.01) is None
    assert kind_model.classify(x, SR, threshold=0.0) == "kick"


def test_fit_recovers_a_separable_toy_problem():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]])
    y = np.repeat(np.arange(4), 30)
    X = centers[y] + rng.normal(scale=0.5, size=(y.size, 3))
    params = kind_model.fit(X, y, 4, l2=0.1)
    probs = kind_model.predict(params, X)
    assert probs.shape == (y.size, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert np.array_equal(probs.argmax(axis=1), y)
    fresh = centers + rng.normal(scale=0.5, size=centers.shape)
    assert np.array_equal(kind_model.predict(params, fresh).argmax(axis=1), np.arange(4))
    again = kind_model.fit(X, y, 4, l2=0.1)
    assert np.array_equal(again["weights"], params["weights"])  # deterministic


def test_leave_one_collection_out_agreement_on_the_paper_kit():
    if not PAPER_KIT.is_dir():
        pytest.skip(f"the paper's kit is not at {PAPER_KIT}")
    import ddjax.io.kit
    from ddjax.io.kit import kit_monos

    def named(folder, collection_of):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ddjax.io.kit.KitWarning)
            kit = ddjax.io.kit.load_kit(folder, 88200)
        return [(collection_of(n), KINDS.index(kind_from_name(n)), kind_model.features(m, kit.sr))
                for n, m in zip(kit.names, kit_monos(kit)) if kind_from_name(n)]

    rows = named(REPO / "samples", lambda n: "bundled") + named(PAPER_KIT, lambda n: n.split("/")[0])
    colls = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    X = np.array([r[2] for r in rows])
    assert sorted(set(colls)) == ["808", "beatboxes", "bundled", "drumhits", "vermona"]
    right = []
    for held in ("808", "beatboxes", "drumhits", "vermona"):  # 808's clean/hot/warm together
        params = kind_model.fit(X[colls != held], y[colls != held], len(KINDS), 10.0)
        right.extend(kind_model.predict(params, X[colls == held]).argmax(axis=1) == y[colls == held])
    assert len(right) == 270
    assert np.mean(right) >= LOCO_FLOOR
