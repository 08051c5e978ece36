"""Session folders damaged by hand or by a crash (issue 27): a damaged log line is set
aside in ``ratings.jsonl.damaged`` with its line number and the session goes on; a
damaged ``session.json`` is one line naming the field, and no file changes.

The folders are written here, from the bundled kit's names, so every expectation is read
from the bytes the test wrote, not from what the session makes of them."""

import hashlib
import json
import pathlib
import warnings
import zipfile

import pytest
from conftest import BUNDLED_KIT

from ddjax.cli.main import main
from ddjax.session.journal import SessionWarning, read_log, repair_log

NAMES = ["kick/kick_01.wav", "snare/snare_01.wav", "closed_hat/closed_hat_01.wav",
         "clap/clap_01.wav"]
GRID = [[1, 0] * 8, [0, 1] * 8, [1] * 16, [0] * 15 + [1]]
META = {"kit": str(BUNDLED_KIT), "seed": 3, "session": {"pretrained": None,
                                                        "loop_prior": "musical"},
        "bpm": 120.0, "tracks": 4}
N_GOOD = 5  # ratings of loops 0..4; the even ones liked


def rating(loop_id: int, **loop_changes) -> dict:
    return {"id": loop_id, "loop": {"grid": GRID, "samples": NAMES, "bpm": 120,
                                    **loop_changes},
            "liked": loop_id % 2 == 0, "time": "2026-01-01T00:00:00+00:00",
            "critic_version": loop_id}


def line(entry) -> bytes:
    return json.dumps(entry).encode() + b"\n"


GOOD = [line(rating(i)) for i in range(N_GOOD)]
# Each damaged line the issue lists, as a user's editor or a crash leaves it.
DAMAGED = {
    "no-id": line({k: v for k, v in rating(9).items() if k != "id"}),
    "id-text": line({**rating(9), "id": "abc"}),
    "id-huge": line(rating(9)).replace(b'"id": 9', b'"id": 1e30'),
    "samples-number": line(rating(9, samples=5)),
    "grid-2x5": line(rating(9, grid=[[1, 0, 1, 0, 1]] * 2)),
    "velocity-300": line(rating(9, velocity=[[300] * 16] * 4)),
    "liked-text": line({**rating(9), "liked": "yes"}),
    "garbage": b"}}} not json at all\n",
    "undo-of-another": line({"undo": 3}),
}


def session_folder(folder: pathlib.Path, lines: list[bytes], meta=None) -> pathlib.Path:
    folder.mkdir()
    (folder / "wav").mkdir()
    (folder / "session.json").write_text(json.dumps(META if meta is None else meta))
    (folder / "ratings.jsonl").write_bytes(b"".join(lines))
    return folder


