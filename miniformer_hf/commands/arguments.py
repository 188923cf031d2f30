"""Argument types shared by the subcommands: the kinds of `miniformer_hf.option_values` (the ones the
``train`` options table uses), so one kind of value is checked one way by every command.

A bad value is refused at parse time in one line naming the flag (``--num-beams 0 is not positive; expected
a positive integer``, exit code 2), before anything is loaded or created.
"""

from __future__ import annotations

from ..option_values import POSITIVE_INTEGER, ArgumentType, Threads

__all__ = ["display_path", "positive_int", "thread_count"]


def positive_int(name: str) -> ArgumentType:
    """The ``type`` of a flag taking a positive integer (``--num-beams``, ``--max-new-tokens``, ``--last``):
    the options table's kind, so ``--num-beams 0`` is refused here as ``miniformer train`` refuses it."""
    return ArgumentType(name, POSITIVE_INTEGER)


def thread_count(name: str = "threads") -> ArgumentType:
    """The ``type`` of ``--threads``: a positive integer this machine can use (`option_values.Threads`)."""
    return ArgumentType(name, Threads())


def display_path(path) -> str:
    """``path`` relative to the current folder when it lies inside it (runs/dates), else absolute."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
