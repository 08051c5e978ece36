"""The start-up estimate: from past starts of the same kind (warm or cold compilation
cache), or no number; re-estimated from the steps done. Records are written by hand here,
and every expected number is worked out by hand from them."""

import json

import pytest

from ddjax.session.startup import (
    COLD,
    KEEP_STARTS,
    WARM,
    Record,
    Start,
    Startup,
    read_record,
    save_record,
    seconds_left,
)

STEPS = ("a", "b", "c")
# Warm starts take about 4 s (medians a 1, b 2, c 1), cold ones about 31 s (a 1, b 21, c 9).
WARM_STARTS = (Start({"a": 1.0, "b": 2.0, "c": 1.0}, WARM),
               Start({"a": 1.0, "b": 2.4, "c": 1.0}, WARM),
               Start({"a": 1.2, "b": 1.8, "c": 1.0}, WARM))
COLD_STARTS = (Start({"a": 1.0, "b": 20.0, "c": 9.0}, COLD),
               Start({"a": 1.0, "b": 22.0, "c": 9.0}, COLD))
PROGRAMS = frozenset({"jit_a-1-cache", "jit_b-2-cache"})


def clock_at(*times):
    return iter(times).__next__


@pytest.fixture
def cache(tmp_path):
    """A compilation cache holding the session's programs and another one."""
    folder = tmp_path / "xla"
    folder.mkdir()
    for name in (*PROGRAMS, "jit_other-3-cache"):
        (folder / name).write_bytes(b"x")
    return folder


def estimate(record, cache_dir, *, steps=(), at=0.0):
    """The estimate told at ``at`` s, after each (name, time) of ``steps`` began."""
    times = [0.0, *(t for _, t in steps), at]
    startup = Startup(record, STEPS, clock_at(*times), cache_dir=cache_dir)
    for name, _ in steps:
        startup.step(name)
    return startup.status()["estimate_s"]


def test_a_warm_cache_is_estimated_from_the_warm_starts_alone(cache):
    record = Record(COLD_STARTS + WARM_STARTS, PROGRAMS)
    assert Startup(record, STEPS, cache_dir=cache).cache == WARM
    assert estimate(record, cache) == 4.0


@pytest.mark.parametrize("emptied", ["missing", "empty", "programs gone", "cache off"])
def test_an_empty_cache_is_estimated_from_the_cold_starts_alone(cache, emptied):
    record = Record(WARM_STARTS + COLD_STARTS, PROGRAMS)
    if emptied == "missing":
        cache = cache.parent / "nowhere"
    elif emptied in ("empty", "programs gone"):
        for name in PROGRAMS if emptied == "programs gone" else [*PROGRAMS, "jit_other-3-cache"]:
            (cache / name).unlink()
    elif emptied == "cache off":
        cache = None
    assert Startup(record, STEPS, cache_dir=cache).cache == COLD
    assert estimate(record, cache) == 31.0  # 1 + (20 + 22) / 2 + 9


def test_no_number_without_a_past_start_of_the_kind_foretold(cache):
    assert estimate(Record(), cache) is None  # a new session
    assert estimate(Record(COLD_STARTS, PROGRAMS), cache) is None  # warm, none known
    assert estimate(Record(WARM_STARTS, PROGRAMS), None) is None  # cold, none known
    (cache / "jit_b-2-cache").unlink()  # half the programs: can't tell
    assert Startup(Record(WARM_STARTS + COLD_STARTS, PROGRAMS), STEPS,
                   cache_dir=cache).cache is None
    assert estimate(Record(WARM_STARTS + COLD_STARTS, PROGRAMS), cache) is None


def test_no_number_where_the_latest_starts_disagree_by_more_than_30_percent(cache):
    # 4 s and 8 s: their median, 6 s, is 50% over the first.
    apart = (Start({"a": 1.0, "b": 2.0, "c": 1.0}, WARM), Start({"a": 1.0, "b": 6.0, "c": 1.0}, WARM))
    assert estimate(Record(apart, PROGRAMS), cache) is None
    # 4 s and 5 s: the median 4.5 s is within 30% of both.
    near = (Start({"a": 1.0, "b": 2.0, "c": 1.0}, WARM), Start({"a": 1.0, "b": 3.0, "c": 1.0}, WARM))
    assert estimate(Record(near, PROGRAMS), cache) == 4.5
    # Only the latest three count: an old slow start is outgrown.
    grown = (Start({"a": 1.0, "b": 30.0, "c": 1.0}, WARM), *WARM_STARTS)
    assert estimate(Record(grown, PROGRAMS), cache) == 4.0


