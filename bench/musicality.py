"""Are the loops music? ``ddjax generate`` with its defaults, measured as a musician would.

For each kit (the bundled one and the paper's, where ``../shared`` has it) and each loop
prior (the default ``learned``, and ``musical`` and ``uniform`` for comparison), it runs
``ddjax generate --n N --seed S`` in this process (the command's own defaults: a fresh
critic, 16 chains of 100 MH steps) and reads back the loops' JSON, MIDI and audio:

- ``kick_on_one``: share of loops whose low voice (a kick) plays step 1;
- ``backbeat``: share with a snare, clap or rim on both beats 2 and 4 (steps 5 and 13);
- ``on_quarters``: share of hits on quarter notes (chance: 0.25);
- ``silent_tracks``: share of loops with a track that never plays;
- ``repeated_kind``: share with two tracks of one kind, toms apart (a style's norm);
- ``density``: median share of cells on, with its range;
- ``rms_spread_db`` and ``lufs_spread``: max - min RMS (dBFS) and integrated loudness
  (BS.1770, LUFS) of the written previews, across loops (the CLI sets every loop to -23
  LUFS unless its true peak would pass -1 dBTP);
- ``pairwise_cells``: mean Hamming distance between two loops' grids (of 64 cells), and
  ``distinct_sample_sets``;
- ``midi_distinct``: share of loops whose MIDI gives each playing track its own note;
- variations (``--from`` each of ``--sources`` loops, ``--per-source`` each): cells
  changed, samples kept, and the share within 2-8 cells keeping >= 3 of 4 samples.

Then the held-out real patterns' log-likelihood per loop (nats) under the three priors,
with a 95% bootstrap interval, and the learned prior's paired gain over each.

Usage: python bench/musicality.py [--json] [--n 64] [--kits bundled,paper]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import pathlib
import sys
import tempfile

import mido
import numpy as np
import soundfile as sf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from machine import cpu_model  # one JAX CPU device per core, as the command

from ddjax.cli.main import main as ddjax_main
from ddjax.core.drums import BACKBEAT_KINDS
from ddjax.io import patterns as patterns_io
from ddjax.io.kit import load_kit
from ddjax.io.loudness import integrated_lufs

ROOT = pathlib.Path(__file__).resolve().parents[1]
KITS = {"bundled": ROOT / "samples", "paper": ROOT.parent / "shared" / "kits" / "deepdrummer"}
PRIORS = ("learned", "musical", "uniform")
QUARTERS = (0, 4, 8, 12)
BAR_SAMPLES = 88200  # one bar at 120 BPM, 44.1 kHz: the kinds do not depend on it


def generate(out: pathlib.Path, kit: pathlib.Path, *args: str) -> list[dict]:
    """``ddjax generate`` in this process; the loops' records, with their files' stems."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        code = ddjax_main(["generate", "--out", str(out), "--kit", str(kit), "--midi",
                           *args])
    if code != 0:
        raise SystemExit(f"ddjax generate failed: {quiet.getvalue()}")
    records = []
    for path in sorted(out.glob("loop_*.json")):
        record = json.loads(path.read_text())
        record["stem"] = path.with_suffix("")
        records.append(record)
    return records


def kinds_of(record: dict, kinds: dict[str, str | None]) -> list[str | None]:
    return [kinds.get(name) for name in record["samples"]]


def midi_notes_distinct(path: pathlib.Path, grid: np.ndarray) -> bool:
    """Whether the MIDI file gives each playing track of ``grid`` its own note."""
    notes_per_track = []
    for track in mido.MidiFile(path).tracks:
        notes = {m.note for m in track if m.type == "note_on" and m.velocity > 0}
        if notes:
            notes_per_track.append(notes)
    playing = int(np.sum(grid.any(axis=1)))
    every = set().union(*notes_per_track) if notes_per_track else set()
    return len(notes_per_track) == playing and len(every) == playing and all(
        len(n) == 1 for n in notes_per_track)


def loop_measures(records: list[dict], kinds: dict[str, str | None]) -> dict:
    grids = [np.array(r["grid"], bool) for r in records]
    kick_one = backbeat = silent = repeated = 0
    quarter_hits = all_hits = 0
    for record, grid in zip(records, grids):
        ks = kinds_of(record, kinds)
        kick_one += any(k == "kick" and row[0] for k, row in zip(ks, grid))
        backbeat += any(k in BACKBEAT_KINDS and row[4] and row[12] for k, row in zip(ks, grid))
        silent += not grid.any(axis=1).all()
        named = [k for k in ks if k is not None and k != "tom"]
        repeated += len(named) != len(set(named))
        quarter_hits += int(grid[:, QUARTERS].sum())
        all_hits += int(grid.sum())
    n = len(records)
    density = [float(g.mean()) for g in grids]
    rms, lufs = [], []
    for record in records:
        audio, sr = sf.read(str(record["stem"].with_suffix(".wav")))
        rms.append(20 * np.log10(np.sqrt(np.mean(np.square(audio))) + 1e-12))
        lufs.append(integrated_lufs(audio, sr))
    pairs = [int(np.sum(a != b)) for a, b in itertools.combinations(grids, 2)]
    midi = [midi_notes_distinct(r["stem"].with_suffix(".mid"), g)
            for r, g in zip(records, grids) if r["stem"].with_suffix(".mid").exists()]
    return {"loops": n, "kick_on_one": kick_one / n, "backbeat": backbeat / n,
            "on_quarters": quarter_hits / max(all_hits, 1), "silent_tracks": silent / n,
            "repeated_kind": repeated / n,
            "density_median": float(np.median(density)),
            "density_range": [float(min(density)), float(max(density))],
            "rms_spread_db": float(max(rms) - min(rms)),
            "lufs_spread": float(max(lufs) - min(lufs)),
            "lufs_median": float(np.median(lufs)),
            "pairwise_cells": float(np.mean(pairs)),
            "distinct_sample_sets": len({tuple(sorted(r["samples"])) for r in records}),
            "midi_distinct": float(np.mean(midi)) if midi else None}


