"""The researcher's page of ``ddjax serve --study``: who may open it, and what it shows of
hand-made participant folders (values computed here from the files written)."""

import dataclasses
import datetime
import json
import math
import statistics
import time
import urllib.error
import urllib.request

import pytest
from browser import Server, launch, why_not_available
from conftest import BUNDLED_KIT
from starlette.testclient import TestClient

from ddjax.session.experiment import ExperimentConfig
from ddjax.web.registry import Opening, ServeConfig
from ddjax.web.researcher import HEADPHONES_FAILED, NEVER_REACHED, STUCK, overview
from ddjax.web.server import create_app

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
T_975_2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (tables)
LOOPBACK = ("127.0.0.1", 50000)


def ago(minutes: float) -> str:
    return (NOW - datetime.timedelta(minutes=minutes)).isoformat()


def write(folder, files: dict) -> None:
    """Writes each file: a dict as JSON, a list as JSON lines, a str as it is."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = "".join(json.dumps(entry) + "\n" for entry in content)
        elif isinstance(content, dict):
            content = json.dumps(content)
        path.write_text(content)


def study(pid, created, n_ratings=4, n_eval=2):
    return {"participant": pid, "created": ago(created),
            "config": dataclasses.asdict(ExperimentConfig(n_ratings, n_eval))}


def rating(loop_id, liked, minutes):
    return {"id": loop_id, "loop": {"grid": []}, "liked": liked, "critic_version": 0,
            "time": ago(minutes)}


def blind(index, group, liked, minutes):
    return {"key": f"e{index}", "group": group, "liked": liked, "score": 0.9,
            "time": ago(minutes)}


def done(pid, theta_init, theta_final, reached, created=60):
    """A participant who finished 30 minutes ago, 4 phase I ratings (3 liked)."""
    items = [{"key": f"e{i}", "group": g, "score": 0.9, "loop": {}}
             for i, g in enumerate(["init", "final", "final", "init"])]
    return {"study.json": study(pid, created),
            "session/ratings.jsonl": [rating(i, i != 1, created - 1 - i) for i in range(4)],
            "phase2/items.json": items,
            "phase2/ratings.jsonl": [blind(i, g["group"], True, 31 + (i == 0))
                                     for i, g in enumerate(items)],
            "phase2/reached.json": reached,
            "result.json": {"theta_init": theta_init, "theta_final": theta_final,
                            "delta": theta_final - theta_init}}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "participants"
    write(root / "p01", done("p01", 0.5, 1.0, {"reached_init": 0.5, "reached_final": 1.0}))
    write(root / "p02", done("p02", 0.75, 0.5, {"reached_init": 0.0, "reached_final": 0.0}))
    write(root / "p03", done("p03", 0.25, 0.5, {"reached_init": 0.0, "reached_final": 0.5}))
    # Phase I: an undo takes back loop 1's rating, a skip is no rating; idle 11 minutes;
    # a failed headphone check, then a passed one.
    write(root / "p04", {
        "study.json": study("p04", 20),
        "steps.jsonl": [{"step": "consent", "time": ago(19)},
                        {"step": "headphones", "trial": 1, "time": ago(18.5)},
                        {"step": "headphones_result", "passed": False, "time": ago(18)},
                        {"step": "headphones_result", "passed": True, "time": ago(17)}],
        "session/ratings.jsonl": [rating(0, True, 15), rating(1, False, 14),
                                  {"undo": 1, "time": ago(13)},
                                  {"skip": 2, "loop": {}, "time": ago(12)},
                                  rating(3, True, 11)]})
    # Phase I, idle 9 minutes, and a torn last line (a write under way); a failed
    # headphone check.
    write(root / "p05", {"study.json": study("p05", 10),
                         "steps.jsonl": [{"step": "headphones", "passed": False}],
                         "session/ratings.jsonl": json.dumps(rating(0, False, 9)) + "\n"
                         + '{"id": 1, "liked": tr'})
    # Phase I done, phase II being drawn.
    write(root / "p06", {"study.json": study("p06", 5),
                         "session/ratings.jsonl": [rating(i, True, 4 - i) for i in range(4)]})
    # Half-way through phase II.
    write(root / "p07", {**{k: v for k, v in done("p07", 0, 0, {}).items()
                            if k not in ("result.json", "phase2/reached.json")},
                         "phase2/ratings.jsonl": [blind(0, "init", False, 2),
                                                  blind(1, "final", True, 1)]})
    (root / "p08").mkdir()  # joined, nothing written yet
    return root


def test_each_participants_phase_ratings_and_time(root):
    rows = {r["id"]: r for r in overview(root, NOW)["participants"]}
    assert list(rows) == [f"p0{i}" for i in range(1, 9)]
    expect = {  # phase, phase I (ratings, likes, total), phase II (ratings, likes, total)
        "p01": ("done", 4, 3, 4, 4, 4, 4), "p04": ("phase1", 2, 2, 4, 0, 0, 4),
        "p05": ("phase1", 1, 0, 4, 0, 0, 4), "p06": ("drawing", 4, 4, 4, 0, 0, 4),
        "p07": ("phase2", 4, 3, 4, 2, 1, 4), "p08": ("new", 0, 0, None, 0, 0, None)}
    for pid, values in expect.items():
        row = rows[pid]
        assert (row["phase"], row["phase1_ratings"], row["phase1_likes"],
                row["phase1_total"], row["phase2_ratings"], row["phase2_likes"],
                row["phase2_total"]) == values, pid
    # First to last logged time: created 60 min ago, last phase II rating 31 min ago.
    assert rows["p01"]["seconds"] == 29 * 60 and rows["p01"]["idle_s"] == 31 * 60
    assert rows["p04"]["seconds"] == 9 * 60 and rows["p04"]["idle_s"] == 11 * 60
    assert rows["p04"]["steps"] == ["consent", "headphones", "headphones_result"]
    assert rows["p08"]["seconds"] is None and rows["p08"]["flags"] == []


def test_delta_once_done(root):
    rows = {r["id"]: r for r in overview(root, NOW)["participants"]}
    assert [rows[p]["delta"] for p in ("p01", "p02", "p03")] == [0.5, 0.5 - 0.75, 0.25]
    assert all(rows[p]["delta"] is None for p in ("p04", "p05", "p06", "p07", "p08"))
    assert rows["p03"]["reached"] == {"init": 0.0, "final": 0.5}


def test_flags(root):
    flags = {r["id"]: r["flags"] for r in overview(root, NOW)["participants"]}
    assert flags == {
        "p01": [],  # idle 31 minutes, but done
        "p02": [NEVER_REACHED],  # no chain of either group reached the threshold
        "p03": [],  # the final critic's chains did
        "p04": [STUCK, HEADPHONES_FAILED],  # nothing for 11 minutes
        "p05": [HEADPHONES_FAILED],  # nothing for 9 minutes: not stuck yet
        "p06": [], "p07": [], "p08": []}
    assert NEVER_REACHED == "phase II never reached the threshold"
    assert (STUCK, HEADPHONES_FAILED) == ("stuck", "headphone check failed")


def test_summary_mean_delta_and_its_95_percent_interval(root):
    summary = overview(root, NOW)["summary"]
    deltas = [0.5, -0.25, 0.25]
    mean = sum(deltas) / 3
    half = T_975_2 * statistics.stdev(deltas) / math.sqrt(3)
    assert (summary["participants"], summary["done"], summary["flagged"]) == (8, 3, 3)
    assert summary["phases"] == {"done": 3, "phase1": 2, "drawing": 1, "phase2": 1, "new": 1}
    assert summary["delta_mean"] == pytest.approx(mean)
    assert summary["delta_ci95"] == pytest.approx([mean - half, mean + half])


def test_no_interval_below_two_done(tmp_path):
    root = tmp_path / "participants"
    assert overview(root, NOW)["summary"]["delta_mean"] is None  # no folder yet
    write(root / "a", done("a", 0.25, 0.75, {"reached_init": 1.0}))
    summary = overview(root, NOW)["summary"]
    assert summary["delta_mean"] == 0.5 and summary["delta_ci95"] is None


# -- who may open it ----------------------------------------------------------------------


def study_app(directory, token="s3cret-token"):
    config = ServeConfig(BUNDLED_KIT, directory, study=True,
                         experiment=ExperimentConfig(4, 2))
    return create_app(Opening(config, None), researcher_token=token)  # never opened


def test_the_page_and_its_api_need_this_machine_and_the_token(root):
    app = study_app(root.parent)
    client = TestClient(app, client=LOOPBACK)
    answer = client.get("/api/researcher", headers={"X-Ddjax-Token": "s3cret-token"})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    data = answer.json()
    assert [r["id"] for r in data["participants"]] == [f"p0{i}" for i in range(1, 9)]
    assert data["summary"]["done"] == 3
    assert client.get("/api/researcher?token=s3cret-token").status_code == 200
    page = client.get("/researcher?token=s3cret-token")
    assert page.status_code == 200 and "/api/researcher" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    for refused in (client.get("/api/researcher"), client.get("/researcher"),
                    client.get("/api/researcher", headers={"X-Ddjax-Token": "s3cret"}),
                    client.get("/researcher?token=S3CRET-TOKEN"),
                    client.get("/api/researcher?token=s3cret-tok\u00e9n")):
        assert refused.status_code == 403
        assert refused.text.count("\n") == 0 and set(refused.json()) == {"error"}
        assert "token" in refused.json()["error"]
    for host in ("192.168.1.20", "10.0.0.1", "testclient", "::ffff:8.8.8.8"):
        remote = TestClient(app, client=(host, 50000))
        for path in ("/api/researcher?token=s3cret-token", "/researcher?token=s3cret-token"):
            answer = remote.get(path)
            assert answer.status_code == 403 and "this machine" in answer.json()["error"]
    assert TestClient(app, client=("::1", 50000)).get(
        "/api/researcher?token=s3cret-token").status_code == 200


def test_each_app_has_a_token_of_its_own(tmp_path):
    tokens = {create_app(Opening(ServeConfig(BUNDLED_KIT, tmp_path, study=True), None)
                         ).state.researcher_token for _ in range(2)}
    assert len(tokens) == 2 and all(len(t) >= 22 for t in tokens)


def test_not_a_study_is_404(tmp_path):
    app = create_app(Opening(ServeConfig(BUNDLED_KIT, tmp_path), None))
    client = TestClient(app, client=LOOPBACK)
    for path in ("/researcher", "/api/researcher", "/researcher?token=x"):
        answer = client.get(path)
        assert answer.status_code == 404 and set(answer.json()) == {"error"}


def test_the_participants_page_never_shows_it(tmp_path):
    client = TestClient(study_app(tmp_path), client=LOOPBACK)
    for path in ("/", "/static/app.js"):
        text = client.get(path).text
        assert "/researcher" not in text and "s3cret" not in text


def researcher_url(server) -> str:
    """The researcher page's address, from the line ``serve`` prints."""
    deadline = time.monotonic() + 30
    while not any("researcher page at" in line for line in server.output):
        assert time.monotonic() < deadline, "".join(server.output)
        time.sleep(0.1)
    line = next(line for line in server.output if "researcher page at" in line)
    assert line.startswith("ddjax serve: researcher page at http://127.0.0.1:")
    return line.split(" at ")[1].strip()


