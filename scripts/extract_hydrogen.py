#!/usr/bin/env python3
"""Extract one-bar drum grids from step-sequencer files installed by Debian packages, for
the loop prior's corpus (``scripts/patterns/``, format in its README).

Two readers, one writer:

* Hydrogen songs (``*.h2song``, XML; packages ``hydrogen-data`` and ``hydrogen-drumkits``),
  found recursively under ``--songs`` (default ``/usr/share/hydrogen/data``) ->
  ``hydrogen.txt``. A pattern's ``size`` is in ticks, 48 to the quarter note: 192 ticks is
  one 4/4 bar, 384 two bars, anything not a whole number of 4/4 bars is skipped. Each
  note goes to its nearest 16th (12 ticks; ``leadlag`` humanisation is ignored); a bar
  where more than a quarter of the notes are off the 16th grid (triplets, swung 16ths) is
  skipped. Velocity (0..1): ``g`` below 0.5, ``X`` from 0.85, else ``x``.
* TK-707 data files (``*.dat``, Tcl lists; package ``tk707``) under ``--tk707`` (default
  ``/usr/share/tk707``) -> ``extra/tk707.txt`` (opt-in for the fit, see the README): the
  ``TK707_FILES`` only, each read with the sound map tk707's help pairs it with
  (instruments 1..16 of that ``.map``). Only 16-step patterns on the 16th scale (scale 0)
  are kept.
  The TR-707 plays three note levels (plain, weak accent, strong accent; a "zero velocity"
  note is silent and dropped); the levels a pattern uses are ranked, loudest first, as
  ``X``, ``x``, ``g``, so one level reads ``x``, two ``x``/``X``, three ``g``/``x``/``X``.

Instruments map to ddjax kinds by name (``kind_from_name`` plus the Hydrogen/707 names in
``_NAME_RULES``); those with no kind are dropped. Instruments of one kind merge into one
track (the louder symbol wins), except toms, which stay one track per drum. Tracks are
ordered low voice, backbeat, timekeeper, rest (``ROLE_ORDER``), busiest first within a
role, and at most ``MAX_TRACKS`` are kept. Bars that are not loops are skipped: fewer
than two tracks or ``MIN_HITS`` notes (end hits, pickups), or no kick, backbeat or
timekeeper voice (tom fills); so are exact duplicates of a bar already written.

Each song's style is chosen from its name, notes and grids, in ``SONG_STYLES`` (why,
beside each); a song not listed takes its style from a keyword of its name or notes, else
``pop``, with a warning on stderr.

    python scripts/extract_hydrogen.py                      # writes scripts/patterns/
    python scripts/extract_hydrogen.py --songs my/songs --tk707 none --out /tmp/p

A missing ``--songs`` folder, or one with no ``.h2song``, or a ``--tk707`` folder named
but absent, is one line on stderr and exit code 2, before anything is written. Without
``--tk707`` the TK-707 files are read where installed; ``--tk707 none`` skips them.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from ddjax.core.drums import KINDS
from ddjax.errors import DdjaxError
from ddjax.io.kinds import kind_from_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SONGS = pathlib.Path("/usr/share/hydrogen/data")
DEFAULT_TK707 = pathlib.Path("/usr/share/tk707")
DEFAULT_OUT = ROOT / "scripts" / "patterns"

STEPS = 16
TICKS_PER_STEP = 12  # Hydrogen: 48 ticks to the quarter note
TICKS_PER_BAR = STEPS * TICKS_PER_STEP
MAX_OFF_GRID = 0.25  # a bar with more off-grid notes than this is triplet/swing-heavy
GHOST_BELOW = 0.5
ACCENT_FROM = 0.85
MAX_TRACKS = 6
MIN_HITS = 4
LEVELS = ".gxX"  # symbols from rest to accent; a merge keeps the later one

# Low voice, backbeat, timekeeper, the rest (see scripts/patterns/README.md).
ROLE_ORDER = (("kick",), ("snare", "clap", "rim"), ("closed_hat", "ride", "shaker"),
              ("open_hat", "tom", "cowbell", "crash", "fx"))

# Names kind_from_name gets wrong or does not know; first match wins, before it.
_NAME_RULES = (
    ("open_hat", r"semi.?open"),  # "Hat Semi-Open": sounds open, not a timekeeper's tick
    ("closed_hat", r"pedal"),  # "Hat Pedal": the foot-closed hat, played as the timekeeper
    ("ride", r"\bbell\b|ride.?cup|ride"),  # "Bell": the ride's bell; "ride-crash" is a ride
    ("crash", r"splash|china|cymbal"),
    ("snare", r"rim.?shot"),  # "Snare Rimshot": a loud snare hit, not a rim click
    ("rim", r"clave|stick"),
    ("rim", r"tamborim"),  # samba's small stick-struck frame drum: a high click
    ("shaker", r"tamb|ganza|cabasa|maraca"),  # tambourine, ganzá: shaken timekeepers
    ("kick", r"\bbass\b|bassdrum|\bsurdo"),  # TK-707 "Bass 1"; samba's bass drum
    ("snare", r"caixa"),  # samba's snare drum
    ("tom", r"contra|bongo|cong|timbal"),  # samba's second surdos; hand drums
    ("cowbell", r"agogo"),
    ("fx", r"apito|whist|quijada|chime"),
)
_KEYWORD_STYLES = tuple((s, s.replace("-", ".?")) for s in (
    "jazz", "funk", "rock", "house", "techno", "disco", "electro", "bossa", "shuffle",
    "afrobeat", "trap", "dembow", "breakbeat", "boom-bap", "half-time", "drum-and-bass",
    "uk-garage", "pop"))

# Style per song file, decided from the song (its name, notes and grids).
SONG_STYLES = {
    "GM_kit_Diddley.h2song": "rock",  # the Bo Diddley beat on floor tom: rock'n'roll
    "GM_kit_Jazzy.h2song": "jazz",  # ride "spang-a-lang", hat pedal on 2 and 4
    "GM_kit_demo1.h2song": "rock",  # straight 8th hats, snare on 2 and 4, rock kick
    "GM_kit_demo2.h2song": "funk",  # 16th hats, syncopated kicks, ghosted snare
    "GM_kit_demo3.h2song": "pop",  # straight backbeat grooves with busy hats/fills
    "TR808kit-demo.h2song": "electro",  # TR-808 kit, syncopated electro kick
    "tutorial_georgyporgy.h2song": "pop",  # Toto (Jeff Porcaro): straight 16th-hat R&B-pop
    "Colombo-Acoustic-Drumkit-demo.h2song": "funk",  # "groovy 4-bar loop", ghosted snare
}
# TK-707 files read: (style, sound map, what the file is). son-montuno.dat (with 727.map:
# bongos, congas, timbales) is left out: hand percussion alone, and no style here fits it.
TK707_FILES = {
    "demo.dat": ("electro", "707.map", "TR-707 demo patterns"),
    "carioca.dat": ("bossa", "7b7.map", "samba batucada, filed under bossa"),
}
TK707_WEAK, TK707_STRONG, TK707_SILENT = 2, 4, 8  # note property bits (flam is 1)


def instrument_kind(name: str) -> str | None:
    """The ddjax kind of a sequencer instrument name, e.g. ``Hat Pedal`` -> ``closed_hat``,
    ``Snare Jazz`` -> ``snare``, ``Tom Low`` -> ``tom``; None where the name says none."""
    text = re.sub(r"[_\-/.]", " ", name.lower())
    for kind, pattern in _NAME_RULES:
        if re.search(pattern, text):
            return kind
    return kind_from_name(name)


def velocity_symbol(velocity: float) -> str:
    """``g``, ``x`` or ``X`` for a Hydrogen velocity in 0..1."""
    if velocity < GHOST_BELOW:
        return "g"
    return "X" if velocity >= ACCENT_FROM else "x"


def quantize_bars(notes, size_ticks: int) -> list[dict[str, list[str]] | None]:
    """One pattern's notes -> per 4/4 bar, ``{instrument: 16 symbols}``; None for a bar
    whose notes are more than ``MAX_OFF_GRID`` off the 16th grid.

    ``notes``: ``(position_ticks, instrument, velocity)``; ``size_ticks``: a multiple of
    ``TICKS_PER_BAR``. A note goes to its nearest 16th; one past the end wraps to step 0."""
    bars = size_ticks // TICKS_PER_BAR
    grids: list[dict[str, list[str]]] = [{} for _ in range(bars)]
    counts = [[0, 0] for _ in range(bars)]  # [notes, off-grid notes] per bar
    for position, instrument, velocity in notes:
        step = round(position / TICKS_PER_STEP) % (bars * STEPS)
        bar, column = divmod(step, STEPS)
        counts[bar][0] += 1
        counts[bar][1] += position % TICKS_PER_STEP != 0
        row = grids[bar].setdefault(instrument, ["."] * STEPS)
        row[column] = max(row[column], velocity_symbol(velocity), key=LEVELS.index)
    return [grid if off <= MAX_OFF_GRID * total else None
            for grid, (total, off) in zip(grids, counts)]


def kind_tracks(grid: dict[str, list[str]], kinds: dict[str, str | None]) -> list[tuple]:
    """Instrument rows -> ``[(kind, symbols)]`` in importance order, at most
    ``MAX_TRACKS``: same-kind rows merged (toms apart), empty and kindless rows dropped."""
    merged: dict[str, list[str]] = {}
    for instrument, row in grid.items():
        kind = kinds.get(instrument)
        if kind is None or set(row) == {"."}:
            continue
        key = f"tom:{instrument}" if kind == "tom" else kind
        into = merged.setdefault(key, ["."] * STEPS)
        merged[key] = [max(a, b, key=LEVELS.index) for a, b in zip(into, row)]
    role = {kind: i for i, kinds_ in enumerate(ROLE_ORDER) for kind in kinds_}
    tracks = [(key.split(":")[0], "".join(row)) for key, row in merged.items()]
    tracks.sort(key=lambda t: (role[t[0]], -sum(s != "." for s in t[1]), KINDS.index(t[0])))
    return tracks[:MAX_TRACKS]


def parse_song(path: pathlib.Path) -> tuple[dict, list]:
    """An ``.h2song`` -> (``{instrument id: kind}``, ``[(pattern name, size_ticks,
    [(position, instrument id, velocity)])]``). Reads Hydrogen 0.9 and 1.x layouts."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DdjaxError(f"{path}: not a readable Hydrogen song ({exc}); pass another "
                         "--songs folder") from exc
    kinds = {i.findtext("id"): instrument_kind(i.findtext("name") or "")
             for i in root.iter("instrument") if i.find("name") is not None}  # not notes
    patterns = []
    for pattern in root.iter("pattern"):
        notes = [(int(n.findtext("position", "0")), n.findtext("instrument"),
                  float(n.findtext("velocity", "0.8")))
                 for n in pattern.iter("note")
                 if n.findtext("note_off", "false") != "true"
                 and float(n.findtext("velocity", "0.8")) > 0]
        size = int(pattern.findtext("size", "0"))
        if pattern.findtext("denominator", "4") == "4":
            patterns.append((pattern.findtext("name", ""), size, notes))
    return kinds, patterns


