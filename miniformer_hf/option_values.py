"""Values of options: what each kind of option accepts, and the error that names the parameter.

A kind converts what was typed after a flag (`Kind.from_text`) and checks a value from Python or from
the command line (`Kind.check`), with one message for both: a bad value raises `Invalid` ("is not
positive; expected a positive integer"), which `Invalid.error` turns into an `OptionError` naming the
parameter (``max_steps=0 ...``) or, on the command line, the flag (``--max-steps 0 ...``). `NOT_GIVEN`
marks an option nobody set. The table of options that uses these kinds is `miniformer_hf.options`.

It imports only the standard library.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import shlex
import string
from collections.abc import Iterable
from typing import Any

from .errors import MiniformerError

__all__ = [
    "NOT_GIVEN",
    "POSITIVE_INTEGER",
    "ArgumentType",
    "Choice",
    "Duration",
    "Flag",
    "Integer",
    "Invalid",
    "Kind",
    "Marks",
    "Number",
    "OptionError",
    "Text",
    "Threads",
    "flag_name",
    "parse_duration",
]

# ---------------------------------------------------------------------------------------------
# "Not given" and the error that names parameters
# ---------------------------------------------------------------------------------------------


class _NotGiven:
    """The value of an option the caller did not set (falsy, so ``if options.dataset`` still reads well)."""

    _instance: _NotGiven | None = None

    def __new__(cls) -> _NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


def flag_name(name: str) -> str:
    """The flag of parameter ``name``: ``--max-steps`` for ``max_steps``."""
    return "--" + name.replace("_", "-")


def _shell_text(value: Any) -> str:
    """A value as one would type it after its flag: ``5m``, ``''``, ``0.5 1.0``."""
    if isinstance(value, (list, tuple)):
        return " ".join(_shell_text(item) for item in value)
    if isinstance(value, str):
        return shlex.quote(value)
    return str(value)


class OptionError(MiniformerError):
    """An option, or a combination of options, that a run cannot use; ``exit_code`` 2 (usage).

    The message is a template: ``{name=}`` shows parameter ``name`` with its value (the keyword ``name``),
    ``{name}`` the parameter's name, or the keyword's plain value when the keyword ``name`` is given and not
    shown as ``{name=}`` (``{estimate:,}``). Values never pass through the template, so a value holding
    braces is shown as it is. ``str(error)`` spells parameters as Python does (``max_steps=0``);
    `on_command_line` returns the same error spelled with flags (``--max-steps 0``). ``parameters`` lists
    the parameters the message names.
    """

    exit_code = 2

    def __init__(self, template: str, *, command_line: bool = False, **values: Any):
        self.template = template
        self.values = values
        self.command_line = command_line
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field]
        shown_with_value = {field[:-1] for field in fields if field.endswith("=")}
        self._plain = set(values) - shown_with_value
        self.parameters = tuple(dict.fromkeys(field.rstrip("=") for field in fields if field not in self._plain))
        super().__init__(self._render())

    def on_command_line(self) -> OptionError:
        """The same error, naming flags (``--max-steps 0``) instead of parameters (``max_steps=0``)."""
        return OptionError(self.template, command_line=True, **self.values)

    def __reduce__(self):  # pickled by its template, not its message (which may hold braces)
        return functools.partial(OptionError, self.template, command_line=self.command_line, **self.values), ()

    def _render(self) -> str:
        parts = []
        for literal, field, spec, _ in string.Formatter().parse(self.template):
            parts.append(literal)
            if field is None:
                continue
            name = field.rstrip("=")
            if field.endswith("="):  # a parameter and its value
                value = self.values[name]
                parts.append(f"{flag_name(name)} {_shell_text(value)}" if self.command_line else f"{name}={value!r}")
            elif name in self._plain:
                parts.append(format(self.values[name], spec))
            else:
                parts.append(flag_name(name) if self.command_line else name)
        return "".join(parts)


class Invalid(Exception):
    """What is wrong with one value, said after the value: ``is not positive; expected a positive integer``.
    ``shown`` is the value to print before it (the text typed on the command line, or the Python value);
    NOT_GIVEN prints the name alone (``output_dir is empty; ...``)."""

    def __init__(self, problem: str, shown: Any = NOT_GIVEN):
        super().__init__(problem)
        self.problem = problem
        self.shown = shown

    def error(self, name: str) -> OptionError:
        if self.shown is NOT_GIVEN:
            return OptionError("{%s} %s" % (name, _escape(self.problem)))
        return OptionError("{%s=} %s" % (name, _escape(self.problem)), **{name: self.shown})


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


# ---------------------------------------------------------------------------------------------
# Kinds of values: each converts command-line text and checks a value, the same check for both
# ---------------------------------------------------------------------------------------------


class Kind:
    """Which values an option accepts. `from_text` converts what was typed after the flag; `check`
    checks (and normalises) a value from either side, raising `Invalid`."""

    def from_text(self, text: str) -> Any:
        return text

    def check(self, value: Any) -> Any:
        return value

    def parse(self, text: str) -> Any:
        """What argparse stores for one typed word; a refusal shows the word as it was typed."""
        value = self.from_text(text)
        try:
            return self.check(value)
        except Invalid as invalid:
            if invalid.shown is not NOT_GIVEN:
                invalid.shown = text
            raise


class Integer(Kind):
    def __init__(self, low: int, expected: str, high: int | None = None):
        self.low, self.high, self.expected = low, high, expected

    def from_text(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise Invalid(f"is not an integer; expected {self.expected}", text) from None

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"is not an integer; expected {self.expected}", value)
        if value < self.low:
            problem = "is not positive" if self.low == 1 else "is negative" if self.low == 0 else "is too small"
            raise Invalid(f"{problem}; expected {self.expected}", value)
        if self.high is not None and value > self.high:
            raise Invalid(f"is too large; expected {self.expected}", value)
        return value


POSITIVE_INTEGER = Integer(1, "a positive integer")  # steps, beams, lengths, batch sizes, counts


class Threads(Integer):
    def __init__(self):
        super().__init__(1, "a positive integer")

    def check(self, value: Any) -> int:
        value = super().check(value)
        limit = 4 * (os.cpu_count() or 1)
        if value > limit:
            raise Invalid(
                f"is more than this machine can use ({os.cpu_count()} CPUs); expected at most {limit}", value
            )
        return value


class Number(Kind):
    """A finite float in [low, high) (``low_open``: (low, high)); NaN and infinity are refused."""

    def __init__(self, expected: str, low: float | None = None, high: float | None = None, low_open: bool = False):
        self.expected, self.low, self.high, self.low_open = expected, low, high, low_open

    def from_text(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise Invalid(f"is not a number; expected {self.expected}", text) from None

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"is not a number; expected {self.expected}", value)
        value = float(value)
        if not math.isfinite(value):
            raise Invalid(f"is not a finite number; expected {self.expected}", value)
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        if too_low or (self.high is not None and value >= self.high):
            positive_only = self.low == 0 and self.low_open and self.high is None
            problem = "is not positive" if positive_only else "is out of range"
            raise Invalid(f"{problem}; expected {self.expected}", value)
        return value


class Text(Kind):
    """A non-empty string (an unset shell variable gives ``--dataset ''``, which must not mean "no dataset")."""

    def __init__(self, expected: str):
        self.expected = expected

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"is not a string; expected {self.expected}", value)
        if not value.strip():
            shown = NOT_GIVEN if value == "" else value
            raise Invalid(f"is empty; expected {self.expected} (is a shell variable unset?)", shown)
        return value


class Choice(Kind):
    def __init__(self, choices: Iterable[str]):
        self.choices = tuple(choices)

    def check(self, value: Any) -> str:
        if value not in self.choices:
            raise Invalid(f"is unknown; expected one of {', '.join(self.choices)}", value)
        return value


class Flag(Kind):
    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("is not True or False; expected a bool", value)
        return value


_AMOUNT = r"(?:\d+(?:\.\d*)?|\.\d+)"  # 5, 1.5, 1., .5
_DURATION = re.compile(rf"(?:(?P<h>{_AMOUNT})h)?(?:(?P<m>{_AMOUNT})m)?(?:(?P<s>{_AMOUNT})s)?")  # in that order
DURATION_EXPECTED = "a duration such as 90s, 5m, 1h30m or 1.5h (a bare number is seconds)"


class Duration(Kind):
    """Wall time in seconds, from ``90s`` / ``5m`` / ``1h30m`` / ``1.5h`` / ``300`` (or, in Python, a number
    of seconds or a ``datetime.timedelta``)."""

    def from_text(self, text: str) -> float:
        compact = text.strip().lower().replace(" ", "")
        if not compact:
            raise Invalid(f"is empty; expected {DURATION_EXPECTED}")
        try:
            return float(compact)  # a bare number of seconds ("nan"/"inf" are refused by check)
        except ValueError:
            pass
        match = _DURATION.fullmatch(compact)
        if match is None or not any(match.groupdict().values()):
            raise Invalid(f"is not a duration; expected {DURATION_EXPECTED}", text)
        hours, minutes, seconds = (float(match.group(unit) or 0) for unit in "hms")
        return hours * 3600 + minutes * 60 + seconds

    def check(self, value: Any) -> float:
        if isinstance(value, str):
            value = self.from_text(value)
        elif hasattr(value, "total_seconds"):  # a datetime.timedelta
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"is not a duration; expected {DURATION_EXPECTED}", value)
        if not math.isfinite(value) or value <= 0:
            raise Invalid(f"is not a positive finite duration; expected {DURATION_EXPECTED}", value)
        return float(value)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90s``, ``5m``, ``1h30m``, ``1.5h``, or a bare number of seconds (``300``).

    Raises ``ValueError`` for anything else, including zero, negative, NaN and infinite durations.
    """
    try:
        return Duration().parse(text)
    except Invalid as invalid:
        raise ValueError(f"{text!r} {invalid.problem}") from None


class Marks(Kind):
    """One or more positive finite numbers of seconds (``--eval-at-seconds 30 60``)."""

    _each = Number("positive numbers of seconds", low=0, low_open=True)

    def parse(self, text: str) -> float:  # argparse calls it once per word (nargs="+")
        return self._each.parse(text)

    def check(self, value: Any) -> list[float]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise Invalid("is not a list of seconds; expected positive numbers of seconds", value)
        marks = [self._each.check(mark) for mark in value]
        if not marks:
            raise Invalid("is empty; expected one or more positive numbers of seconds")
        return marks


# ---------------------------------------------------------------------------------------------
# On the command line
# ---------------------------------------------------------------------------------------------


class ArgumentType:
    """argparse's ``type`` for one option of any command: converts and checks the typed text with the
    option's kind, and refuses a bad value in one line naming the flag (``--num-beams 0 is not positive;
    expected a positive integer``); the command exits with code 2."""

    def __init__(self, name: str, kind: Kind):
        self.name, self.kind = name, kind
        self.__name__ = name

    def __call__(self, text: str) -> Any:
        try:
            return self.kind.parse(text)
        except Invalid as invalid:
            raise argparse.ArgumentError(None, str(invalid.error(self.name).on_command_line())) from None
