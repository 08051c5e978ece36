"""File I/O for loops: the JSON description, the WAV, and atomic writes.

This is the impure edge of the pipeline. A loop on disk is a JSON file::

    {"grid": [[0, 1, ...], ...], "samples": ["kick/kick_03.wav", ...], "bpm": 120,
     "score": 0.71, "seed": 0}

with sample paths relative to the kit folder (a swung loop adds ``"swing": 58,
"swing_scale": "mpc"``: ``ddjax.core.groove``), and an audio file of its listening render
(``ddjax.io.encode``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import secrets
from typing import Any, Iterator

import numpy as np

from ddjax import limits
from ddjax.core.groove import (
    STRAIGHT,
    SWING_SCALE,
    Humanize,
    of_record,
    recorded_swing,
    swing_record,
)
from ddjax.errors import DdjaxError
from ddjax.io.encode import DEFAULT_FORMAT, audio_bytes


def _blocking_file(path: pathlib.Path) -> pathlib.Path | None:
    """The nearest existing ancestor of ``path`` (or ``path`` itself) that is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def os_reason(err: OSError, path: pathlib.Path | None = None) -> str:
    """Why an OSError happened, in words: "no space left on device", "X is a file"."""
    if isinstance(err, IsADirectoryError) and path is not None and path.is_dir():
        return f"{path} is a folder"
    if isinstance(err, (NotADirectoryError, FileExistsError)) and path is not None:
        blocking = _blocking_file(path)
        if blocking is not None:
            return f"{blocking} is a file, not a folder"
    text = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    return text[:1].lower() + text[1:]


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turns an OSError raised while writing ``path`` into one DdjaxError that names the
    path and the reason (the CLI prints it as one line)."""
    try:
        yield
    except OSError as err:
        raise DdjaxError(f"cannot write {path}: {os_reason(err, pathlib.Path(path))}") from None


def make_folder(path: str | os.PathLike) -> pathlib.Path:
    """``mkdir -p path``, or a DdjaxError that says why not (a file in the way, ...)."""
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DdjaxError(f"cannot create folder {path}: {os_reason(err, path)}") from None
    return path


def _probe_folder(folder: pathlib.Path) -> None:
    """Creates and removes an empty file in the nearest existing folder of ``folder``, so
    that a read-only or forbidden target fails before any work."""
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    probe = where / f".ddjax-probe-{secrets.token_hex(6)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    os.unlink(probe)


def check_folder_target(path: str | os.PathLike, flag: str) -> pathlib.Path:
    """Checks, before any work, that ``path`` can be an output folder: it is a folder or
    can be made one, and files can be created there.

    Raises:
      DdjaxError: ``path`` is a file, a file is in the way, or the place is read-only,
        forbidden or otherwise unwritable.
    """
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise DdjaxError(f"{flag} {path} is a file; pass a folder")
    blocking = _blocking_file(path.parent)
    if blocking is not None:
        raise DdjaxError(f"{flag} {path}: {blocking} is a file, not a folder")
    try:
        _probe_folder(path)
    except OSError as err:
        raise DdjaxError(f"{flag} {path}: cannot write there: {os_reason(err)}") from None
    return path


def check_file_target(path: str | os.PathLike, flag: str) -> pathlib.Path:
    """Checks, before any work, that ``path`` can be an output file: not a folder, its
    folder exists or can be made, and files can be created there.

    Raises:
      DdjaxError: as ``check_folder_target``, or ``path`` is a folder.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise DdjaxError(f"{flag} {path} is a folder; pass a file name")
    blocking = _blocking_file(path.parent)
    if blocking is not None:
        raise DdjaxError(f"{flag} {path}: {blocking} is a file, not a folder")
    try:
        _probe_folder(path.parent)
    except OSError as err:
        raise DdjaxError(f"{flag} {path}: cannot write there: {os_reason(err)}") from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` so that ``path`` holds either its old or its new content, never a mix:
    temp file in the same folder, fsync, rename, fsync of the folder.

    The file gets the mode an ordinary ``open`` gives (0666 less the umask: 0644 under the
    usual 022).

    Raises:
      DdjaxError: naming ``path`` and the reason, for any filesystem fault (no space,
        read-only, permission denied, a folder in the way); no temp file is left behind.
    """
    path = pathlib.Path(path)
    make_folder(path.parent)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    with writing(path):
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o666)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int,
                fmt: str = DEFAULT_FORMAT, *, tempo: tuple[float, int] | None = None) -> None:
    """Writes ``encode.audio_bytes`` atomically to ``path``."""
    atomic_write_bytes(path, audio_bytes(audio, sr, fmt, tempo=tempo))


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def loop_record(grid: np.ndarray, sample_names: list[str], *, bpm: float,
                score: float | None = None, seed: int | None = None,
                swing: float = STRAIGHT, velocity: np.ndarray | None = None,
                humanize: Humanize = Humanize()) -> dict[str, Any]:
    """The JSON object for one loop (``swing``, percent on the MPC scale, and its
    ``"swing_scale": "mpc"`` marker only where it is not straight: ``groove.swing_record``;
    ``velocity`` only where it is given: each cell's MIDI velocity, 1 to 127; ``humanize`` only where there
    is jitter: ``Humanize.record()``)."""
    record: dict[str, Any] = {
        "grid": np.asarray(grid).astype(int).tolist(),
        "samples": list(sample_names),
        "bpm": _number(bpm),
    }
    if velocity is not None:
        record["velocity"] = np.asarray(velocity).astype(int).tolist()
    record.update(swing_record(swing))
    if humanize:
        record["humanize"] = humanize.record()
    if score is not None:
        record["score"] = float(score)
    if seed is not None:
        record["seed"] = int(seed)
    return record


def loop_json(record: dict[str, Any]) -> str:
    """A loop record as JSON text, one grid row per line."""
    def rows(key):
        return "[\n  " + ",\n  ".join(json.dumps(row) for row in record[key]) + "\n ]"
    grids = [k for k in ("grid", "velocity") if k in record]
    rest = json.dumps({k: v for k, v in record.items() if k not in grids}, indent=1)
    return "{\n" + "".join(f' "{k}": {rows(k)},\n' for k in grids) + rest[2:] + "\n"


def write_loop_json(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Writes ``loop_json(record)`` atomically."""
    atomic_write_bytes(path, loop_json(record).encode())


MAX_LOOP_FILE_BYTES = 16 * 2**20  # a 8 x 64 loop's JSON is under 10 kB


def loads_json(text: str | bytes, where: str | os.PathLike) -> Any:
    """``json.loads`` whose every failure is one DdjaxError naming ``where``: malformed
    JSON, text that is not UTF-8, nesting too deep for the parser (a file of 100,000
    ``[``) and integers longer than Python reads (over 4,300 digits)."""
    if len(text) > MAX_LOOP_FILE_BYTES:
        raise DdjaxError(f"{where} is {len(text):,} bytes: more than a loop file's"
                         f" {MAX_LOOP_FILE_BYTES:,}")
    try:
        return json.loads(text)
    except RecursionError:
        raise DdjaxError(f"{where} is not a loop: its JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, too many digits
        raise DdjaxError(f"{where} is not valid JSON: {err}") from None


def read_loop_json(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks a loop's JSON file.

    Returns:
      ``{"grid": bool ndarray [tracks, steps], "samples": [names], "bpm": float, "swing":
      float, ...}``, ``swing`` always there, in percent on the MPC scale (a file from
      before that scale converted, ``groove.recorded_swing``).

    Raises:
      DdjaxError: unreadable file, malformed JSON, or missing/ill-typed keys.
    """
    try:
        if os.path.getsize(path) > MAX_LOOP_FILE_BYTES:
            raise DdjaxError(f"{path} is {os.path.getsize(path):,} bytes: more than a loop"
                             f" file's {MAX_LOOP_FILE_BYTES:,}")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise DdjaxError(f"cannot read loop file {path}: {err.strerror}") from None
    return check_loop_record(loads_json(data, path), path)


def check_loop_record(record: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Checks a parsed loop record (from a JSON file or a JSONL line named ``path``).

    Returns and raises as ``read_loop_json``.
    """
    if not isinstance(record, dict):
        raise DdjaxError(f"{path}: a loop file holds a JSON object")
    grid, samples = record.get("grid"), record.get("samples")
    if (not isinstance(grid, list) or not grid or not all(isinstance(r, list) for r in grid)
            or len({len(r) for r in grid}) != 1 or not grid[0]):
        raise DdjaxError(f"{path}: 'grid' must be a non-empty list of equal-length rows of 0/1")
    if len(grid) > limits.MAX_TRACKS or len(grid[0]) > limits.MAX_STEPS:
        raise DdjaxError(f"{path}: the grid has {len(grid)} tracks and {len(grid[0])} steps;"
                         f" a loop has 1 to {limits.MAX_TRACKS} tracks and 1 to"
                         f" {limits.MAX_STEPS} steps")
    if not all(v in (0, 1, True, False) for r in grid for v in r):
        raise DdjaxError(f"{path}: 'grid' must be a non-empty list of equal-length rows of 0/1")
    if (not isinstance(samples, list) or len(samples) != len(grid)
            or not all(isinstance(s, str) for s in samples)):
        raise DdjaxError(f"{path}: 'samples' must list one sample path per grid row")
    bpm = record.get("bpm", 120)
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)):
        raise DdjaxError(f"{path}: 'bpm' must be a number")
    if not limits.MIN_BPM <= bpm <= limits.MAX_BPM:
        raise DdjaxError(f"{path}: 'bpm' is {bpm}; it must be {limits.MIN_BPM:g} to"
                         f" {limits.MAX_BPM:g}")
    velocity = record.get("velocity")
    if velocity is not None:
        if (not isinstance(velocity, list) or len(velocity) != len(grid)
                or not all(isinstance(r, list) and len(r) == len(grid[0]) for r in velocity)
                or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 127
                           for r in velocity for v in r)):
            raise DdjaxError(f"{path}: 'velocity' must have the grid's shape, with a MIDI"
                             " velocity from 1 to 127 in every cell")
        velocity = np.array(velocity, np.int32)
    swing = recorded_swing(record, str(path))  # the old scale converted: ddjax.core.groove
    of_record(record, str(path))  # a DdjaxError where 'humanize' is malformed
    return {**record, "grid": np.array(grid, dtype=bool), "samples": samples,
            "bpm": float(bpm), "swing": swing, "swing_scale": SWING_SCALE,
            **({"velocity": velocity} if velocity is not None else {})}