def package_label(path: pathlib.Path, fallback: str) -> str:
    """``<package> <version>`` of the Debian package owning ``path``, else ``fallback``."""
    try:
        owner = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True,
                               text=True, check=True).stdout.split(":")[0]
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", owner],
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return fallback
    return f"{owner} {version}"


def display_path(path: pathlib.Path) -> str:
    """The path below Hydrogen's ``data`` folder (``demo_songs/x.h2song``), else the
    file's folder and name."""
    folders = path.parts[:-1]
    if "data" in folders:
        return "/".join(path.parts[len(folders) - folders[::-1].index("data"):])
    return f"{path.parent.name}/{path.name}"


def song_style(path: pathlib.Path) -> str:
    """``SONG_STYLES``'s style for this file, else a keyword of its name/notes, else pop."""
    if path.name in SONG_STYLES:
        return SONG_STYLES[path.name]
    root = ET.parse(path).getroot()
    text = f"{path.stem} {root.findtext('name', '')} {root.findtext('notes', '')}".lower()
    for style, pattern in _KEYWORD_STYLES:
        if re.search(pattern, text):
            return style
    print(f"extract_hydrogen: {path.name}: no style known, filed under pop", file=sys.stderr)
    return "pop"


def slug(text: str) -> str:
    """A lowercase id part: letters, digits and hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def format_block(pattern_id: str, style: str, source: str, tracks) -> str:
    """One corpus block (see scripts/patterns/README.md)."""
    width = max(len(k) for k in KINDS) + 1
    lines = [f"pattern: {pattern_id}", f"style: {style}", f"source: {source}"]
    lines += [f"{kind:<{width}}{row}" for kind, row in tracks]
    return "\n".join(lines)


class Corpus:
    """Blocks to write, with the ids and grids seen so far (skips exact duplicates)."""

    def __init__(self):
        self.blocks: list[str] = []
        self.ids: set[str] = set()
        self.grids: set[tuple] = set()

    def add(self, style: str, name: str, source: str, tracks) -> bool:
        key = tuple(tracks)
        hits = sum(s != "." for _, row in tracks for s in row)
        groove = any(kind in ROLE_ORDER[0] + ROLE_ORDER[1] + ROLE_ORDER[2]
                     for kind, _ in tracks)
        if len(tracks) < 2 or hits < MIN_HITS or not groove or key in self.grids:
            return False
        base = f"{style}/{slug(name)}"
        pattern_id, n = base, 2
        while pattern_id in self.ids:
            pattern_id, n = f"{base}-{n}", n + 1
        self.grids.add(key)
        self.ids.add(pattern_id)
        self.blocks.append(format_block(pattern_id, style, source, tracks))
        return True


def song_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every ``.h2song`` under ``folder`` (or ``folder`` itself), sorted; DdjaxError when
    there are none."""
    if folder.is_file():
        return [folder]
    files = sorted(folder.rglob("*.h2song")) if folder.is_dir() else []
    if not files:
        raise DdjaxError(f"--songs {folder}: no Hydrogen songs (*.h2song) there; install "
                         "hydrogen-data (apt-get install hydrogen-data) or pass their folder")
    return files


