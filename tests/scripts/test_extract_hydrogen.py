"""Tests of scripts/extract_hydrogen.py and of the pattern corpus in scripts/patterns/."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest

from ddjax.core.drums import KINDS

ROOT = pathlib.Path(__file__).resolve().parents[2]
PATTERNS = ROOT / "scripts" / "patterns"
HYDROGEN = pathlib.Path("/usr/share/hydrogen/data")
STYLES = {"house", "techno", "boom-bap", "rock", "funk", "breakbeat", "trap", "dembow",
          "half-time", "shuffle", "bossa", "disco", "drum-and-bass", "uk-garage",
          "afrobeat", "jazz", "electro", "pop"}
BACKBEAT, TIMEKEEPER = {"snare", "clap", "rim"}, {"closed_hat", "ride", "shaker"}


def load_script():
    spec = importlib.util.spec_from_file_location(
        "extract_hydrogen", ROOT / "scripts" / "extract_hydrogen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def note(position: int, instrument: int, velocity: float) -> str:
    return (f"<note><position>{position}</position><leadlag>0</leadlag>"
            f"<velocity>{velocity}</velocity><instrument>{instrument}</instrument>"
            "<note_off>false</note_off></note>")


def pattern(name: str, size: int, notes: list[str]) -> str:
    return (f"<pattern><name>{name}</name><size>{size}</size><denominator>4</denominator>"
            f"<noteList>{''.join(notes)}</noteList></pattern>")


# Kick (0), Hat Closed (1) and an instrument no kind fits (2). In 'groove', two of nine
# notes are off the 16th grid (149 ticks -> step 12; 191 -> 192, the next downbeat, which
# wraps to step 0): under a quarter, so the bar is kept.
GROOVE = [note(0, 0, 0.9), note(96, 0, 0.6), note(149, 0, 0.8), note(180, 0, 0.49),
          note(24, 1, 0.3), note(72, 1, 0.85), note(120, 1, 0.7), note(191, 1, 0.5),
          note(48, 2, 1.0)]
GROOVE_ROWS = [("kick", "X.......x...x..g"), ("closed_hat", "x.g...X...x.....")]
# Triplet 8ths (16 ticks apart): four of six notes off the grid.
TRIPLETS = [note(16 * i, 1, 0.8) for i in range(6)] + [note(0, 0, 0.8)]
# Two bars of 192 ticks: bar 2's notes at 192 + 0, 48, 96 and 144 ticks.
TWO_BARS = ([note(0, 0, 0.8), note(192, 0, 0.8), note(288, 0, 0.8)]
            + [note(24 * i, 1, 0.8) for i in range(4)] + [note(240, 1, 0.8), note(336, 1, 0.8)])
TWO_BAR_ROWS = [[("kick", "x..............."), ("closed_hat", "x.x.x.x.........")],
                [("kick", "x.......x......."), ("closed_hat", "....x.......x...")]]


def write_song(folder: pathlib.Path) -> pathlib.Path:
    instruments = "".join(f"<instrument><id>{i}</id><name>{n}</name></instrument>"
                          for i, n in enumerate(("Kick", "Hat Closed", "Mystery Box")))
    patterns = (pattern("groove", 192, GROOVE) + pattern("triplets", 192, TRIPLETS)
                + pattern("again", 192, GROOVE) + pattern("long", 384, TWO_BARS))
    song = (f"<song><version>1.2.0</version><name>Funky test</name><notes>test</notes>"
            f"<instrumentList>{instruments}</instrumentList>"
            f"<patternList>{patterns}</patternList></song>")
    path = folder / "demo_songs" / "Funky_test.h2song"
    path.parent.mkdir(parents=True)
    path.write_text(song, encoding="utf-8")
    return path


def read_blocks(path: pathlib.Path) -> list[dict]:
    """The corpus format, read with plain string operations (independent of the writer)."""
    blocks, current = [], []
    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line:
            current.append(line)
            continue
        if current:
            fields = {k: v.strip() for k, _, v in (x.partition(":") for x in current[:3])}
            rows = [tuple(x.split()) for x in current[3:]]
            blocks.append({"lines": current, "fields": fields, "rows": rows})
            current = []
    return blocks


def test_hand_written_song_gives_the_expected_grids(tmp_path):
    script = load_script()
    write_song(tmp_path / "songs")
    out = tmp_path / "out"
    assert script.main(["--songs", str(tmp_path / "songs"), "--tk707", "none",
                        "--out", str(out)]) == 0
    blocks = read_blocks(out / "hydrogen.txt")
    # groove, then the two bars of 'long'; 'triplets' is off-grid, 'again' a duplicate.
    assert [b["rows"] for b in blocks] == [GROOVE_ROWS] + TWO_BAR_ROWS
    assert [b["fields"]["style"] for b in blocks] == ["funk"] * 3
    assert blocks[0]["fields"]["source"] == (
        "hydrogen song demo_songs/Funky_test.h2song, pattern 'groove' (bar 1)")
    assert blocks[2]["fields"]["source"].endswith("pattern 'long' (bar 2)")
    assert all(b["fields"]["pattern"].startswith("funk/") for b in blocks)


def test_velocity_thresholds():
    script = load_script()
    assert [script.velocity_symbol(v) for v in (0.0, 0.49, 0.5, 0.84, 0.85, 1.0)] == [
        "g", "g", "x", "x", "X", "X"]


@pytest.mark.parametrize(("name", "kind"), [
    ("Kick", "kick"), ("Snare Jazz", "snare"), ("Snare Rimshot", "snare"),
    ("Hat Closed", "closed_hat"), ("Hat Pedal", "closed_hat"), ("Hat Open", "open_hat"),
    ("Hat Semi-Open", "open_hat"), ("Ride Jazz", "ride"), ("Bell", "ride"),
    ("Tom Low", "tom"), ("Floor Tom", "tom"), ("Stick", "rim"), ("Hand Clap", "clap"),
    ("Splash", "crash"), ("Cowbell", "cowbell"), ("BassDrum", "kick"), ("19", None)])
def test_hydrogen_instrument_names(name, kind):
    assert load_script().instrument_kind(name) == kind


def test_missing_songs_folder_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    code = load_script().main(["--songs", str(tmp_path / "nowhere"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "nowhere" in err
    assert not out.exists()


def test_named_tk707_folder_missing_is_exit_2_before_writing(tmp_path, capsys):
    write_song(tmp_path / "songs")
    out = tmp_path / "out"
    code = load_script().main(["--songs", str(tmp_path / "songs"), "--out", str(out),
                               "--tk707", str(tmp_path / "no-tk707")])
    assert code == 2 and "no-tk707" in capsys.readouterr().err
    assert not out.exists()


def test_tk707_accent_levels_rank_within_a_pattern():
    script = load_script()
    empty = "{ " + " ".join(["{  }"] * 16) + " }"
    steps = ["{ 1 3 }", "{  }", "{ 12 }", "{  }"] * 4  # Bass, Snare 1, HH Closed 1
    props = ["{ 4 0 }", "{  }", "{ 2 }", "{  }"] * 3 + ["{ 8 2 }", "{  }", "{ 0 }", "{  }"]
    group = ["{ " + " ".join(steps) + " }"] + [empty] * 15
    prop_group = ["{ " + " ".join(props) + " }"] + [empty] * 15
    lengths = "{ " + " ".join(["{ 16 0 2 0 }"] * 16) + " }"
    text = ("{ { { " + " ".join(group) + " } } { { " + " ".join(prop_group) + " } } { "
            + lengths + " } { { 0 } } }")
    sounds = ("Bass 1", "Bass 2", "Snare 1", "Snare 2", "LowTom", "MidTom", "HighTom",
              "Rim", "Cowbell", "Hand Clap", "Tambourine", "HH Closed 1", "HH Closed 2",
              "HHat Open", "Crash", "Ride")
    [(name, tracks)] = script.tk707_grids(text, sounds)
    # Levels used: plain (0), weak (2), strong (4) -> g, x, X; the silent (8) kick dropped.
    assert name == "A1"
    assert tracks == [("kick", "X...X...X......."), ("snare", "g...g...g...x..."),
                      ("closed_hat", "..x...x...x...g.")]


def corpus_files() -> list[pathlib.Path]:
    return sorted(PATTERNS.glob("*.txt")) + sorted(PATTERNS.glob("extra/*.txt"))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_every_corpus_block_parses(path):
    blocks = read_blocks(path)
    assert blocks
    for block in blocks:
        where = f"{path.name}: {block['lines'][0]}"
        assert [k for k in block["fields"]] == ["pattern", "style", "source"], where
        style = block["fields"]["style"]
        assert style in STYLES, where
        assert re.fullmatch(rf"{style}/[a-z0-9][a-z0-9-]*", block["fields"]["pattern"]), where
        assert block["fields"]["source"], where
        rows = block["rows"]
        assert 2 <= len(rows) <= 6, where
        for row in rows:
            assert len(row) == 2 and row[0] in KINDS, where
            assert len(row[1]) == 16 and set(row[1]) <= set(".gxX"), where
            assert set(row[1]) != {"."}, where
        kinds = [k for k, _ in rows]
        if "kick" in kinds:
            assert kinds[0] == "kick", where
        assert {k for k in kinds if kinds.count(k) > 1} <= {"tom", "cowbell"}, where


def test_corpus_ids_are_unique_across_files():
    ids = [b["fields"]["pattern"] for p in corpus_files() for b in read_blocks(p)]
    assert len(ids) == len(set(ids))


def test_canon_covers_every_style():
    blocks = read_blocks(PATTERNS / "canon.txt")
    counts = {s: sum(b["fields"]["style"] == s for b in blocks) for s in STYLES}
    assert min(counts.values()) >= 8, counts


@pytest.mark.skipif(not (HYDROGEN / "demo_songs" / "GM_kit_Jazzy.h2song").is_file(),
                    reason="hydrogen-data is not installed")
def test_committed_jazzy_bar_matches_the_installed_song():
    """Jazzy's pattern '1', read straight from the XML, against hydrogen.txt's block."""
    root = ET.parse(HYDROGEN / "demo_songs" / "GM_kit_Jazzy.h2song").getroot()
    names = {i.findtext("id"): i.findtext("name") for i in root.find("instrumentList")}
    first = next(p for p in root.iter("pattern") if p.findtext("name") == "1")
    expected = {}
    for n in first.iter("note"):
        name, position = names[n.findtext("instrument")], int(n.findtext("position"))
        velocity = float(n.findtext("velocity"))
        assert position % 12 == 0
        row = expected.setdefault(name, ["."] * 16)
        row[position // 12] = "g" if velocity < 0.5 else "X" if velocity >= 0.85 else "x"
    block = next(b for b in read_blocks(PATTERNS / "hydrogen.txt")
                 if b["fields"]["source"].endswith("GM_kit_Jazzy.h2song, pattern '1' (bar 1)"))
    rows = dict(block["rows"])
    assert rows["kick"] == "".join(expected["Kick"])
    assert rows["ride"] == "".join(expected["Ride"])
    assert rows["closed_hat"] == "".join(expected["Hat Pedal"])
