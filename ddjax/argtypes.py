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


def bpm(text: str) -> float:
    value = float(text)
    if not limits.MIN_BPM <= value <= limits.MAX_BPM:
        raise argparse.ArgumentTypeError(
            f"must be {limits.MIN_BPM:g} to {limits.MAX_BPM:g} BPM, got {text}")
    return value


def swing(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= limits.MAX_SWING:
        raise argparse.ArgumentTypeError(
            f"must be 0 to {limits.MAX_SWING:g} (percent), got {text}")
    return value


def tracks(text: str) -> int:
    value = int(text)
    if not 1 <= value <= limits.MAX_TRACKS:
        raise argparse.ArgumentTypeError(f"must be 1 to {limits.MAX_TRACKS} tracks, got {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= limits.MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {limits.MAX_PORT} (or 0 for a free port), got {text}")
    return value