def extract_songs(files, corpus: Corpus) -> None:
    """Every one-bar grid of these songs into ``corpus``."""
    for path in files:
        kinds, patterns = parse_song(path)
        style = song_style(path)
        source = (f"{package_label(path, 'hydrogen song')} {display_path(path)}")
        stem = slug(path.stem.removeprefix("GM_kit_"))
        for name, size, notes in patterns:
            if size <= 0 or size % TICKS_PER_BAR:
                continue
            for bar, grid in enumerate(quantize_bars(notes, size), start=1):
                if grid is None:
                    continue
                tracks = kind_tracks(grid, kinds)
                corpus.add(style, f"{stem}-{name}-{bar}", f"{source}, pattern '{name}' "
                           f"(bar {bar})", tracks)


def parse_tcl_list(text: str) -> list:
    """A Tcl list (braces and words, ``#`` comment lines) -> nested Python lists."""
    stack: list[list] = [[]]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for token in re.findall(r"[{}]|[^\s{}]+", body):
        if token == "{":
            stack.append([])
        elif token == "}":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    return stack[0]


def tk707_sounds(text: str) -> tuple[str, ...]:
    """A TK-707 ``.map`` -> its 16 instrument names (``{long} {short} {abbrev} {note}``)."""
    return tuple(" ".join(entry[0][0]) for entry in (parse_tcl_list(line) for line in
                 text.splitlines() if line.startswith("{")))


