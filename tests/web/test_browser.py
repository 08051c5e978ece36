"""`ddjax serve` end to end in a real browser: Debian's Chromium, headless, via Playwright.

Each rating follows one bar of listening (2 s), the least a person rates on. The waits from
click to the next loop playing are printed as a JSON line (bench/README.md records them).
Set DDJAX_SCREENSHOTS=1 to refresh the screenshots in docs/.
"""

import importlib.util
import io
import itertools
import json
import math
import os
import re
import statistics
import time
import urllib.request
import zipfile
from datetime import datetime

import mido
import numpy as np
import pytest
from browser import REPO, Server, launch, wait_for_loop, why_not_available
from people import quietest

from ddjax.session.session import STARTUP_STEPS
from ddjax.session.startup import RECORD_NAME

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(why_not_available() is not None,
                                 reason=why_not_available() or "")]

LISTEN_SECONDS = 2.0
# General MIDI percussion key map (GM 1, channel 10), written out here as the reference.
GM_DRUMS = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42,
            "open_hat": 46, "crash": 49, "ride": 51, "cowbell": 56, "shaker": 70}
SCREENSHOTS = bool(os.environ.get("DDJAX_SCREENSHOTS"))
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def listen(playing_since: float) -> None:
    """Waits until one bar has been heard since ``playing_since`` (time.monotonic())."""
    time.sleep(max(0.0, LISTEN_SECONDS - (time.monotonic() - playing_since)))


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def midi_hits(data: bytes) -> set[tuple[int, int]]:
    """(note, 16th step) of every note-on, read with mido: the independent reference."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    ticks_per_step = midi.ticks_per_beat // 4
    hits, now = set(), 0
    for message in mido.merge_tracks(midi.tracks):
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            assert message.channel == 9
            hits.add((message.note, now // ticks_per_step))
    return hits


def test_rate_download_and_resume_in_the_browser(browser, tmp_path):
    session_dir = tmp_path / "session"
    page = browser.new_page(viewport={"width": 1200, "height": 760}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    with Server("--session", str(session_dir)) as server:
        page.goto(server.url + "/")
        key = wait_for_loop(page)
        playing_since = time.monotonic()  # the first bar is heard while the page is checked
        # The page answered while the session opened, and named the steps it went through.
        steps = page.evaluate("window.ddjax.startSteps")
        assert steps and steps == sorted(steps, key=STARTUP_STEPS.index), steps
        assert page.locator("#starting").is_hidden()
        assert (session_dir / RECORD_NAME).is_file()  # the next start's estimate
        # The audio is decoded and playing: the first two bars of the listening render
        # (bar 2 holds bar 1's tails, and loops), 2 s a bar at 120 BPM.
        audio = page.evaluate("({duration: window.ddjax.duration, bar: window.ddjax.bar})")
        assert audio["bar"] == pytest.approx(2.0)
        assert audio["duration"] == pytest.approx(2 * audio["bar"], abs=1e-3)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["key"] == key
        assert page.locator("#grid .cell").count() == 64
        on = page.locator("#grid .cell.on")
        drawn = {(int(on.nth(i).get_attribute("data-track")), int(on.nth(i).get_attribute(
            "data-step"))) for i in range(on.count())}
        assert drawn == {(t, s) for t, row in enumerate(current["grid"])
                         for s, v in enumerate(row) if v}
        assert page.locator("#grid .name").all_text_contents() == [
            r["name"] for r in current["rows"]]

        choices = [True, False, True, False, True, True, False, True, False, True]
        keys, shown = ["l", "d", "ArrowRight", "ArrowLeft", "l"], [key]
        for i, liked in enumerate(choices):
            listen(playing_since)
            if i < 5:
                page.keyboard.press(keys[i])
            else:
                page.click("#like" if liked else "#dislike")
            shown.append(wait_for_loop(page, shown[-1]))
            playing_since = time.monotonic()
        # A double click is one rating: the second is refused (or never sent).
        listen(playing_since)
        page.dblclick("#like")
        choices.append(True)
        shown.append(wait_for_loop(page, shown[-1]))
        time.sleep(0.5)

        log = read_log(session_dir / "ratings.jsonl")
        assert [e["liked"] for e in log] == choices
        assert [str(e["id"]) for e in log] == shown[:-1]
        assert len(set(shown)) == len(shown), "a loop was shown twice"
        assert page.locator("#counts").text_content().startswith("11 ratings, 7 liked")

        latencies = page.evaluate("window.ddjax.latencies")
        assert len(latencies) == 11
        print(json.dumps({"test": "browser_next_loop_latency", "ratings": len(latencies),
                          "listen_seconds": LISTEN_SECONDS,
                          "median_s": round(float(np.median(latencies)), 3),
                          "max_s": round(max(latencies), 3),
                          "latencies_s": [round(x, 3) for x in latencies]}))
        assert max(latencies) < 10.0

        # The liked list: newest first, and the MIDI download holds the loop's grid.
        liked_keys = [str(e["id"]) for e in reversed(log) if e["liked"]]
        items = page.locator("#liked li")
        assert [items.nth(i).get_attribute("data-key") for i in range(items.count())] == \
            liked_keys
        entry = next(e for e in log if str(e["id"]) == liked_keys[1])
        with page.expect_download() as download:
            page.click(f"#liked li[data-key='{liked_keys[1]}'] a.download-midi")
        path = tmp_path / "loop.mid"
        download.value.save_as(path)
        hits = midi_hits(path.read_bytes())
        grid = np.array(entry["loop"]["grid"], bool)
        assert {step for _, step in hits} == set(np.nonzero(grid.any(axis=0))[0].tolist())
        kinds = [name.split("/")[0] for name in entry["loop"]["samples"]]
        for track, kind in enumerate(kinds):
            # The bundled kit names each sample's kind in its folder; a second track of a
            # kind plays another note (one note per track).
            if kind in GM_DRUMS and kind not in kinds[:track]:
                steps = set(np.nonzero(grid[track])[0].tolist())
                assert steps <= {s for n, s in hits if n == GM_DRUMS[kind]}, (kind, hits)
        if SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / "serve-rating.png"))

    # Killed outright; a new server on the same folder resumes every rating.
    with Server("--session", str(session_dir)) as server:
        page.goto(server.url + "/")
        key = wait_for_loop(page)
        assert key not in shown[:-1]
        page.wait_for_function("document.querySelector('#counts').textContent"
                               ".startsWith('11 ratings')")
        assert page.locator("#liked li").count() == len(liked_keys)

        # Undo (U): the last rating is taken back and its loop is current again; the log
        # keeps the rating and adds an undo.
        page.keyboard.press("u")
        undone = wait_for_loop(page, key)
        assert undone == shown[-2] and read_log(session_dir / "ratings.jsonl")[-1] == {
            "undo": int(undone), "time": read_log(session_dir / "ratings.jsonl")[-1]["time"]}
        page.wait_for_function("document.querySelector('#counts').textContent"
                               ".startsWith('10 ratings')")
        # Skip (S): logged, and the loop that was current before the undo comes back.
        page.keyboard.press("s")
        assert wait_for_loop(page, undone) == key
        assert read_log(session_dir / "ratings.jsonl")[-1]["skip"] == int(undone)
        # More like this: a variation on a liked loop is current at once.
        first_liked = page.locator("#liked li").first.get_attribute("data-key")
        page.click(f"#liked li[data-key='{first_liked}'] button.more")
        variation = wait_for_loop(page, key)
        assert variation not in shown
        # Everything liked in one zip: per loop its MIDI, one-bar WAV and JSON, and a README.
        in_force = []
        for entry in read_log(session_dir / "ratings.jsonl"):
            if "undo" in entry:
                in_force.pop()
            elif "liked" in entry:
                in_force.append(entry)
        liked_now = [f"loop_{e['id']:05d}" for e in in_force if e["liked"]]
        with page.expect_download() as download:
            page.click("#download-all")
        names = set(zipfile.ZipFile(download.value.path()).namelist())
        # ... and each one-shot the liked loops play, once, so the MIDI plays anywhere.
        one_shots = {f"one-shots/{name}" for e in in_force if e["liked"]
                     for name in e["loop"]["samples"]}
        assert names == {"README.txt"} | one_shots | {
            f"{n}{end}" for n in liked_now for end in (".mid", ".json", "_1bar_120bpm.wav")}
    assert not errors, errors


def test_a_small_study_end_to_end(browser, tmp_path):
    study_dir = tmp_path / "study"
    page = browser.new_page(viewport={"width": 1000, "height": 700}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    with Server("--study", "--no-warm-up", "--session", str(study_dir), "--study-ratings", "3",
                "--study-eval", "2") as server:
        page.goto(server.url + "/")
        # The page answers at once; its instructions once the study has opened
        # (--no-warm-up: each program compiles when first needed).
        page.wait_for_selector("#instructions", state="visible", timeout=180_000)
        assert "headphones" in page.locator("#instructions").text_content()
        # The study's size is on the page; its time is measured, and nobody has rated yet.
        assert (page.locator("#n-phase1").text_content(),
                page.locator("#n-phase2").text_content()) == ("3", "4")
        assert page.locator("#minutes").count() == 0
        assert "no time estimate" in page.locator("#duration-basis").text_content()
        page.fill("#participant", "alice")
        page.click("#begin")
        page.wait_for_url("**/study/alice")
        # Before phase I: the headphone check, answered from each trial's audio...
        page.wait_for_selector("#headphones", state="visible")
        page.click("#volume-play")
        page.click("#volume-done", timeout=20_000)
        for trial in range(1, 7):
            page.wait_for_function(f"document.body.dataset.hpTrial === '{trial}'")
            wav = urllib.request.urlopen(
                f"{server.url}/api/s/alice/headphones/{trial}.wav").read()
            page.click("#hp-play")
            page.wait_for_function(f"document.body.dataset.hpHeard === '{trial}'",
                                   timeout=20_000)
            page.click(f"#hp-{quietest(wav)}")
        # ...then one practice loop, not counted.
        assert wait_for_loop(page) == "practice"
        assert page.locator("#progress-text").text_content() == "Practice loop (not counted)"
        page.click("#like")
        shown = [wait_for_loop(page, "practice")]
        assert page.locator("#score").text_content() == ""  # blind
        # A study's loops are rated as proposed: nothing to edit.
        assert page.locator("#edit").is_hidden() and page.locator("#grid button").count() == 0
        width = "document.getElementById('progress-bar').style.width"
        progress = []
        phase1 = [True, False, True]
        for liked in phase1:
            progress.append(float(page.evaluate(width).rstrip("%")))
            assert page.locator("#progress-text").text_content().startswith("Phase I")
            page.keyboard.press("l" if liked else "d")
            shown.append(wait_for_loop(page, shown[-1]))
        phase2 = [True, True, False, True]
        for i, liked in enumerate(phase2):
            assert shown[-1] == f"e{i}"
            progress.append(float(page.evaluate(width).rstrip("%")))
            assert progress[-1] >= progress[-2]  # never backwards, not even into phase II
            assert page.locator("#progress-text").text_content() == f"Phase II: loop {i + 1} of 4"
            page.click("#like" if liked else "#dislike")
            if i < 3:
                shown.append(wait_for_loop(page, shown[-1]))
        page.wait_for_selector("#results", state="visible")

        participant = study_dir / "participants" / "alice"
        items = json.loads((participant / "phase2" / "items.json").read_text())
        groups = [item["group"] for item in items]
        assert sorted(groups) == ["final", "final", "init", "init"]
        theta = {g: np.mean([l for l, gg in zip(phase2, groups) if gg == g])
                 for g in ("init", "final")}
        assert page.locator("#theta-init").text_content() == f"{round(100 * theta['init'])}%"
        assert page.locator("#theta-final").text_content() == f"{round(100 * theta['final'])}%"
        assert [e["liked"] for e in read_log(participant / "session" / "ratings.jsonl")] == \
            phase1  # the practice rating is not among them
        steps = read_log(participant / "steps.jsonl")
        assert [e["liked"] for e in steps if e["step"] == "practice"] == [True]
        if SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / "serve-results.png"))

        with page.expect_download() as download:
            page.click("#archive")
        archive = zipfile.ZipFile(download.value.path())
        names = set(archive.namelist())
        assert {"alice/session/ratings.jsonl", "alice/phase2/ratings.jsonl",
                "alice/critic_initial.critic", "alice/critic_final.critic",
                "alice/result.json"} <= names
        # The audio as FLAC: each WAV the server kept, 3 + 4 rated loops and the practice.
        kept = {f"alice/{w.relative_to(participant).with_suffix('.flac').as_posix()}"
                for w in participant.rglob("*.wav")}
        assert not [n for n in names if n.endswith(".wav")]
        assert {n for n in names if n.endswith(".flac")} == kept
        assert "alice/practice/loop.flac" in kept
        assert len([n for n in kept if n.startswith("alice/session/")]) == 3
        assert len([n for n in kept if n.startswith("alice/phase2/")]) == 4
        result = json.loads(archive.read("alice/result.json"))
        assert result["delta"] == pytest.approx(theta["final"] - theta["init"])

        # The next participant's page estimates the study from alice's measured times:
        # (3 + 4 loops and the practice) at her median time per loop, plus phase II's draw.
        gaps = []
        for log in (participant / "session" / "ratings.jsonl",
                    participant / "phase2" / "ratings.jsonl"):
            times = [datetime.fromisoformat(e["time"]) for e in read_log(log) if "liked" in e]
            gaps += [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        per_loop = statistics.median(gaps)
        draw, = [e["seconds"] for e in steps if e["step"] == "phase2_drawn"]
        page.goto(server.url + "/")
        page.wait_for_selector("#instructions", state="visible")
        assert page.locator("#minutes").text_content() == str(
            max(1, math.floor(((3 + 4 + 1) * per_loop + draw) / 60 + 0.5)))
        basis = page.locator("#duration-basis").text_content()
        assert "from the 1 participant so far" in basis
        shown_per_loop = float(re.search(r"median of ([\d.]+) s per loop", basis)[1])
        assert shown_per_loop == pytest.approx(per_loop, abs=0.051)
    assert not errors, errors


def test_the_page_shows_accents_and_swing(browser, tmp_path):
    """Each hit's brightness and ring follow its velocity; the swing and the humanize
    jitter are named."""
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    with Server("--session", str(tmp_path / "groove"), "--swing", "54",
                "--humanize", "6,8,2") as server:
        page.goto(server.url + "/")
        wait_for_loop(page)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["swing"] == 54
        assert current["humanize"] == {"ms": 6, "velocity": 8, "seed": 2}
        assert page.locator("#groove").text_content() == \
            "swing 54% \u00b7 humanized: up to 6 ms and 8 velocity"
        velocity = np.array(current["velocity"])
        on = page.locator("#grid .cell.on")
        for i in range(on.count()):
            cell = on.nth(i)
            v = velocity[int(cell.get_attribute("data-track")), int(cell.get_attribute(
                "data-step"))]
            classes = cell.get_attribute("class").split()
            assert ("accent" in classes) == (v >= 120) and ("ghost" in classes) == (v <= 80)
            assert float(cell.evaluate("c => getComputedStyle(c).opacity")) == pytest.approx(
                0.35 + 0.65 * v / 127, abs=0.006)
        if SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / "serve-groove.png"))


def test_edit_a_loop_audition_it_and_rate_this_version(browser, tmp_path):
    """A cell toggled by a click, a track muted, the tempo raised: the page auditions the
    edit (2 bars at the new tempo) and Like rates the version heard, at the session's
    tempo. On the next loop, space toggles a focused cell and Revert brings back the loop
    as proposed."""
    from playwright.sync_api import expect
    session_dir = tmp_path / "session"
    page = browser.new_page(viewport={"width": 1200, "height": 760}, color_scheme="light")
    errors, sent, scored = [], [], []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("request", lambda r: sent.append(r.post_data_json)
            if r.url.endswith("/audition") else None)
    page.on("response", lambda r: scored.append(r.headers)
            if r.url.endswith("/audition") else None)
    with Server("--session", str(session_dir)) as server:
        page.goto(server.url + "/")
        key = wait_for_loop(page)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["key"] == key and current["bpm"] == 120
        grid = np.array(current["grid"])
        who = [row["kind"] or row["name"] for row in current["rows"]]
        # Mute a track that plays; switch on a step another track leaves off.
        muted = int(np.flatnonzero(grid.any(axis=1))[0])
        track, step = next((t, s) for t in range(len(grid)) if t != muted
                           for s in range(grid.shape[1]) if not grid[t, s])
        cell = page.locator(f"#grid .cell[data-track='{track}'][data-step='{step}']")
        cell.get_by_role("button").click()
        expect(cell).to_have_attribute("aria-label", f"{who[track]}, step {step + 1}, on")
        expect(cell.get_by_role("button")).to_have_attribute("aria-pressed", "true")
        mute = page.get_by_role("button", name=f"Mute track {muted + 1} ({who[muted]})")
        mute.click()
        expect(mute).to_have_attribute("aria-pressed", "true")
        page.focus("#bpm")
        for _ in range(20):  # the slider keeps the arrow keys: no rating
            page.keyboard.press("ArrowRight")
        expect(page.locator("#bpm")).to_have_value("140")

        # The edit is auditioned: the page plays 2 bars at 140 BPM, as edited.
        page.wait_for_function("Math.abs(window.ddjax.duration - 2 * 4 * 60 / 140) < 1e-3")
        edit = sent[-1]
        heard = grid.copy()
        heard[track, step] = 1
        assert edit["key"] == key and edit["bpm"] == 140 and edit["mute"][muted]
        assert np.array_equal(edit["grid"], heard)
        assert edit["velocity"][track][step] == 100  # a new hit is a normal one
        assert page.evaluate("window.ddjax.auditions")
        expect(page.locator("#play")).to_have_accessible_name(f"Pause loop {key}")
        expect(page.locator("#edited-text")).to_contain_text("rate this version")
        expect(page.locator("#edited-text")).to_contain_text("120 BPM")
        expect(page.locator("#like")).to_have_accessible_name(f"Like this version of loop {key}")
        assert not (session_dir / "ratings.jsonl").exists() or not read_log(
            session_dir / "ratings.jsonl")
        page.locator("#bpm").blur()
        if importlib.util.find_spec("axe_playwright_python") is not None:
            assert axe_violations(page) == []
        if SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / "serve-edit.png"))

        # Like rates the version heard (the muted row cleared) at the session's tempo, and
        # the log keeps the loop as proposed.
        page.click("#like")
        second = wait_for_loop(page, key)
        (entry,) = read_log(session_dir / "ratings.jsonl")
        heard[muted] = 0
        assert entry["id"] == int(key) and entry["liked"] is True
        assert np.array_equal(entry["loop"]["grid"], heard)
        assert entry["loop"]["bpm"] == 120
        assert entry["proposed"]["grid"] == current["grid"]

        # The next loop is as proposed; space toggles a focused cell (and doesn't pause), and
        # Revert undoes every change, the tempo's too, and plays the loop as proposed again.
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["key"] == second
        expect(page.locator("#bpm")).to_have_value("120")
        assert page.locator("#revert").is_hidden()
        # The grid is one Tab stop; there the arrow keys move between cells and rate
        # nothing.
        assert page.locator("#grid .hit[tabindex='0']").count() == 1
        page.focus("#grid .cell[data-track='0'][data-step='0'] button")
        for key_name in (["ArrowRight"] * step + ["ArrowDown", "ArrowUp", "End", "Home",
                                                    "ArrowLeft"] + ["ArrowRight"] * step):
            page.keyboard.press(key_name)
        focused = page.evaluate("[+document.activeElement.closest('.cell').dataset.track,"
                                " +document.activeElement.closest('.cell').dataset.step]")
        assert focused == [0, step]
        assert page.locator("#grid .hit[tabindex='0']").count() == 1
        assert len(read_log(session_dir / "ratings.jsonl")) == 1  # no arrow rated
        on = f"#grid .cell[data-track='0'][data-step='{step}']"
        auditioned = len(page.evaluate("window.ddjax.auditions"))
        page.focus(f"{on} button")
        page.keyboard.press(" ")
        expect(page.locator(on)).to_have_attribute(
            "aria-label", re.compile(f", {'off' if current['grid'][0][step] else 'on'}\\b"))
        expect(page.locator("#play")).to_have_accessible_name(f"Pause loop {second}")
        page.get_by_role("button", name=re.compile(r"^Solo track 2 ")).click()
        page.focus("#bpm")
        page.keyboard.press("End")
        page.wait_for_function("Math.abs(window.ddjax.duration - 2 * 4 * 60 / 200) < 1e-3")
        assert len(page.evaluate("window.ddjax.auditions")) > auditioned
        # The critic's word is on the version heard, as the server scored it.
        version, score = int(scored[-1]["x-ddjax-critic-version"]), scored[-1]["x-ddjax-score"]
        expect(page.locator("#score")).to_have_text(
            "critic: not trained yet (it learns from your ratings)" if version == 0 else
            f"critic: {math.floor(100 * float(score) + 0.5)}% chance you like this version"
            f" (trained on {version} rating{'' if version == 1 else 's'})")
        page.get_by_role("button", name=f"Revert to loop {second} as proposed").click()
        drawn = page.locator("#grid .cell").evaluate_all(
            "cells => cells.map((c) => [+c.dataset.track, +c.dataset.step,"
            " c.classList.contains('on')])")
        assert {(t, s) for t, s, lit in drawn if lit} == {
            (t, s) for t, row in enumerate(current["grid"]) for s, v in enumerate(row) if v}
        assert page.locator("#grid [aria-pressed='true']").count() == sum(map(sum, current["grid"]))
        expect(page.locator("#edited-text")).to_have_text("")
        assert page.locator("#revert").is_hidden()
        expect(page.locator("#bpm")).to_have_value("120")
        assert page.evaluate("window.ddjax.duration") == pytest.approx(4.0, abs=1e-3)
    assert not errors, errors


@pytest.mark.parametrize("prior", ["learned", "uniform"])
def test_shift_click_sets_a_hits_velocity_and_the_style_selector(browser, tmp_path, prior):
    """Shift+click, then A on the focused cell, cycle a hit through ghost (70), normal (100)
    and accent (127): the page sends each velocity with /audition and Like rates it. A loop
    without velocities (as an old session's, here under the uniform prior, whose hits all
    play at 127) gets them: 127 for every other cell. Under the learned prior the style
    selector lists the mix and every style, and a choice is sent to /style; under another
    it is hidden."""
    from playwright.sync_api import expect
    levels = [70, 100, 127]  # the cycle, written out here as the reference
    session_dir = tmp_path / "session"
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    stripped = []

    def without_velocities(route):
        response = route.fetch()
        stripped.append(route.request.url)
        route.fulfill(response=response, json={**response.json(), "velocity": None})

    if prior == "uniform":
        page.route("**/api/s/main/current", without_velocities)
    with Server("--session", str(session_dir), "--loop-prior", prior) as server:
        page.goto(server.url + "/")
        key = wait_for_loop(page)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        grid = np.array(current["grid"])
        velocity = np.array(current["velocity"])
        if prior == "uniform":
            assert stripped  # the page had the loop without velocities
            assert (velocity == 127).all()  # as the page takes the velocity-less loop
        track, step = (int(i) for i in np.argwhere(grid)[0])
        cell = page.locator(f"#grid .cell[data-track='{track}'][data-step='{step}']")
        expected = velocity.copy()
        for press in ("shift+click", "A"):
            now = expected[track, step]
            expected[track, step] = next((v for v in levels if v > now), levels[0])
            with page.expect_request(lambda r: r.url.endswith("/audition")) as request:
                if press == "A":
                    page.focus(f"#grid .cell[data-track='{track}'][data-step='{step}'] button")
                    page.keyboard.press("a")
                else:
                    cell.get_by_role("button").click(modifiers=["Shift"])
            edit = request.value.post_data_json
            assert edit["key"] == key and np.array_equal(edit["grid"], grid)
            np.testing.assert_array_equal(edit["velocity"], expected)
            level = expected[track, step]
            name = "accent" if level >= 120 else "ghost note" if level <= 80 else "normal"
            expect(cell).to_have_attribute("title", re.compile(f"^velocity {level} \\({name}\\)"))
        log = session_dir / "ratings.jsonl"
        assert not log.exists() or not read_log(log)  # A rated nothing

        # The style selector: "mix" and every style, the mix chosen; a pick is sent.
        state = page.request.get(f"{server.url}/api/s/main/state").json()
        if prior == "uniform":
            assert "styles" not in state
            expect(page.locator("#style-pick")).to_be_hidden()
        else:
            styles = state["styles"]
            select = page.get_by_label("Style", exact=True)
            assert select.locator("option").all_text_contents() == [
                "mix (every style)", *styles]
            expect(select).to_have_value("")
            with page.expect_response(lambda r: r.url.endswith("/style")) as response:
                select.select_option(styles[0])
            assert response.value.ok
            assert response.value.request.post_data_json == {"style": styles[0]}
            state = page.request.get(f"{server.url}/api/s/main/state").json()
            assert state["style"] == styles[0]

        page.click("#like")
        wait_for_loop(page, key)
        (entry,) = read_log(log)
        assert entry["id"] == int(key)
        # Rated as heard: the hit at its new level.
        assert entry["loop"]["velocity"][track][step] == expected[track, step]
    assert not errors, errors


def srgb(css: str) -> tuple[float, float, float]:
    """A computed ``rgb(...)``/``rgba(...)`` colour as three 0..255 numbers."""
    return tuple(float(x) for x in re.findall(r"[\d.]+", css)[:3])


def contrast(a, b) -> float:
    """The WCAG 2 contrast ratio of two sRGB colours, from the spec's formulas."""
    def luminance(rgb):
        c = [x / 255 for x in rgb]
        c = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Where each element is, and whether it is the one on top at its own centre (not covered).
