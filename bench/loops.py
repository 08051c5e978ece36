"""Musical loops: what default generation writes, on the bundled kit and the paper's kit.

For each kit and loop prior, ``--n`` loops from ``--chains`` chains of 100 MH iterations
against a fresh critic (what ``ddjax generate`` does with no ``--critic``), and rows of:

- ``density``: the share of the grid's cells that are on, median and range;
- ``with_kick``: the share of loops with a kick that plays; ``repeated_kind``: the share
  where two tracks have the same kind (three claps);
- ``peak``: the largest absolute sample of every preview and every 1-bar loop, in dBFS
  (the target is at most -1 dBFS in every file).

And one ``kinds`` row per kit: how often the kind found from the audio alone (the shipped
kind model) agrees with the kind the file name says, over the files whose name says one:
``agreement`` with every file labelled, and ``confident_share`` / ``confident_agreement``
over the files it is at least ``kinds.AUDIO_CONFIDENCE`` sure of. The shipped model was
fit on these kits, so these are in-sample figures; the honest one, across collections
the model never saw, is printed by ``scripts/make_kind_model.py``.

Usage: python bench/loops.py [--json] [--n N] [--chains C] [--kit DIR ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import warnings

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from machine import cpu_model, device_name  # noqa: E402  (one JAX device per core)

from ddjax.core.critic import init_critic  # noqa: E402
from ddjax.core.loops import LOOP_PRIORS, LoopConfig  # noqa: E402
from ddjax.core.pipeline import Pipeline
from ddjax.io.kinds import kind_from_audio, kind_from_name  # noqa: E402
from ddjax.io.kit import (  # noqa: E402
    KitWarning,
    kit_monos,  # noqa: E402
    load_kit,
)
from ddjax.sampling.engine import Engine  # noqa: E402
from ddjax.sampling.sampler import SamplerConfig  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
KITS = (REPO / "samples", REPO.parent / "shared" / "kits" / "deepdrummer")


def dbfs(x: float) -> float:
    return round(20 * np.log10(max(x, 1e-12)), 2)


def generated(kit, prior: str, n: int, n_chains: int, seed: int = 0) -> dict:
    engine = Engine(kit, init_critic(jax.random.key(seed)),
                    Pipeline(loops=LoopConfig(prior=prior)))
    config = SamplerConfig("mh", n_iters=100)
    grids, samples, peaks = [], [], []
    for round_ in range(-(-n // n_chains)):
        state, _ = engine.sample(jax.random.fold_in(jax.random.key(seed), round_), n_chains,
                                 config)
        grids.append(np.asarray(state.loop.grid))
        samples.append(np.asarray(state.loop.samples))
        peaks += [np.abs(engine.listen(state.loop)).max(axis=-1),
                  np.abs(engine.loop_bar(state.loop)).max(axis=-1)]
    grid, ids = np.concatenate(grids)[:n], np.concatenate(samples)[:n]
    kinds = np.array([str(k) for k in kit.kinds], dtype=object)[ids]
    plays = grid.any(axis=-1)
    density = grid.mean(axis=(-2, -1))
    known = [[k for k in row if k != "None"] for row in kinds]
    return {"loops": int(n), "density_median": round(float(np.median(density)), 3),
            "density_min": round(float(density.min()), 3),
            "density_max": round(float(density.max()), 3),
            "with_kick": round(float(np.mean(((kinds == "kick") & plays).any(axis=-1))), 3),
            "repeated_kind": round(float(np.mean([len(set(r)) < len(r) for r in known])), 3),
            "peak_dbfs_max": dbfs(float(np.max(np.concatenate(peaks))))}


def kind_agreement(kit) -> dict:
    named = agree = confident = confident_agree = 0
    confusions = collections.Counter()
    for name, mono in zip(kit.names, kit_monos(kit)):
        want = kind_from_name(name)
        if want is None:
            continue
        got = kind_from_audio(mono, kit.sr, confidence=0.0)
        sure = kind_from_audio(mono, kit.sr) is not None
        named += 1
        agree += got == want
        confident += sure
        confident_agree += sure and got == want
        if got != want:
            confusions[f"{want}->{got}"] += 1
    return {"files": len(kit), "named": named, "in_sample": True,
            "agreement": round(agree / max(named, 1), 3),
            "confident_share": round(confident / max(named, 1), 3),
            "confident_agreement": round(confident_agree / max(confident, 1), 3),
            "top_confusions": dict(confusions.most_common(5))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--n", type=int, default=64, help="loops per kit and prior")
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--kit", type=pathlib.Path, nargs="*", default=list(KITS))
    args = parser.parse_args(argv)
    common = {"device": device_name(), "cpu": cpu_model()}
    for folder in args.kit:
        if not folder.is_dir():
            print(f"# skipped {folder}: not here", file=sys.stderr)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KitWarning)
            kit = load_kit(folder, 88200)
        rows = [{"bench": "loops", "kit": folder.name, "prior": prior,
                 **generated(kit, prior, args.n, args.chains)} for prior in LOOP_PRIORS]
        rows.append({"bench": "kinds", "kit": folder.name, **kind_agreement(kit)})
        for row in rows:
            print(json.dumps({**row, **common}) if args.json else row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