def tk707_grids(text: str, sounds) -> list[tuple[str, list[tuple[str, str]]]]:
    """A TK-707 ``.dat`` (format 0.7: notes, note properties, pattern properties, tracks)
    -> ``[(pattern name like "A3", [(kind, symbols)])]`` for its 16-step, 16th-scale
    patterns, tracks in importance order. ``sounds``: instrument names 1..16."""
    data = parse_tcl_list(text)
    if len(data) != 1 or len(data[0]) != 4:
        raise DdjaxError("not a TK-707 0.7 data file (4 segments); save it again in tk707")
    notes, properties, pattern_props, _ = data[0]
    kinds = {str(i): instrument_kind(name) for i, name in enumerate(sounds, 1)}
    out = []
    for g, (group_notes, group_props) in enumerate(zip(notes, properties)):
        for p, (steps, step_props) in enumerate(zip(group_notes, group_props)):
            length, scale = pattern_props[g][p][:2]
            if length != str(STEPS) or scale != "0":
                continue
            hits = [(step, inst, int(prop)) for step, (insts, props) in
                    enumerate(zip(steps, step_props)) for inst, prop in zip(insts, props)
                    if not int(prop) & TK707_SILENT]
            if not hits:
                continue
            levels = sorted({prop & (TK707_WEAK | TK707_STRONG) for _, _, prop in hits})
            symbol = dict(zip(levels, ("x", "xX", "gxX")[len(levels) - 1])) if levels else {}
            grid: dict[str, list[str]] = {}
            for step, inst, prop in hits:
                row = grid.setdefault(inst, ["."] * STEPS)
                row[step] = max(row[step], symbol[prop & (TK707_WEAK | TK707_STRONG)],
                                key=LEVELS.index)
            out.append((f"{'ABCD'[g]}{p + 1}", kind_tracks(grid, kinds)))
    return out


