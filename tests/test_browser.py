"""`ddjax serve` end to end in a real browser: Debian's Chromium, headless, via Playwright.

Each rating follows one bar of listening (2 s), the least a person rates on. The waits from
click to the next loop playing are printed as a JSON line (bench/README.md records them).
Set DDJAX_SCREENSHOTS=1 to refresh the screenshots in docs/.
"""

import io
import json
import os
import time
import zipfile

import mido
import numpy as np
import pytest

from browser import REPO, Server, launch, wait_for_loop, why_not_available

pytestmark = pytest.mark.skipif(why_not_available() is not None,
                                reason=why_not_available() or "")

LISTEN_SECONDS = 2.0
# General MIDI percussion key map (GM 1, channel 10), written out here as the reference.
GM_DRUMS = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42,
            "open_hat": 46, "crash": 49, "ride": 51, "cowbell": 56, "shaker": 70}
SCREENSHOTS = bool(os.environ.get("DDJAX_SCREENSHOTS"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def midi_hits(data: bytes) -> set[tuple[int, int]]:
    """(note, 16th step) of every note-on, read with mido: the independent reference."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    ticks_per_step = midi.ticks_per_beat // 4
    hits, now = set(), 0
    for message in midi.tracks[0]:
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
            time.sleep(LISTEN_SECONDS)
            if i < 5:
                page.keyboard.press(keys[i])
            else:
                page.click("#like" if liked else "#dislike")
            shown.append(wait_for_loop(page, shown[-1]))
        # A double click is one rating: the second is refused (or never sent).
        time.sleep(LISTEN_SECONDS)
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
        for track, name in enumerate(entry["loop"]["samples"]):
            kind = name.split("/")[0]
            if kind in GM_DRUMS:  # the bundled kit names each sample's kind in its folder
                steps = set(np.nonzero(grid[track])[0].tolist())
                assert steps <= {s for n, s in hits if n == GM_DRUMS[kind]}, (name, hits)
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
    assert not errors, errors


def test_a_small_study_end_to_end(browser, tmp_path):
    study_dir = tmp_path / "study"
    page = browser.new_page(viewport={"width": 1000, "height": 700}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    with Server("--study", "--session", str(study_dir), "--study-ratings", "3",
                "--study-eval", "2") as server:
        page.goto(server.url + "/")
        page.wait_for_selector("#instructions", state="visible")
        assert "headphones" in page.locator("#instructions").text_content()
        page.fill("#participant", "alice")
        page.click("#begin")
        page.wait_for_url("**/study/alice")
        shown = [wait_for_loop(page)]
        assert page.locator("#score").text_content() == ""  # blind
        phase1 = [True, False, True]
        for liked in phase1:
            assert page.locator("#progress-text").text_content().startswith("Phase I")
            time.sleep(0.3)
            page.keyboard.press("l" if liked else "d")
            shown.append(wait_for_loop(page, shown[-1]))
        phase2 = [True, True, False, True]
        for i, liked in enumerate(phase2):
            assert shown[-1] == f"e{i}"
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
            phase1
        if SCREENSHOTS:
            page.screenshot(path=str(REPO / "docs" / "serve-results.png"))

        with page.expect_download() as download:
            page.click("#archive")
        archive = zipfile.ZipFile(download.value.path())
        names = set(archive.namelist())
        assert {"alice/session/ratings.jsonl", "alice/phase2/ratings.jsonl",
                "alice/critic_initial.critic", "alice/critic_final.critic",
                "alice/result.json"} <= names
        assert len([n for n in names if n.endswith(".wav")]) == 3 + 4
        result = json.loads(archive.read("alice/result.json"))
        assert result["delta"] == pytest.approx(theta["final"] - theta["init"])
    assert not errors, errors


def test_the_page_shows_accents_and_swing(browser, tmp_path):
    """Each hit's brightness and ring follow its velocity, and the swing is named."""
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    with Server("--session", str(tmp_path / "groove"), "--swing", "54") as server:
        page.goto(server.url + "/")
        wait_for_loop(page)
        current = page.request.get(f"{server.url}/api/s/main/current").json()
        assert current["swing"] == 54 and page.locator("#groove").text_content() == "swing 54%"
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
