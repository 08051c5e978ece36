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

Modules, in the order the data flows: ``rescore_inputs`` (host: paths -> items),
``rescore_scoring`` (device: items -> scores), ``rescore_output`` (host: scores -> CSV,
progress, exports), this module (one run, batch after batch) and ``rescore_cli`` (the
command).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
from collections.abc import Sequence
from typing import NamedTuple

import jax
from tqdm import tqdm

from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.critics import Ensemble
from ddjax.io.kit import Kit
from ddjax.rescore.inputs import Inputs, Reporter
from ddjax.rescore.output import (
    Progress,
    count_rows,
    csv_header,
    file_digest,
    fingerprint,
    format_rows,
    progress_path,
    read_progress,
    shard_path,
    write_progress,
)
from ddjax.rescore.scoring import Scorer, make_layout
from ddjax.rescore.shards import shard_settings, write_settings


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
    decides = {"facts": facts or {},
               "critics": [file_digest(p) if p else "" for p in ensemble.paths],
               "kit": [str(kit.root), kit.names], "pipeline": dataclasses.asdict(pipeline),
               "batch": config.batch, "per_critic": config.per_critic, "seed": config.seed}
    digest = fingerprint(**decides, host=[config.process_id, config.num_processes])
    n_batches = -(-n_inputs // config.batch)
    mine = [b for b in range(n_batches) if b % config.num_processes == config.process_id]
    header = ",".join(csv_header(ensemble, config.per_critic)) + "\n"
    if resume:
        progress = read_progress(out, digest)
        with open(out, "r+b") as f:
            f.truncate(progress.csv_bytes)  # drops a torn last write
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        if config.num_processes > 1:  # durable before any row, for merge_shards
            write_settings(out, shard_settings(
                facts=facts or {}, n_inputs=n_inputs, batch=config.batch,
                critics=decides["critics"], seed=config.seed, per_critic=config.per_critic,
                run=fingerprint(**decides), process_id=config.process_id,
                num_processes=config.num_processes))
        with open(out, "w", encoding="utf-8") as f:
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
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
