"""The refusals a front end turns into an HTTP status: ``HttpError`` (any status) and
``Starting`` (503 while the desks open)."""

from __future__ import annotations

__all__ = ["HttpError", "Starting"]


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Starting(HttpError):
    """The desks are still opening: 503, with the step under way."""

    def __init__(self, step: str):
        super().__init__(503, f"starting: {step}")
