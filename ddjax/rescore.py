"""Offline rescoring: every loop against K critics, streamed, sharded and resumable.

Data flow per batch of ``batch`` inputs (saved loops, JSONL lines, audio files or fresh
random loops)::

    host: read files -> arrays  ->  device: critic view | first bar -> MFCC (once per loop)
          -> K critics (vmapped over their stacked variables) -> mean, vote, std
    host: CSV rows, appended and fsynced; a progress file records the batch

Scale-out. On one host the batch is split over every local device with a
``jax.sharding.Mesh`` of axes ``("loops", "critics")``: loops are sharded over
``"loops"`` and the stacked critics over ``"critics"`` (``model_shards`` devices; 1, the
default, replicates them). Across hosts (``jax.distributed``), batch ``b`` belongs to
process ``b % num_processes``, and each process writes its own CSV shard. A batch's
inputs are fixed by its position in the input stream, so rows, their order and their
scores do not depend on the number of devices or hosts (the scores up to float rounding:
the CSV is byte-identical for the same number of devices).

Resume. After each batch the CSV is flushed and fsynced, then ``FILE.csv.progress``
records the batches done and the CSV's length in bytes. ``--resume`` truncates the CSV
to that length (dropping a torn last write) and carries on with the next batch, so the
result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import heapq
import io
import itertools
import json
import math
import os
import pathlib
import sys
import warnings
from typing import Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf
import soxr
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import tqdm

from ddjax import limits
from ddjax.argtypes import bpm, non_negative_int, positive_int, tracks
from ddjax.engine import Pipeline
from ddjax.ensemble import Ensemble, EnsembleStats, critic_probs, ensemble_stats, load_ensemble
from ddjax.errors import DdjaxError
from ddjax.features import mfcc
from ddjax.files import (atomic_write_bytes, check_file_target, check_loop_record, loop_record,
                         read_loop_json, write_audio, write_loop_json)
from ddjax.kit import AUDIO_EXTENSIONS, Kit, bundled_kit, load_kit
from ddjax.loops import FULL_VELOCITY, Loop, allowed_samples, random_loop
from ddjax.render import critic_view, listening_render, render_tables

BUNDLED_KIT = bundled_kit()
LOOP_SUFFIXES = (".json", ".jsonl")
RESAMPLE_MARGIN = 1024  # extra input frames read before resampling, so the bar's end is exact
PROGRESS_SUFFIX = ".progress"


class RescoreWarning(UserWarning):
    """An input was skipped; the message names it (or the missing sample) and says why."""


@dataclasses.dataclass(frozen=True)
class RescoreConfig:
    """How a rescoring run is cut up.

    Attributes:
      batch: inputs per batch; every host's batches are this size (memory is bounded by
        it, whatever the number of inputs).
      model_shards: local devices along the critics axis; must divide the device count.
      per_critic: write every critic's score, not just the ensemble's.
      seed: PRNG seed of ``--generate``; random loop ``i`` depends only on it and ``i``.
      process_id: this host's index among ``num_processes`` hosts.
      num_processes: hosts sharing the run; host p scores batches b with b % n == p.
    """

    batch: int = 64
    model_shards: int = 1
    per_critic: bool = False
    seed: int = 0
    process_id: int = 0
    num_processes: int = 1

    def __post_init__(self):
        if self.batch < 1 or self.model_shards < 1:
            raise DdjaxError("--batch and --model-shards must be positive")
        if not 0 <= self.process_id < self.num_processes:
            raise DdjaxError(f"--process-id must be in [0, {self.num_processes}), got"
                             f" {self.process_id}")


# ---------------------------------------------------------------- inputs (host side)


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
                try:
                    raw = json.loads(source.text)
                except json.JSONDecodeError as err:
                    raise DdjaxError(f"{where} is not valid JSON: {err}") from None
                record = check_loop_record(raw, where)
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
        if record.get("swing", 0.0) != render.swing:
            raise _Skip(("swing", record.get("swing", 0.0)),
                        f"skipped loops with {record.get('swing', 0.0):g}% swing (first:"
                        f" {where}); this run renders straight 16ths")
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


# ---------------------------------------------------------------- device side (pure)


class Batch(NamedTuple):
    """One batch on device: ``grid`` bool[B, tracks, steps], ``samples`` int32[B, tracks],
    ``velocity`` int32[B, tracks, steps]; ``audio`` float32[B, bar_samples] and
    ``is_audio`` bool[B], or None for loops only."""

    grid: jax.Array
    samples: jax.Array
    velocity: jax.Array
    audio: jax.Array | None
    is_audio: jax.Array | None


class BatchScores(NamedTuple):
    """``probs`` float32[B, K] and the ensemble's ``stats`` (each float32[B])."""

    probs: jax.Array
    stats: EnsembleStats


