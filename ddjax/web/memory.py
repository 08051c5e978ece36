"""A study's server keeps its memory to what its participants use (glibc only).

Each thread that allocates may get a malloc arena of its own (up to 8 per core), and a
study's server runs a thread per participant and a pool for the requests; their
half-empty arenas, and the freed pages glibc keeps, cost tens of MB per participant
(``bench/study_load.py``). ``limit_malloc_arenas`` caps the arenas; ``Trimmer`` hands freed
pages back to the system every few seconds. Both do nothing where the C library is not
glibc.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["MALLOC_ARENAS", "TRIM_EVERY_S", "Trimmer", "limit_malloc_arenas"]

MALLOC_ARENAS = 2  # glibc's M_ARENA_MAX in a study's server
TRIM_EVERY_S = 5.0
_M_ARENA_MAX = -8


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist only in glibc
        return libc
    except (OSError, AttributeError):
        return None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Caps glibc's malloc arenas at ``arenas`` for the threads started from here on;
    False where that is not possible."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, arenas))


class Trimmer:
    """Gives freed heap pages back to the system every ``every`` seconds (``malloc_trim``),
    on a daemon thread, until ``stop``."""

    def __init__(self, every: float = TRIM_EVERY_S):
        self._libc, self._every = _glibc(), every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ddjax-trim", daemon=True)

    def start(self) -> Trimmer:
        if self._libc is not None:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._libc.malloc_trim(0)

    def stop(self) -> None:
        self._stop.set()
