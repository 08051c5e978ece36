"""`ddjax serve`'s API without a browser: ratings, refusals, studies, resume, binding."""

import concurrent.futures
import dataclasses
import importlib.resources
import io
import json
import pathlib
import struct
import subprocess
import sys
import threading
import time
import zipfile

import mido
import numpy as np
import pytest
import soundfile as sf
from conftest import BUNDLED_KIT
from people import past_the_steps, through_steps
from starlette.testclient import TestClient
from test_render import numpy_gain, numpy_render

from ddjax.cli import main as cli
from ddjax.errors import DdjaxError
from ddjax.learning.training import TrainConfig
from ddjax.session.experiment import ExperimentConfig
from ddjax.session.session import STARTUP_STEPS, SessionConfig
from ddjax.session.startup import COLD, RECORD_NAME, Record, Start, Startup, seconds_left
from ddjax.web.registry import build_desks, desks_kit
from ddjax.web.server import (
    MAX_BODY_BYTES,
    Desks,
    Opening,
    ServeConfig,
    create_app,
    is_loopback,
    open_desks,
)

FAST = {"session": SessionConfig(n_chains=2, n_iters=2),
        "train": TrainConfig(steps_per_rating=2, batch_size=4)}


def free_config(directory):
    # The learned loop prior (``serve --style``), whose styles the page offers.
    return ServeConfig(BUNDLED_KIT, directory, **{
        **FAST, "session": dataclasses.replace(FAST["session"], loop_prior="learned")})


def study_config(directory, n_ratings=2, n_eval=1):
    return ServeConfig(BUNDLED_KIT, directory, study=True,
                       experiment=ExperimentConfig(n_ratings, n_eval, eval_max_iters=3), **FAST)


def serving(config):
    desks = open_desks(config)
    return desks, TestClient(create_app(desks), raise_server_exceptions=False)


def rate(client, sid, liked):
    key = client.get(f"/api/s/{sid}/current").json()["key"]
    response = client.post(f"/api/s/{sid}/rate", json={"key": key, "liked": liked})
    assert response.status_code == 200, response.text
    return key


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def free_serving(tmp_path_factory):
    directory = tmp_path_factory.mktemp("free")
    desks, client = serving(free_config(directory))
    with client:
        yield directory, desks, client
    desks.close()


@pytest.fixture(scope="module")
def free(free_serving):
    directory, _, client = free_serving
    return directory, client


def test_each_loop_is_shown_once_and_rated_once(free):
    directory, client = free
    keys = []
    for liked in (True, False, True):
        key = client.get("/api/s/main/current").json()["key"]
        assert client.get("/api/s/main/current").json()["key"] == key  # a reload: same loop
        response = client.post("/api/s/main/rate", json={"key": key, "liked": liked})
        assert response.status_code == 200
        # On disk before the response: the log's last line is this rating.
        last = read_log(directory / "ratings.jsonl")[-1]
        assert (str(last["id"]), last["liked"]) == (key, liked)
        again = client.post("/api/s/main/rate", json={"key": key, "liked": not liked})
        assert again.status_code == 409 and "already rated" in again.json()["error"]
        keys.append(key)
    assert len(set(keys)) == 3
    stale = client.post("/api/s/main/rate", json={"key": "99999", "liked": True})
    assert stale.status_code == 409 and "not the loop being rated" in stale.json()["error"]
    assert [e["liked"] for e in read_log(directory / "ratings.jsonl")][-3:] == [True, False, True]


def test_two_tabs_racing_to_rate_one_loop_get_one_rating(free):
    directory, client = free
    key = client.get("/api/s/main/current").json()["key"]
    log = directory / "ratings.jsonl"  # none before the session's first rating
    before = len(read_log(log)) if log.exists() else 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda liked: client.post(
            "/api/s/main/rate", json={"key": key, "liked": liked}).status_code,
            [True, False] * 4))
    assert sorted(codes) == [200] + [409] * 7
    assert len(read_log(directory / "ratings.jsonl")) == before + 1


