"""Tests for miniformer_hf.errors: the one error family, its one-line messages and exit codes, and that
every user-facing error class of the package belongs to it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import miniformer_hf
from miniformer_hf.errors import DataError, MiniformerError

# The files that travel with a shared checkpoint import nothing else of the package (STYLE.md), so their
# errors cannot join the family; they stay plain ValueError/Exception subclasses.
TRAVELS_WITH_CHECKPOINTS = {
    "configuration_miniformer", "modeling_miniformer", "heads_miniformer", "support_miniformer",
    "kernels_miniformer", "pipeline_miniformer",
}  # fmt: skip
# Raised and caught inside the package, never seen by a user: (module, class) -> what it becomes.
INTERNAL = {("miniformer_hf.option_values", "Invalid"): "an OptionError naming the parameter"}


def test_a_miniformer_error_is_one_line_a_value_error_and_carries_its_exit_code():
    error = MiniformerError("the file\n  is   empty")
    assert str(error) == "the file is empty" and isinstance(error, ValueError)
    assert error.exit_code == 1 and MiniformerError("bad flag", exit_code=2).exit_code == 2
    assert MiniformerError("x").exit_code == 1  # the override is per instance, not per class


def test_a_data_error_names_the_file_the_problem_and_what_was_expected(tmp_path):
    error = DataError(tmp_path / "pairs.jsonl", "line 3 is not JSON", "one JSON object per line")
    assert str(error) == f"{tmp_path / 'pairs.jsonl'}: line 3 is not JSON; expected one JSON object per line"
    assert error.path == str(tmp_path / "pairs.jsonl") and error.exit_code == 1
    assert str(DataError(None, "no rows", "at least one")) == "no rows; expected at least one"


def _package_modules():
    for info in pkgutil.walk_packages(miniformer_hf.__path__, prefix="miniformer_hf."):
        if info.name.rsplit(".", 1)[-1] not in TRAVELS_WITH_CHECKPOINTS:
            yield info.name


@pytest.mark.parametrize("module_name", sorted(_package_modules()))
def test_every_error_class_of_the_package_is_a_miniformer_error(module_name):
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        internal = (module_name, name) in INTERNAL
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module_name and not internal:
            assert issubclass(value, MiniformerError), f"{module_name}.{name} is not a MiniformerError"
