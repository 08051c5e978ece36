"""The shipped loop prior is what ``scripts/fit_loop_prior.py`` makes from the committed
corpus: refitted here with the file's own settings, it comes out the same."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from ddjax.io import patterns as patterns_io

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_shipped_prior_refits_from_the_committed_corpus():
    record = json.loads(patterns_io.default_prior_path().read_text())
    corpus = patterns_io.read_corpus(sorted((REPO / "scripts" / "patterns").glob("*.txt")))
    assert record["n_patterns"] == len(corpus)
    # Held out: exactly the patterns whose id hashes into the held-out fifth.
    assert record["held_out"] == sorted(p.id for p in corpus if p.held_out())
    assert 0.1 < len(record["held_out"]) / len(corpus) < 0.3
    fitted, _ = patterns_io.split(corpus)
    refit = patterns_io.fit(fitted, record["strength"], record["styles"],
                            record["components"])
    assert refit["component_styles"] == record["component_styles"]
    for key in ("on", "level", "presence", "repeat", "role_repeat", "weight"):
        np.testing.assert_allclose(refit[key], record[key], rtol=1e-3, atol=1e-9, err_msg=key)
    loaded = patterns_io.load_loop_prior()
    assert loaded.styles == tuple(record["styles"])
    # Each style's components carry its share of the fitted patterns (plus one).
    for style in loaded.styles:
        share = sum(w for w, s in zip(record["weight"], record["component_styles"])
                    if s == style)
        n = sum(p.style == style for p in fitted)
        assert abs(share - (n + 1) / (len(fitted) + len(loaded.styles))) < 1e-3
