"""The researcher's view of a study: every participant's progress, read from their folder.

Pure reading, nothing written, no JAX. ``participant(folder, now)`` is one participant's
row, from the files ``ddjax.web.study`` writes (``study.json``, ``session/ratings.jsonl``,
``phase2/``, ``result.json``) and the steps log before phase I (``steps.jsonl``, where
there is one); ``overview(root, now)`` is every folder under a study's ``participants/``
with a summary, for ``GET /api/researcher``; ``unfinished(folders)`` names the runs that
``ddjax experiment --from-sessions`` leaves out, and why.

Logs are read as they are on disk while the server writes them: a torn last line (a
write under way) is left out, an undo line takes back the rating before it, a skip line
is no rating.
"""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import statistics

from scipy import stats

from ddjax.session.journal import LOG_NAME, META_NAME
from ddjax.web.study import ITEMS_NAME, PHASE2_DIR, RESULT_NAME, STUDY_NAME
from ddjax.web.study_steps import STEPS_NAME

HEADPHONE_STEPS = ("headphones", "headphones_result")  # a trial, an attempt's result
REACHED_NAME = "reached.json"
STUCK_S = 600.0  # a participant not done with nothing logged for this long is stuck
CONFIDENCE = 0.95

NEVER_REACHED = "phase II never reached the threshold"
STUCK = "stuck"
HEADPHONES_FAILED = "headphone check failed"


def _json(path: pathlib.Path) -> dict | None:
    """The JSON object in ``path``; None for a missing or unreadable file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lines(path: pathlib.Path) -> list[dict]:
    """A JSON-lines log's entries (none for a missing file); lines that do not parse, as a
    torn last line, are left out."""
    try:
        text = path.read_text()
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _in_force(entries: list[dict]) -> list[dict]:
    """The ratings a log holds in force, in order: an undo line takes back the last one."""
    ratings = []
    for entry in entries:
        if "undo" in entry:
            if ratings:
                ratings.pop()
        elif isinstance(entry.get("liked"), bool) and "skip" not in entry:
            ratings.append(entry)
    return ratings


def _time(value) -> datetime.datetime | None:
    """A logged time (ISO 8601, UTC where it names no zone), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def participant(folder: pathlib.Path, now: datetime.datetime) -> dict:
    """One participant's row, as their folder holds it at ``now`` (timezone-aware).

    Keys: ``id``; ``phase`` (``new``: no study.json yet, ``phase1``, ``drawing``: phase I
    done and phase II not drawn yet, ``phase2``, ``done``: result.json written);
    ``phase1_ratings``/``phase1_likes``/``phase1_total`` and the same for ``phase2``
    (totals None where the folder does not say); ``steps``: the kinds of step in
    ``steps.jsonl``, in order; ``started``/``last``: the first and last logged times
    (ISO), ``seconds``: between them, ``idle_s``: since the last; ``theta_init``,
    ``theta_final``, ``delta`` (theta_final - theta_init) once done; ``reached``: each
    phase II group's share of chains that reached the threshold; ``flags``:
    ``NEVER_REACHED``, ``STUCK``, ``HEADPHONES_FAILED``.
    """
    meta = _json(folder / STUDY_NAME)
    config = (meta or {}).get("config") or {}
    phase1_log = _lines(folder / "session" / LOG_NAME)
    phase2_log = _lines(folder / PHASE2_DIR / LOG_NAME)
    steps = _lines(folder / STEPS_NAME)
    phase1, phase2 = _in_force(phase1_log), _in_force(phase2_log)
    items_path = folder / PHASE2_DIR / ITEMS_NAME
    items = None
    if items_path.exists():
        try:
            items = json.loads(items_path.read_text())
        except (OSError, ValueError):
            items = None
    n_eval = config.get("n_eval")
    row = {"id": (meta or {}).get("participant") or folder.name,
           "phase1_ratings": len(phase1), "phase1_likes": sum(r["liked"] for r in phase1),
           "phase1_total": config.get("n_ratings"),
           "phase2_ratings": len(phase2), "phase2_likes": sum(r["liked"] for r in phase2),
           "phase2_total": len(items) if isinstance(items, list) else (
               None if n_eval is None else 2 * n_eval),
           "steps": list(dict.fromkeys(s["step"] for s in steps
                                       if isinstance(s.get("step"), str)))}

    result = _json(folder / RESULT_NAME)
    if (folder / RESULT_NAME).exists():
        row["phase"] = "done"
    elif items_path.exists():
        row["phase"] = "phase2"
    elif meta is None and not phase1_log:
        row["phase"] = "new"
    elif row["phase1_total"] is not None and len(phase1) >= row["phase1_total"]:
        row["phase"] = "drawing"
    else:
        row["phase"] = "phase1"

    times = [t for t in map(_time, [(meta or {}).get("created")] + [
        e.get("time") for e in phase1_log + phase2_log + steps]) if t is not None]
    first, last = (min(times), max(times)) if times else (None, None)
    row.update(started=first and first.isoformat(), last=last and last.isoformat(),
               seconds=None if first is None else (last - first).total_seconds(),
               idle_s=None if last is None else (now - last).total_seconds())

    thetas = {k: (result or {}).get(k) for k in ("theta_init", "theta_final")}
    done = all(isinstance(v, (int, float)) for v in thetas.values())
    row.update(thetas, delta=thetas["theta_final"] - thetas["theta_init"] if done else None)
    reached = _json(folder / PHASE2_DIR / REACHED_NAME)
    row["reached"] = None if reached is None else {
        k.removeprefix("reached_"): v for k, v in reached.items()
        if k.startswith("reached_") and isinstance(v, (int, float))}

    flags = []
    if row["reached"] and not any(row["reached"].values()):
        flags.append(NEVER_REACHED)
    if row["phase"] != "done" and row["idle_s"] is not None and row["idle_s"] > STUCK_S:
        flags.append(STUCK)
    if any(s.get("step") in HEADPHONE_STEPS and s.get("passed") is False for s in steps):
        flags.append(HEADPHONES_FAILED)
    row["flags"] = flags
    return row


