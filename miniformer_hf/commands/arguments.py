"""Argument types shared by the subcommands: the kinds of `miniformer_hf.option_values` (the ones the
``train`` options table uses), so one kind of value is checked one way by every command.

A bad value is refused at parse time in one line naming the flag (``--num-beams 0 is not positive; expected
a positive integer``, exit code 2), before anything is loaded or created.
"""

from __future__ import annotations

from ..option_values import POSITIVE_INTEGER, ArgumentType, Threads

__all__ = ["add_generation_arguments", "add_threads_argument", "display_path", "generation_kwargs", "positive_int",
           "thread_count"]


def positive_int(name: str) -> ArgumentType:
    """The ``type`` of a flag taking a positive integer (``--num-beams``, ``--max-new-tokens``, ``--last``):
    the options table's kind, so ``--num-beams 0`` is refused here as ``miniformer train`` refuses it."""
    return ArgumentType(name, POSITIVE_INTEGER)


def thread_count(name: str = "threads") -> ArgumentType:
    """The ``type`` of ``--threads``: a positive integer this machine can use (`option_values.Threads`)."""
    return ArgumentType(name, Threads())


def add_generation_arguments(parser, *, max_new_tokens: int | None = None) -> None:
    """``--max-new-tokens`` and ``--num-beams`` as generate, evaluate and visualize take them; None (not
    given) leaves the model's generation config in charge (`generation_kwargs`)."""
    where = "the model's generation config" if max_new_tokens is None else max_new_tokens
    parser.add_argument(
        "--max-new-tokens", type=positive_int("max_new_tokens"), default=max_new_tokens,
        help=f"longest output (default: {where})",
    )  # fmt: skip
    parser.add_argument(
        "--num-beams", type=positive_int("num_beams"), default=None,
        help="beam search width (default: the model's generation config, greedy)",
    )  # fmt: skip


def generation_kwargs(args) -> dict[str, int]:
    """``max_new_tokens`` / ``num_beams`` for ``generate`` where the command line gave them."""
    kwargs = {}
    if getattr(args, "max_new_tokens", None) is not None:
        kwargs["max_new_tokens"] = args.max_new_tokens
    if getattr(args, "num_beams", None) is not None:
        kwargs["num_beams"] = args.num_beams
    return kwargs


def add_threads_argument(parser) -> None:
    parser.add_argument("--threads", type=thread_count(), default=1, help="CPU threads for PyTorch (default 1)")


def display_path(path) -> str:
    """``path`` relative to the current folder when it lies inside it (runs/dates), else absolute."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
