"""Admission: past the server's capacity, newcomers wait in line (first come, first in).

A ``Line`` holds the waiting participants' ``Ticket``s in the order they came. A newcomer
is let in at once only where nobody waits and there is room; otherwise they get a ticket
and their page asks again every few seconds (``admit_turn``), which lets in the first
in line once there is room. A ticket nobody asks about for ``ABANDONED_S`` (the page was
closed) leaves the line, so it never holds up those behind it.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from typing import Callable

__all__ = ["Line", "Ticket", "ABANDONED_S"]

ABANDONED_S = 30.0  # a ticket not asked about for this long leaves the line


@dataclasses.dataclass
class Ticket:
    """A participant waiting: ``number`` (what their page asks with), ``sid`` (the id
    they will have), ``place`` (1: next in), ``joined`` and ``seen`` (monotonic times)."""

    number: str
    sid: str
    place: int
    joined: float
    seen: float


class Line:
    """The participants waiting to be let in, in order.

    Args:
      clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._tickets: list[Ticket] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._drop_abandoned()
            return len(self._tickets)

    def admit(self, sid: str, has_room: Callable[[], bool]) -> Ticket | None:
        """None where ``sid`` comes in now (nobody waits and ``has_room()``), else its
        ticket, last in line (the same ticket where ``sid`` waits already)."""
        with self._lock:
            self._drop_abandoned()
            for ticket in self._tickets:
                if ticket.sid == sid:
                    ticket.seen = self._clock()
                    return ticket
            if not self._tickets and has_room():
                return None
            now = self._clock()
            ticket = Ticket(secrets.token_urlsafe(12), sid, len(self._tickets) + 1, now, now)
            self._tickets.append(ticket)
            return ticket

    def find(self, number: str) -> Ticket | None:
        with self._lock:
            self._drop_abandoned()
            return next((t for t in self._tickets
                         if secrets.compare_digest(t.number, number)), None)

    def admit_turn(self, ticket: Ticket, has_room: Callable[[], bool]) -> bool:
        """Lets ``ticket`` in where it is first in line and ``has_room()``; else updates
        its place. Either way it counts as asked about now."""
        with self._lock:
            ticket.seen = self._clock()
            self._drop_abandoned()
            if self._tickets and self._tickets[0] is ticket and has_room():
                self._tickets.pop(0)
                self._renumber()
                return True
            return False

    def _drop_abandoned(self) -> None:
        now = self._clock()
        kept = [t for t in self._tickets if now - t.seen <= ABANDONED_S]
        if len(kept) != len(self._tickets):
            self._tickets = kept
            self._renumber()

    def _renumber(self) -> None:
        for place, ticket in enumerate(self._tickets, 1):
            ticket.place = place