def test_downloads_of_a_rated_loop(free):
    directory, client = free
    key = rate(client, "main", True)
    entry = read_log(directory / "ratings.jsonl")[-1]
    assert str(entry["id"]) == key
    base = f"/api/s/main/loops/{entry['id']}"
    record = client.get(base + ".json").json()
    assert record["grid"] == entry["loop"]["grid"] and record["samples"] == entry["loop"]["samples"]
    wav = client.get(base + ".wav?download=1")
    assert wav.headers["content-disposition"].endswith('.wav"')
    rendered, _ = sf.read(directory / "wav" / f"loop_{entry['id']:05d}.wav")
    downloaded, sr = sf.read(io.BytesIO(wav.content))
    assert sf.info(io.BytesIO(wav.content)).subtype == "PCM_24"
    np.testing.assert_allclose(downloaded, rendered, atol=2.0 ** -23)
    assert np.abs(rendered).max() <= 10 ** (-1 / 20) + 1e-6  # -1 dBFS at most
    played, sr = sf.read(io.BytesIO(client.get(base + ".wav").content))  # what the page plays
    np.testing.assert_array_equal(played, rendered[: 2 * 2 * sr])
    # The one-bar loop is the preview's second bar (bar 1 plus the tails that wrap into it),
    # and carries its tempo in an acid chunk.
    bar = client.get(base + ".bar")
    assert bar.headers["content-disposition"].endswith('_1bar_120bpm.wav"')
    one_bar, _ = sf.read(io.BytesIO(bar.content))
    np.testing.assert_allclose(one_bar, rendered[2 * sr:4 * sr], atol=2.0 ** -23 + 1e-6)
    acid = bar.content.index(b"acid")
    assert struct.unpack("<f", bar.content[acid + 28:acid + 32])[0] == 120.0
    midi = mido.MidiFile(file=io.BytesIO(client.get(base + ".mid").content))
    steps, now = set(), 0
    for message in mido.merge_tracks(midi.tracks):
        now += message.time
        if message.type == "note_on":
            steps.add(now // (midi.ticks_per_beat // 4))
    grid = np.array(entry["loop"]["grid"], bool)
    assert steps == set(np.nonzero(grid.any(axis=0))[0].tolist())
    liked = client.get("/api/s/main/state").json()["liked"]
    assert [l["key"] for l in liked] == [str(e["id"]) for e in reversed(
        read_log(directory / "ratings.jsonl")) if e["liked"]]


def test_undo_skip_more_like_this_and_the_liked_zip(free, tmp_path, capsys, bundled_kit):
    """Undo brings the last rated loop back as current and logs an undo (nothing deleted);
    skip logs a skip and moves on; "more like this" makes a variation current; the liked
    zip (page and command line alike) holds each liked loop's MIDI (its notes on the grid's
    steps, read with mido), its one-bar WAV (the logged preview's second bar) and its JSON,
    and a README naming the tempo and every sample."""
    directory, client = free
    log = directory / "ratings.jsonl"
    key = rate(client, "main", True)
    waiting = client.get("/api/s/main/current").json()["key"]
    n = len(read_log(log))
    assert client.get("/api/s/main/state").json()["last_rated"] == key
    assert client.post("/api/s/main/undo").status_code == 422  # undo names its rating
    assert client.post("/api/s/main/undo", json={"key": key}).status_code == 200
    assert read_log(log)[-1]["undo"] == int(key) and len(read_log(log)) == n + 1
    # The same undo again (a double click, a second tab) takes back nothing more.
    again = client.post("/api/s/main/undo", json={"key": key})
    assert again.status_code == 409 and "undo" in again.json()["error"]
    assert len(read_log(log)) == n + 1
    assert client.get("/api/s/main/current").json()["key"] == key  # to rate again
    assert key not in [l["key"] for l in client.get("/api/s/main/state").json()["liked"]]
    assert client.post("/api/s/main/rate", json={"key": key, "liked": True}).status_code == 200
    other = client.post("/api/s/main/undo", json={"key": "424242"})  # not the last rating
    assert other.status_code == 409 and "not the last rating (loop " in other.json()["error"]
    assert client.get("/api/s/main/current").json()["key"] == waiting  # then the one before
    response = client.post("/api/s/main/skip", json={"key": waiting})
    assert response.status_code == 200 and read_log(log)[-1]["skip"] == int(waiting)
    assert client.get("/api/s/main/current").json()["key"] not in (waiting, key)
    assert client.post("/api/s/main/skip", json={"key": waiting}).status_code == 409
    assert client.post("/api/s/main/more", json={"key": "424242"}).status_code == 404
    assert client.post("/api/s/main/more", json={"key": key}).status_code == 200
    variation = client.get("/api/s/main/current").json()
    liked = [e for e in read_log(log) if e.get("liked")]
    assert variation["key"] not in [str(e["id"]) for e in liked]
    rated = next(e for e in liked if str(e["id"]) == key)["loop"]
    assert variation["bpm"] == rated["bpm"]  # a chain from the liked loop: same space

    zipped = zipfile.ZipFile(io.BytesIO(client.get("/api/s/main/liked.zip").content))
    assert main_export(directory, tmp_path / "liked.zip") == 0
    from_cli = zipfile.ZipFile(tmp_path / "liked.zip")
    assert sorted(from_cli.namelist()) == sorted(zipped.namelist())
    in_force = []  # the log's ratings, replayed: an undo takes back the last one
    for entry in read_log(log):
        if "undo" in entry:
            assert in_force.pop()["id"] == entry["undo"]
        elif "liked" in entry:
            in_force.append(entry)
    in_force = [e for e in in_force if e["liked"]]
    readme = zipped.read("README.txt").decode()
    assert "120 BPM" in readme
    for entry in in_force:
        name = f"loop_{entry['id']:05d}"
        grid = np.array(entry["loop"]["grid"], bool)
        record = json.loads(zipped.read(f"{name}.json"))
        assert record["grid"] == entry["loop"]["grid"]
        assert record["samples"] == entry["loop"]["samples"]
        assert all(sample in readme for sample in record["samples"])
        midi = mido.MidiFile(file=io.BytesIO(zipped.read(f"{name}.mid")))
        steps, now = set(), 0
        for message in mido.merge_tracks(midi.tracks):
            now += message.time
            if message.type == "note_on":
                steps.add(now // (midi.ticks_per_beat // 4))
        assert steps == set(np.nonzero(grid.any(axis=0))[0].tolist())
        bar, sr = sf.read(io.BytesIO(zipped.read(f"{name}_1bar_120bpm.wav")))
        preview, _ = sf.read(directory / "wav" / f"{name}.wav")
        np.testing.assert_allclose(bar, preview[2 * sr:4 * sr], atol=2.0 ** -23 + 1e-6)
    assert len([n for n in zipped.namelist() if n.endswith(".json")]) == len(in_force)
    capsys.readouterr()
    assert main_export(tmp_path, tmp_path / "none.zip") == 2  # not a session: one line
    assert "is not a ddjax session" in capsys.readouterr().err
    assert not (tmp_path / "none.zip").exists()


def main_export(directory, out):
    return cli.main(["export", "--session", str(directory), "--liked", "--out", str(out)])


@pytest.mark.parametrize("path", [
    "/api/s/..%2F..%2Fetc/state", "/api/s/%2e%2e/state", "/api/s/../state",
    "/api/s/nobody/state", "/api/s/main/loops/..%2Fsession.json",
    "/api/s/main/loops/%2e%2e%2f%2e%2e%2fsession.json", "/api/s/main/loops/session.json",
    "/api/s/main/loops/123456.wav", "/api/s/main/loops/0.exe", "/api/s/main/loops/0",
    "/static/..%2Fserve.py", "/static/../serve.py", "/static/serve.py", "/static/__init__.py",
    "/study/main", "/api/s/main/archive.zip", "/etc/passwd", "/api/s/main/loops/e0.wav",
])
def test_unknown_ids_and_traversal_are_404(free, path):
    _, client = free
    response = client.get(path)
    assert response.status_code == 404, (path, response.status_code, response.text[:200])
    assert "kit" not in response.text and "import" not in response.text


@pytest.mark.parametrize("body,status", [
    (b"not json", 400), (b"\xff\xfe", 400), (b"[" * 5000, 400), (b"[1, 2]", 422),
    (b'"key"', 422), (b"{}", 422), (b'{"key": 3, "liked": true}', 422), (b'{"key": "0", "liked": "yes"}', 422),
    (b'{"key": "../x", "liked": true}', 422), (b'{"key": "0", "liked": null}', 422),
    (b"x" * (MAX_BODY_BYTES + 1), 413),
])
def test_malformed_ratings_are_4xx_with_a_message(free, body, status):
    _, client = free
    response = client.post("/api/s/main/rate", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_an_oversized_body_without_a_length_is_refused(free):
    _, client = free
    chunks = (b"{" + b" " * 1024 for _ in range(MAX_BODY_BYTES // 1024 + 1))
    response = client.post("/api/s/main/rate", content=chunks)
    assert response.status_code == 413


def test_an_edited_loop_is_auditioned_and_rated_as_heard(free, bundled_kit):
    """Toggled cells, a muted track and another tempo come back as WAV equal to a plain
    NumPy mix of the cells that sound (each sample cut to one bar of that tempo with the
    kit's 10 ms fade) at that mix's own gain; "Rate this version" logs the loop as heard at
    the session's tempo, with the loop as proposed beside it, and its WAV is that mix."""
    directory, client = free
    item = client.get("/api/s/main/current").json()
    key = item["key"]
    grid = np.array(item["grid"], bool)
    velocity = np.array(item["velocity"])
    grid[2, 3] = not grid[2, 3]
    grid[0, 0] = not grid[0, 0]
    samples = [bundled_kit.index(row["name"]) for row in item["rows"]]
    mute = [False, True, False, False]
    heard = grid & ~np.array(mute)[:, None]
    audio = np.asarray(bundled_kit.audio)
    for bpm in (120.0, 150.0):  # both tempi whose bar is a whole number of samples
        edit = {"key": key, "grid": grid.astype(int).tolist(), "velocity": velocity.tolist(),
                "mute": mute, "bpm": bpm}
        response = client.post("/api/s/main/audition", json=edit)
        assert response.status_code == 200, response.text
        got, sr = sf.read(io.BytesIO(response.content), dtype="float64")
        bar = int(16 * sr * 60 / bpm / 4)
        kit = audio.astype(np.float64)
        if kit.shape[1] > bar:  # cut to one bar, faded over its last 10 ms
            kit = kit[:, :bar] * np.concatenate([np.ones(bar - 441), np.linspace(1, 0, 441)])
        ref, _ = numpy_render(kit, heard, samples, bpm, bars=2, velocity=velocity)
        gain = numpy_gain(kit, heard, samples, bpm, velocity=velocity)
        assert got.shape == (2 * bar,)
        np.testing.assert_allclose(got, gain * ref[:2 * bar], atol=2e-6)
    solo = client.post("/api/s/main/audition", json={**edit, "bpm": None, "mute": None,
                                                     "solo": [False, False, True, False]})
    got, _ = sf.read(io.BytesIO(solo.content), dtype="float64")
    only = np.zeros_like(grid)
    only[2] = grid[2]
    ref, _ = numpy_render(audio, only, samples, 120.0, bars=2, velocity=velocity)
    gain = numpy_gain(audio, only, samples, 120.0, velocity=velocity)
    np.testing.assert_allclose(got, gain * ref[:len(got)], atol=2e-6)

    log = directory / "ratings.jsonl"
    n = len(read_log(log)) if log.exists() else 0
    response = client.post("/api/s/main/rate", json={"key": key, "liked": True, "edit": edit})
    assert response.status_code == 200, response.text
    entry = read_log(log)[n]
    assert entry["id"] == int(key) and entry["liked"] is True
    assert entry["loop"]["grid"] == heard.astype(int).tolist()
    assert entry["loop"]["bpm"] == 120.0  # rated at the session's tempo
    assert entry["proposed"]["grid"] == item["grid"]
    wav, sr = sf.read(directory / "wav" / f"loop_{int(key):05d}.wav", dtype="float64")
    ref, bar = numpy_render(audio, heard, samples, 120.0, bars=4, velocity=velocity)
    gain = numpy_gain(audio, heard, samples, 120.0, velocity=velocity)
    np.testing.assert_allclose(wav, gain * ref[:len(wav)], atol=2e-6)
    rated = client.get(f"/api/s/main/loops/{key}.json").json()
    assert rated["grid"] == heard.astype(int).tolist()
    # A rated loop can be auditioned too; an unknown one cannot.
    assert client.post("/api/s/main/audition", json=edit).status_code == 200
    assert client.post("/api/s/main/audition",
                       json={**edit, "key": "424242"}).status_code == 404


def test_an_audition_tells_the_score_a_rating_of_that_version_logs(tmp_path):
    """The critic's score the page shows for a version (the audition's X-Ddjax-Score) is the
    score the log records when that version is rated, with the same critic."""
    desks, client = serving(free_config(tmp_path / "s"))
    with client:
        first = client.get("/api/s/main/current").json()
        audition = client.post("/api/s/main/audition", json={"key": first["key"],
                                                              "grid": first["grid"]})
        assert audition.headers["X-Ddjax-Critic-Version"] == "0"
        rate(client, "main", True)
        desks.get("main").session.wait()  # the critic has learned rating 1
        item = client.get("/api/s/main/current").json()
        grid = np.array(item["grid"])
        grid[:, ::4] = 1 - grid[:, ::4]
        edit = {"key": item["key"], "grid": grid.tolist(), "velocity": item["velocity"]}
        audition = client.post("/api/s/main/audition", json=edit)
        score = float(audition.headers["X-Ddjax-Score"])
        assert 0.0 <= score <= 1.0 and audition.headers["X-Ddjax-Critic-Version"] == "1"
        assert client.post("/api/s/main/rate", json={"key": item["key"], "liked": False,
                                                     "edit": edit}).status_code == 200
        entry = read_log(tmp_path / "s" / "ratings.jsonl")[-1]
        assert entry["loop"]["grid"] == grid.tolist()
        assert entry["loop"]["score"] == pytest.approx(score, abs=1e-6)
    desks.close()


@pytest.mark.parametrize("change,status", [
    ({"grid": [[0] * 16] * 3}, 422), ({"grid": [[0] * 15] * 4}, 422),
    ({"grid": [["on"] * 16] * 4}, 422), ({"grid": [[2] * 16] * 4}, 422),
    ({"velocity": [[0] * 16] * 4}, 422), ({"velocity": [[128] * 16] * 4}, 422),
    ({"mute": [True]}, 422), ({"solo": [1, 0, 0, 0]}, 422), ({"bpm": 300}, 422),
    ({"bpm": "fast"}, 422), ({"swing": 80}, 422), ({"grid": None}, 422),
    ({"key": "424242"}, 404),
])
def test_malformed_edits_are_4xx_with_a_message(free, change, status):
    _, client = free
    item = client.get("/api/s/main/current").json()
    edit = {"key": item["key"], "grid": item["grid"], **change}
    response = client.post("/api/s/main/audition", json=edit)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    if "key" in change:  # a rating names its loop outside the edit
        return
    rated = client.post("/api/s/main/rate",
                        json={"key": item["key"], "liked": False, "edit": edit})
    assert rated.status_code == status, rated.text
    assert client.get("/api/s/main/current").json()["key"] == item["key"]  # not rated


def shipped_prior() -> dict:
    """The shipped loop prior, read from the file itself."""
    path = importlib.resources.files("ddjax") / "pretrained" / "loop-prior.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_style_selector_switches_the_style_of_the_next_loops(free_serving):
    directory, desks, client = free_serving
    session = desks.get("main").session
    record = shipped_prior()
    styles = record["styles"]
    components = record.get("component_styles", styles)  # each mixture component's style
    state = client.get("/api/s/main/state").json()
    assert state["styles"] == styles and state["style"] is None  # the mix to start with
    key = client.get("/api/s/main/current").json()["key"]
    log = directory / "ratings.jsonl"
    logged = log.read_bytes() if log.exists() else b""
    style = "house" if "house" in styles else styles[0]
    try:
        response = client.post("/api/s/main/style", json={"style": style})
        assert response.status_code == 200, response.text
        assert response.json()["style"] == style
        assert session.config.style == style and session.engine.style == style
        # The sampler's prior weighs that style's components only, and they sum to one.
        weight = np.asarray(session.engine.space.patterns.log_weight, np.float64)
        np.testing.assert_array_equal(np.isfinite(weight), [s == style for s in components])
        assert np.exp(weight).sum() == pytest.approx(1.0, abs=1e-5)
        assert client.get("/api/s/main/state").json()["style"] == style
        # Nothing else changes: the loop being rated stays, and nothing is logged.
        assert client.get("/api/s/main/current").json()["key"] == key
        assert (log.read_bytes() if log.exists() else b"") == logged

        unknown = client.post("/api/s/main/style", json={"style": "polka"})
        assert unknown.status_code == 400
        message = unknown.json()["error"]
        assert "\n" not in message and "polka" in message and style in message
        assert client.post("/api/s/main/style", json={"style": 3}).status_code == 422
        assert session.engine.style == style  # refusals change nothing

        mix = client.post("/api/s/main/style", json={"style": None})
        assert mix.status_code == 200 and mix.json()["style"] is None
        assert session.config.style is None and session.engine.style is None
        assert np.isfinite(np.asarray(session.engine.space.patterns.log_weight)).all()
    finally:
        session.set_style(None)


def test_a_study_keeps_its_style(tmp_path, bundled_kit):
    client = TestClient(create_app(Desks(study_config(tmp_path), bundled_kit)),
                        raise_server_exceptions=False)
    refused = client.post("/api/s/ann/style", json={"style": shipped_prior()["styles"][0]})
    assert refused.status_code == 409 and "protocol" in refused.json()["error"]
    assert not (tmp_path / "participants" / "ann").exists()  # no participant opened


def test_study_only_routes_are_404_outside_a_study(free):
    _, client = free
    assert client.post("/api/participants", json={}).status_code == 404


@pytest.mark.slow
def test_study_protocol_resume_and_aggregation(tmp_path, capsys):
    config = study_config(tmp_path)
    desks, client = serving(config)
    with client:
        joined = client.post("/api/participants", json={"id": "ann"}).json()
        assert joined == {"id": "ann", "url": "/study/ann"}
        assert client.post("/api/participants", json={"id": "a/../b"}).status_code == 422
        assert client.post("/api/participants", json={"id": "main"}).status_code == 422
        assert client.get("/study/ann").status_code == 200
        assert client.get("/study/bob").status_code == 404
        # No loop to rate before the steps: the headphone check, then the practice loop.
        assert client.get("/api/s/ann/state").json()["phase"] == "headphones"
        assert client.get("/api/s/ann/current").status_code == 409
        past_the_steps(client, "ann")
        state = client.get("/api/s/ann/state").json()
        assert (state["phase"], state["phase1_ratings"]) == ("phase1", 0)  # practice: uncounted
        item = client.get("/api/s/ann/current").json()
        assert item["score"] is None and item["phase"] == "phase1"  # blind
        edit = {"key": item["key"], "grid": item["grid"]}  # a study's loops are not edited
        assert client.post("/api/s/ann/audition", json=edit).status_code == 409
        assert client.post("/api/s/ann/rate", json={**edit, "liked": True,
                                                     "edit": edit}).status_code == 409
        rate(client, "ann", True)
        rate(client, "ann", False)
        # Phase II is drawn in the background; a rating meanwhile is refused.
        state = client.get("/api/s/ann/state").json()
        assert state["phase"] in ("drawing", "phase2")
        for _ in range(300):
            if client.get("/api/s/ann/state").json()["phase"] == "phase2":
                break
            time.sleep(0.2)
        e0 = client.get("/api/s/ann/current").json()
        assert e0["key"] == "e0" and e0["score"] is None
        played, sr = sf.read(io.BytesIO(client.get("/api/s/ann/loops/e0.wav").content))
        rendered, _ = sf.read(tmp_path / "participants" / "ann" / "phase2" / "e0.wav")
        np.testing.assert_array_equal(played, rendered[: 2 * 2 * sr])  # two 2-s bars
        assert client.get("/api/s/ann/loops/e1.mid").status_code == 404  # blind: no downloads
        assert client.post("/api/s/ann/rate", json={"key": "e1", "liked": True}).status_code == 409
        assert client.post("/api/s/ann/rate", json={"key": "1", "liked": True}).status_code == 409
        assert client.post("/api/s/ann/rate", json={"key": "e0", "liked": True}).status_code == 200
        # A second participant joins; the first is half-way through phase II.
        assert client.post("/api/join", json={"id": "cy"}).json()["id"] == "cy"
        past_the_steps(client, "cy")
        rate(client, "cy", True)
    desks.close()

    # Restart: both participants resume where they were.
    desks, client = serving(config)
    participant = tmp_path / "participants" / "ann"
    with client:
        state = client.get("/api/s/ann/state").json()
        assert (state["phase"], state["phase1_ratings"], state["phase2_ratings"]) == (
            "phase2", 2, 1)
        assert client.get("/api/s/cy/state").json()["phase1_ratings"] == 1
        taken = client.post("/api/participants", json={"id": "cy"})  # not without the flag
        assert taken.status_code == 409 and "taken" in taken.json()["error"]
        assert client.get("/api/s/ann/current").json()["key"] == "e1"
        assert client.post("/api/s/ann/rate", json={"key": "e1", "liked": False}).status_code \
            == 200
        state = client.get("/api/s/ann/state").json()
        assert state["phase"] == "done"
        items = json.loads((participant / "phase2" / "items.json").read_text())
        liked = {items[0]["group"]: True, items[1]["group"]: False}
        assert state["result"]["theta_init"] == float(liked["init"])
        assert state["result"]["theta_final"] == float(liked["final"])
        archive = zipfile.ZipFile(io.BytesIO(client.get("/api/s/ann/archive.zip").content))
        names = set(archive.namelist())
        assert {"ann/result.json", "ann/critic_initial.critic", "ann/critic_final.critic",
                "ann/session/ratings.jsonl", "ann/steps.jsonl", "ann/phase2/items.json",
                "ann/phase2/e0.flac", "ann/phase2/e1.flac"} <= names
        assert not any(name.endswith(".wav") for name in names)  # the audio as FLAC
        kept, sr = sf.read(participant / "phase2" / "e0.wav")
        flac, flac_sr = sf.read(io.BytesIO(archive.read("ann/phase2/e0.flac")))
        assert flac_sr == sr and flac.shape == kept.shape
        np.testing.assert_allclose(flac, np.clip(kept, -1, 1), atol=1.5 / 32768)  # 16 bits
    desks.close()

    # With --resume-by-id, typing an existing id resumes that participant.
    desks, client = serving(dataclasses.replace(config, resume_by_id=True))
    with client:
        assert client.post("/api/participants", json={"id": "cy"}).json()["id"] == "cy"
        assert client.get("/api/s/cy/state").json()["phase1_ratings"] == 1
    desks.close()

    # The paper's table over participants (only finished ones have a result).
    out = tmp_path / "table"
    assert cli.main(["experiment", "--from-sessions", str(tmp_path), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 1
    assert summary["delta_mean"] == float(liked["final"]) - float(liked["init"])
    assert "runs 1:" in capsys.readouterr().out


def test_one_participants_slow_training_never_blocks_another(tmp_path):
    desks, client = serving(study_config(tmp_path, n_ratings=5))
    with client:
        for sid in ("slow", "fast"):
            through_steps(client, sid)
            assert client.get(f"/api/s/{sid}/current").json()["phase"] == "phase1"
        slow = desks.get("slow").desk.session
        release = threading.Event()
        slow._worker.submit(release.wait, 60)  # the slow participant's worker is busy...
        rate(client, "slow", True)
        rate(client, "slow", True)  # ...so the loop after this one waits for it
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            blocked = pool.submit(client.get, "/api/s/slow/current")  # waits on the worker
            time.sleep(0.5)
            start = time.monotonic()
            assert client.get("/api/s/fast/state").status_code == 200
            rate(client, "fast", False)
            elapsed = time.monotonic() - start
            assert not blocked.done()
            release.set()
            assert blocked.result(timeout=60).status_code == 200
    assert elapsed < 30.0
    desks.close()


def test_binding_beyond_this_machine_needs_a_flag(tmp_path, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    code = cli.main(["serve", "--host", "0.0.0.0", "--port", "0", "--session",
                     str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--allow-remote" in err[0]
    assert not (tmp_path / "s").exists()


def test_a_busy_port_is_one_line_and_exit_2(tmp_path, capsys):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = cli.main(["serve", "--port", str(port), "--session", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0]


@pytest.mark.parametrize("study", [False, True])
def test_a_missing_kit_is_one_line_and_exit_2(tmp_path, capsys, study):
    code = cli.main(["serve", "--port", "0", "--kit", str(tmp_path / "nowhere"),
                     "--session", str(tmp_path / "s"), *(["--study"] if study else [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nowhere" in err[0], err


def test_desks_refuse_ids_that_are_not_plain(tmp_path, bundled_kit):
    desks = Desks(study_config(tmp_path), bundled_kit)
    for sid in ("..", "../x", "a" * 65, "", "-x", "x y"):
        with pytest.raises(Exception) as err:
            desks.get(sid)
        assert getattr(err.value, "status", None) == 404


def test_a_torn_phase_two_line_is_dropped_on_resume(tmp_path):
    config = study_config(tmp_path, n_ratings=1, n_eval=1)
    desks, client = serving(config)
    with client:
        through_steps(client, "tom")
        rate(client, "tom", True)
        for _ in range(300):
            if client.get("/api/s/tom/state").json()["phase"] == "phase2":
                break
            time.sleep(0.2)
        assert client.post("/api/s/tom/rate", json={"key": "e0", "liked": True}).status_code == 200
    desks.close()
    log = tmp_path / "participants" / "tom" / "phase2" / "ratings.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"key": "e1", "gro')  # the process died mid-write
    desks, client = serving(config)
    with client:
        state = client.get("/api/s/tom/state").json()
        assert (state["phase"], state["phase2_ratings"]) == ("phase2", 1)
        assert client.get("/api/s/tom/current").json()["key"] == "e1"
        assert client.post("/api/s/tom/rate", json={"key": "e1", "liked": False}).status_code == 200
        assert client.get("/api/s/tom/state").json()["phase"] == "done"
    desks.close()
    assert [json.loads(line)["key"] for line in log.read_text().splitlines()] == ["e0", "e1"]


def test_the_page_answers_while_the_session_opens(tmp_path):
    """The page, its config and the status answer before the session is open; the desks'
    routes answer 503 with the step under way; then everything works, and the steps'
    times are kept for the next start's estimate."""
    config = free_config(tmp_path / "s")
    go = threading.Event()

    def slow_build(config, kit, progress):
        progress("building the engine")
        assert go.wait(120)
        return build_desks(config, kit, progress)

    opening = Opening(config, desks_kit(config), build=slow_build).start()
    with TestClient(create_app(opening), raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 200
        assert client.get("/api/config").json()["mode"] == "rate"
        status = client.get("/api/status").json()
        assert status["ready"] is False and status["step"] == "building the engine"
        assert (status["done"], status["steps"]) == (0, 5)
        assert status["elapsed_s"] >= 0
        assert status["estimate_s"] is None  # no past start: no number rather than a guess
        for path in ("/api/s/main/current", "/api/s/main/state"):
            refused = client.get(path)
            assert refused.status_code == 503, refused.text
            assert refused.json() == {"error": "starting: building the engine",
                                      "starting": True}
        assert client.post("/api/s/main/rate", json={"key": "0", "liked": True}
                           ).status_code == 503
        go.set()
        for _ in range(600):
            if client.get("/api/status").json()["ready"]:
                break
            time.sleep(0.1)
        assert client.get("/api/status").json() == {"ready": True}
        rate(client, "main", True)
    opening.close()
    record = json.loads((tmp_path / "s" / RECORD_NAME).read_text())["seconds"]
    assert set(record) == set(STARTUP_STEPS) and record["building the engine"] > 0
    assert Opening(config, desks_kit(config)).startup.record.starts[-1].seconds == record


def test_a_session_that_fails_to_open_says_why_in_the_status(tmp_path):
    def broken(config, kit, progress):
        progress("preparing the critic")
        raise DdjaxError("the prior is for 32-step loops")

    config = free_config(tmp_path / "s")
    opening = Opening(config, desks_kit(config), build=broken).start()
    opening.close()
    client = TestClient(create_app(opening))
    status = client.get("/api/status").json()
    assert status["error"] == "the prior is for 32-step loops" and not status["ready"]
    assert status["step"] == "preparing the critic" and status["done"] == 1
    assert isinstance(opening.error, DdjaxError)


def test_the_estimate_counts_the_steps_left():
    expected = {"a": 4.0, "b": 2.0, "c": 1.0}
    assert seconds_left(expected, ("a", "b", "c"), 0, 1.0) == 6.0
    assert seconds_left(expected, ("a", "b", "c"), 1, 5.0) == 1.0  # b overran
    clock = iter([0.0, 0.5, 3.5, 4.0]).__next__
    # The compilation cache off: every start is cold, as the one on record.
    startup = Startup(Record((Start({"a": 0.5, "b": 2.0, "c": 1.0}, COLD),)), ("a", "b", "c"),
                      clock, cache_dir=None)
    startup.step("b")  # at 0.5
    status = startup.status()  # at 3.5: b overran (pace (3.5 + 1) / (2.5 + 1)), c is left
    assert (status["step"], status["done"], status["elapsed_s"], status["estimate_s"]) == (
        "b", 1, 3.5, round(4.5 / 3.5, 1))
    assert startup.finish().seconds == {"a": 0.5, "b": 3.5}  # at 4.0
    assert startup.status() == {"ready": True}


def test_a_session_failing_in_the_background_is_one_line_and_exit_2(tmp_path):
    """The page is up before the session opens; a session that cannot open still ends the
    command with one line and exit 2 (a process of its own: uvicorn's exit and pytest's
    capture of this one's output do not mix)."""
    session = tmp_path / "s"
    session.mkdir()
    (session / "session.json").write_text(json.dumps({
        "kit": str(BUNDLED_KIT), "seed": 0, "session": {"pretrained": str(tmp_path / "no.npz")}}))
    done = subprocess.run([sys.executable, "-m", "ddjax.cli.main", "serve", "--port", "0",
                           "--session", str(session)], capture_output=True, text=True,
                          check=False, timeout=120, cwd=pathlib.Path(__file__).resolve().parents[2])
    err = done.stderr.strip().splitlines()
    assert " page at " in done.stdout
    assert done.returncode == 2 and len(err) == 1 and "no.npz" in err[0], err
