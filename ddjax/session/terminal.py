"""What the long commands say on the terminal while they work: counts with their nouns,
and progress bars on stderr.

A bar follows tqdm's convention: shown where stderr is a terminal, off otherwise (a pipe,
a log file, a test). It redraws itself every second, so its elapsed time keeps moving
while one long call blocks (an XLA compile takes tens of seconds before the first loop),
and its note says what it waits for.
"""

from __future__ import annotations

import threading

from tqdm import tqdm

__all__ = ["Bar", "counted"]


def counted(n: int, noun: str) -> str:
    """``n`` with ``noun``, plural unless ``n`` is one: ``1 loop``, ``0 loops``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


class Bar(tqdm):
    """A tqdm bar on stderr that ticks once a second until it is closed.

    Args:
      total: the count it runs to.
      desc: what it counts, at its left.
      unit: the counted thing (``loop``, ``rating``).
      enabled: True: always shown; False: never; None: where stderr is a terminal.
      every_seconds: how often it redraws itself.
    """

    def __init__(self, total: int, desc: str, unit: str, enabled: bool | None = None,
                 every_seconds: float = 1.0):
        super().__init__(total=total, desc=desc, unit=unit,
                         disable=None if enabled is None else not enabled)
        self._stop = threading.Event()
        self._ticker = None
        if not self.disable:
            self._ticker = threading.Thread(target=self._tick, args=(every_seconds,),
                                            daemon=True)
            self._ticker.start()

    def _tick(self, every_seconds: float) -> None:
        while not self._stop.wait(every_seconds):
            self.refresh()

    def note(self, text: str) -> None:
        """Shows ``text`` after the count (``""``: nothing)."""
        if not self.disable:
            self.set_postfix_str(text)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        super().close()
