"""``ddjax experiment --from-sessions``: the runs it leaves out are named, with why."""

import dataclasses
import json

from ddjax.cli.main import main
from ddjax.session.experiment import ExperimentConfig


def write(folder, files: dict) -> None:
    """Writes each file: a dict as JSON, a list as JSON lines."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(e) + "\n" for e in content)
                        if isinstance(content, list) else json.dumps(content))


def participant(pid, n_ratings, n_eval, phase1, phase2=None, result=None):
    """A study participant's folder: ``phase1`` ratings logged; ``phase2``: the pool is
    drawn and that many of its items rated."""
    files = {"study.json": {"participant": pid, "created": "2025-03-01T10:00:00+00:00",
                            "config": dataclasses.asdict(ExperimentConfig(n_ratings, n_eval))},
             "session/session.json": {"kit": "kit"},
             "session/ratings.jsonl": [{"id": i, "loop": {}, "liked": True}
                                       for i in range(phase1)]}
    if phase2 is not None:
        files["phase2/items.json"] = [{"key": f"e{i}", "group": "init"}
                                      for i in range(2 * n_eval)]
        files["phase2/ratings.jsonl"] = [{"key": f"e{i}", "group": "init", "liked": True}
                                         for i in range(phase2)]
    if result is not None:
        files["result.json"] = result
    return files


RESULT = {"rater": "p01", "seed": 1, "theta_init": 0.25, "theta_final": 0.75, "delta": 0.5}


def test_the_runs_left_out_are_listed_with_why(tmp_path, capsys):
    study, runs = tmp_path / "study" / "participants", tmp_path / "runs"
    write(study / "p01", participant("p01", 4, 2, 4, 4, RESULT))
    write(study / "p03", participant("p03", 80, 30, 12))
    write(study / "p05", participant("p05", 80, 30, 80, 3))
    write(study / "p06", participant("p06", 80, 30, 80))
    write(study / "p07", participant("p07", 4, 2, 4, 4))  # every item rated, no result
    write(runs / "bright" / "seed_0", {"result.json": {**RESULT, "rater": "bright"}})
    write(runs / "bright" / "seed_1", {"session/session.json": {"kit": "kit"},
                                       "session/ratings.jsonl": [{"id": 0, "liked": False}]})
    out = tmp_path / "table"
    assert main(["experiment", "--from-sessions", str(tmp_path / "study"), str(runs),
                 "--out", str(out)]) == 0
    expected = [
        ("p03", "phase I, 12 of 80 ratings", study / "p03"),
        ("p05", "phase II, 3 of 60 ratings", study / "p05"),
        ("p06", "phase I done, phase II not drawn yet", study / "p06"),
        ("p07", "no result.json (4 ratings logged)", study / "p07"),
        ("bright/seed_1", "no result.json (1 rating logged)", runs / "bright" / "seed_1")]
    err = capsys.readouterr().err.splitlines()
    assert err == [f"ddjax experiment: left out {pid}: {why}" for pid, why, _ in expected]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 2
    assert summary["left_out"] == [{"id": pid, "why": why, "path": str(path)}
                                   for pid, why, path in expected]


def test_nothing_left_out_is_an_empty_list(tmp_path, capsys):
    write(tmp_path / "p01", participant("p01", 4, 2, 4, 4, RESULT))
    assert main(["experiment", "--from-sessions", str(tmp_path), "--out",
                 str(tmp_path / "out")]) == 0
    assert capsys.readouterr().err == ""
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["left_out"] == []


def test_only_unfinished_runs_name_them_then_fail_in_one_line(tmp_path, capsys):
    write(tmp_path / "p03", participant("p03", 80, 30, 12))
    assert main(["experiment", "--from-sessions", str(tmp_path), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "ddjax experiment: left out p03: phase I, 12 of 80 ratings"
    assert len(err) == 2 and err[1].startswith("ddjax experiment: error: no result.json under")
    assert not (tmp_path / "out" / "summary.json").exists()
