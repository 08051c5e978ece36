"""Fits the learned loop prior on the pattern corpus and writes the file the package ships.

    python scripts/fit_loop_prior.py [--corpus scripts/patterns/*.txt] [--out FILE]

Reads the corpus (``scripts/patterns/``: the transcribed canon and the grids extracted from
Hydrogen's demo songs by ``scripts/extract_hydrogen.py``), holds out one pattern in five
(``ddjax.io.patterns.Pattern.held_out``), picks the shrinkage ``strength`` and the
components per style by 5-fold cross-validation on the rest (the held-out patterns are never seen here), fits on the rest
and writes ``ddjax/pretrained/loop-prior.json``. It prints the held-out log-likelihood per
loop under the uniform, musical and learned priors. Not run in CI: the shipped file is
what sessions load, and ``bench/musicality.py`` reports the held-out figures again.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from ddjax.errors import DdjaxError
from ddjax.io import patterns as patterns_io

ROOT = pathlib.Path(__file__).resolve().parent.parent
STRENGTHS = (0.25, 0.5, 1.0, 2.0)
COMPONENTS = (1, 2, 3, 4)
FOLDS = 5


def cross_validated(fitted: list[patterns_io.Pattern]) -> tuple[tuple[float, int], dict]:
    """The (strength, components) whose fits on 4 folds score the 5th best (log-likelihood
    of the grid and accents per loop), on average over the folds."""
    fold = np.arange(len(fitted)) % FOLDS
    styles = sorted({p.style for p in fitted})
    scores = {}
    for strength in STRENGTHS:
        for components in COMPONENTS:
            total = 0.0
            for k in range(FOLDS):
                train = [p for p, f in zip(fitted, fold) if f != k]
                test = [p for p, f in zip(fitted, fold) if f == k]
                arrays = patterns_io.to_arrays(
                    patterns_io.fit(train, strength, styles, components))
                total += patterns_io.held_out_loglik(test, arrays)["learned_accents"].sum()
            scores[(strength, components)] = total / len(fitted)
    return max(scores, key=scores.get), scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=pathlib.Path, nargs="+",
                        default=sorted((ROOT / "scripts" / "patterns").glob("*.txt")))
    parser.add_argument("--out", type=pathlib.Path,
                        default=ROOT / "ddjax" / "pretrained" / "loop-prior.json")
    args = parser.parse_args(argv)
    try:
        corpus = patterns_io.read_corpus(args.corpus)
    except DdjaxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fitted, held = patterns_io.split(corpus)
    # A rare style may land wholly in the held-out part: it is still fitted (from the
    # shrinkage towards all styles) so that --style offers it.
    styles = sorted({p.style for p in corpus})
    (strength, components), scores = cross_validated(fitted)
    fit = patterns_io.fit(fitted, strength, styles, components)
    record = patterns_io.prior_record(fit, corpus, [p.id for p in held])
    args.out.write_text(json.dumps(record, separators=(",", ":")) + "\n", encoding="utf-8")
    loglik = patterns_io.held_out_loglik(held, patterns_io.to_arrays(fit))
    print(json.dumps({"patterns": len(corpus), "fitted": len(fitted), "held_out": len(held),
                      "styles": len(styles), "strength": strength, "components": components,
                      "cv_loglik_per_loop": {f"{s:g}x{c}": round(v, 3)
                                             for (s, c), v in scores.items()},
                      "held_out_loglik_per_loop": {k: round(float(v.mean()), 3)
                                                   for k, v in loglik.items()},
                      "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