@pytest.mark.slow
def test_serve_prints_the_researcher_address_with_its_token(tmp_path):
    with Server("--study", "--no-warm-up", "--session", str(tmp_path / "study")) as server:
        url = researcher_url(server)
        assert url.startswith(f"{server.url}/researcher?token=")
        with urllib.request.urlopen(url, timeout=30) as page:
            assert "/api/researcher" in page.read().decode()
        api = url.replace("/researcher?", "/api/researcher?")
        with urllib.request.urlopen(api, timeout=30) as answer:
            assert json.load(answer)["participants"] == []
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(api[:-1], timeout=30)
        assert refused.value.code == 403


@pytest.mark.slow
@pytest.mark.skipif(why_not_available() is not None, reason=why_not_available() or "")
def test_the_page_shows_each_participant_and_refreshes_by_itself(tmp_path):
    from playwright.sync_api import sync_playwright
    with Server("--study", "--no-warm-up", "--session", str(tmp_path / "study")) as server, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(researcher_url(server))
        page.wait_for_function("document.getElementById('summary').textContent"
                               ".startsWith('0 participants, 0 done')")
        root = tmp_path / "study" / "participants"
        write(root / "p01", done("p01", 0.25, 0.75, {"reached_init": 0.0,
                                                    "reached_final": 0.0}))
        write(root / "p02", done("p02", 0.5, 0.5, {"reached_init": 1.0}))
        page.wait_for_selector("#rows tr:nth-child(2)", timeout=8000)  # within 5 s
        cells = [[td.inner_text() for td in tr.query_selector_all("td")]
                 for tr in page.query_selector_all("#rows tr")]
        assert [c[0] for c in cells] == ["p01", "p02"]
        assert [c[1] for c in cells] == ["done", "done"]
        assert cells[0][2] == "4 of 4 (3 liked)" and cells[0][6] == "+0.50"
        assert cells[0][8] == NEVER_REACHED and cells[1][8] == ""
        assert page.query_selector("#rows tr").get_attribute("class") == "flagged"
        summary = page.inner_text("#summary")
        assert summary.startswith("2 participants, 2 done; mean Δθ +0.25 (95% interval")
        browser.close()
