"""What a study with people needs (issue 24): a consent page, a headphone check, a practice
loop that is not counted, undo in both phases, measured duration estimates, and archives
with FLAC or no audio. Through the desk objects and the HTTP app; one browser test."""

import dataclasses
import hashlib
import io
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf
from conftest import BUNDLED_KIT
from people import headphone_check, join, quietest, through_steps, tones_of
from starlette.testclient import TestClient
from test_serve import read_log, study_config

from ddjax.errors import DdjaxError
from ddjax.session.experiment import ExperimentConfig, draw_phase_two
from ddjax.web.consent import MAX_CONSENT_BYTES, load_consent
from ddjax.web.registry import open_desks
from ddjax.web.server import create_app

HZ = 200.0
CONSENT_MD = "# Consent\n\nYou agree to *rate* loops.\n\n- one\n- two\n\n<script>x()</script>\n"


def serving(config):
    desks = open_desks(config)
    return desks, TestClient(create_app(desks), raise_server_exceptions=False)


def state(client, sid):
    return client.get(f"/api/s/{sid}/state").json()


def wait_phase(client, sid, phase, timeout=300):
    deadline = time.monotonic() + timeout
    while (now := state(client, sid))["phase"] != phase:
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    return now


def rate(client, sid, liked=True):
    key = client.get(f"/api/s/{sid}/current").json()["key"]
    response = client.post(f"/api/s/{sid}/rate", json={"key": key, "liked": liked})
    assert response.status_code == 200, response.text
    return key


# -- the headphone check: stimuli and scoring, against NumPy ----------------------------------

def reference_tone(sr, n):
    """A 200 Hz sine with 100 ms raised-cosine ramps, peak normalised to 1."""
    t = np.arange(n) / sr
    ramp = round(0.1 * sr)
    envelope = np.ones(n)
    envelope[:ramp] = np.sin(0.5 * np.pi * np.arange(ramp) / ramp) ** 2
    envelope[n - ramp:] = envelope[:ramp][::-1]
    return np.sin(2 * np.pi * HZ * t) * envelope


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    directory = tmp_path_factory.mktemp("people")
    consent_file = directory / "consent.md"
    consent_file.write_text(CONSENT_MD)
    config = dataclasses.replace(study_config(directory / "study", n_ratings=2, n_eval=1),
                                 consent=consent_file)
    desks, client = serving(config)
    with client:
        yield config, desks, client
    desks.close()


def test_headphone_trials_are_the_antiphase_test(study):
    _, _, client = study
    assert client.post("/api/participants", json={"id": "hp"}).status_code == 200
    client.post("/api/s/hp/consent", json={"agree": True})
    tones, sr = tones_of(client.get("/api/s/hp/headphones/1.wav").content)
    level = np.max(np.abs(tones))
    reference = level * reference_tone(sr, tones.shape[1])
    kinds = []
    for tone in tones:
        left, right = tone[:, 0], tone[:, 1]
        scale = np.dot(left, reference) / np.dot(reference, reference)
        np.testing.assert_allclose(left, scale * reference, atol=2 / 32768)  # a 200 Hz tone
        if np.max(np.abs(left + right)) < 2 / 32768:  # the channels cancel: antiphase
            kinds.append("antiphase")
        else:
            np.testing.assert_allclose(left, right, atol=1 / 32768)
            kinds.append("quiet" if scale < 0.75 else "reference")
            if scale < 0.75:
                assert 20 * np.log10(scale) == pytest.approx(-6.0, abs=0.01)
    assert sorted(kinds) == ["antiphase", "quiet", "reference"]
    volume, sr = sf.read(io.BytesIO(client.get("/api/s/hp/headphones/volume.wav").content))
    np.testing.assert_allclose(volume[:, 0], volume[:, 1])  # in phase
    assert client.get("/api/s/hp/headphones/7.wav").status_code == 404


def test_a_failed_check_is_logged_retried_once_then_the_study_goes_on(study):
    config, _, client = study
    assert client.post("/api/participants", json={"id": "spk"}).status_code == 200
    assert client.post("/api/s/spk/consent", json={"agree": True}).status_code == 200
    # Out of order, or a bad answer: refused, nothing logged.
    assert client.post("/api/s/spk/headphones", json={"trial": 2, "answer": 1}).status_code \
        == 409
    assert client.post("/api/s/spk/headphones", json={"trial": 1, "answer": 4}).status_code \
        == 422
    headphone_check(client, "spk", right=4)  # 4 of 6: failed
    check = state(client, "spk")
    assert check["phase"] == "headphones"
    assert check["headphones"]["attempt"] == 1 and check["headphones"]["trial"] == 0
    headphone_check(client, "spk", right=3)  # failed again: the researcher decides later
    assert state(client, "spk")["phase"] == "practice"
    log = read_log(config.directory / "participants" / "spk" / "steps.jsonl")
    results = [e for e in log if e["step"] == "headphones_result"]
    assert [(r["n_correct"], r["passed"]) for r in results] == [(4, False), (3, False)]
    for result in results:
        assert len(result["answers"]) == len(result["correct_answers"]) == 6
        assert sum(a == c for a, c in zip(result["answers"], result["correct_answers"])) \
            == result["n_correct"]
    assert len([e for e in log if e["step"] == "headphones"]) == 12