def summary(rows: list[dict]) -> dict:
    """Counts by phase, participants flagged, and the mean delta of those done with its
    95% interval (Student's t over participants; None below two)."""
    deltas = [r["delta"] for r in rows if r["phase"] == "done" and r["delta"] is not None]
    phases = {}
    for row in rows:
        phases[row["phase"]] = phases.get(row["phase"], 0) + 1
    interval = None
    if len(deltas) >= 2:
        mean = statistics.fmean(deltas)
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(deltas) - 1) * statistics.stdev(
            deltas) / math.sqrt(len(deltas))
        interval = [mean - float(half), mean + float(half)]
    return {"participants": len(rows), "done": phases.get("done", 0), "phases": phases,
            "flagged": sum(bool(r["flags"]) for r in rows),
            "delta_mean": statistics.fmean(deltas) if deltas else None,
            "delta_ci95": interval}


def overview(root: pathlib.Path, now: datetime.datetime) -> dict:
    """Every participant under ``root`` (a study's ``participants/`` folder), open or not,
    sorted by id, and their ``summary``, as of ``now`` (timezone-aware)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    rows = [participant(folder, now) for folder in folders]
    return {"now": now.isoformat(), "stuck_after_s": STUCK_S, "participants": rows,
            "summary": summary(rows)}


def why_unfinished(row: dict) -> str:
    """Why a participant's run has no result, in a few words."""
    phase = row["phase"]
    if phase == "phase1" and row["phase1_total"] is not None:
        return f"phase I, {row['phase1_ratings']} of {row['phase1_total']} ratings"
    if phase == "drawing":
        return "phase I done, phase II not drawn yet"
    if phase == "phase2" and row["phase2_ratings"] < (row["phase2_total"] or 0):
        return f"phase II, {row['phase2_ratings']} of {row['phase2_total']} ratings"
    if phase == "new":
        return "no study.json: joined, never started"
    n = row["phase1_ratings"]
    return f"no result.json ({n} rating{'' if n == 1 else 's'} logged)"


def unfinished(folders: list[pathlib.Path]) -> list[dict]:
    """The runs under ``folders`` that have no ``result.json``: study participants (a
    ``study.json``) and ``ddjax experiment`` outputs (a ``session/`` beside where the
    result goes), each ``{"id", "why", "path"}``, folder by folder, sorted by path. The
    id is the participant's, or the run's path under the folder given."""
    runs = {}
    for top in folders:
        if not top.is_dir():
            continue
        found = [p.parent for p in top.rglob(STUDY_NAME)]
        found += [p.parent.parent for p in top.rglob(f"session/{META_NAME}")]
        for run in sorted(set(found)):
            if not (run / RESULT_NAME).exists() and run not in runs:
                runs[run] = top
    epoch = datetime.datetime.now(datetime.UTC)
    left_out = []
    for run, top in runs.items():
        row = participant(run, epoch)
        name = row["id"] if (run / STUDY_NAME).exists() else (
            run.relative_to(top).as_posix() if run != top else run.name)
        left_out.append({"id": name, "why": why_unfinished(row), "path": str(run)})
    return left_out
