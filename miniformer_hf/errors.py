"""The one error family of Miniformer: a problem the user can fix, said in one line.

Every error the package raises for bad input, bad data or a run folder in the wrong state is a
`MiniformerError`. ``exit_code`` is what the command line exits with: 1 for data, models and run
state, 2 for usage (conflicting or malformed options). The command line maps this family, and only
this family, to exit codes; a library caller catches it (it is also a ``ValueError``).
"""

from __future__ import annotations


class MiniformerError(ValueError):
    """A problem to report on one line; ``exit_code`` 1 (data/model/state) or 2 (usage)."""

    exit_code = 1

    def __init__(self, message: str = "", exit_code: int | None = None):
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code


__all__ = ["MiniformerError"]
