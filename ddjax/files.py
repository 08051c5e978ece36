"""File I/O for loops: the JSON description, the WAV, and atomic writes.

This is the impure edge of the pipeline. A loop on disk is a JSON file::

    {"grid": [[0, 1, ...], ...], "samples": ["kick/kick_03.wav", ...], "bpm": 120,
     "score": 0.71, "seed": 0}

with sample paths relative to the kit folder, and a WAV of its listening render.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np
import soundfile as sf

from ddjax.errors import DdjaxError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` so that ``path`` holds either its old or its new content, never a mix:
    temp file in the same folder, fsync, rename, fsync of the folder."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """Mono float audio as a 32-bit float WAV file's bytes (no clipping, exact samples)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, np.float32), sr, subtype="FLOAT", format="WAV")
    return buffer.getvalue()


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int) -> None:
    """Writes ``wav_bytes`` atomically to ``path``."""
    atomic_write_bytes(path, wav_bytes(audio, sr))


def loop_record(grid: np.ndarray, sample_names: list[str], *, bpm: float,
                score: float | None = None, seed: int | None = None) -> dict[str, Any]:
    """The JSON object for one loop."""
    record: dict[str, Any] = {
        "grid": np.asarray(grid).astype(int).tolist(),
        "samples": list(sample_names),
        "bpm": int(bpm) if float(bpm).is_integer() else float(bpm),
    }
    if score is not None:
        record["score"] = float(score)
    if seed is not None:
        record["seed"] = int(seed)
    return record


def loop_json(record: dict[str, Any]) -> str:
    """A loop record as JSON text, one grid row per line."""
    rows = ",\n  ".join(json.dumps(row) for row in record["grid"])
    rest = json.dumps({k: v for k, v in record.items() if k != "grid"}, indent=1)
    return '{\n "grid": [\n  ' + rows + "\n ],\n" + rest[2:] + "\n"


def write_loop_json(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Writes ``loop_json(record)`` atomically."""
    atomic_write_bytes(path, loop_json(record).encode())


def read_loop_json(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks a loop's JSON file.

    Returns:
      ``{"grid": bool ndarray [tracks, steps], "samples": [names], "bpm": float, ...}``.

    Raises:
      DdjaxError: unreadable file, malformed JSON, or missing/ill-typed keys.
    """
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except OSError as err:
        raise DdjaxError(f"cannot read loop file {path}: {err.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DdjaxError(f"{path} is not valid JSON: {err}") from None
    return check_loop_record(record, path)


def check_loop_record(record: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Checks a parsed loop record (from a JSON file or a JSONL line named ``path``).

    Returns and raises as ``read_loop_json``.
    """
    if not isinstance(record, dict):
        raise DdjaxError(f"{path}: a loop file holds a JSON object")
    grid, samples = record.get("grid"), record.get("samples")
    if (not isinstance(grid, list) or not grid or not all(isinstance(r, list) for r in grid)
            or len({len(r) for r in grid}) != 1 or not grid[0]
            or not all(v in (0, 1, True, False) for r in grid for v in r)):
        raise DdjaxError(f"{path}: 'grid' must be a non-empty list of equal-length rows of 0/1")
    if (not isinstance(samples, list) or len(samples) != len(grid)
            or not all(isinstance(s, str) for s in samples)):
        raise DdjaxError(f"{path}: 'samples' must list one sample path per grid row")
    bpm = record.get("bpm", 120)
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)):
        raise DdjaxError(f"{path}: 'bpm' must be a number")
    return {**record, "grid": np.array(grid, dtype=bool), "samples": samples,
            "bpm": float(bpm)}
