"""The free rating page keeps its promises (issue 24), in a real browser: a dead server is
noticed within 5 s with nothing pressed, a rating kept meanwhile lands once the server is
back on the same folder, and an edit still rendering says so and shows no score of the
version before."""

import json
import math
import time

import numpy as np
import pytest
from browser import Server, launch, wait_for_loop, why_not_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(why_not_available() is not None,
                                 reason=why_not_available() or "")]

NOTICE_SECONDS = 5.0  # the promise: a dead server is noticed within this, nothing pressed


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def read_log(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ratings_of(log: list[dict], key: str) -> list[bool]:
    """The ratings ``ratings.jsonl`` holds for loop ``key`` (its rating lines, not undo or
    skip lines), in order."""
    return [entry["liked"] for entry in log if entry.get("id") == int(key) and "liked" in entry]


def kept_ratings(page) -> list[tuple[str, bool]]:
    """The ratings the page keeps in localStorage until the server has them."""
    stored = page.evaluate("() => Object.keys(localStorage).filter((k) => k.includes('pending'))"
                           ".map((k) => localStorage.getItem(k))")
    return [(r["key"], r["liked"]) for r in map(json.loads, stored)]


def test_a_dead_server_is_noticed_and_a_kept_rating_lands_after_a_restart(browser, tmp_path):
    """SIGKILL: the banner is up within 5 s with no key pressed. Like is pressed: the page
    keeps it. The server starts again on the same folder and port: the Like lands in
    ratings.jsonl once, on the loop heard, the banner goes and the page moves on."""
    session_dir = tmp_path / "session"
    log_path = session_dir / "ratings.jsonl"
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    servers = [Server("--session", str(session_dir))]
    try:
        url = servers[0].url
        page.goto(url + "/")
        key = wait_for_loop(page)
        heard = page.request.get(f"{url}/api/s/main/current").json()
        assert heard["key"] == key
        banner = page.locator("#offline")
        assert banner.is_hidden()

        servers[0].kill()
        killed = time.monotonic()
        banner.wait_for(state="visible", timeout=int(1000 * NOTICE_SECONDS))
        assert time.monotonic() - killed <= NOTICE_SECONDS + 0.5  # Playwright's own delay
        text = banner.text_content()
        assert "not answering" in text and "kept on this device" in text, text

        page.click("#like")
        page.wait_for_function("() => Object.keys(localStorage).some((k) => k.includes('pending'))")
        assert kept_ratings(page) == [(key, True)]
        assert f"Like for loop {key}" in banner.text_content()
        assert ratings_of(read_log(log_path), key) == []

        servers.append(Server("--session", str(session_dir), port=servers[0].port))
        after = wait_for_loop(page, key, timeout_ms=180_000)  # the page moves on
        banner.wait_for(state="hidden", timeout=10_000)
        time.sleep(1.0)  # a second delivery, were there one, would be in by now
        log = read_log(log_path)
        assert ratings_of(log, key) == [True], log
        (entry,) = [e for e in log if e.get("id") == int(key)]
        assert entry["loop"]["grid"] == heard["grid"]
        assert entry["loop"]["samples"] == [row["name"] for row in heard["rows"]]
        assert after != key and kept_ratings(page) == []
        assert "dropped" not in (page.locator("#message").text_content() or "")
    finally:
        for server in servers:
            server.kill()
    assert not errors, errors


# Each /audition reply reaches the page 1.5 s late, and #score's every text is logged with
# the time: the rendering state is then long enough to look at.
SLOW_AUDITION = """(() => {
  window.__scores = [];
  window.__auditioned = [];
  const original = window.fetch;
  window.fetch = async function (input, init) {
    const response = await original.apply(this, arguments);
    if (String((input && input.url) || input).endsWith("/audition")) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      window.__auditioned.push(performance.now());
    }
    return response;
  };
  document.addEventListener("DOMContentLoaded", () => {
    const score = document.getElementById("score");
    new MutationObserver(() => window.__scores.push(
      {at: performance.now(), text: score.textContent, rendering: score.dataset.rendering}))
      .observe(score, {childList: true, characterData: true, subtree: true, attributes: true});
  });
})()"""


def score_text(headers: dict) -> str:
    """What the page should say of the version heard, from the audition's headers (the
    wording of the page's critic line, written out here)."""
    version, score = int(headers["x-ddjax-critic-version"]), float(headers["x-ddjax-score"])
    if version == 0:
        return "critic: not trained yet (it learns from your ratings)"
    return (f"critic: {math.floor(100 * score + 0.5)}% chance you like this version"
            f" (trained on {version} rating{'' if version == 1 else 's'})")


def test_an_edit_still_rendering_says_so_and_shows_no_score(browser, tmp_path):
    """A step switched on: until the edit's audio comes, the score line says "rendering…"
    and holds no score; then it holds the score of the version heard."""
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.add_init_script(SLOW_AUDITION)
    page = context.new_page()
    errors, scored = [], []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("response", lambda r: scored.append(r.headers) if r.url.endswith("/audition") else None)
    with Server("--session", str(tmp_path / "session")) as server:
        page.goto(server.url + "/")
        wait_for_loop(page)
        grid = np.array(page.request.get(f"{server.url}/api/s/main/current").json()["grid"])
        before = page.locator("#score").text_content()
        assert "rendering" not in before
        track, step = map(int, np.argwhere(grid == 0)[0])
        clicked = page.evaluate("performance.now()")
        page.locator(f"#grid .cell[data-track='{track}'][data-step='{step}'] button").click()
        expect(page.locator("#score")).to_have_text("this version: rendering\u2026")
        page.wait_for_function("window.__auditioned.length > 0 &&"
                               " document.getElementById('score').dataset.rendering === 'false'",
                               timeout=60_000)
        arrived = page.evaluate("window.__auditioned[0]")
        shown = [s for s in page.evaluate("window.__scores") if s["at"] > clicked]
        while_rendering = [s for s in shown if s["at"] < arrived]
        assert while_rendering, shown
        assert all(s["text"] == "this version: rendering\u2026" and s["rendering"] == "true"
                   for s in while_rendering), shown
        assert len(scored) == 1
        expect(page.locator("#score")).to_have_text(score_text(scored[0]))
    context.close()
    assert not errors, errors
