"""Admission: past capacity, newcomers wait in line, first come first in; a closed page
leaves the line; two at once never both take the last place."""

import threading

from ddjax.web.admission import ABANDONED_S, Line


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_nobody_waits_while_there_is_room():
    line = Line()
    assert line.admit("a", lambda: True) is None
    assert len(line) == 0


def test_past_capacity_newcomers_queue_and_come_in_in_order():
    clock, room = Clock(), {"free": 0}
    line = Line(clock)
    has_room = lambda: room["free"] > 0  # noqa: E731
    tickets = [line.admit(sid, has_room) for sid in ("a", "b", "c")]
    assert [t.place for t in tickets] == [1, 2, 3]
    assert line.admit("b", has_room) is tickets[1]  # asking again keeps the place
    room["free"] = 1
    assert not line.admit_turn(tickets[1], has_room)  # not b's turn: a is first
    assert line.admit_turn(tickets[0], has_room)
    assert [t.place for t in tickets[1:]] == [1, 2]
    # While anyone waits, a newcomer queues behind them even where there is room.
    assert line.admit("d", has_room).place == 3


def test_a_ticket_nobody_asks_about_leaves_the_line():
    clock = Clock()
    line = Line(clock)
    a = line.admit("a", lambda: False)
    b = line.admit("b", lambda: False)
    clock.now = ABANDONED_S / 2
    line.admit_turn(b, lambda: False)  # b's page still asks; a's was closed
    clock.now = ABANDONED_S + 1
    assert line.find(a.number) is None
    assert line.find(b.number) is b and b.place == 1
    assert line.admit_turn(b, lambda: True)
    assert len(line) == 0


def test_two_newcomers_at_once_never_both_get_the_last_place():
    capacity, taken = 1, []
    lock = threading.Lock()

    def take_place():  # what Desks._take_place does: count and reserve atomically
        with lock:
            if len(taken) >= capacity:
                return False
            taken.append(1)
            return True

    line = Line()
    results = []
    barrier = threading.Barrier(8)

    def join(i):
        barrier.wait()
        results.append(line.admit(f"p{i}", take_place))

    threads = [threading.Thread(target=join, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is None for r in results) == 1
    assert sorted(r.place for r in results if r is not None) == list(range(1, 8))


def test_a_participant_who_left_mid_study_frees_their_place(tmp_path, monkeypatch):
    """Places count the participants heard from in the last IDLE_S, not finished: one who
    closed the page mid-study (or one opened after a restart who never came back) does
    not hold a place for ever; a finished one never does."""
    import types

    from ddjax.web import registry

    class Stub:  # a Study as the registry sees it: its phase
        def __init__(self, phase):
            self.phase = phase

        def close(self):
            pass

    clock = Clock()
    monkeypatch.setattr(registry, "Study", Stub)
    monkeypatch.setattr(registry.time, "monotonic", clock)
    kit = types.SimpleNamespace(kinds=[], notes=[])
    desks = registry.Desks(registry.ServeConfig(None, tmp_path, study=True,
                                                max_participants=2), kit)
    try:
        desks._desks = {"a": Stub("phase1"), "b": Stub("phase2"), "c": Stub("done"),
                        "d": Stub("phase1")}
        for sid in "abc":
            desks.get(sid)  # a request from each; d was opened but never asked for
        assert sorted(desks.rating()) == ["a", "b"]
        assert not desks._take_place("e")  # full: a and b rate
        clock.now = registry.IDLE_S / 2
        desks.get("a")
        clock.now = registry.IDLE_S + 1  # b has been silent for IDLE_S
        assert desks.rating() == ["a"]
        assert desks._take_place("e")
        assert not desks._take_place("f")  # e's place is held while it opens
    finally:
        desks.close()
