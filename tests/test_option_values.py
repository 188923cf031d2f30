"""`miniformer_hf.option_values`: the kinds of option values, NOT_GIVEN and the error naming parameters.
(The options table and `resolve` that use them: tests/test_options.py.)"""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from miniformer_hf.option_values import (
    NOT_GIVEN,
    Duration,
    Integer,
    Invalid,
    Marks,
    Number,
    OptionError,
    Text,
    flag_name,
    parse_duration,
)


def test_not_given_is_one_falsy_object_that_survives_copies():
    assert not NOT_GIVEN and repr(NOT_GIVEN) == "NOT_GIVEN"
    assert copy.deepcopy(NOT_GIVEN) is NOT_GIVEN and pickle.loads(pickle.dumps(NOT_GIVEN)) is NOT_GIVEN


def test_the_error_names_parameters_in_python_and_flags_on_the_command_line():
    error = OptionError("{d_model=} is not divisible by {n_heads=}; see {max_steps}", d_model=30, n_heads=4)
    assert str(error) == "d_model=30 is not divisible by n_heads=4; see max_steps"
    assert str(error.on_command_line()) == "--d-model 30 is not divisible by --n-heads 4; see --max-steps"
    assert error.parameters == ("d_model", "n_heads", "max_steps") and error.exit_code == 2
    sized = OptionError("about {estimate:,} parameters; expected a smaller {d_model}", estimate=12345678)
    assert str(sized) == "about 12,345,678 parameters; expected a smaller d_model" and sized.parameters == ("d_model",)
    both = OptionError("{average_last=} is refused; expected {average_last} 1", average_last=5)
    assert str(both.on_command_line()) == "--average-last 5 is refused; expected --average-last 1"
    braces = OptionError("{dataset=} is odd", dataset="{x} ''")  # a value is never read as a template
    assert str(braces) == "dataset=\"{x} ''\" is odd"
    assert str(braces.on_command_line()) == "--dataset '{x} '\"'\"''\"'\"'' is odd"  # as a shell would take it
    assert flag_name("max_new_tokens_over_input") == "--max-new-tokens-over-input"
    copied = pickle.loads(pickle.dumps(braces.on_command_line()))  # e.g. sent between processes
    assert str(copied) == str(braces.on_command_line()) and copied.exit_code == 2


@pytest.mark.parametrize(
    "kind, text, value",
    [(Integer(1, "a positive integer"), "7", 7), (Number("a number"), "-2.5", -2.5), (Text("a name"), "x", "x"),
     (Duration(), "1h30m", 5400.0), (Marks(), "30", 30.0)],
)  # fmt: skip
def test_each_kind_parses_what_was_typed(kind, text, value):
    assert kind.parse(text) == value


@pytest.mark.parametrize(
    "kind, value, problem",
    [
        (Integer(1, "a positive integer"), 0, "is not positive"),
        (Integer(1, "a positive integer"), 2.0, "is not an integer"),
        (Integer(1, "a positive integer"), False, "is not an integer"),
        (Integer(0, "an integer in [0, 9]", high=9), 10, "is too large"),
        (Number("a number"), math.nan, "is not a finite number"),
        (Number("a number"), -math.inf, "is not a finite number"),
        (Number("a positive number", low=0, low_open=True), 0.0, "is not positive"),
        (Number("a probability", low=0, high=1), 1.0, "is out of range"),
        (Number("a number"), "1.0", "is not a number"),
        (Text("a name"), "", "is empty"),
        (Text("a name"), " \t", "is empty"),
        (Text("a name"), 3, "is not a string"),
        (Duration(), 0, "is not a positive finite duration"),
        (Duration(), math.inf, "is not a positive finite duration"),
        (Duration(), "1x", "is not a duration"),
        (Marks(), [30, math.nan], "is not a finite number"),
        (Marks(), "30", "is not a list"),
    ],
)
def test_each_kind_refuses_with_what_it_expected(kind, value, problem):
    with pytest.raises(Invalid) as refused:
        kind.check(value)
    assert refused.value.problem.startswith(problem) and "expected" in refused.value.problem
    assert str(refused.value.error("some_option")).startswith("some_option")


def test_parse_duration_speaks_plain_value_errors():
    import datetime

    assert parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    assert Duration().check(datetime.timedelta(minutes=5)) == 300.0
    with pytest.raises(ValueError, match="'soon' is not a duration"):
        parse_duration("soon")