def score_batch(tables: jax.Array, critics: dict, batch: Batch, *, pipeline: Pipeline,
                n_critics: int, groups: int = 1) -> BatchScores:
    """Every critic's score of every input of a batch.

    Args:
      tables: ``render_tables`` of the kit.
      critics: stacked critic variables, leaves [K', ...] with K' >= n_critics (padding
        critics, so that K' divides the critics axis, are dropped here).
      batch: the inputs.
      pipeline: the settings of every stage.
      n_critics: K.
      groups: groups of critics run side by side: the devices on the critics axis.
    """
    views = critic_view(tables, Loop(batch.grid, batch.samples, batch.velocity),
                        pipeline.render)
    if batch.audio is not None:
        views = jnp.where(batch.is_audio[:, None], batch.audio, views)
    features = mfcc(views, pipeline.features)  # once per loop, shared by the K critics
    probs = critic_probs(critics, features, pipeline.critic, groups)[:, :n_critics]
    return BatchScores(probs, ensemble_stats(probs))


class Layout(NamedTuple):
    """Where arrays live: a mesh of local devices with axes ("loops", "critics")."""

    mesh: Mesh
    loops: NamedSharding
    critics: NamedSharding
    replicated: NamedSharding

    @property
    def n_loop_devices(self) -> int:
        return self.mesh.shape["loops"]

    @property
    def n_model_devices(self) -> int:
        return self.mesh.shape["critics"]


def make_layout(devices: Sequence[jax.Device], model_shards: int = 1) -> Layout:
    """Loops sharded over ``len(devices) // model_shards`` devices, critics over
    ``model_shards`` (replicated when 1).

    Raises:
      DdjaxError: ``model_shards`` does not divide the number of devices.
    """
    n = len(devices)
    if n % model_shards:
        raise DdjaxError(f"--model-shards {model_shards} must divide the {n} local devices")
    mesh = Mesh(np.array(devices).reshape(n // model_shards, model_shards),
                ("loops", "critics"))
    return Layout(mesh, NamedSharding(mesh, P("loops")), NamedSharding(mesh, P("critics")),
                  NamedSharding(mesh, P()))


@functools.lru_cache(maxsize=8)
def _scorer(pipeline: Pipeline, n_critics: int, mesh: Mesh):
    out = NamedSharding(mesh, P("loops"))
    return jax.jit(functools.partial(score_batch, pipeline=pipeline, n_critics=n_critics,
                                     groups=mesh.shape["critics"]),
                   out_shardings=BatchScores(out, EnsembleStats(out, out, out)))


def pad_critics(stacked: dict, multiple: int) -> dict:
    """Repeats the last critic so that K is a multiple of ``multiple`` (its scores are
    dropped by ``score_batch``)."""
    k = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    extra = -k % multiple
    if not extra:
        return stacked
    return jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), stacked)