def test_consent_is_logged_and_each_step_resumes_from_the_folder(study, tmp_path):
    config, _, client = study
    folder = config.directory / "participants" / "rs"
    page = client.get("/api/consent").json()
    assert "<em>rate</em>" in page["html"] and "<li>one</li>" in page["html"]
    assert "<script>" not in page["html"]  # Markdown's HTML is escaped
    assert client.post("/api/participants", json={"id": "rs"}).status_code == 200
    assert state(client, "rs")["phase"] == "consent"
    assert client.get("/api/s/rs/current").status_code == 409
    assert client.post("/api/s/rs/consent", json={"agree": "yes"}).status_code == 422
    assert client.post("/api/s/rs/consent", json={"agree": True}).status_code == 200
    [agreed] = read_log(folder / "steps.jsonl")
    digest = hashlib.sha256(CONSENT_MD.encode()).hexdigest()
    assert (agreed["step"], agreed["agreed"], agreed["digest"]) == ("consent", True, digest)

    steps = []
    for trial in range(1, 4):
        correct = quietest(client.get(f"/api/s/rs/headphones/{trial}.wav").content)
        client.post("/api/s/rs/headphones", json={"trial": trial, "answer": correct})

    def reopened():
        desks, again = serving(config)
        with again:
            steps.append(state(again, "rs"))
        desks.close()
        return steps[-1]

    desks, _ = study[1], None
    desks.get("rs").close()
    desks._desks.pop("rs")  # this server forgets rs; another opens the folder
    now = reopened()
    assert (now["phase"], now["headphones"]["trial"]) == ("headphones", 3)
    desks2, again = serving(config)
    with again:
        for trial in range(4, 7):
            correct = quietest(again.get(f"/api/s/rs/headphones/{trial}.wav").content)
            again.post("/api/s/rs/headphones", json={"trial": trial, "answer": correct})
    desks2.close()
    assert reopened()["phase"] == "practice"
    desks3, again = serving(config)
    with again:
        assert again.post("/api/s/rs/practice", json={"liked": False}).status_code == 200
    desks3.close()
    assert reopened()["phase"] == "phase1"


def test_the_practice_loop_is_never_a_rating(study):
    config, _, client = study
    through_steps(client, "pr", consent=True)
    folder = config.directory / "participants" / "pr"
    practice = [e for e in read_log(folder / "steps.jsonl") if e["step"] == "practice"]
    assert len(practice) == 1 and practice[0]["liked"] is True
    assert not (folder / "session" / "ratings.jsonl").exists() or not [
        e for e in read_log(folder / "session" / "ratings.jsonl") if "liked" in e]
    now = state(client, "pr")
    assert (now["phase"], now["phase1_ratings"]) == ("phase1", 0)
    assert client.post("/api/s/pr/practice", json={"liked": False}).status_code == 409
    assert client.get("/api/s/pr/current").json()["phase"] == "phase1"


