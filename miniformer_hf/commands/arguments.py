"""Argument types shared by the subcommands: each checks one value at parse time and names what it expected.

argparse adds the flag's name to the message (``argument --seed: -1 is negative; ...``), so a bad value is
refused before anything is loaded or created.
"""

from __future__ import annotations

import argparse
import os

__all__ = [
    "display_path",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "probability",
    "thread_count",
]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected a positive integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected a positive integer")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; expected an integer >= 0")
    return value


def thread_count(text: str) -> int:
    value = positive_int(text)
    limit = 4 * (os.cpu_count() or 1)
    if value > limit:
        raise argparse.ArgumentTypeError(
            f"{value} threads is more than this machine can use ({os.cpu_count()} CPUs); expected at most {limit}"
        )
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a positive number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected a positive number")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a value in [0, 1)") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1)")
    return value


def display_path(path) -> str:
    """``path`` relative to the current folder when it lies inside it (runs/dates), else absolute."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