class Scorer:
    """An ensemble and a kit placed on a layout; scores host batches."""

    def __init__(self, ensemble: Ensemble, kit: Kit, pipeline: Pipeline, layout: Layout):
        self.layout, self.pipeline, self.n_critics = layout, pipeline, len(ensemble)
        self.tables = jax.device_put(render_tables(kit.audio, pipeline.render),
                                     layout.replicated)
        self.critics = jax.device_put(pad_critics(ensemble.variables,
                                                  layout.n_model_devices), layout.critics)
        self._fn = _scorer(pipeline, self.n_critics, layout.mesh)

    def padded_size(self, n: int) -> int:
        d = self.layout.n_loop_devices
        return -(-n // d) * d

    def __call__(self, items: Sequence[Item | None]) -> BatchScores:
        """Dispatches one batch (asynchronously); rows follow ``items``, padded."""
        return self._fn(self.tables, self.critics, self.batch_arrays(items))

    def batch_arrays(self, items: Sequence[Item | None]) -> Batch:
        """The items as a ``Batch`` on the layout, padded to the loop devices."""
        loops = self.pipeline.loops
        size = self.padded_size(len(items))
        grid = np.zeros((size, loops.n_tracks, loops.n_steps), bool)
        samples = np.tile(np.arange(loops.n_tracks, dtype=np.int32), (size, 1))
        velocity = np.full(grid.shape, FULL_VELOCITY, np.int32)
        has_audio = any(it is not None and it.audio is not None for it in items)
        audio = np.zeros((size, self.pipeline.render.bar_samples), np.float32) \
            if has_audio else None
        is_audio = np.zeros(size, bool) if has_audio else None
        for row, item in enumerate(items):
            if item is None:
                continue
            if item.audio is not None:
                audio[row], is_audio[row] = item.audio, True
            else:
                grid[row], samples[row] = item.grid, item.samples
                if item.velocity is not None:
                    velocity[row] = item.velocity
        put = lambda x: None if x is None else jax.device_put(x, self.layout.loops)
        return Batch(put(grid), put(samples), put(velocity), put(audio), put(is_audio))


# ---------------------------------------------------------------- results (host side)


def csv_header(ensemble: Ensemble, per_critic: bool) -> list[str]:
    """``id, source, mean, vote, std`` and, with ``per_critic``, one column per critic."""
    return ["id", "source", "mean", "vote", "std"] + (
        [f"critic:{name}" for name in ensemble.names] if per_critic else [])


def _fmt(x) -> str:
    return f"{float(x):.8f}"


def format_rows(ids: Sequence[int], items: Sequence[Item | None], scores: BatchScores,
                per_critic: bool) -> str:
    """CSV text of a finished batch: one row per input that was not skipped."""
    probs, stats = jax.device_get(scores)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row, (index, item) in enumerate(zip(ids, items)):
        if item is None:
            continue
        writer.writerow([index, item.source.label, _fmt(stats.mean[row]),
                         _fmt(stats.vote[row]), _fmt(stats.std[row])]
                        + ([_fmt(p) for p in probs[row]] if per_critic else []))
    return buf.getvalue()


def shard_path(out: pathlib.Path, process_id: int, num_processes: int) -> pathlib.Path:
    """This host's CSV: ``out`` itself on one host, else ``stem.partP-of-N.csv``."""
    if num_processes == 1:
        return out
    return out.with_name(f"{out.stem}.part{process_id:03d}-of-{num_processes:03d}{out.suffix}")


def progress_path(out: pathlib.Path) -> pathlib.Path:
    return out.with_name(out.name + PROGRESS_SUFFIX)


def fingerprint(**facts) -> str:
    """A digest of everything that decides the rows: resume refuses a different run."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Progress(NamedTuple):
    """The durable state of a run: batches done by this host, and the CSV's length."""

    fingerprint: str
    batches_done: int
    csv_bytes: int


def read_progress(out: pathlib.Path, expected: str) -> Progress:
    """The progress of an interrupted run at ``out``, for ``--resume``.

    Raises:
      DdjaxError: there is none, it is unreadable, or it was made with other inputs.
    """
    path = progress_path(out)
    if not path.is_file():
        what = "is complete" if out.is_file() else "does not exist"
        raise DdjaxError(f"nothing to resume: {out} {what} and has no {path.name}; run"
                         " without --resume")
    try:
        progress = Progress(**json.loads(path.read_text()))
    except (ValueError, TypeError, OSError):
        raise DdjaxError(f"{path} is corrupt; delete it and {out} and run without"
                         " --resume") from None
    if progress.fingerprint != expected:
        raise DdjaxError(f"{out} was made with other inputs, critics or settings; run without"
                         " --resume to start over")
    if not out.is_file() or out.stat().st_size < progress.csv_bytes:
        raise DdjaxError(f"{out} is shorter than {path.name} records; run without --resume")
    return progress


def write_progress(out: pathlib.Path, progress: Progress) -> None:
    atomic_write_bytes(progress_path(out), json.dumps(progress._asdict()).encode())


# ---------------------------------------------------------------- the run


class Summary(NamedTuple):
    """What a run did: rows written, inputs skipped, batches scored now, the CSV."""

    rows: int
    skipped: int
    batches: int
    csv: pathlib.Path


def rescore(sources_fn, n_inputs: int, ensemble: Ensemble, kit: Kit, pipeline: Pipeline,
            config: RescoreConfig, out: pathlib.Path, *, resume: bool = False,
            facts: dict | None = None, devices: Sequence[jax.Device] | None = None
            ) -> Summary:
    """Scores every input against the ensemble and writes this host's CSV.

    Args:
      sources_fn: a function returning a fresh iterator over the inputs (``Source``s),
        called once per pass; the stream is read lazily, ``config.batch`` at a time.
      n_inputs: the number of inputs (for the progress bar and the batch count).
      ensemble: the K critics.
      kit: the kit the loops reference.
      pipeline: every stage's settings (``pipeline.critic`` is the ensemble's).
      config: batching, sharding and host settings.
      out: the CSV (on several hosts, this host's shard is ``shard_path(out, ...)``).
      resume: continue an interrupted run at ``out`` instead of starting over.
      facts: what identifies the run's inputs, for the resume fingerprint.
      devices: local devices to shard over (default: all).
    """
    out = shard_path(out, config.process_id, config.num_processes)
    layout = make_layout(devices or jax.local_devices(), config.model_shards)
    scorer = Scorer(ensemble, kit, pipeline, layout)
    inputs = Inputs(kit, pipeline, config.seed)
    digest = fingerprint(facts=facts or {}, critics=[file_digest(p) if p else "" for p in
                                                     ensemble.paths],
                         kit=[str(kit.root), kit.names], pipeline=dataclasses.asdict(pipeline),
                         batch=config.batch, per_critic=config.per_critic, seed=config.seed,
                         host=[config.process_id, config.num_processes])
    n_batches = -(-n_inputs // config.batch)
    mine = [b for b in range(n_batches) if b % config.num_processes == config.process_id]
    header = ",".join(csv_header(ensemble, config.per_critic)) + "\n"
    if resume:
        progress = read_progress(out, digest)
        with open(out, "r+b") as f:
            f.truncate(progress.csv_bytes)  # drops a torn last write
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write(header)
        progress = Progress(digest, 0, len(header.encode()))
        write_progress(out, progress)

    report = Reporter()
    todo = mine[progress.batches_done:]
    my_inputs = sum(min(config.batch, n_inputs - b * config.batch) for b in mine)
    done_inputs = sum(min(config.batch, n_inputs - b * config.batch)
                      for b in mine[:progress.batches_done])
    stream = iter(sources_fn())
    position = 0  # batches of the stream consumed
    pending = None
    with open(out, "ab") as csv_file, tqdm(total=my_inputs, initial=done_inputs, unit="loop",
                                          desc="rescore", disable=None) as bar:
        def finish(pending, progress):
            b, sources, items, scores = pending
            ids = range(b * config.batch, b * config.batch + len(sources))
            text = format_rows(ids, items, scores, config.per_critic).encode()
            csv_file.write(text)
            csv_file.flush()
            os.fsync(csv_file.fileno())
            progress = progress._replace(batches_done=progress.batches_done + 1,
                                         csv_bytes=progress.csv_bytes + len(text))
            write_progress(out, progress)
            bar.update(len(sources))
            return progress

        for b in todo:
            sources = list(itertools.islice(stream, (b - position) * config.batch,
                                            (b - position + 1) * config.batch))
            position = b + 1
            items = inputs.load(sources, report)  # overlaps the previous batch on device
            scores = scorer(items)
            if pending is not None:
                progress = finish(pending, progress)
            pending = (b, sources, items, scores)
        if pending is not None:
            progress = finish(pending, progress)
    progress_path(out).unlink()
    rows = count_rows(out)
    return Summary(rows, report.skipped, len(todo), out)


def count_rows(path: pathlib.Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


class Ranked(NamedTuple):
    id: int
    source: str
    mean: float
    vote: float
    std: float


def read_ranked(path: pathlib.Path) -> Iterator[Ranked]:
    """The rows of a results CSV, streamed."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            yield Ranked(int(row[0]), row[1], float(row[2]), float(row[3]), float(row[4]))


def best_and_worst(path: pathlib.Path, top: int, bottom: int
                   ) -> tuple[list[Ranked], list[Ranked]]:
    """The ``top`` highest and ``bottom`` lowest ensemble means (ties: lower id first),
    in bounded memory."""
    best = heapq.nsmallest(top, read_ranked(path), key=lambda r: (-r.mean, r.id))
    worst = heapq.nsmallest(bottom, read_ranked(path), key=lambda r: (r.mean, r.id))
    return best, worst


def export_ranked(ranked: Sequence[Ranked], label: str, folder: pathlib.Path,
                  sources_fn, inputs: Inputs) -> None:
    """Writes ``{label}_001.wav`` + ``.json`` (rank 1 first) for each ranked row: a loop's
    listening render and record, or an audio input's scored first bar."""
    if not ranked:
        return
    wanted = {r.id: rank for rank, r in enumerate(ranked, start=1)}
    found = {}
    for index, source in enumerate(sources_fn()):
        if index in wanted:
            found[index] = source
            if len(found) == len(wanted):
                break
    render = inputs.pipeline.render
    listen = jax.jit(functools.partial(listening_render, config=render))
    report = Reporter()
    for row in ranked:
        item = inputs.load([found[row.id]], report)[0]
        stem = folder / f"{label}_{wanted[row.id]:03d}"
        extra = {"id": row.id, "source": row.source, "rank": wanted[row.id],
                 "vote": row.vote, "std": row.std}
        if item.audio is not None:
            write_audio(stem.with_suffix(".wav"), item.audio, inputs.kit.sr)
            text = json.dumps({"score": row.mean, **extra}, indent=1) + "\n"
            atomic_write_bytes(stem.with_suffix(".json"), text.encode())
            continue
        loop = Loop(jnp.asarray(item.grid)[None], jnp.asarray(item.samples)[None],
                    None if item.velocity is None else jnp.asarray(item.velocity)[None])
        write_audio(stem.with_suffix(".wav"), np.asarray(listen(inputs.kit.audio, loop))[0],
                  inputs.kit.sr)
        write_loop_json(stem.with_suffix(".json"), {
            **loop_record(item.grid, list(item.names), bpm=render.bpm, score=row.mean,
                          velocity=item.velocity),
            **extra})


# ---------------------------------------------------------------- command line


def add_parser(commands) -> argparse.ArgumentParser:
    """Registers ``ddjax rescore`` on the CLI's subparsers."""
    cmd = commands.add_parser(
        "rescore", help="score many loops with an ensemble of critics, to CSV",
        description=(
            "Scores every loop with K critics at once (one MFCC per loop, critics vmapped),"
            " streamed in fixed-size batches over all local devices, and writes one CSV row"
            " per loop: id, source, the ensemble's mean, vote share (critics with f > 0.5)"
            " and standard deviation."))
    cmd.add_argument("--critics", nargs="+", required=True, metavar="FILE_OR_DIR",
                     help="critic files, or folders of *.critic files")
    what = cmd.add_mutually_exclusive_group(required=True)
    what.add_argument("--loops", nargs="+", metavar="DIR_OR_JSONL",
                      help="loop folders (their .json, .jsonl and audio files), .json or"
                           " .jsonl files, or audio files (the first bar is scored)")
    what.add_argument("--generate", type=positive_int, metavar="N",
                      help="score N fresh random loops from the prior instead")
    cmd.add_argument("--kit", type=pathlib.Path, default=BUNDLED_KIT,
                     help="folder of one-shot samples (default: the bundled samples/)")
    cmd.add_argument("--bpm", type=bpm, default=120.0,
                     help="tempo to render at; loops at other tempi are skipped (default 120)")
    cmd.add_argument("--tracks", type=tracks, default=4,
                     help=f"tracks a loop has, 1 to {limits.MAX_TRACKS}: --generate makes"
                          " them, loop files of another size are skipped (default 4)")
    cmd.add_argument("--batch", type=positive_int, default=64,
                     help="inputs per batch, split over the devices (default 64)")
    cmd.add_argument("--top", type=non_negative_int, default=0, metavar="K",
                     help="write the K best loops (highest mean) as WAV + JSON")
    cmd.add_argument("--bottom", type=non_negative_int, default=0, metavar="K",
                     help="write the K worst loops (lowest mean) as WAV + JSON")
    cmd.add_argument("--per-critic", action="store_true",
                     help="also write every critic's score, one column each")
    cmd.add_argument("--seed", type=int, default=0, help="PRNG seed of --generate (default 0)")
    cmd.add_argument("--model-shards", type=positive_int, default=1, metavar="M",
                     help="shard the critics over M local devices (default 1: replicate)")
    cmd.add_argument("--resume", action="store_true",
                     help="continue an interrupted run with the same arguments")
    host = cmd.add_argument_group("multi-host (see docs/distributed.md)")
    host.add_argument("--distributed", action="store_true",
                      help="call jax.distributed.initialize() (cluster auto-detection, or"
                           " the flags below); each host writes FILE.partP-of-N.csv")
    host.add_argument("--coordinator", metavar="HOST:PORT",
                      help="address of process 0 (implies --distributed)")
    host.add_argument("--num-processes", type=positive_int, metavar="N")
    host.add_argument("--process-id", type=non_negative_int, metavar="P")
    cmd.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE.csv")
    return cmd


def _hosts(args) -> tuple[int, int]:
    if args.distributed or args.coordinator:
        try:
            jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        except (RuntimeError, ValueError) as err:
            raise DdjaxError(f"jax.distributed.initialize failed: {str(err).splitlines()[0]};"
                             " check --coordinator, --num-processes and --process-id") from None
        return jax.process_index(), jax.process_count()
    if (args.num_processes is None) != (args.process_id is None):
        raise DdjaxError("--num-processes and --process-id go together")
    return args.process_id or 0, args.num_processes or 1


def run(args) -> int:
    """``ddjax rescore``: the thin shell around ``rescore``."""
    process_id, num_processes = _hosts(args)
    config = RescoreConfig(batch=args.batch, model_shards=args.model_shards,
                           per_critic=args.per_critic, seed=args.seed,
                           process_id=process_id, num_processes=num_processes)
    check_file_target(shard_path(args.out, process_id, num_processes), "--out")
    pipeline = Pipeline.sized(args.bpm, args.tracks)
    ensemble = load_ensemble(args.critics, pipeline)
    pipeline = dataclasses.replace(pipeline, critic=ensemble.config)
    n_devices = len(jax.local_devices())
    limits.check_count("--batch", args.batch, limits.score_loop_bytes(pipeline),
                       devices=max(1, n_devices // args.model_shards))
    if args.kit == BUNDLED_KIT and not args.kit.is_dir():
        raise DdjaxError(f"the bundled kit is not installed here ({args.kit}); pass --kit DIR")
    kit = load_kit(args.kit, pipeline.render.bar_samples, sr=pipeline.render.sr,
                   min_samples=pipeline.loops.n_tracks)
    if args.generate is not None:
        sources_fn = lambda: random_sources(args.generate, args.seed)
        n_inputs = args.generate
        facts = {"generate": args.generate}
    else:
        files = input_files(args.loops)
        sources_fn = lambda: iter_sources(files)
        n_inputs = sum(1 for _ in sources_fn())
        facts = {"loops": [str(p.resolve()) for p in files]}
    if n_inputs == 0:
        raise DdjaxError("no loops to score: the --loops folders hold no .json, .jsonl or"
                         " audio file")
    summary = rescore(sources_fn, n_inputs, ensemble, kit, pipeline, config, args.out,
                      resume=args.resume, facts=facts)
    if args.top or args.bottom:
        best, worst = best_and_worst(summary.csv, args.top, args.bottom)
        inputs = Inputs(kit, pipeline, args.seed)
        stem = summary.csv.with_suffix("")
        export_ranked(best, "top", stem.with_name(stem.name + "_top"), sources_fn, inputs)
        export_ranked(worst, "bottom", stem.with_name(stem.name + "_bottom"), sources_fn,
                      inputs)
    if summary.skipped:
        print(f"ddjax rescore: skipped {summary.skipped} input(s) (see the warnings above)",
              file=sys.stderr)
    print(f"scored {summary.rows} loops with {len(ensemble)} critics on"
          f" {len(jax.local_devices())} device(s): {summary.csv}")
    return 0
