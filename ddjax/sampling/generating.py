"""``ddjax generate``'s work: rounds of chains from one engine, each kept loop written to a
folder as audio and JSON (``generate_loops``). The command line parses and checks its
arguments, builds the engine and calls it.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import warnings
from typing import Callable

import jax
import numpy as np

from ddjax.core.loops import Loop
from ddjax.core.render import RenderConfig
from ddjax.errors import DdjaxError
from ddjax.io.export import export_loop, loop_stems, track_notes
from ddjax.io.files import loop_record, write_loop_json
from ddjax.io.kit import Kit
from ddjax.io.loudness import normalize_stems
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import SamplerConfig

__all__ = ["Generated", "generate_loops", "next_index", "MAX_ROUNDS_PER_BATCH"]
MAX_ROUNDS_PER_BATCH = 10  # "until" (--min-score): give up after this many rounds per batch


@dataclasses.dataclass(frozen=True)
class Generated:
    """What ``generate_loops`` did: loops written, and rounds of chains run."""

    written: int
    rounds: int


_LOOP_FILE = re.compile(r"loop_(\d+)(?:[._].*)?")


class OrphanWarning(UserWarning):
    """Files of a loop without its JSON (a write cut short) were found, and kept."""


def _loop_files(out: pathlib.Path, index: int) -> list[pathlib.Path]:
    # Every file of loop ``index``: loop_NNNN.json, .wav, .mid, _1bar_..., _track...
    return [p for p in out.iterdir()
            if (m := _LOOP_FILE.fullmatch(p.name)) and int(m.group(1)) == index]


def next_index(out: pathlib.Path) -> int:
    """The number after the highest loop in ``out`` (0 where there is none): after any of
    its files, so a loop's audio left without its JSON (a write cut short) is never
    overwritten; each such loop is reported once (``OrphanWarning``)."""
    indices = {}
    for path in out.iterdir() if out.is_dir() else ():
        m = _LOOP_FILE.fullmatch(path.name)
        if m:
            indices.setdefault(int(m.group(1)), []).append(path)
    for index, paths in sorted(indices.items()):
        if not any(p.suffix == ".json" for p in paths):
            warnings.warn(OrphanWarning(
                f"{out}: loop {index} has {', '.join(sorted(p.name for p in paths))} but no"
                " JSON (a write cut short); kept, and numbering goes on after it"),
                stacklevel=2)
    return max(indices, default=-1) + 1


def generate_loops(engine: Engine, kit: Kit, render: RenderConfig, sampler: SamplerConfig, *,
                   n: int, chains: int, seed: int, out: pathlib.Path, fmt: str,
                   loop_wav: bool = False, midi: bool = False, stems: bool = False,
                   start: Loop | None = None,
                   progress: Callable[[int], None] | None = None) -> Generated:
    """Writes up to ``n`` loops to ``out`` as ``loop_NNNN`` (numbered after those there):
    rounds of ``chains`` chains of ``sampler`` (from ``start`` where given), keeping each
    chain that reached the sampler's threshold, until ``n`` are written or the rounds run
    out (one per batch of chains; ``MAX_ROUNDS_PER_BATCH`` per batch in "until" mode).

    Each loop is its listening render (``fmt``), one seamless bar with ``loop_wav``, its
    MIDI with ``midi`` (``loop_NNNN.mid``, ``export.track_notes`` of the kit's notes), each
    track alone with ``stems`` (``export.loop_stems``), and its JSON (``render``'s tempo,
    swing and humanize, the critic's score and ``seed``), written last, so no audio or
    MIDI is left without its JSON. ``progress`` hears each loop written (1).
    """
    out.mkdir(parents=True, exist_ok=True)
    index = next_index(out)
    written, rounds = 0, 0
    max_rounds = math.ceil(n / chains) * (
        MAX_ROUNDS_PER_BATCH if sampler.mode == "until" else 1)
    key = jax.random.key(seed)
    kit_rows = np.asarray(kit.audio) if stems else None
    while written < n and rounds < max_rounds:
        state, info = engine.sample(jax.random.fold_in(key, rounds), chains, sampler,
                                    start=start)
        rounds += 1
        keep = np.nonzero(np.asarray(info.reached))[0][: n - written]
        if keep.size == 0:
            continue
        chosen = jax.tree_util.tree_map(lambda x: x[keep], state.loop)
        audio = engine.listen(chosen)
        bars = engine.loop_bar(chosen) if loop_wav else [None] * len(audio)
        grids, samples = np.asarray(chosen.grid), np.asarray(chosen.samples)
        velocities = np.asarray(chosen.velocity)
        scores = np.asarray(state.score)[keep]
        for grid, ids, velocity, score, wav, one_bar in zip(grids, samples, velocities,
                                                            scores, audio, bars):
            stem = out / f"loop_{index:04d}"
            record = loop_record(grid, [kit.names[i] for i in ids], bpm=render.bpm,
                                 score=score, seed=seed, swing=render.swing,
                                 velocity=velocity, humanize=render.humanize)
            notes = track_notes([kit.notes[i] for i in ids]) if midi else None
            alone = None if kit_rows is None else normalize_stems(loop_stems(
                kit_rows[ids], grid, velocity, render), kit.sr, engine.loudness)
            # A loop's files as a group, the JSON last: where any write fails, every file
            # of this loop already written is removed (no audio or MIDI without its JSON).
            try:
                export_loop(stem, record, audio=wav, bar=one_bar, sr=kit.sr, notes=notes,
                            write_json=False, fmt=fmt, stems=alone)
                write_loop_json(stem.with_suffix(".json"), record)
            except DdjaxError:
                for path in _loop_files(out, index):
                    path.unlink(missing_ok=True)
                raise
            index += 1
            written += 1
            if progress is not None:
                progress(1)
    return Generated(written, rounds)
