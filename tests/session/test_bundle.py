"""The liked-loops zip: the one-shots its loops use, and a README that says which MIDI note
plays which one-shot, so the MIDI plays in any sampler."""

import io
import pathlib
import zipfile

import jax.numpy as jnp
import mido
import numpy as np
import soundfile as sf

from ddjax.core.render import RenderConfig
from ddjax.io.kit import Kit
from ddjax.session.bundle import liked_zip
from ddjax.session.journal import Rating

NAMES = ("clap/a.wav", "clap/b.flac", "clap/b.wav", "kick/k.wav", "perc/p.wav", "tom/t1.wav",
         "unused/u.wav")
NOTES = [39, 39, 39, 36, None, 45, 70]  # Kit.notes: three claps, an unknown kind, a tom


def _kit():
    rng = np.random.default_rng(0)
    lengths = np.array([3000, 2000, 2500, 4000, 1000, 3500, 1500])
    audio = np.zeros((len(NAMES), 4000), np.float32)
    for row, n in zip(audio, lengths):
        row[:n] = rng.uniform(-0.5, 0.5, n)
    return Kit(audio=jnp.asarray(audio), lengths=lengths, names=NAMES,
               is_kick=np.zeros(len(NAMES), bool), root=pathlib.Path("/kit"), sr=44100,
               kinds=(), notes=tuple(NOTES))


def _rating(loop_id, samples, liked):
    grid = np.zeros((4, 16), bool)
    for t in range(4):
        grid[t, t::4] = True
    return Rating(loop_id, grid, np.array(samples), liked, 0)


def test_liked_zip_carries_each_used_one_shot_once_and_says_which_note_plays_it():
    kit = _kit()
    ratings = [_rating(3, [0, 1, 3, 4], True), _rating(5, [5, 5, 2, 3], True),
               _rating(7, [6, 0, 1, 2], False)]  # not liked: unused/u.wav stays out
    data = liked_zip(ratings, kit, RenderConfig(bpm=120.0), list(kit.notes))
    archive = zipfile.ZipFile(io.BytesIO(data))
    # Written by hand: every sample the liked loops use, once; b.flac and b.wav both
    # become WAVs, so the second is told apart.
    where = {0: "one-shots/clap/a.wav", 1: "one-shots/clap/b.wav", 2: "one-shots/clap/b_2.wav",
             3: "one-shots/kick/k.wav", 4: "one-shots/perc/p.wav", 5: "one-shots/tom/t1.wav"}
    shots = sorted(n for n in archive.namelist() if n.startswith("one-shots/"))
    assert shots == sorted(where.values())
    for i, name in where.items():
        audio, sr = sf.read(io.BytesIO(archive.read(name)))
        assert sr == 44100
        np.testing.assert_allclose(audio, np.asarray(kit.audio)[i, :kit.lengths[i]],
                                   atol=1e-6)
    # The notes by hand: a taken GM note -> the next free pad note from 60; a taken tom ->
    # the next tom note above it.
    notes = {3: [39, 60, 36, 61], 5: [45, 47, 39, 36]}
    samples = {3: [0, 1, 3, 4], 5: [5, 5, 2, 3]}
    readme = archive.read("README.txt").decode()
    for loop_id in (3, 5):
        for t, (note, i) in enumerate(zip(notes[loop_id], samples[loop_id])):
            assert f"  track {t + 1}: note {note} -> {where[i]}" in readme
        midi = mido.MidiFile(file=io.BytesIO(archive.read(f"loop_{loop_id:05d}.mid")))
        played = [{m.note for m in track if m.type == "note_on"} for track in midi.tracks[1:]]
        assert played == [{n} for n in notes[loop_id]]
        names = [next(m.name for m in track if m.type == "track_name")
                 for track in midi.tracks[1:]]
        assert names == [pathlib.PurePosixPath(NAMES[i]).stem for i in samples[loop_id]]
    assert "loop_00007.mid" not in archive.namelist()


def test_a_zip_with_nothing_liked_has_no_one_shots():
    kit = _kit()
    data = liked_zip([_rating(1, [0, 1, 2, 3], False)], kit, RenderConfig(), list(kit.notes))
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["README.txt"]
