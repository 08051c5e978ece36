"""bench/study_load.py, small: 4 participants rate a tiny study at once on one
``ddjax serve --study`` for 30 s, the server is SIGKILLed and started again; then a study
with ``--max-participants 2`` queues its third and fourth participant. No timings are
asserted (machines differ): what a participant was told is checked against the folders."""

import collections
import json
import sys

import pytest
from browser import REPO

sys.path.insert(0, str(REPO / "bench"))

import study_clients  # noqa: E402
import study_load  # bench/ is no package: on sys.path above

pytestmark = pytest.mark.slow
KIT = REPO / "samples"


@pytest.fixture(autouse=True, scope="module")
def quick_start():
    """Servers open at once (``--no-warm-up``): what is checked here is what the
    participants were told, not how quickly; each program compiles on first use."""
    study_clients.SERVER_ARGS[:] = ["--no-warm-up"]
    yield
    study_clients.SERVER_ARGS.clear()


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    folder = tmp_path_factory.mktemp("load") / "study"
    rows, clients = study_load.run_load(folder, KIT, participants=4, seconds=20,
                                        listen_seconds=0.5, ratings=4, evals=1)
    return {row["measure"]: row for row in rows}, clients, folder


def logged_keys(person) -> collections.Counter:
    """The rated keys in a participant's two logs: lines that rate (``liked``), not
    undo or skip lines."""
    keys = collections.Counter()
    for log, field in ((person / "session" / "ratings.jsonl", "id"),
                       (person / "phase2" / "ratings.jsonl", "key")):
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if "liked" in entry and "undo" not in entry and "skip" not in entry:
                    keys[str(entry[field])] += 1
    return keys


def test_every_acknowledged_rating_is_on_disk_once(load):
    rows, clients, folder = load
    assert sum(len(c.acked) for c in clients) > 0
    for client in clients:
        person = folder / "participants" / client.sid
        on_disk = logged_keys(person)
        assert all(on_disk[key] == 1 for key in client.acked), (client.sid, on_disk)
        assert all(n == 1 for n in on_disk.values()), (client.sid, on_disk)
    assert rows["ratings"]["lost"] == rows["ratings"]["duplicated"] == 0


def test_every_participant_got_a_loop(load):
    rows, clients, _ = load
    assert [c.errors for c in clients] == [[]] * 4
    assert all(c.next_loop_s for c in clients), [c.phase for c in clients]
    assert rows["ratings"]["clients_with_a_loop"] == 4


def test_every_participant_answers_after_a_restart(load):
    rows, _, _ = load
    restart = rows["restart"]
    assert restart["resumed"] == restart["current_answered"] == 4
    assert set(restart["statuses"]) <= {"200", "409"}


def test_the_queue_admits_in_order(tmp_path):
    row = study_load.queue_row(tmp_path / "queue", KIT)
    assert row["first_statuses"] == [200, 200, 202, 202]
    assert row["places"] == [None, None, 1, 2]
    assert row["admitted_order"] == ["q3", "q4"]
    assert row["places_after_each_finish"][0] == {"q4": 1}
    assert all(status in (200, 409) for status in row["admitted_current"])
