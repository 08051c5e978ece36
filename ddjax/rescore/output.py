"""Rescoring, stage 3 (host): scores -> CSV rows, the progress file, the ranked exports.

After each batch the CSV is flushed and fsynced, then ``FILE.csv.progress`` records the
batches done and the CSV's length in bytes (``read_progress``, ``write_progress``); the
best and worst rows are read back in bounded memory and written as WAV + JSON.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import heapq
import io
import json
import pathlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.loops import Loop
from ddjax.core.render import listening_render
from ddjax.errors import DdjaxError
from ddjax.io.critics import Ensemble
from ddjax.io.files import atomic_write_bytes, loop_record, write_audio, write_loop_json
from ddjax.rescore.inputs import Inputs, Item, Reporter
from ddjax.rescore.scoring import BatchScores

PROGRESS_SUFFIX = ".progress"


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
