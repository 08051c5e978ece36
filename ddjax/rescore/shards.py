"""Rescoring on several hosts (host side, no JAX): each shard's settings record, and the
merge of the shards into the single-host CSV.

Every shard ``FILE.partPPP-of-NNN.csv`` is written with ``FILE.partPPP-of-NNN.csv.settings``
beside it: the inputs, batch, critics, seed and ddjax version that decide its rows.
``merge_shards`` refuses shards whose settings disagree, a missing or repeated host, and a
shard that is still in progress, each with one line, before it writes anything.
"""

from __future__ import annotations

import heapq
import json
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence

from ddjax import __version__
from ddjax.errors import DdjaxError

SETTINGS_SUFFIX = ".settings"

# What decides a shard's rows, in the order a disagreement is reported; ``run`` is the
# digest of everything else (kit, pipeline, critic files).
COMPARED = (("ddjax", "ddjax version"), ("inputs", "inputs (--loops / --generate)"),
            ("n_inputs", "number of inputs"), ("batch", "--batch"),
            ("critics", "critics"), ("seed", "--seed"), ("per_critic", "--per-critic"),
            ("num_processes", "number of hosts"),
            ("run", "kit, --bpm, --tracks or critic files"))


def settings_path(shard: pathlib.Path) -> pathlib.Path:
    return shard.with_name(shard.name + SETTINGS_SUFFIX)


def shard_settings(*, facts: dict, n_inputs: int, batch: int, critics: Sequence[str],
                   seed: int, per_critic: bool, run: str, process_id: int,
                   num_processes: int) -> dict:
    """The record written beside a shard (``run``: a digest of the remaining settings)."""
    return {"ddjax": __version__, "inputs": facts, "n_inputs": n_inputs, "batch": batch,
            "critics": list(critics), "seed": seed, "per_critic": per_critic, "run": run,
            "process_id": process_id, "num_processes": num_processes}


def write_settings(shard: pathlib.Path, settings: dict) -> None:
    """Writes the record durably (temp file, fsync, rename) before any row is scored."""
    path = settings_path(shard)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def read_settings(shard: pathlib.Path) -> dict:
    """The settings record of a finished shard.

    Raises:
      DdjaxError: the shard or its record is missing, unreadable, or the shard is
        unfinished (its ``.progress`` file is still there).
    """
    path = settings_path(shard)
    if not shard.is_file():
        raise DdjaxError(f"cannot merge: {shard} does not exist")
    if shard.with_name(shard.name + ".progress").exists():
        raise DdjaxError(f"cannot merge: {shard} is unfinished (its .progress file is there);"
                         " finish that host's run with --resume first")
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DdjaxError(f"cannot merge: {shard} has no {path.name}; merge the shards that"
                         " ddjax rescore wrote on several hosts") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise DdjaxError(f"cannot merge: {path} is not a readable settings record") from None
    keys = {key for key, _ in COMPARED} | {"process_id"}
    if not isinstance(settings, dict) or not keys <= settings.keys():
        raise DdjaxError(f"cannot merge: {path} is not a settings record of ddjax rescore")
    return settings


def check_shards(parts: Sequence[pathlib.Path]) -> list[dict]:
    """The settings of every shard, after checking that they are one run's complete set.

    Raises:
      DdjaxError: one line naming the first disagreement, missing or repeated host.
    """
    settings = [read_settings(p) for p in parts]
    first = settings[0]
    for part, other in zip(parts[1:], settings[1:]):
        for key, label in COMPARED:
            if other[key] != first[key]:
                shown = (f" ({first[key]} vs {other[key]})"
                         if isinstance(first[key], (int, str)) and len(str(first[key])) < 40
                         else "")
                raise DdjaxError(f"cannot merge {parts[0]} and {part}: they were made with"
                                 f" different {label}{shown}; rescore every host with the"
                                 " same settings")
    n = first["num_processes"]
    hosts = [s["process_id"] for s in settings]
    repeated = sorted({h for h in hosts if hosts.count(h) > 1})
    if repeated:
        raise DdjaxError(f"cannot merge: host {repeated[0]}'s shard is given twice")
    missing = sorted(set(range(n)) - set(hosts))
    if missing:
        raise DdjaxError(f"cannot merge: the shard of host(s) {', '.join(map(str, missing))}"
                         f" of {n} is missing; pass all {n} parts")
    return settings


def _rows(part: pathlib.Path, settings: dict) -> Iterator[tuple[int, str]]:
    batch, n, p = settings["batch"], settings["num_processes"], settings["process_id"]
    with open(part, encoding="utf-8", newline="") as f:
        next(f)
        for number, line in enumerate(f, start=2):
            head = line.split(",", 1)[0]
            if not head.isdigit() or int(head) // batch % n != p or not line.endswith("\n"):
                raise DdjaxError(f"cannot merge: {part} line {number} is not one of host"
                                 f" {p}'s rows; the shard is damaged: rescore that host")
            yield int(head), line


def merge_shards(parts: Sequence[pathlib.Path], out: pathlib.Path) -> int:
    """Writes the rows of every shard, sorted by id, under one header: the CSV a single
    host writes. Returns the number of rows.

    Raises:
      DdjaxError: as ``check_shards``, the headers differ, or a row is out of place
        (nothing is written at ``out`` then).
    """
    parts = [pathlib.Path(p) for p in parts]
    settings = check_shards(parts)
    headers = set()
    for part in parts:
        with open(part, encoding="utf-8", newline="") as f:
            headers.add(f.readline())
    if len(headers) != 1:
        raise DdjaxError(f"cannot merge: the shards' CSV headers differ ({parts[0]} ...)")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    rows, last = 0, -1
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(headers.pop())
            for index, line in heapq.merge(*(_rows(p, s) for p, s in zip(parts, settings))):
                if index == last:
                    raise DdjaxError(f"cannot merge: row id {index} appears twice")
                f.write(line)
                rows, last = rows + 1, index
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return rows