def test_undo_in_both_phases_is_logged_and_replayed(study):
    config, desks, client = study
    through_steps(client, "un", consent=True)
    folder = config.directory / "participants" / "un"
    assert client.post("/api/s/un/undo", json={"key": "0"}).status_code == 409  # none yet
    first = rate(client, "un", True)
    assert state(client, "un")["last_rated"] == first
    assert client.post("/api/s/un/undo", json={"key": first}).status_code == 200
    assert client.post("/api/s/un/undo", json={"key": first}).status_code == 409  # twice
    log = read_log(folder / "session" / "ratings.jsonl")
    assert [("undo" in e, e.get("liked")) for e in log] == [(False, True), (True, None)]
    assert client.get("/api/s/un/current").json()["key"] == first  # to rate again
    rate(client, "un", False)
    # Phase I's last rating, undone while phase II is being drawn (the draw held until
    # then): the pool drawn from it is dropped, and that loop is rated again.
    session, drawing = desks.get("un").desk.session, threading.Event()
    draw = session.sample_pool
    session.sample_pool = lambda *a, **k: (drawing.wait(60), draw(*a, **k))[1]
    last = rate(client, "un", True)
    assert state(client, "un")["phase"] == "drawing"
    stale = desks.get("un")._drawing
    assert client.post("/api/s/un/undo", json={"key": last}).status_code == 200
    assert state(client, "un")["phase"] == "phase1"
    drawing.set()
    stale.join(120)  # the stale draw ends: nothing of it is kept
    assert not stale.is_alive() and not (folder / "phase2" / "items.json").exists()
    assert client.get("/api/s/un/current").json()["key"] == last
    rate(client, "un", True)
    wait_phase(client, "un", "phase2")
    assert [e.get("undo") for e in read_log(folder / "session" / "ratings.jsonl")
            if "undo" in e] == [int(first), int(last)]
    refused = client.post("/api/s/un/undo", json={"key": first})  # across the boundary
    assert refused.status_code == 409 and "phase" in refused.json()["error"]
    rate(client, "un", True)  # e0
    assert client.post("/api/s/un/undo", json={"key": "e0"}).status_code == 200
    log = read_log(folder / "phase2" / "ratings.jsonl")
    assert [e.get("undo") for e in log] == [None, "e0"] and log[0]["liked"] is True
    desks.get("un").close()
    desks._desks.pop("un")
    now = state(client, "un")  # reopened from the folder: the undo replayed
    assert (now["phase"], now["phase2_ratings"]) == ("phase2", 0)
    assert rate(client, "un", False) == "e0"
    rate(client, "un", True)
    assert wait_phase(client, "un", "done")
    done = client.post("/api/s/un/undo", json={"key": "e1"})
    assert done.status_code == 409 and "finished" in done.json()["error"]
    result = json.loads((folder / "result.json").read_text())
    items = json.loads((folder / "phase2" / "items.json").read_text())
    liked = {items[0]["group"]: False, items[1]["group"]: True}
    assert result["theta_init"] == float(liked["init"])

    # The archive: audio as 16-bit FLAC, the same samples as the WAVs; or none.
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/s/un/archive.zip").content))
    names = archive.namelist()
    wavs = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.wav"))
    assert wavs and not [n for n in names if n.endswith(".wav")]
    assert sorted(n[len("un/"):-len(".flac")] + ".wav" for n in names
                  if n.endswith(".flac")) == wavs
    for wav in wavs:
        flac, _ = sf.read(io.BytesIO(archive.read(f"un/{wav[:-4]}.flac")))
        exact, _ = sf.read(folder / wav)
        np.testing.assert_allclose(flac, exact, atol=1 / 32768)
    assert "ddjax render" in archive.read("un/README.txt").decode()
    assert "un/steps.jsonl" in names and "un/phase2/items.json" in names
    desks.get("un").archive(folder.parent / "un-none.zip", "none")
    names = zipfile.ZipFile(folder.parent / "un-none.zip").namelist()
    assert not [n for n in names if n.endswith((".wav", ".flac"))]
    assert "un/README.txt" in names and "un/result.json" in names


def test_estimates_are_medians_of_the_measured_times(study):
    config, _, client = study
    root = config.directory / "participants"
    # A participant through both phases of its own: tests may run in any order.
    through_steps(client, "est", consent=True)
    for _ in range(2):
        rate(client, "est")
    wait_phase(client, "est", "phase2")
    measured = client.get("/api/estimate").json()
    gaps, draws = [], []
    for folder in sorted(root.iterdir()):
        for log in (folder / "session" / "ratings.jsonl", folder / "phase2" / "ratings.jsonl"):
            if log.exists():
                times = [datetime.fromisoformat(e["time"]) for e in read_log(log)
                         if "liked" in e]
                gaps += [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        if (folder / "steps.jsonl").exists():
            draws += [e["seconds"] for e in read_log(folder / "steps.jsonl")
                      if e["step"] == "phase2_drawn"]
    assert gaps and draws
    assert measured["seconds_per_rating"] == pytest.approx(statistics.median(gaps))
    assert measured["draw_seconds"] == pytest.approx(statistics.median(draws))
    assert (measured["phase1"], measured["phase2"]) == (2, 2)


def test_an_empty_study_has_no_estimate_yet(tmp_path):
    desks, client = serving(study_config(tmp_path))
    with client:
        measured = client.get("/api/estimate").json()
    desks.close()
    assert measured["participants"] == 0
    assert measured["seconds_per_rating"] is None and measured["draw_seconds"] is None


def test_phase_two_reports_its_progress(study):
    _, desks, client = study
    join(client, "dp")  # a participant of its own: tests may run in any order
    session = desks.get("dp").desk.session
    heard = []
    pool, _ = draw_phase_two(session, ExperimentConfig(2, 1, eval_max_iters=2, seed=3),
                             progress=lambda done, total: heard.append((done, total)))
    assert heard == [(0, 2), (1, 2), (2, 2)] and len(pool) == 2


# -- the consent file, checked before the server listens ----------------------------------------

@pytest.mark.parametrize("content, words", [
    (None, "no such file"), (b"\xff\xfe bad", "not UTF-8"), (b"  \n", "empty"),
    (b"x" * MAX_CONSENT_BYTES, "under 256 kB")])
def test_a_bad_consent_file_is_one_clear_error(tmp_path, content, words):
    path = tmp_path / "consent.md"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DdjaxError, match=words):
        load_consent(path)


