"""What the server asks of every desk it serves (``RatingDesk``): a session rated alone
(``ddjax.web.desk.Desk``) and a study's participant (``ddjax.web.study.Study``) both
satisfy it. What only a free desk does (undo, skip, edits, "more like this", the liked
loops' zip) or only a study (its archive) the server asks of those classes by name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ddjax.web.desk import Item

__all__ = ["RatingDesk", "RATING_METHODS"]


@runtime_checkable
class RatingDesk(Protocol):
    """A desk's part that the server uses on every desk."""

    def current(self) -> Item:
        """The loop to rate now (``Refused`` where there is none)."""

    def rate(self, key: str, liked: bool) -> None:
        """Records the person's rating of the loop ``key``."""

    def state(self) -> dict:
        """The page's state: phase, ratings so far and what it shows of them."""

    def audio(self, key: str) -> bytes:
        """The WAV the page plays of loop ``key`` (KeyError where there is none)."""

    def download(self, key: str, kind: str) -> tuple[bytes, str]:
        """Loop ``key`` as a file of ``kind``: its bytes and name (KeyError: none)."""

    def close(self) -> None:
        """Finishes the desk's work and stops its session."""


RATING_METHODS = ("current", "rate", "state", "audio", "download", "close")