BOXES = """(selector) => [...document.querySelectorAll(selector)].map((e) => {
  const r = e.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
          height: r.height, onTop: !!hit && (hit === e || e.contains(hit))};
})"""


def assert_in_view(box, width, height, what):
    assert box["left"] >= 0 and box["right"] <= width and box["top"] >= 0 and \
        box["bottom"] <= height and box["onTop"], (what, box)


def axe_violations(page) -> list[dict]:
    from axe_playwright_python.sync_playwright import Axe
    return Axe().run(page).response["violations"]


def test_the_page_on_a_phone_in_both_themes_and_to_a_screen_reader(browser, tmp_path):
    """One server for: the phone layout, the light and dark themes, the accessible names,
    the like-rate chart's axes, an axe-core audit, and no score before the critic learns."""
    from playwright.sync_api import expect
    session_dir = tmp_path / "session"
    errors = []
    with Server("--session", str(session_dir)) as server:
        phone = browser.new_context(viewport=PHONE, color_scheme="dark", is_mobile=True,
                                    has_touch=True)
        page = phone.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server.url + "/")
        key = wait_for_loop(page)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["key"] == key

        # Before the critic has learned from a single rating, no percentage.
        assert current["critic_version"] == 0
        score = page.locator("#score").text_content()
        assert "not trained yet" in score and "%" not in score, score

        # The phone: no sideways scrolling; every step of every track and the three
        # buttons are inside the viewport, uncovered; the buttons are thumb-sized.
        width, height = page.evaluate("[innerWidth, innerHeight]")
        assert (width, height) == (PHONE["width"], PHONE["height"])
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width
        tracks, steps = len(current["grid"]), len(current["grid"][0])
        assert steps == 16
        cells = page.evaluate(BOXES, "#grid .cell")
        assert len(cells) == tracks * steps
        for i, box in enumerate(cells):
            assert_in_view(box, width, height, f"cell {i}")
            assert box["width"] >= 12, box  # a step you can see
        for selector in ("#dislike", "#play", "#like"):
            (box,) = page.evaluate(BOXES, selector)
            assert_in_view(box, width, height, selector)
            assert box["height"] >= 44 and box["width"] >= 44, (selector, box)
        if SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / "serve-phone.png"))

        # Every control says what it does and to which loop.
        expect(page.locator("#play")).to_have_accessible_name(f"Pause loop {key}")
        page.keyboard.press(" ")
        expect(page.locator("#play")).to_have_accessible_name(f"Play loop {key}")
        page.keyboard.press(" ")
        expect(page.locator("#play")).to_have_accessible_name(f"Pause loop {key}")
        expect(page.locator("#like")).to_have_accessible_name(f"Like loop {key}")
        expect(page.locator("#dislike")).to_have_accessible_name(f"Dislike loop {key}")

        # The grid is a table: a row per track named by its sample's kind and name, a cell
        # per step named by the track, the step (from 1), on or off, and accent or ghost.
        table = page.get_by_role("table", name=re.compile(rf"\bloop {key}\b"))
        expect(table).to_have_count(1)
        rows = table.get_by_role("row")
        expect(rows).to_have_count(tracks)
        for track, row in enumerate(current["rows"]):
            who = row["kind"] or row["name"]
            expect(rows.nth(track)).to_have_accessible_name(
                re.compile(re.escape(row["name"])))
            if row["kind"]:
                expect(rows.nth(track)).to_have_accessible_name(
                    re.compile(rf"\b{re.escape(row['kind'])}\b"))
            lines = []
            for step, on in enumerate(current["grid"][track]):
                v = current["velocity"][track][step]
                loudness = (", accent" if v >= 120 else ", ghost note" if v <= 80 else "") \
                    if on else ""
                lines.append(f'- cell "{who}, step {step + 1}, {"on" if on else "off"}'
                             f'{loudness}"')
            expect(rows.nth(track)).to_match_aria_snapshot(
                '- row:\n  - rowheader\n' + "".join(f"  {line}\n" for line in lines))

        # Three ratings: the liked list, the chart, and a critic that has learned one rating
        # (the page keeps two loops prepared, so the loop after rating k comes from the
        # critic trained on ratings 1..k-2).
        page.keyboard.press("l")
        second = wait_for_loop(page, key)
        page.keyboard.press("d")
        third = wait_for_loop(page, second)
        page.keyboard.press("d")
        fourth = wait_for_loop(page, third)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["key"] == fourth and current["critic_version"] == 1
        score = page.locator("#score").text_content()
        n = current["critic_version"]
        assert any(f"{p}% chance" in score for p in {math.floor(100 * current["score"]),
                                                      math.ceil(100 * current["score"])}), score
        assert f"trained on {n} rating" in score, score

        liked = page.locator(f"#liked li[data-key='{key}']")
        expect(liked.locator("button.replay")).to_have_accessible_name(f"Play liked loop {key}")
        expect(liked.locator("a.download-midi")).to_have_accessible_name(
            f"Download liked loop {key} as MIDI")
        for link in liked.get_by_role("link").all():
            expect(link).to_have_accessible_name(re.compile(rf"^Download liked loop {key} as "))

        # The chart: an image named as the like rate, described by the running rate the
        # log gives, with labelled axes; its last point sits at that rate on the y axis.
        log = read_log(session_dir / "ratings.jsonl")
        likes = [e["liked"] for e in log]
        assert likes == [True, False, False]
        rate = sum(likes[-10:]) / len(likes[-10:])
        chart = page.get_by_role("img", name=re.compile("like rate", re.IGNORECASE))
        expect(chart).to_have_count(1)
        expect(chart).to_have_accessible_description(re.compile(rf"\b{round(100 * rate)}%"))
        texts = chart.locator("text")
        labels = texts.all_text_contents()
        assert {"ratings", "like rate", "0%", "100%", "1", str(len(likes))} <= set(labels), labels
        y0, y100 = (float(texts.nth(labels.index(t)).get_attribute("y")) for t in ("0%", "100%"))
        assert y100 < y0  # up is more
        last = chart.locator("polyline").get_attribute("points").split()[-1]
        assert float(last.split(",")[1]) == pytest.approx(y0 + rate * (y100 - y0), abs=0.2)

        # The themes follow the system: dark and light backgrounds, readable text on both.
        light = browser.new_page(viewport={"width": 1200, "height": 760}, color_scheme="light")
        light.on("pageerror", lambda err: errors.append(str(err)))
        light.goto(server.url + "/")
        assert wait_for_loop(light) == fourth
        light.locator("#liked li").first.wait_for()
        colours = {}
        for scheme, p in (("dark", page), ("light", light)):
            colours[scheme] = p.evaluate("""() => {
              const css = (s, k) => getComputedStyle(document.querySelector(s))[k];
              return {bg: css("body", "backgroundColor"), ink: css("body", "color"),
                      card: css("#rating", "backgroundColor"), dim: css("#score", "color")};
            }""")
        dark_bg, light_bg = srgb(colours["dark"]["bg"]), srgb(colours["light"]["bg"])
        assert dark_bg != light_bg and sum(light_bg) > sum(dark_bg), colours
        for scheme, c in colours.items():
            assert contrast(srgb(c["ink"]), srgb(c["bg"])) >= 7, (scheme, c)
            assert contrast(srgb(c["dim"]), srgb(c["card"])) >= 4.5, (scheme, c)
        if SCREENSHOTS:
            light.screenshot(path=str(REPO / "docs" / "serve-light.png"))
        assert not errors, errors

        # An automated audit (axe-core, bundled with axe-playwright-python, run offline).
        if importlib.util.find_spec("axe_playwright_python") is None:
            pytest.skip("the axe-core audit needs axe-playwright-python (pip install -e"
                        " '.[test]'); every other check of this test passed")
        found = {}
        for name, p in (("phone, dark", page), ("desktop, light", light)):
            found[name] = [(v["id"], v["impact"], len(v["nodes"])) for v in axe_violations(p)]
        print(json.dumps({"test": "axe_audit", "violations": found}))
        serious = {name: [v for v in vs if v[1] in ("serious", "critical")]
                   for name, vs in found.items()}
        assert not any(serious.values()), serious