def test_a_start_of_an_unknown_kind_is_not_estimated_from(cache):
    legacy = Record((Start({"a": 1.0, "b": 2.0, "c": 1.0}, None),) * 3, PROGRAMS)
    assert estimate(legacy, cache) is None


def test_a_start_foretold_warm_that_runs_cold_is_re_estimated(cache):
    record = Record(WARM_STARTS + COLD_STARTS, PROGRAMS)
    # At 6 s, 5 s into b (warm: 2 s): too slow for a warm start (pace 7/4 > 1.5), and too
    # early (under a quarter of 31 s) to call it cold.
    assert estimate(record, cache, steps=[("b", 1.0)], at=6.0) is None
    # At 8 s it runs as a cold one: b's 21 s less the 7 s gone, then c's 9 s.
    assert estimate(record, cache, steps=[("b", 1.0)], at=8.0) == 23.0


def test_the_estimate_follows_the_pace_of_the_steps_done(cache):
    record = Record(WARM_STARTS + COLD_STARTS, PROGRAMS)
    # a took 1.2 s for 1 s: the pace, (1.2 + 1) / (1 + 1) with the 1-s prior, is 1.1.
    assert estimate(record, None, steps=[("b", 1.2)], at=1.2) == pytest.approx(1.1 * 30)
    # A step far slower than any record: no number.
    assert estimate(record, None, steps=[("b", 5.0)], at=5.0) is None


def test_the_steps_left_are_counted():
    expected = {"a": 4.0, "b": 2.0, "c": 1.0}
    assert seconds_left(expected, STEPS, 0, 1.0) == 6.0
    assert seconds_left(expected, STEPS, 1, 5.0) == 1.0  # b overran


def test_a_finished_start_is_told_warm_or_cold_by_what_it_wrote_to_the_cache(tmp_path):
    cache = tmp_path / "xla"
    path = tmp_path / ".startup.json"
    startup = Startup(Record(), STEPS, clock_at(0.0, 0.5, 4.0), cache_dir=cache)
    startup.step("b")
    cache.mkdir()
    for name in PROGRAMS:  # what a start compiles, it writes
        (cache / name).write_bytes(b"x")
    first = startup.finish()
    assert first == Start({"a": 0.5, "b": 3.5}, COLD, PROGRAMS)
    save_record(path, first)
    second = Startup(read_record(path), STEPS, clock_at(0.0, 2.0), cache_dir=cache)
    assert second.cache == WARM  # every program it wrote is there
    assert second.finish().cache == WARM  # and it wrote nothing
    data = json.loads(path.read_text())
    assert data["seconds"] == {"a": 0.5, "b": 3.5}  # the latest start's, as before
    assert data["starts"] == [{"seconds": {"a": 0.5, "b": 3.5}, "cache": COLD}]
    assert set(data["entries"]) == PROGRAMS


def test_the_record_keeps_the_latest_starts(tmp_path):
    path = tmp_path / ".startup.json"
    for i in range(KEEP_STARTS + 3):
        save_record(path, Start({"a": float(i)}, WARM))
    kept = read_record(path).starts
    assert [s.seconds["a"] for s in kept] == [float(i) for i in range(3, KEEP_STARTS + 3)]


@pytest.mark.parametrize("text", ["", "{", "[]", '{"seconds": 3}', '{"starts": [1]}'])
def test_a_torn_record_costs_only_the_estimate(tmp_path, text):
    path = tmp_path / ".startup.json"
    path.write_text(text)
    assert read_record(path) == Record()


def test_a_record_from_before_the_kinds_is_one_start_of_unknown_kind(tmp_path):
    path = tmp_path / ".startup.json"
    path.write_text(json.dumps({"seconds": {"a": 1.0, "b": 2.0}}))
    assert read_record(path) == Record((Start({"a": 1.0, "b": 2.0}, None),))


@pytest.mark.parametrize(("before", "wrote", "kind"), [
    (0, 2, COLD),  # a new cache
    (1, 2, COLD),  # a new cache, and what the command compiled before the start
    (5, 2, None),  # a cache shared with other sessions: some programs found, some not
    (5, 0, WARM),  # every program found
])
def test_a_first_start_is_cold_only_in_a_cache_smaller_than_what_it_wrote(
        tmp_path, before, wrote, kind):
    cache = tmp_path / "xla"
    cache.mkdir()
    for i in range(before):
        (cache / f"jit_old-{i}-cache").write_bytes(b"x")
    startup = Startup(Record(), STEPS, clock_at(0.0, 1.0), cache_dir=cache)
    for i in range(wrote):
        (cache / f"jit_new-{i}-cache").write_bytes(b"x")
    assert startup.finish().cache == kind