def test_an_html_consent_page_is_shown_as_written(tmp_path):
    path = tmp_path / "consent.html"
    path.write_text("<h2>Consent</h2><p>Yes <b>please</b></p>")
    assert load_consent(path).html == path.read_text()


def test_serve_refuses_a_missing_consent_file_before_listening(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ddjax.cli.main", "serve", "--study",
                          "--session", str(tmp_path / "s"), "--consent",
                          str(tmp_path / "nope.md"), "--port", "0"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "nope.md" in run.stderr
    assert "page at" not in run.stdout


# -- in a browser ----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_participant_goes_through_every_step_in_a_browser(tmp_path):
    import urllib.request

    from browser import Server, launch, wait_for_loop, why_not_available
    if why_not_available() is not None:
        pytest.skip(why_not_available())
    from playwright.sync_api import sync_playwright
    consent_file = tmp_path / "consent.md"
    consent_file.write_text(CONSENT_MD)
    study_dir = tmp_path / "study"
    folder = study_dir / "participants" / "zoe"
    errors = []
    with sync_playwright() as playwright, Server(
            "--study", "--session", str(study_dir), "--kit", str(BUNDLED_KIT),
            "--study-ratings", "3", "--study-eval", "1", "--consent", str(consent_file),
            "--archive-audio", "none") as server:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1000, "height": 760}, accept_downloads=True)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server.url + "/")
        page.wait_for_selector("#consent", state="visible", timeout=180_000)  # the start compiles
        assert page.locator("#consent-text em").text_content() == "rate"
        page.click("#agree")
        page.wait_for_selector("#instructions", state="visible")
        assert page.locator("#minutes").count() == 0  # nobody measured yet: no number
        assert "no time estimate" in page.locator("#duration-basis").text_content()
        page.fill("#participant", "zoe")
        page.click("#begin")
        page.wait_for_url("**/study/zoe")
        page.wait_for_selector("#headphones", state="visible")
        assert page.locator("#pid-value").text_content() == "zoe"
        agreed = read_log(folder / "steps.jsonl")[0]
        assert agreed["digest"] == hashlib.sha256(CONSENT_MD.encode()).hexdigest()
        page.click("#volume-play")
        page.click("#volume-done", timeout=20_000)
        for trial in range(1, 7):
            page.wait_for_function(f"document.body.dataset.hpTrial === '{trial}'")
            wav = urllib.request.urlopen(
                f"{server.url}/api/s/zoe/headphones/{trial}.wav").read()
            page.click("#hp-play")
            page.wait_for_function(f"document.body.dataset.hpHeard === '{trial}'",
                                   timeout=20_000)
            page.click(f"#hp-{quietest(wav)}")
        shown = wait_for_loop(page)
        assert shown == "practice"
        assert page.locator("#progress-text").text_content() == "Practice loop (not counted)"
        page.click("#like")
        shown = wait_for_loop(page, shown)
        assert page.locator("#progress-text").text_content() == "Phase I: loop 1 of 3"
        page.keyboard.press("l")
        second = wait_for_loop(page, shown)
        page.click("#study-undo")  # takes back the Like of the first loop
        assert wait_for_loop(page, second) == shown
        for liked in ("d", "l", "l"):
            shown = wait_for_loop(page)
            page.keyboard.press(liked)
            page.wait_for_function("([k]) => document.body.dataset.key !== k"
                                   " || document.body.dataset.view !== 'rate'", arg=[shown])
        page.wait_for_function("document.body.dataset.key === 'e0'"
                               " && document.body.dataset.state === 'playing'",
                               timeout=300_000)
        assert page.locator("#pid-value").text_content() == "zoe"
        page.click("#like")
        wait_for_loop(page, "e0")
        page.click("#study-undo")  # e0's Like taken back
        page.wait_for_function("document.body.dataset.key === 'e0'"
                               " && document.body.dataset.state === 'playing'")
        page.click("#dislike")
        wait_for_loop(page, "e0")
        page.click("#like")
        page.wait_for_selector("#results", state="visible", timeout=60_000)
        browser.close()
    log = read_log(folder / "session" / "ratings.jsonl")
    assert [e.get("liked", "undo") for e in log] == [True, "undo", False, True, True]
    phase2 = read_log(folder / "phase2" / "ratings.jsonl")
    assert [e.get("liked", "undo") for e in phase2] == [True, "undo", False, True]
    steps = read_log(folder / "steps.jsonl")
    assert [e["step"] for e in steps].count("practice") == 1
    assert next(e for e in steps if e["step"] == "headphones_result")["passed"] is True
    assert not errors, errors
