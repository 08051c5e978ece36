"""What a session folder's records must hold, field by field (``ddjax.session.journal``
reads them): ``session.json`` and each line of ``ratings.jsonl``; and what
``session.json``'s settings mean (tempo, tracks, swing, humanize).

Every record is checked before anything is written, so a file damaged by hand or by a
crash gives one line naming the field (``session.json``) or is set aside
(a log line), never a ``KeyError`` after the checkpoint was rewritten.
"""

from __future__ import annotations

from typing import Any

from ddjax import limits
from ddjax.core.groove import SWING_SCALE, Humanize, of_record, recorded_swing
from ddjax.errors import DdjaxError

MAX_LOOP_ID = 10**9  # a session hands out ids from 0, one per loop shown
MAX_VELOCITY = 127  # MIDI


def is_int(x: Any, low: int, high: int | None = None) -> bool:
    """``x`` is a JSON integer (not a bool) from ``low`` to ``high`` (None: no bound)."""
    return (isinstance(x, int) and not isinstance(x, bool) and x >= low
            and (high is None or x <= high))


def is_number(x: Any) -> bool:
    """``x`` is a JSON number (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_meta(meta: Any, path) -> dict:
    """``session.json``'s object, checked; a DdjaxError naming the first bad field.

    ``kit`` (a folder, as a string) is required; ``seed``, ``bpm``, ``tracks``,
    ``session`` (its ``pretrained`` and ``loop_prior``), ``train``, ``swing`` and
    ``humanize`` are optional (older sessions lack them) but must be well formed."""
    fix = "restore it from a backup, or start a new session in another folder"
    if not isinstance(meta, dict):
        raise DdjaxError(f"{path} is not a session file (not a JSON object); {fix}")

    def bad(field: str, what: str) -> DdjaxError:
        return DdjaxError(f"{path}: {field!r} is {_short(meta.get(field))}; it must be"
                          f" {what}; {fix}")
    if not isinstance(meta.get("kit"), str) or not meta["kit"]:
        raise bad("kit", "the kit folder, as a string")
    if "seed" in meta and not is_int(meta["seed"], 0):
        raise bad("seed", "a whole number, 0 or more")
    if "bpm" in meta and not (is_number(meta["bpm"])
                              and limits.MIN_BPM <= meta["bpm"] <= limits.MAX_BPM):
        raise bad("bpm", f"a tempo, {limits.MIN_BPM:g} to {limits.MAX_BPM:g}")
    if "tracks" in meta and not is_int(meta["tracks"], 1, limits.MAX_TRACKS):
        raise bad("tracks", f"a whole number, 1 to {limits.MAX_TRACKS}")
    for field in ("session", "train"):
        if field in meta and not isinstance(meta[field], dict):
            raise bad(field, "an object of settings")
    session = meta.get("session", {})
    for key in ("pretrained", "loop_prior"):
        if session.get(key) is not None and not isinstance(session[key], str):
            raise DdjaxError(f"{path}: 'session' {key!r} is {_short(session[key])}; it must"
                             f" be a string; {fix}")
    recorded_swing(meta, str(path))  # each a DdjaxError naming the field
    of_record(meta, str(path))
    return meta


def loop_problem(loop: Any, shape: tuple[int, int]) -> str | None:
    """Why ``loop`` (a logged loop's record) is not a loop of ``shape`` (tracks, steps),
    or None: ``grid`` 0/1 of that shape, ``samples`` one string per track, ``velocity``
    (optional) of the grid's shape in 0 to 127, ``score`` (optional) a number."""
    tracks, steps = shape
    if not isinstance(loop, dict):
        return "'loop' is not an object"
    grid = loop.get("grid")
    if (not isinstance(grid, list) or len(grid) != tracks
            or not all(isinstance(row, list) and len(row) == steps for row in grid)):
        return f"'grid' is not {tracks} rows of {steps} steps"
    if not all(is_int(v, 0, 1) or isinstance(v, bool) for row in grid for v in row):
        return "'grid' holds values other than 0 and 1"
    samples = loop.get("samples")
    if (not isinstance(samples, list) or len(samples) != tracks
            or not all(isinstance(s, str) for s in samples)):
        return f"'samples' is not {tracks} sample names"
    velocity = loop.get("velocity")
    if velocity is not None and (
            not isinstance(velocity, list) or len(velocity) != tracks
            or not all(isinstance(row, list) and len(row) == steps for row in velocity)
            or not all(is_int(v, 0, MAX_VELOCITY) for row in velocity for v in row)):
        return f"'velocity' is not the grid's shape of whole numbers 0 to {MAX_VELOCITY}"
    if loop.get("score") is not None and not is_number(loop["score"]):
        return "'score' is not a number"
    return None


def entry_problem(entry: Any, shape: tuple[int, int]) -> str | None:
    """Why ``entry`` (a parsed log line) is no log record for loops of ``shape``, or None.

    A rating: ``id`` (0 to ``MAX_LOOP_ID``), ``loop`` (``loop_problem``), ``liked`` (a
    bool), ``critic_version`` (optional, 0 or more); an undo: ``{"undo": ID}``; a skip:
    ``{"skip": ID, "loop": ...}``."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    for key in ("undo", "skip", "id"):
        if key in entry:
            if not is_int(entry[key], 0, MAX_LOOP_ID):
                return f"{key!r} is not a loop id, 0 to {MAX_LOOP_ID:,}"
            break
    else:
        return "no 'id', 'undo' or 'skip'"
    if "undo" in entry:
        return None
    if "loop" not in entry:
        return "no 'loop'"
    problem = loop_problem(entry["loop"], shape)
    if problem is not None or "skip" in entry:
        return problem
    if not isinstance(entry.get("liked"), bool):
        return "'liked' is not true or false"
    if "critic_version" in entry and not is_int(entry["critic_version"], 0):
        return "'critic_version' is not a whole number, 0 or more"
    return None


def recorded_sizes(meta: dict) -> tuple[float, int, float]:
    """(bpm, tracks, swing) a session's ``session.json`` records; older sessions: 120, 4
    and straight. Swing is in percent on the MPC scale; a session from before that scale
    (no ``swing_scale``) is converted (``groove.recorded_swing``)."""
    return float(meta.get("bpm", 120.0)), int(meta.get("tracks", 4)), recorded_swing(
        meta, "session.json")


def swing_meta(swing: float) -> dict:
    """What ``session.json`` keeps of ``swing`` (percent, MPC scale): the value and the
    scale's marker."""
    return {"swing": swing, "swing_scale": SWING_SCALE}


def recorded_humanize(meta: dict) -> Humanize:
    """The humanize a session's ``session.json`` records (none before sessions had it)."""
    return of_record(meta, "session.json")


def humanize_meta(humanize: Humanize) -> dict:
    """What ``session.json`` keeps of ``humanize``: nothing where there is no jitter."""
    return {"humanize": humanize.record()} if humanize else {}


def check_sizes(directory, meta: dict, pipeline) -> None:
    """A DdjaxError unless ``pipeline`` has the tempo, track count, swing and humanize the
    session in ``directory`` was made with."""
    bpm, tracks, swing = recorded_sizes(meta)
    here = (pipeline.render.bpm, pipeline.loops.n_tracks, pipeline.render.swing)
    if here != (bpm, tracks, swing):
        raise DdjaxError(f"the session in {directory} was made at {bpm:g} BPM with {tracks}"
                         f" tracks and {swing:g}% swing, not {here[0]:g} BPM with {here[1]}"
                         f" and {here[2]:g}%; drop --bpm, --tracks and --swing to resume it")
    humanize = recorded_humanize(meta)
    if pipeline.render.humanize != humanize:
        raise DdjaxError(f"the session in {directory} was made with humanize"
                         f" {humanize.describe()}, not {pipeline.render.humanize.describe()};"
                         " drop --humanize to resume it")