def hashes(folder: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def open_and_repair(folder, kit):
    """What ``Session._open_directory`` does with the log: read (every check), then
    repair."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = read_log(folder, kit, (4, 16))
        repair_log(folder, log.damaged)
    return log, [str(w.message) for w in caught if issubclass(w.category, SessionWarning)]


def set_aside(folder) -> list[dict]:
    path = folder / "ratings.jsonl.damaged"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_line_in_the_middle_is_set_aside_with_its_number(case, bundled_kit,
                                                                   tmp_path):
    lines = GOOD[:3] + [DAMAGED[case]] + GOOD[3:]
    folder = session_folder(tmp_path / "s", lines)
    log, said = open_and_repair(folder, bundled_kit)
    assert [r.loop_id for r in log.ratings] == list(range(N_GOOD))
    assert [r.liked for r in log.ratings] == [i % 2 == 0 for i in range(N_GOOD)]
    assert (folder / "ratings.jsonl").read_bytes() == b"".join(GOOD)
    [moved] = set_aside(folder)
    assert moved["line"] == 4
    assert moved["text"].encode() + b"\n" == DAMAGED[case]
    assert any("line 4" in m and "ratings.jsonl.damaged" in m for m in said), said
    # The repaired log reads clean.
    again, said = open_and_repair(folder, bundled_kit)
    assert [r.loop_id for r in again.ratings] == list(range(N_GOOD)) and not said


def test_two_damaged_lines_are_both_set_aside(bundled_kit, tmp_path):
    lines = [DAMAGED["id-text"]] + GOOD[:2] + [DAMAGED["grid-2x5"]] + GOOD[2:]
    folder = session_folder(tmp_path / "s", lines)
    log, _ = open_and_repair(folder, bundled_kit)
    assert [r.loop_id for r in log.ratings] == list(range(N_GOOD))
    assert (folder / "ratings.jsonl").read_bytes() == b"".join(GOOD)
    assert [(m["line"], m["text"].encode() + b"\n") for m in set_aside(folder)] == [
        (1, DAMAGED["id-text"]), (4, DAMAGED["grid-2x5"])]


def test_a_garbage_last_line_ending_in_a_newline_is_repaired(bundled_kit, tmp_path):
    folder = session_folder(tmp_path / "s", GOOD + [b"\x00garbage\xff\n"])
    log, _ = open_and_repair(folder, bundled_kit)
    assert len(log.ratings) == N_GOOD
    assert (folder / "ratings.jsonl").read_bytes() == b"".join(GOOD)
    [moved] = set_aside(folder)  # bytes that are not UTF-8 kept as surrogate escapes
    assert moved["line"] == N_GOOD + 1
    assert moved["text"].encode("utf-8", "surrogateescape") == b"\x00garbage\xff"
    # Ratings appended after the repair keep the log readable (it refused before).
    with open(folder / "ratings.jsonl", "ab") as f:
        f.write(line(rating(N_GOOD)) + line(rating(N_GOOD + 1)))
    again, said = open_and_repair(folder, bundled_kit)
    assert len(again.ratings) == N_GOOD + 2 and not said


def test_a_torn_last_line_is_set_aside_and_a_whole_one_gets_its_newline(bundled_kit,
                                                                        tmp_path):
    torn = session_folder(tmp_path / "torn", GOOD + [b'{"id": 9, "loop": {"gr'])
    log, said = open_and_repair(torn, bundled_kit)
    assert len(log.ratings) == N_GOOD and any("torn last line" in m for m in said)
    assert (torn / "ratings.jsonl").read_bytes() == b"".join(GOOD)
    assert set_aside(torn)[0]["text"] == '{"id": 9, "loop": {"gr'
    whole = session_folder(tmp_path / "whole", GOOD + [line(rating(N_GOOD))[:-1]])
    log, said = open_and_repair(whole, bundled_kit)
    assert len(log.ratings) == N_GOOD + 1 and not said
    assert (whole / "ratings.jsonl").read_bytes() == b"".join(GOOD) + line(rating(N_GOOD))


def test_reading_alone_changes_no_file(bundled_kit, tmp_path):
    folder = session_folder(tmp_path / "s", GOOD[:2] + [DAMAGED["no-id"]] + GOOD[2:])
    before = hashes(folder)
    with pytest.warns(SessionWarning, match="skipped line 3, which is damaged"):
        log = read_log(folder, bundled_kit)  # the shape from session.json: 4 x 16
    assert len(log.ratings) == N_GOOD and [d.number for d in log.damaged] == [3]
    assert hashes(folder) == before


def export(folder: pathlib.Path, out: pathlib.Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(["export", "--session", str(folder), "--liked", "--out", str(out)])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def test_export_of_a_damaged_log_holds_the_good_liked_loops(tmp_path, capsys):
    folder = session_folder(tmp_path / "s", GOOD[:1] + [DAMAGED["id-huge"]] + GOOD[1:]
                            + [DAMAGED["samples-number"]])
    code, err = export(folder, tmp_path / "liked.zip", capsys)
    assert code == 0, err
    assert [x for x in err.splitlines() if "damaged" in x] == [
        (f"ddjax: warning: {folder / 'ratings.jsonl'}: skipped line 2, which is damaged"
         " ('id' is not a loop id, 0 to 1,000,000,000)"),
        (f"ddjax: warning: {folder / 'ratings.jsonl'}: skipped line {N_GOOD + 2}, which is"
         " damaged ('samples' is not 4 sample names)")]
    names = zipfile.ZipFile(tmp_path / "liked.zip").namelist()
    assert sorted(n for n in names if n.startswith("loop_") and n.endswith(".json")) == [
        f"loop_{i:05d}.json" for i in range(N_GOOD) if i % 2 == 0]


@pytest.mark.parametrize(("field", "value"), [
    ("bpm", "fast"), ("tracks", [4]), ("session", "oops"), ("kit", 5), ("bpm", 1e30),
    ("tracks", 0), ("seed", -1), ("swing", "x"), ("humanize", 3)])
def test_a_damaged_session_json_is_one_line_naming_the_field(field, value, tmp_path,
                                                             capsys):
    folder = session_folder(tmp_path / "s", GOOD, meta={**META, field: value})
    before = hashes(folder)
    code, err = export(folder, tmp_path / "liked.zip", capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"'{field}'" in err and "session.json" in err, err
    assert hashes(folder) == before and not (tmp_path / "liked.zip").exists()


def test_a_session_pretrained_that_is_no_string_is_named(tmp_path, capsys):
    folder = session_folder(tmp_path / "s", GOOD,
                            meta={**META, "session": {"pretrained": 7}})
    code, err = export(folder, tmp_path / "liked.zip", capsys)
    assert code == 2 and "'pretrained'" in err and len(err.splitlines()) == 1


def test_a_session_opens_past_damaged_lines_and_goes_on(bundled_kit, tmp_path):
    from ddjax.learning.training import TrainConfig
    from ddjax.session.session import Session, SessionConfig

    def session_of(folder):
        return Session(bundled_kit, folder, train=TrainConfig(steps_per_rating=2,
                                                              batch_size=4),
                       config=SessionConfig(n_chains=2, n_iters=2, seed=3))
    lines = GOOD[:2] + [DAMAGED["grid-2x5"]] + GOOD[2:] + [DAMAGED["garbage"]]
    folder = session_folder(tmp_path / "s", lines)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = session_of(folder)
    with session:
        assert [r.loop_id for r in session.history] == list(range(N_GOOD))
        loop = session.next_loop()
        assert loop.id == 10  # ids go on after every id the log names (9: line 3)
        session.rate(loop, True)
    assert any("moved line 3" in str(w.message) for w in caught)
    assert [m["line"] for m in set_aside(folder)] == [3, N_GOOD + 2]
    logged = [json.loads(x) for x in (folder / "ratings.jsonl").read_text().splitlines()]
    assert [e["id"] for e in logged] == [*range(N_GOOD), 10]
    with session_of(folder) as again:  # and it opens again, its checkpoint in step
        assert again.n_ratings == N_GOOD + 1 and again.next_loop().id == 11
    # A rating the checkpoint learned is damaged afterwards: the log decides.
    log = (folder / "ratings.jsonl").read_bytes().splitlines(keepends=True)
    log[1] = log[1].replace(b'"id": 1,', b'"id": "abc",')
    (folder / "ratings.jsonl").write_bytes(b"".join(log))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = session_of(folder)
    with again:
        assert [r.loop_id for r in again.history] == [0, 2, 3, 4, 10]
        assert again.belief.n_trained == 5
    assert any("learning the log's 5 ratings again" in str(w.message) for w in caught)
