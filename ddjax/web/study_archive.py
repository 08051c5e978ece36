"""A study participant's archive: their whole folder as one zip, audio as FLAC or left out.

Every loop can be rendered again from its JSON (``ddjax render``), so the audio is a
convenience: 16-bit FLAC keeps it at about a third of the float WAVs' size, and "none"
leaves it out. The zip's README.txt says how to render it again.
"""

from __future__ import annotations

import io
import pathlib
import zipfile

import soundfile as sf

ARCHIVE_AUDIO = ("flac", "none")
README = """A participant of a ddjax listening study (ddjax serve --study).

{audio}

Every loop can be rendered again, sample for sample, from its JSON and the kit:
- phase I: each rating line of session/ratings.jsonl holds the loop as "loop";
- phase II: phase2/items.json holds each item's "loop" (and its group and score);
- the practice loop: practice/loop.json.
Save one "loop" object as a file (say loop.json), then, with the study's kit folder
(session/session.json names it):

    ddjax render --kit KIT_FOLDER loop.json --out loop.wav

result.json holds theta_init, theta_final and delta; steps.jsonl the consent, the
headphone check's answers and the practice rating; both ratings logs are append-only.
"""
AUDIO_WORDS = {
    "flac": "The audio of every loop is here as 16-bit FLAC (the server kept 32-bit float"
            " WAVs;\nFLAC is lossless at 16 bits, so the samples match within 1/32768).",
    "none": "The audio is left out of this archive (ddjax serve --archive-audio none).",
}


def write_archive(directory: pathlib.Path, participant: str, path: pathlib.Path,
                  audio: str = "flac") -> None:
    """Writes ``directory`` to the zip ``path``, under ``participant``/: every file but
    hidden ones, WAVs as 16-bit FLAC (``audio="flac"``) or left out (``"none"``), and a
    README.txt. Streams to disk, one file at a time."""
    if audio not in ARCHIVE_AUDIO:
        raise ValueError(f"audio must be one of {ARCHIVE_AUDIO}, not {audio!r}")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{participant}/README.txt",
                         README.format(audio=AUDIO_WORDS[audio]))
        for item in sorted(directory.rglob("*")):
            if not item.is_file() or item.name.startswith("."):
                continue
            name = f"{participant}/{item.relative_to(directory).as_posix()}"
            if item.suffix.lower() != ".wav":
                archive.write(item, name)
            elif audio == "flac":
                samples, sr = sf.read(item, dtype="float32")
                flac = io.BytesIO()
                sf.write(flac, samples, sr, format="FLAC", subtype="PCM_16")
                archive.writestr(name[: -len(".wav")] + ".flac", flac.getvalue(),
                                 zipfile.ZIP_STORED)  # FLAC does not deflate further