def variation_measures(sources: list[dict], out: pathlib.Path, kit: pathlib.Path,
                       per_source: int, extra: list[str]) -> dict:
    cells, kept = [], []
    for i, source in enumerate(sources):
        records = generate(out / f"from_{i}", kit, "--from", str(source["stem"]) + ".json",
                           "--n", str(per_source), "--seed", str(100 + i), *extra)
        grid = np.array(source["grid"], bool)
        for record in records:
            cells.append(int(np.sum(np.array(record["grid"], bool) != grid)))
            kept.append(sum(a == b for a, b in zip(record["samples"], source["samples"])))
    cells, kept = np.array(cells), np.array(kept)
    n_tracks = len(sources[0]["samples"])
    return {"variations": int(cells.size), "cells_changed_median": float(np.median(cells)),
            "cells_changed_range": [int(cells.min()), int(cells.max())],
            "samples_kept_median": float(np.median(kept)),
            "within_target": float(np.mean((cells >= 2) & (cells <= 8)
                                           & (kept >= n_tracks - 1)))}


def bootstrap(values: np.ndarray, seed: int = 0, n: int = 2000) -> list[float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (n, values.size)).mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def held_out_rows() -> list[dict]:
    corpus = patterns_io.read_corpus(sorted((ROOT / "scripts" / "patterns").glob("*.txt")))
    shipped = patterns_io.load_loop_prior()
    held = [p for p in corpus if p.id in set(shipped.held_out)]
    loglik = patterns_io.held_out_loglik(held, shipped.arrays)
    row = {"bench": "musicality", "what": "held_out_loglik_per_loop", "patterns": len(held),
           "of_corpus": len(corpus)}
    for name, values in loglik.items():
        row[name] = {"mean": round(float(values.mean()), 2),
                     "ci95": [round(v, 2) for v in bootstrap(values)]}
    for base in ("uniform", "musical"):
        gain = loglik["learned"] - loglik[base]
        row[f"learned_minus_{base}"] = {"mean": round(float(gain.mean()), 2),
                                        "ci95": [round(v, 2) for v in bootstrap(gain)]}
    gain = loglik["learned_accents"] - loglik["musical_accents"]
    row["learned_minus_musical_with_accents"] = {
        "mean": round(float(gain.mean()), 2), "ci95": [round(v, 2) for v in bootstrap(gain)]}
    return [row]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    parser.add_argument("--n", type=int, default=64, help="loops per kit and prior")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--kits", default="bundled,paper")
    parser.add_argument("--priors", default=",".join(PRIORS))
    parser.add_argument("--sources", type=int, default=8, help="loops to vary, per kit")
    parser.add_argument("--per-source", type=int, default=8, help="variations per loop")
    parser.add_argument("--style", default=None, help="also pass --style NAME")
    args = parser.parse_args()
    rows = held_out_rows()
    extra = [] if args.style is None else ["--style", args.style]
    with tempfile.TemporaryDirectory() as tmp:
        for kit_name in args.kits.split(","):
            kit = KITS[kit_name]
            if not kit.is_dir():
                print(f"skipping the {kit_name} kit: {kit} is absent", file=sys.stderr)
                continue
            loaded = load_kit(kit, BAR_SAMPLES)
            kinds = dict(zip(loaded.names, loaded.kinds))
            for prior in args.priors.split(","):
                out = pathlib.Path(tmp) / kit_name / prior
                records = generate(out, kit, "--n", str(args.n), "--seed", str(args.seed),
                                   "--loop-prior", prior, *extra)
                row = {"bench": "musicality", "kit": kit_name, "loop_prior": prior,
                       "style": args.style or "mix", **loop_measures(records, kinds)}
                if prior == "learned" or prior == args.priors.split(",")[0]:
                    row.update(variation_measures(records[:args.sources], out / "var", kit,
                                                  args.per_source,
                                                  ["--loop-prior", prior, *extra]))
                rows.append(row)
    machine = {"cpu": cpu_model()}
    for row in rows:
        row.update(machine)
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
