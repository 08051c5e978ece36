"""Argument types for the command line: each turns bad input into argparse's one-line error."""

from __future__ import annotations

import argparse
import math

from ddjax import limits


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _count(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= limits.MAX_COUNT:
            raise argparse.ArgumentTypeError(f"must be {low} to {limits.MAX_COUNT:,}, got {text}")
        return value
    parse.__name__ = "count"
    return parse


# Iterations, ratings, runs: bounded before anything compiles (``limits.MAX_COUNT``).
# --n, --chains and --batch have their memory and disk checks instead.
count = _count(0)
positive_count = _count(1)


def loop_count(text: str) -> int:
    """A number of loops to score, 1 to 2**31 - 1 (``rescore --generate``)."""
    value = int(text)
    if not 0 < value < 2**31:
        raise argparse.ArgumentTypeError(f"must be 1 to {2**31 - 1:,}, got {text}")
    return value


def seed(text: str) -> int:
    """A PRNG seed: 0 to ``limits.MAX_SEED`` (32 bits, as JAX's keys hold)."""
    value = int(text)
    if not 0 <= value <= limits.MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be 0 to {limits.MAX_SEED} (32 bits), got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _within(name: str, cast, low, high, unit: str):
    """A type that reads ``cast(text)`` in [low, high], named ``name`` for argparse's own
    "invalid NAME value" error."""
    def parse(text: str):
        value = cast(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g}{unit}, got {text}")
        return value
    parse.__name__ = name
    return parse


bpm = _within("bpm", float, limits.MIN_BPM, limits.MAX_BPM, " BPM")
swing = _within("swing", float, limits.MIN_SWING, limits.MAX_SWING,
                " (percent; 50 is straight, 66.67 a triplet shuffle)")
_lufs = _within("loudness", float, limits.MIN_LUFS, limits.MAX_LUFS, " LUFS")


def loudness(text: str) -> float | None:
    """``--loudness``: "off" (None: the raw mix) or a target in LUFS."""
    return None if text.strip().lower() == "off" else _lufs(text)


loudness.__name__ = "loudness"
tracks = _within("tracks", int, 1, limits.MAX_TRACKS, " tracks")


def humanize(text: str):
    """``MS[,VELOCITY[,SEED]]``: a ``groove.Humanize``."""
    from ddjax.core.groove import parse
    from ddjax.errors import DdjaxError
    try:
        return parse(text)
    except DdjaxError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= limits.MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {limits.MAX_PORT} (or 0 for a free port), got {text}")
    return value


def style(text: str) -> str:
    """``--style``: a style of the shipped loop prior ("mix" for all of them: None)."""
    from ddjax.errors import DdjaxError
    from ddjax.io.patterns import check_style, load_loop_prior
    if text == "mix":
        return None
    try:
        return check_style(text, load_loop_prior().styles)
    except DdjaxError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


distance = _within("distance", int, 1, limits.MAX_TRACKS * 16, " cells")


def coordinator(text: str) -> str:
    """``--coordinator HOST:PORT``: a port 1 to 65535 and a host this machine can resolve,
    checked here (a bad address crashed JAX's C++ client)."""
    import socket
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= limits.MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port 1 to"
                                         f" {limits.MAX_PORT}, got {text!r}")
    try:
        socket.getaddrinfo(host.strip("[]"), int(port))
    except (OSError, UnicodeError):
        raise argparse.ArgumentTypeError(f"cannot resolve the host {host!r}") from None
    return text


# ``rescore --coordinator-timeout``: whole seconds (JAX's own timeout is an int), an hour at most.
coordinator_timeout = _within("seconds", int, 1, 3600, " s")