def extract_tk707(folder: pathlib.Path, corpus: Corpus) -> None:
    """Every 16th-scale pattern of the ``TK707_FILES`` in ``folder`` into ``corpus``."""
    for file, (style, sound_map, what) in sorted(TK707_FILES.items()):
        path = folder / file
        if not path.is_file() or not (folder / sound_map).is_file():
            continue
        sounds = tk707_sounds((folder / sound_map).read_text(encoding="utf-8"))
        label = package_label(path, "tk707")
        text = path.read_text(encoding="utf-8", errors="replace")
        for name, tracks in tk707_grids(text, sounds):
            corpus.add(style, f"tk707-{path.stem}-{name}",
                       f"{label} {path.name} ({what}), pattern {name}", tracks)


def write_corpus(path: pathlib.Path, header: str, corpus: Corpus) -> None:
    """``header`` comment lines, then the blocks, blank-line separated."""
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    path.write_text(comments + "\n" + "\n\n".join(corpus.blocks) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=pathlib.Path, default=DEFAULT_SONGS,
                        help="a folder searched for *.h2song, or one .h2song file")
    parser.add_argument("--tk707", default=None,
                        help=f"folder of TK-707 .dat files (default {DEFAULT_TK707} where "
                        "installed); 'none' to skip")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        files = song_files(args.songs)
        songs = Corpus()
        extract_songs(files, songs)
        tk707 = Corpus()
        tk707.grids = set(songs.grids)  # a TK-707 bar equal to a Hydrogen one adds nothing
        tk707_dir = DEFAULT_TK707 if args.tk707 is None else pathlib.Path(args.tk707)
        if args.tk707 not in (None, "none") and not tk707_dir.is_dir():
            raise DdjaxError(f"--tk707 {tk707_dir}: no such folder; install tk707 or "
                             "pass --tk707 none")
        if args.tk707 != "none" and tk707_dir.is_dir():
            extract_tk707(tk707_dir, tk707)
    except DdjaxError as exc:
        print(f"extract_hydrogen: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    regen = "Regenerate: python scripts/extract_hydrogen.py (see README.md)."
    write_corpus(args.out / "hydrogen.txt", "One-bar grids extracted from Hydrogen demo "
                 "songs (GPL) by scripts/extract_hydrogen.py.\n" + regen, songs)
    if tk707.blocks:  # opt-in (not in the default *.txt glob): see the README
        (args.out / "extra").mkdir(exist_ok=True)
        write_corpus(args.out / "extra" / "tk707.txt", "One-bar grids extracted from tk707's "
                     "data files (GPL) by scripts/extract_hydrogen.py.\n" + regen, tk707)
    print(f"{len(songs.blocks)} Hydrogen bars, {len(tk707.blocks)} TK-707 bars -> "
          f"{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
