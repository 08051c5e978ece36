"""Rescoring, stage 1 (host): the inputs, from paths to items.

``--loops`` paths become ``Source``s (a loop JSON, a JSONL line, an audio file or a fresh
random loop), read lazily; ``Inputs.load`` turns a batch of them into ``Item``s against
one kit and pipeline, and skips (with one warning per cause) what cannot be scored.
"""

from __future__ import annotations

import math
import os
import pathlib
import warnings
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
import soxr

from ddjax.core.loops import Loop, allowed_samples, random_loop
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.files import check_loop_record, loads_json, read_loop_json
from ddjax.io.kit import AUDIO_EXTENSIONS, Kit

LOOP_SUFFIXES = (".json", ".jsonl")
RESAMPLE_MARGIN = 1024  # extra input frames read before resampling, so the bar's end is exact


class RescoreWarning(UserWarning):
    """An input was skipped; the message names it (or the missing sample) and says why."""


class Source(NamedTuple):
    """One input: ``kind`` is "loop" (a JSON file), "line" (a JSONL line), "audio" or
    "random"; ``line`` is the 1-based JSONL line, or the index of a random loop."""

    kind: str
    path: str
    line: int = 0
    text: str = ""

    @property
    def label(self) -> str:
        if self.kind == "line":
            return f"{self.path}:{self.line}"
        if self.kind == "random":
            return f"random:{self.path}:{self.line}"
        return self.path


