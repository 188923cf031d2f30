"""The one error family of Miniformer: a problem the user can fix, said in one line.

Every error the package raises for bad input, bad data or a run folder in the wrong state is a
`MiniformerError`. ``exit_code`` is what the command line exits with: 1 for data, models and run
state, 2 for usage (conflicting or malformed options). The command line maps this family, and only
this family, to exit codes; a library caller catches it (it is also a ``ValueError``).
"""

from __future__ import annotations

import os


class MiniformerError(ValueError):
    """A problem to report on one line; ``exit_code`` 1 (data/model/state) or 2 (usage)."""

    exit_code = 1

    def __init__(self, message: str = "", exit_code: int | None = None):
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code


class DataError(MiniformerError):
    """A data file, dataset or request for data that cannot be used; the message is a single line.

    Lives here, beside its family, so that the generated tasks, the file and dataset readers and
    the tokenizer raise the same class without importing one another.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, expected: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.expected = expected
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{problem}; expected {expected}")


__all__ = ["DataError", "MiniformerError"]
