"""The options table of ``miniformer train`` (`miniformer_hf.options`): one declaration per option, the
parser built from it, given-versus-default for the recipe, one check per value and rule, ``--max-time``.

Most cases parse or resolve in-process (no training); the CLI cases run the real command in a temporary
folder and check the exit code, the one-line message and that nothing was written."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miniformer_hf import options as opts
from miniformer_hf.errors import MiniformerError
from miniformer_hf.option_values import flag_name
from miniformer_hf.options import NOT_GIVEN, OptionError, TrainOptions, resolve

REPO = Path(__file__).resolve().parent.parent


def parser() -> argparse.ArgumentParser:
    from miniformer_hf.commands import ArgumentParser as _Parser  # the command line's one-line errors

    return opts.add_arguments(_Parser(prog="miniformer train"))


def parse(*argv: str) -> TrainOptions:
    return TrainOptions.from_namespace(parser().parse_args(list(argv)))


def usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------------------------------
# One table: the parser, the defaults and the help all come from the fields
# ---------------------------------------------------------------------------------------------


def test_every_field_is_one_flag_and_every_flag_one_field():
    actions = [action for action in parser()._actions if action.dest != "help"]
    assert [action.dest for action in actions] == [field.name for field in dataclasses.fields(TrainOptions)]
    for action in actions:  # the default lives in the table, nowhere else (quiet: cli reads it before the command)
        assert action.default is (False if action.dest == "quiet" else argparse.SUPPRESS)
        assert action.help, action.option_strings
    assert "--max-time" in parser()._option_string_actions and "-q" in parser()._option_string_actions


def test_every_default_is_written_once_in_the_table():
    for field in dataclasses.fields(TrainOptions):
        assert field.default is NOT_GIVEN  # what was given is told apart from the default
        chosen = opts._CHOSEN_DEFAULTS.get(field.name)
        assert opts.DEFAULTS[field.name] == (field.metadata["default"] if chosen is None else chosen)
    # The defaults the command line had before the table, unchanged.
    assert {name: opts.DEFAULTS[name] for name in ("task", "size", "batch_size", "learning_rate", "schedule",
            "warmup_steps", "label_smoothing", "max_steps", "eval_steps", "logging_steps", "eval_samples", "threads",
            "seed", "group_by_length", "tokenizer", "vocab_size", "num_beams", "length_penalty", "average_last",
            "tokenizer_sample", "validation_split_percentage")} == dict(  # fmt: skip
        task="dates", size="seed", batch_size=96, learning_rate=5e-3, schedule="linear", warmup_steps=100,
        label_smoothing=0.1, max_steps=2000, eval_steps=500, logging_steps=50, eval_samples=1000, threads=None, seed=0,
        group_by_length=True, tokenizer="char", vocab_size=2000, num_beams=1, length_penalty=1.0, average_last=1,
        tokenizer_sample=100_000, validation_split_percentage=5,
    )  # fmt: skip


def test_the_help_shows_the_tables_defaults(capsys):
    parser().print_help()
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("(default 2000 unless --epochs or --max-time is given)", "(default 0.005;",
                     "(default 100; 4000 with --schedule paper)", "(default: dates,", "(default 5)", "(default 1.0;",
                     "(default 96; 48 under --max-time without --recipe",
                     "(overrides --size; default: the size's, 0.1; 0.0 under --max-time without --recipe)",
                     "(default seed, the seed's model", "(default: source)", "(default 100000)", "--max-time DURATION"):
        assert fragment in text, fragment  # fmt: skip


def test_no_flag_means_nothing_given_and_flags_give_the_same_options_as_keywords():
    assert parse().given == {"quiet"} and parse().quiet is False
    assert parse("--schedule", "linear", "--no-group-by-length", "-q").given == {"schedule", "group_by_length", "quiet"}
    typed = parse("--task", "copy", "--max-time", "1h30m", "--eval-at-seconds", "60", "90.5", "--dropout", "0",
                  "--no-group-by-length", "--streaming", "--resume")  # fmt: skip
    assert typed == TrainOptions(task="copy", max_time=5400.0, eval_at_seconds=[60.0, 90.5], dropout=0.0,
                                 group_by_length=False, streaming=True, resume=True, quiet=False)  # fmt: skip


def test_resolve_fills_the_defaults_and_a_plan_resolves_to_itself():
    plan = resolve()
    filled = (plan.max_steps, plan.learning_rate, plan.warmup_steps, plan.threads, plan.task)
    assert filled == (2000, 5e-3, 100, None, None)
    assert resolve(plan) == plan and plan.given == set(plan.to_dict())
    assert resolve(schedule="paper").learning_rate is None and resolve(schedule="paper").warmup_steps == 4000
    assert resolve(epochs=2).max_steps is None and resolve(max_time="5m").max_steps is None
    assert TrainOptions().to_dict()["eval_steps"] == 500  # unresolved: the table's default where not given
    assert TrainOptions().to_dict()["batch_size"] is None and resolve().batch_size == 96  # chosen by resolve
    assert "TrainOptions(max_steps=5)" == repr(TrainOptions(max_steps=5))


def test_the_old_names_stay_importable():
    from miniformer_hf import runs

    assert opts.TrainingRunOptions is TrainOptions and runs.TrainingRunOptions is TrainOptions
    moved = ("DEFAULTS", "MODEL_SIZES", "SCHEDULES", "TASK_NAMES", "TOKENIZER_KINDS", "RECIPES", "RESUME_MUST_MATCH")
    for name in moved:
        assert getattr(runs, name) is getattr(opts, name)
    assert "max_time" in opts.RESUME_MUST_MATCH and "seed" in opts.RESUME_MUST_MATCH
    assert "max_steps" not in opts.RESUME_MUST_MATCH  # a resumed run may train further
    assert issubclass(OptionError, MiniformerError) and OptionError("x").exit_code == 2


def test_help_and_bad_flags_import_nothing_heavy(tmp_path):
    script = (
        "import sys\n"
        "sys.argv[0] = 'miniformer'\n"
        "from miniformer_hf.cli import main\n"
        "codes = [main(['--help']), main(['train', '--help']), main(['train', '--max-time', 'soon']),"
        " main(['train', '--length-penalty', 'nan'])]\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules)\n"
        "print(codes, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "[0, 0, 2, 2] []", result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# The recipe knows what was given (issue 23, case 2)
# ---------------------------------------------------------------------------------------------


def test_flags_given_at_their_default_value_win_over_the_recipe():
    argv = ["--recipe", "paper", "--schedule", "linear", "--tokenizer", "char", "--num-beams", "1",
            "--average-last", "1"]  # fmt: skip
    plan = resolve(parse(*argv))
    assert (plan.schedule, plan.tokenizer, plan.num_beams, plan.average_last) == ("linear", "char", 1, 1)
    assert (plan.tokens_per_batch, plan.vocab_size, plan.length_penalty, plan.max_new_tokens_over_input) == (
        25000, 37000, 0.6, 50)  # the recipe's other parts  # fmt: skip
    assert plan.learning_rate == 5e-3 and plan.warmup_steps == 100  # linear's defaults


def test_python_keywords_win_over_the_recipe_too():
    assert resolve(TrainOptions(recipe="paper", schedule="linear")).schedule == "linear"
    assert TrainOptions(recipe="paper", schedule="linear").with_recipe().schedule == "linear"  # the older call
    assert resolve(TrainOptions(recipe="paper"), schedule="linear").schedule == "linear"
    replaced = dataclasses.replace(TrainOptions(recipe="paper"), num_beams=1)  # replace keeps "not given" apart
    assert resolve(replaced).num_beams == 1 and resolve(replaced).schedule == "paper"
    plan = resolve(recipe="paper", vocab_size=500)
    assert (plan.tokenizer, plan.schedule, plan.tokens_per_batch, plan.average_last, plan.vocab_size) == (
        "bpe", "paper", 25000, 5, 500)  # fmt: skip
    assert (plan.learning_rate, plan.warmup_steps) == (None, 4000)


def test_the_recipe_with_an_explicit_learning_rate_keeps_the_papers_shape():
    plan = resolve(parse("--recipe", "paper", "--learning-rate", "1e-3"))
    assert (plan.schedule, plan.learning_rate, plan.warmup_steps) == ("inverse_sqrt", 1e-3, 4000)
    assert (plan.tokenizer, plan.average_last, plan.num_beams) == ("bpe", 5, 4)  # the rest of the recipe
    assert resolve(recipe="paper", learning_rate=1e-3, warmup_steps=10).warmup_steps == 10
    with pytest.raises(OptionError, match=r"learning_rate conflicts with schedule paper"):
        resolve(recipe="paper", learning_rate=1e-3, schedule="paper")  # both given: the user must choose


def test_the_recipe_with_streaming_batches_by_batch_size():
    plan = resolve(recipe="paper", dataset="wmt/wmt14", streaming=True, max_steps=10)
    assert plan.tokens_per_batch is None and plan.schedule == "paper"
    with pytest.raises(OptionError, match="stream cannot"):
        resolve(dataset="wmt/wmt14", streaming=True, max_steps=10, tokens_per_batch=100)


# ---------------------------------------------------------------------------------------------
# Every value checked once: the same message at parse time (flags) and in resolve (parameters)
# ---------------------------------------------------------------------------------------------

FLOAT_OPTIONS = ["validation_split_percentage", "dropout", "epochs", "learning_rate", "label_smoothing",
                 "length_penalty", "max_time"]  # fmt: skip
TEXT_OPTIONS = ["train_file", "validation_file", "test_file", "dataset", "dataset_config", "dataset_revision",
                "source_lang", "target_lang", "source_column", "target_column", "output_dir"]  # fmt: skip
INT_OPTIONS = ["num_train", "tokenizer_sample", "vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_steps",
               "batch_size", "tokens_per_batch", "eval_steps", "logging_steps", "eval_samples", "max_new_tokens",
               "num_beams", "max_new_tokens_over_input", "average_last"]  # fmt: skip


@pytest.mark.parametrize("name", FLOAT_OPTIONS + ["eval_at_seconds"])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_no_float_option_takes_nan_or_infinity(name, text, capsys):
    line = usage_error([f"{flag_name(name)}={text}"], capsys)  # "=": argparse reads a bare -inf as a flag
    assert flag_name(name) in line and ("finite" in line or "duration" in line), line
    value = float(text) if name != "eval_at_seconds" else [float(text)]
    with pytest.raises(OptionError, match=f"^{name}="):
        resolve(**{name: value})


@pytest.mark.parametrize("name", TEXT_OPTIONS)
@pytest.mark.parametrize("text", ["", "   "])
def test_no_text_option_takes_an_empty_string(name, text, capsys):
    line = usage_error([flag_name(name), text], capsys)
    assert f"{flag_name(name)} " in line and "is empty" in line, line
    with pytest.raises(OptionError, match=f"^{name}.* is empty"):
        resolve(**{name: text})


@pytest.mark.parametrize("name", INT_OPTIONS)
@pytest.mark.parametrize("text, problem", [("0", "not positive"), ("-2", "not positive"), ("1.5", "not an integer"),
                                           ("ten", "not an integer"), ("", "not an integer")])  # fmt: skip
def test_integer_options_take_positive_integers_only(name, text, problem, capsys):
    line = usage_error([flag_name(name), text], capsys)
    assert line.startswith(f"miniformer train: error: {flag_name(name)} ") and problem in line, line
    with pytest.raises(OptionError, match=f"^{name}="):
        resolve(**{name: 1.5 if text in ("1.5", "ten", "") else int(text)})


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--warmup-steps", "-1"], "--warmup-steps -1 is negative"),
        (["--seed", "-1"], "--seed -1 is negative"),
        (["--seed", str(2**32)], "is too large"),
        (["--threads", "0"], "--threads 0 is not positive"),
        (["--threads", "100000"], "more than this machine can use"),
        (["--dropout", "1"], "--dropout 1 is out of range; expected a probability in [0, 1)"),
        (["--label-smoothing", "-0.1"], "out of range"),
        (["--validation-split-percentage", "100"], "expected a percentage in [0, 100)"),
        (["--learning-rate", "0"], "--learning-rate 0 is not positive"),
        (["--learning-rate", "fast"], "--learning-rate fast is not a number"),
        (["--epochs", "-1"], "--epochs -1 is not positive"),
        (["--eval-at-seconds", "30", "-5"], "--eval-at-seconds -5 is not positive"),
        (["--task", "chess"], "invalid choice"),
        (["--recipe", "fairseq"], "invalid choice"),
        (["--max-steps", "10", "--epochs", "2"], "not allowed with"),
        (["--max-steps", "10", "--max-time", "5m"], "not allowed with"),
        (["--resume", "--overwrite"], "not allowed with"),
    ],
)
def test_bad_values_are_one_line_naming_the_flag(argv, fragment, capsys):
    assert fragment in usage_error(argv, capsys)


@pytest.mark.parametrize(
    "keywords, fragment",
    [
        (dict(batch_size="96"), "batch_size='96' is not an integer"),
        (dict(batch_size=True), "batch_size=True is not an integer"),
        (dict(max_steps=None), None),  # None: "not given" for an option whose default is None
        (dict(batch_size=None), None),  # chosen by resolve: 96, or 48 under max_time
        (dict(eval_steps=None), "eval_steps=None is not an integer"),
        (dict(task="chess"), "task='chess' is unknown; expected one of copy, dates, numbers, reverse"),
        (dict(streaming="yes"), "streaming='yes' is not True or False"),
        (dict(eval_at_seconds=30), "eval_at_seconds=30 is not a list"),
        (dict(eval_at_seconds=[]), "eval_at_seconds is empty"),
        (dict(d_model=30, n_heads=4), "d_model=30 is not divisible by n_heads=4"),
        (dict(d_model=100000, n_heads=1), "2,000,000,000"),
        (dict(task="copy", train_file="x.csv"), "task and train_file both given"),
        (dict(dataset_config="de-en"), "dataset_config only apply to dataset"),
        (dict(dataset="x", num_train=5), "num_train only applies to built-in tasks"),
        (dict(test_file="x.csv"), "need train_file"),
        (dict(max_steps=5, epochs=1), "max_steps and epochs both given"),
        (dict(epochs=1, max_time=60), "epochs and max_time both given"),
        (dict(streaming=True), "streaming reads a dataset"),
        (dict(streaming=True, dataset="x", epochs=1), "streaming needs max_steps or max_time"),
        (dict(resume=True, overwrite=True), "resume and overwrite both given"),
        (dict(max_time="90s", eval_at_seconds=[60, 120]), "reaches past max_time=90.0"),
        (dict(bogus=1), "unknown option(s) bogus"),
    ],
)
def test_python_callers_get_parameter_names(keywords, fragment):
    if fragment is None:
        resolve(**keywords)
        return
    with pytest.raises(OptionError) as refused:
        resolve(**keywords)
    assert fragment in str(refused.value) and refused.value.exit_code == 2
    assert "--" not in str(refused.value)


def test_the_command_line_spells_the_same_error_with_flags():
    with pytest.raises(OptionError) as refused:
        resolve(d_model=30, n_heads=4)
    assert str(refused.value.on_command_line()).startswith("--d-model 30 is not divisible by --n-heads 4;")
    assert refused.value.parameters == ("d_model", "n_heads")


# ---------------------------------------------------------------------------------------------
# --max-time DURATION
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("300", 300), ("2.5", 2.5), ("1h", 3600),
     ("1m30s", 90), ("1h0m5s", 3605), (" 5M ", 300), (".5m", 30)],
)  # fmt: skip
def test_max_time_reads_durations(text, seconds, capsys):
    assert opts.parse_duration(text) == seconds
    assert parse("--max-time", text).max_time == seconds
    assert resolve(max_time=text).max_time == seconds and resolve(max_time=seconds).max_time == seconds


@pytest.mark.parametrize("text", ["", "  ", "0", "0s", "-5m", "-1", "nan", "inf", "5x", "m", "h30", "1h1h", "30s5m",
                                  "5 minutes", "1e400", "5m-3s"])  # fmt: skip
def test_max_time_refuses_what_is_not_a_positive_duration(text, capsys):
    line = usage_error([f"--max-time={text}"], capsys)
    assert line.startswith("miniformer train: error: --max-time") and "duration" in line, line
    with pytest.raises(ValueError):
        opts.parse_duration(text)
    with pytest.raises(OptionError, match="^max_time"):
        resolve(max_time=text)


def test_max_time_works_with_streaming_and_is_recorded_for_resume():
    plan = resolve(dataset="wmt/wmt14", streaming=True, max_time="5m")
    assert (plan.max_time, plan.max_steps) == (300.0, None)
    assert plan.to_dict()["max_time"] == 300.0


def test_max_time_brings_its_own_batch_size_and_dropout():
    plan = resolve(max_time="60s")
    assert (plan.batch_size, plan.dropout) == (48, 0.0) == tuple(opts.MAX_TIME_DEFAULTS[name] for name in
                                                                 ("batch_size", "dropout"))  # fmt: skip
    assert resolve(plan) == plan and resolve(resolve(plan)) == plan  # a resolved plan resolves to itself
    assert opts.model_sizes(plan)["dropout"] == 0.0
    assert parse("--max-time", "60s") == TrainOptions(max_time=60.0, quiet=False)  # filled by resolve, not the parser
    # Without --max-time: batch 96 and the size preset's dropout, as before.
    steps = resolve(max_steps=500)
    assert (steps.batch_size, steps.dropout, opts.model_sizes(steps)["dropout"]) == (96, None, 0.1)
    assert (resolve(epochs=1).batch_size, resolve(epochs=1).dropout) == (96, None)
    # The recipe keeps the paper's P_drop and its own batching.
    paper = resolve(recipe="paper", max_time="1h")
    assert (paper.batch_size, paper.dropout, paper.tokens_per_batch) == (96, None, 25000)


@pytest.mark.parametrize("given", [dict(batch_size=96), dict(dropout=0.1), dict(batch_size=48, dropout=0.0),
                                   dict(batch_size=7, dropout=0.3)])  # fmt: skip
def test_given_batch_size_and_dropout_win_over_the_max_time_defaults(given):
    plan = resolve(max_time="90s", **given)
    expected = {**opts.MAX_TIME_DEFAULTS, **given}
    assert (plan.batch_size, plan.dropout) == (expected["batch_size"], expected["dropout"])
    assert resolve(plan) == plan
    argv = ["--max-time", "90s"] + [f"{flag_name(name)}={value}" for name, value in given.items()]
    assert resolve(parse(*argv)) == plan  # the same plan from flags
    assert opts.model_sizes(plan)["dropout"] == expected["dropout"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--batch-size", ""], "--batch-size '' is not an integer"),
        (["--batch-size", "-48"], "--batch-size -48 is not positive"),
        (["--batch-size", "nan"], "--batch-size nan is not an integer"),
        (["--dropout", ""], "--dropout '' is not a number"),
        (["--dropout", "-0.1"], "--dropout -0.1 is out of range"),
        (["--dropout=nan"], "--dropout nan"),
        (["--dropout", "1.5"], "--dropout 1.5 is out of range"),
    ],
)
def test_hostile_batch_size_and_dropout_with_max_time_are_one_line(argv, fragment, capsys):
    line = usage_error(["--max-time", "60s", *argv], capsys)
    assert fragment in line, line


# ---------------------------------------------------------------------------------------------
# FSDP (issue 23, case 15) and the token budget (case 10)
# ---------------------------------------------------------------------------------------------


def test_fsdp_refuses_checkpoint_averaging_before_training(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert opts.fsdp_requested()
    with pytest.raises(OptionError, match=r"^average_last=2 cannot be used under FSDP"):
        resolve(average_last=2)
    with pytest.raises(OptionError) as refused:
        resolve(recipe="paper")
    assert "--average-last 5 (from --recipe paper) cannot be used under FSDP" in str(refused.value.on_command_line())
    assert resolve(recipe="paper", average_last=1).average_last == 1
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    assert not opts.fsdp_requested() and resolve(average_last=2).average_last == 2


def test_a_token_budget_under_the_longest_example_is_refused():
    opts.check_tokens_per_batch(None, 50)
    opts.check_tokens_per_batch(50, 50)
    with pytest.raises(OptionError) as refused:
        opts.check_tokens_per_batch(3, 17)
    assert str(refused.value.on_command_line()).startswith("--tokens-per-batch 3 is smaller than the longest example")


# ---------------------------------------------------------------------------------------------
# The real command: exit code 2, one line, nothing written
# ---------------------------------------------------------------------------------------------


def run_command(argv: list[str], folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "train", *argv], capture_output=True, text=True, cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--dataset", ""], "--dataset is empty"),
        (["--length-penalty", "nan"], "--length-penalty nan is not a finite number"),
        (["--max-time", "soon"], "--max-time soon is not a duration"),
        (["--output-dir", ""], "--output-dir is empty"),
        (["--recipe", "paper", "--schedule", "paper", "--learning-rate", "1e-3"], "--schedule paper"),
    ],
)
def test_the_command_refuses_in_one_line_and_writes_nothing(argv, fragment, tmp_path):
    result = run_command(argv, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, environment, fragment",
    [
        (["--streaming", "--dataset", "x", "--epochs", "1"], {}, "--streaming needs --max-steps or --max-time"),
        (["--average-last", "2"], {"ACCELERATE_USE_FSDP": "true"}, "--average-last 2 cannot be used under FSDP"),
        (["--recipe", "paper"], {"ACCELERATE_USE_FSDP": "1"}, "--average-last 5 (from --recipe paper) cannot"),
        (["--max-time", "90s", "--eval-at-seconds", "60", "120"], {}, "--eval-at-seconds 60.0 120.0 reaches past"),
    ],
)
def test_rules_between_flags_are_refused_before_anything_is_written(argv, environment, fragment, tmp_path,
                                                                    monkeypatch, capsys):  # fmt: skip
    from miniformer_hf.cli import main

    monkeypatch.chdir(tmp_path)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(["train", *argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert list(tmp_path.iterdir()) == []