def _folder_inputs(folder: pathlib.Path) -> list[pathlib.Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    loops = {p.with_suffix("") for p in files if p.suffix == ".json"}
    # loop_0001.wav next to loop_0001.json is that loop's render: score the loop once.
    return [p for p in files if p.suffix in LOOP_SUFFIXES or (
        p.suffix.lower() in AUDIO_EXTENSIONS and p.with_suffix("") not in loops)]


def input_files(paths: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
    """Expands ``--loops``: folders to their loop, JSONL and audio files (sorted,
    recursive; an audio file beside a same-named .json is that loop's render and is left
    out), files as given.

    Raises:
      DdjaxError: a path does not exist or is not a loop, JSONL or audio file.
    """
    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            files.extend(_folder_inputs(path))
        elif not path.exists():
            raise DdjaxError(f"input {path} does not exist; pass loop folders, .json, .jsonl"
                             " or audio files")
        elif path.suffix in LOOP_SUFFIXES or path.suffix.lower() in AUDIO_EXTENSIONS:
            files.append(path)
        else:
            raise DdjaxError(f"input {path} is not a loop (.json), a .jsonl file or audio")
    return files


def iter_sources(files: Sequence[pathlib.Path]) -> Iterator[Source]:
    """Every input, lazily: a JSONL file is read a line at a time."""
    for path in files:
        if path.suffix == ".jsonl":
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, text in enumerate(f, start=1):
                        if text.strip():
                            yield Source("line", str(path), number, text)
            except OSError as err:
                raise DdjaxError(f"cannot read {path}: {err.strerror}") from None
        elif path.suffix == ".json":
            yield Source("loop", str(path))
        else:
            yield Source("audio", str(path))


def random_sources(n: int, seed: int) -> Iterator[Source]:
    """``--generate N``: N fresh random loops from the prior, named by their index."""
    return (Source("random", str(seed), i) for i in range(n))


class _Skip(Exception):
    def __init__(self, key, message):
        super().__init__(message)
        self.key = key  # one warning per key: a missing sample is listed once


class Reporter:
    """Warns about skipped inputs, once per distinct cause, and counts them."""

    def __init__(self):
        self.seen: set = set()
        self.skipped = 0

    def skip(self, source: Source, err: _Skip) -> None:
        self.skipped += 1
        if err.key not in self.seen:
            self.seen.add(err.key)
            warnings.warn(RescoreWarning(str(err)), stacklevel=2)


def read_first_bar(path: str, bar_samples: int, sr: int) -> np.ndarray:
    """The first bar of an audio file, mono at ``sr`` Hz: float32[bar_samples], zero-padded.

    Reads only the frames it needs, so a long recording costs one bar."""
    try:
        with sf.SoundFile(path) as f:
            file_sr = f.samplerate
            frames = bar_samples if file_sr == sr else (
                math.ceil(bar_samples * file_sr / sr) + RESAMPLE_MARGIN)
            data = f.read(frames=frames, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as err:
        raise _Skip(("audio", path), f"skipped {path}: not readable audio"
                    f" ({str(err).strip() or type(err).__name__})") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise _Skip(("audio", path), f"skipped {path}: empty (no audio frames)")
    if not np.all(np.isfinite(data)):
        raise _Skip(("audio", path), f"skipped {path}: contains NaN or infinite values")
    mono = data.mean(axis=1)
    if file_sr != sr:
        mono = soxr.resample(mono, file_sr, sr, quality="HQ")
    bar = np.zeros(bar_samples, np.float32)
    bar[:min(bar_samples, mono.shape[0])] = mono[:bar_samples]
    return bar


class Item(NamedTuple):
    """A loaded input: a loop (``grid`` bool[tracks, steps], ``samples`` int32[tracks],
    ``names``, ``velocity`` int32[tracks, steps] or None for 127) or, for audio, ``audio``
    float32[bar_samples]."""

    source: Source
    grid: np.ndarray | None = None
    samples: np.ndarray | None = None
    names: tuple[str, ...] = ()
    audio: np.ndarray | None = None
    velocity: np.ndarray | None = None


class Inputs:
    """Turns sources into items against one kit and pipeline (the impure edge)."""

    def __init__(self, kit: Kit, pipeline: Pipeline, seed: int):
        self.kit, self.pipeline = kit, pipeline
        self.index = {name: i for i, name in enumerate(kit.names)}
        self.allowed = jnp.asarray(allowed_samples(pipeline.loops, kit.is_kick))
        self.key = jax.random.key(seed)
        self._random = jax.jit(jax.vmap(
            lambda k: random_loop(k, self.allowed, pipeline.loops)))

    def random_loops(self, indices: Sequence[int]) -> Loop:
        """Random loop ``i`` is drawn with ``fold_in(key(seed), i)``, whatever the batch."""
        keys = jax.vmap(lambda i: jax.random.fold_in(self.key, i))(
            jnp.asarray(indices, jnp.uint32))
        return jax.device_get(self._random(keys))

    def _loop(self, source: Source) -> Item:
        where = source.label
        try:
            if source.kind == "line":
                record = check_loop_record(loads_json(source.text, where), where)
            else:
                record = read_loop_json(source.path)
        except DdjaxError as err:
            raise _Skip(("bad", where), f"skipped {err}") from None
        loops, render = self.pipeline.loops, self.pipeline.render
        shape = (loops.n_tracks, loops.n_steps)
        if record["grid"].shape != shape:
            raise _Skip(("shape", record["grid"].shape),
                        f"skipped loops of {record['grid'].shape[0]} tracks x"
                        f" {record['grid'].shape[1]} steps (first: {where}); this run scores"
                        f" {shape[0]} x {shape[1]}")
        if record["swing"] != render.swing:  # MPC scale, old files converted on read
            raise _Skip(("swing", record["swing"]),
                        f"skipped loops with {record['swing']:g}% swing (first:"
                        f" {where}); this run renders straight 16ths ({render.swing:g}%)")
        if "humanize" in record:
            raise _Skip(("humanize",), f"skipped humanized loops (first: {where}); this run"
                        " renders the grid exactly")
        if record["bpm"] != render.bpm:
            raise _Skip(("bpm", record["bpm"]),
                        f"skipped loops at {record['bpm']:g} BPM (first: {where}); this run"
                        f" renders at {render.bpm:g} BPM: rescore them with --bpm"
                        f" {record['bpm']:g}")
        ids = []
        for name in record["samples"]:
            if name not in self.index:
                raise _Skip(("missing", name),
                            f"sample {name!r} is not in the kit {self.kit.root}; loops that"
                            f" use it are skipped (first: {where}); pass their kit via --kit")
            ids.append(self.index[name])
        return Item(source, record["grid"], np.array(ids, np.int32), tuple(record["samples"]),
                    velocity=record.get("velocity"))

    def load(self, sources: Sequence[Source], report: Reporter) -> list[Item | None]:
        """Items for a batch of sources; None where an input was skipped (and reported)."""
        items: list[Item | None] = []
        randoms = [s.line for s in sources if s.kind == "random"]
        drawn = self.random_loops(randoms) if randoms else None
        n_random = 0
        for source in sources:
            try:
                if source.kind == "random":
                    grid = drawn.grid[n_random]
                    samples = drawn.samples[n_random]
                    velocity = drawn.velocity[n_random]
                    n_random += 1
                    items.append(Item(source, grid, samples,
                                      tuple(self.kit.names[i] for i in samples),
                                      velocity=velocity))
                elif source.kind == "audio":
                    items.append(Item(source, audio=read_first_bar(
                        source.path, self.pipeline.render.bar_samples, self.kit.sr)))
                else:
                    items.append(self._loop(source))
            except _Skip as err:
                report.skip(source, err)
                items.append(None)
        return items
