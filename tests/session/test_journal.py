"""The session folder's housekeeping on open: temp files a killed write left behind."""

from __future__ import annotations

import os
import time

from ddjax.session import journal


def test_stale_temp_files_are_removed_and_fresh_ones_kept(tmp_path):
    (tmp_path / "wav").mkdir()
    stale = [tmp_path / "wav" / ".loop_00003.wav.0a1b2c3d4e5f.tmp",
             tmp_path / ".checkpoint.msgpack.ffeeddccbbaa.tmp"]
    fresh = tmp_path / "wav" / ".loop_00004.wav.123456abcdef.tmp"
    kept = [tmp_path / "wav" / "loop_00003.wav", tmp_path / "log.jsonl",
            tmp_path / "notes.tmp"]  # not a hidden temp file of ours
    old = time.time() - 2 * journal.STALE_TEMP_SECONDS
    for path in stale + [fresh] + kept:
        path.write_bytes(b"x" * 1000)
    for path in stale + kept:
        os.utime(path, (old, old))
    removed = journal.remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and all(p.exists() for p in kept)
    assert journal.remove_stale_temp_files(tmp_path / "missing") == []