# Logs, from outside the page's own code, when the page asks for the current loop or sends
# a rating: the retries' timing is read from here.
FETCH_LOG = """(() => {
  window.__asked = [];
  const original = window.fetch;
  window.fetch = function (input, init) {
    const url = String((input && input.url) || input);
    if (/\\/api\\/s\\/[^/]+\\/(current|rate)$/.test(url))
      window.__asked.push({at: performance.now(), url, method: (init && init.method) || "GET"});
    return original.apply(this, arguments);
  };
})();"""
UNREACHABLE = re.compile(r"can.t reach the server", re.IGNORECASE)


def kept_ratings(page) -> list[dict]:
    """The ratings the page keeps in localStorage until the server has them."""
    return [value for name, value in page.evaluate(
        "() => Object.keys(localStorage).map((k) => [k, localStorage.getItem(k)])")
        if "pending" in name for value in [json.loads(value)]]


def wait_for_log(path, count, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(read_log(path)) >= count:
            return read_log(path)
        time.sleep(0.2)
    raise AssertionError(f"{path} has not got {count} ratings: {read_log(path)}")


def test_a_rating_survives_the_server_going_away(browser, tmp_path):
    """The server dies after one rating; Like is pressed: the page says the server can't be
    reached, keeps the rating, retries backing off, and sends it once (and only once) to
    the server started again. A reload keeps a kept rating; one rated meanwhile is dropped."""
    session_dir = tmp_path / "session"
    log_path = session_dir / "ratings.jsonl"
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.add_init_script(FETCH_LOG)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    servers = [Server("--session", str(session_dir))]
    try:
        url = servers[0].url
        page.goto(url + "/")
        k0 = wait_for_loop(page)
        page.keyboard.press("l")
        k1 = wait_for_loop(page, k0)
        heard = page.request.get(f"{url}/api/s/main/current").json()
        assert heard["key"] == k1 and [e["id"] for e in read_log(log_path)] == [int(k0)]

        servers[0].kill()
        page.evaluate("window.__asked = []")
        page.keyboard.press("l")
        banner = page.locator("#offline")
        banner.wait_for(state="visible", timeout=10_000)
        assert UNREACHABLE.search(banner.text_content()), banner.text_content()
        assert f"loop {k1}" in banner.text_content()
        assert "Failed to fetch" not in page.locator("body").inner_text()
        page.keyboard.press("d")  # pressed again while the first waits: not another rating
        page.wait_for_timeout(4_500)
        # Kept, in memory and on disk in the browser, and not on the server (yet).
        assert [(r["key"], r["liked"]) for r in kept_ratings(page)] == [(k1, True)]
        assert [e["id"] for e in read_log(log_path)] == [int(k0)]
        # Retries back off: 0.5 s, then doubling (up to 8 s).
        asked = [a["at"] / 1000 for a in page.evaluate("window.__asked")]
        gaps = [b - a for a, b in itertools.pairwise(asked)]
        assert len(gaps) >= 3, asked
        for i, gap in enumerate(gaps):
            want = min(0.5 * 2 ** i, 8.0)
            assert want * 0.9 <= gap <= want + 1.0, (i, gaps)

        # The server comes back on the same folder and port: the rating lands, once, on the
        # loop that was heard.
        servers.append(Server("--session", str(session_dir), port=servers[0].port))
        log = wait_for_log(log_path, 2)
        k2 = wait_for_loop(page, k1)
        banner.wait_for(state="hidden")
        time.sleep(0.5)
        log = read_log(log_path)
        assert [(e["id"], e["liked"]) for e in log] == [(int(k0), True), (int(k1), True)]
        assert log[1]["loop"]["grid"] == heard["grid"]
        assert log[1]["loop"]["samples"] == [row["name"] for row in heard["rows"]]
        assert kept_ratings(page) == []

        # Ratings that can't get through (aborted by Playwright): a reload keeps the kept one.
        page.route("**/api/s/main/rate", lambda route: route.abort())
        page.keyboard.press("d")
        banner.wait_for(state="visible", timeout=10_000)
        page.reload()
        banner.wait_for(state="visible", timeout=20_000)
        assert UNREACHABLE.search(banner.text_content()) and f"loop {k2}" in \
            banner.text_content()
        assert [(r["key"], r["liked"]) for r in kept_ratings(page)] == [(k2, False)]
        page.unroute("**/api/s/main/rate")
        k3 = wait_for_loop(page, k2)
        assert [(e["id"], e["liked"]) for e in read_log(log_path)][2:] == [(int(k2), False)]
        assert kept_ratings(page) == []

        # Rated meanwhile in another browser: the kept rating is dropped, and the page says so.
        other = browser.new_page(viewport={"width": 1000, "height": 700})
        other.goto(url + "/")
        assert wait_for_loop(other) == k3
        page.route("**/api/s/main/rate", lambda route: route.abort())
        page.keyboard.press("l")
        banner.wait_for(state="visible", timeout=10_000)
        other.keyboard.press("d")
        k4 = wait_for_loop(other, k3)
        page.unroute("**/api/s/main/rate")
        assert wait_for_loop(page, k3) == k4
        message = page.locator("#message").text_content()
        assert f"loop {k3}" in message and "dropped" in message, message
        log = read_log(log_path)
        assert [(e["id"], e["liked"]) for e in log if e["id"] == int(k3)] == [(int(k3), False)]
        assert len(log) == 4 and kept_ratings(page) == []
        assert banner.is_hidden()
    finally:
        for server in servers:
            server.kill()
    assert not errors, errors
