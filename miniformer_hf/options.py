"""The options of ``miniformer train``: one table, read by the command line and by Python callers alike.

Each option is one field of `TrainOptions`, declared once: its default, its help text, its group in
``miniformer train --help``, its kind (which values it accepts) and whether ``--resume`` must see it
unchanged. `add_arguments` builds the command line from the fields, as transformers' ``HfArgumentParser``
builds one from ``TrainingArguments``; a notebook writes the same names as keywords::

    run_training(TrainOptions(task="copy", size="tiny", max_steps=50))

Given or not given. A field the caller did not set holds `NOT_GIVEN` (the command line leaves an
option out of its namespace when its flag is absent), so ``--recipe paper`` fills exactly the options
the user left out, and a flag set to the value that happens to be the default still wins. `resolve`
turns options into the plan a run follows: it applies the recipe, checks every value and every rule
between options once, and fills the defaults. Its `OptionError` names parameters as Python spells them
(``max_steps=0``); `OptionError.on_command_line` spells the same message with flags (``--max-steps 0``).

It imports only the standard library (and `option_values`, the kinds of values), so ``miniformer train
--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from .option_values import (  # noqa: F401  (parse_duration: importable here too)
    NOT_GIVEN,
    POSITIVE_INTEGER,
    ArgumentType,
    Choice,
    Duration,
    Flag,
    Integer,
    Invalid,
    Kind,
    Marks,
    Number,
    OptionError,
    Text,
    Threads,
    flag_name,
    parse_duration,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULTS",
    "MAX_PARAMETERS",
    "MAX_TIME_DEFAULTS",
    "MODEL_SIZES",
    "NOT_GIVEN",
    "PAPER_WARMUP_STEPS",
    "RECIPES",
    "RESUME_MUST_MATCH",
    "SCHEDULES",
    "TASK_NAMES",
    "TOKENIZER_KINDS",
    "OptionError",
    "TrainOptions",
    "TrainingRunOptions",
    "add_arguments",
    "check_tokens_per_batch",
    "fsdp_requested",
    "model_sizes",
    "parse_duration",
    "resolve",
]

# ---------------------------------------------------------------------------------------------
# Names the options choose from
# ---------------------------------------------------------------------------------------------

# The seed's model and the paper's base model (Table 3); explicit d_model etc. override them.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.1),
    "seed": dict(d_model=64, n_heads=4, n_layers=3, d_ff=256, dropout=0.1),
    "small": dict(d_model=128, n_heads=4, n_layers=3, d_ff=512, dropout=0.1),
    "base": dict(d_model=512, n_heads=8, n_layers=6, d_ff=2048, dropout=0.1),
}

# Our names for the learning-rate schedules (the trainer maps them onto transformers' schedulers).
SCHEDULES = ("paper", "inverse_sqrt", "linear", "cosine", "constant", "constant_with_warmup")

# Built-in task and tokenizer names, repeated here so that the command line's help needs no import of
# `data`/`tokenization` (tests check they agree with `data.BUILTIN_TASKS` and `TOKENIZER_KINDS`).
TASK_NAMES = ("copy", "dates", "numbers", "reverse")
TOKENIZER_KINDS = ("char", "bpe")

# §5.3: warmup_steps = 4000 in the paper's schedule (also the warmup the recipe keeps when an explicit
# --learning-rate turns its schedule into inverse_sqrt).
PAPER_WARMUP_STEPS = 4000

# Defaults that depend on other options, filled by `resolve` (the table's fields hold None for them).
# Tuned with scripts/benchmark_training.py on the 2-core development machine: the default run (seed model,
# date task) reaches 99% held-out exact match after 90 s of training and 100% when it ends, after about
# 3 minutes. Warmup then linear decay to zero at max_steps: with the paper's inverse square root the
# final model scored 99.8% (the learning rate is still high at the last step of a short run).
_CHOSEN_DEFAULTS: dict[str, Any] = dict(
    task="dates",  # unless --train-file or --dataset is given (the run folder records None)
    max_steps=2000,  # unless --epochs or --max-time is given
    learning_rate=5e-3,  # except with --schedule paper, whose peak is d_model^-0.5 * warmup^-0.5
    warmup_steps=100,  # PAPER_WARMUP_STEPS with --schedule paper
    batch_size=96,  # MAX_TIME_DEFAULTS' with --max-time
)

# Under --max-time (without --recipe): what a run against the clock learns fastest with; given flags still win.
# Chosen on the default task with step-count runs that follow the time limit's schedule (docs/training.md, "How
# the --max-time defaults were chosen"): a 60-second run sees each training example about once, so
# dropout only slows learning (and its masks cost time), and on a CPU a step costs in proportion to its
# examples, so batches of 48 give twice the updates of batches of 96 in the same time.
MAX_TIME_DEFAULTS: dict[str, Any] = dict(
    batch_size=48,
    dropout=0.0,
)

# --recipe paper: what §5 and §6.1 of the paper describe, each value also a flag of its own. The schedule
# "paper" brings Adam beta2 0.98, eps 1e-9 and 4,000 warmup steps; with --size base it is the base model.
RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(
        tokenizer="bpe",  # one byte-level BPE vocabulary shared by source and target (§5.1)
        vocab_size=37000,
        tokens_per_batch=25000,  # about 25,000 source and 25,000 target tokens per batch (§5.1)
        schedule="paper",  # §5.3
        label_smoothing=0.1,  # §5.4
        average_last=5,  # §6.1: the average of the last 5 checkpoints
        num_beams=4,  # §6.1: beam size 4, length penalty 0.6, output at most input length + 50
        length_penalty=0.6,
        max_new_tokens_over_input=50,
    ),
}

# Larger models are refused before any allocation (a typo such as --d-model 100000 asks for 10^11).
MAX_PARAMETERS = 2_000_000_000


_POSITIVE = POSITIVE_INTEGER


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _option(
    default: Any,
    help: str,
    kind: Kind,
    *,
    group: str | None,
    metavar: str | None = None,
    nargs: str | None = None,
    flags: tuple[str, ...] | None = None,
    action: str | None = None,
    exclusive: str | None = None,
    must_match_on_resume: bool = False,
) -> Any:
    """One option: a dataclass field whose default is NOT_GIVEN and whose metadata says the rest.

    ``default`` is the value used when the option is not given (None: chosen by `resolve` or by the run);
    ``help`` may hold ``{default}``, replaced by that value (or by `DEFAULTS`' choice for a None default).
    ``exclusive`` names a set of options of which at most one may be given.
    """
    metadata = dict(
        default=default, help=help, kind=kind, group=group, metavar=metavar, nargs=nargs, flags=flags,
        action=action, exclusive=exclusive, must_match_on_resume=must_match_on_resume,
    )  # fmt: skip
    return dataclasses.field(default=NOT_GIVEN, metadata=metadata)


_SIZE_HELP = (
    "preset: "
    + "; ".join(
        f"{name} d_model={s['d_model']} heads={s['n_heads']} layers={s['n_layers']} d_ff={s['d_ff']}"
        for name, s in MODEL_SIZES.items()
    )
    + " (default {default}, the seed's model; base is the paper's)"
)
_RECIPE_HELP = (
    "paper: the paper's recipe (§5, §6.1): shared byte-level BPE (--vocab-size 37000), --tokens-per-batch "
    "25000, --schedule paper, label smoothing 0.1, --average-last 5, beam 4 with length penalty 0.6 and "
    "outputs up to input + 50; flags you give win over the recipe (an explicit --learning-rate turns its "
    "schedule into inverse_sqrt with 4000 warmup steps). With --size base it is the base model"
)
_DATA = "data"
_MATCH = dict(must_match_on_resume=True)


@dataclasses.dataclass(kw_only=True, repr=False)
class TrainOptions:
    """The options of ``miniformer train`` (``miniformer train --help`` explains each one), same names.

    An option left out holds `NOT_GIVEN`; `resolve` gives the plan a run follows (every value set and
    checked). ``quiet`` turns off progress bars and the trainer's log lines; ``threads`` sets PyTorch's
    thread count for the process, as the command does.
    """

    # data
    task: str | None = _option(
        None, "built-in task, generated locally (default: {default}, unless --train-file is given)",
        Choice(TASK_NAMES), group=_DATA, **_MATCH,
    )  # fmt: skip
    train_file: str | None = _option(
        None, "your own training pairs: .jsonl, .json, .csv or .tsv", Text("a data file"), group=_DATA, **_MATCH
    )
    validation_file: str | None = _option(
        None, "validation pairs (default: 10%% of --train-file is held out; used for periodic evaluation)",
        Text("a data file"), group=_DATA, **_MATCH,
    )  # fmt: skip
    test_file: str | None = _option(
        None, "held-out pairs for the final evaluation (default: the validation split)", Text("a data file"),
        group=_DATA, **_MATCH,
    )  # fmt: skip
    num_train: int | None = _option(
        None, "number of training examples a built-in task generates (default: the task's own, 50000 for dates)",
        _POSITIVE, group=_DATA, **_MATCH,
    )  # fmt: skip
    dataset: str | None = _option(
        None, "a datasets/Hub dataset: a Hub repo id (wmt/wmt14), a local dataset folder or a save_to_disk folder; "
        "its train, validation and test splits are used as named",
        Text("a Hub repo id or a dataset folder"), group=_DATA, metavar="NAME", **_MATCH,
    )  # fmt: skip
    dataset_config: str | None = _option(
        None, "the dataset's configuration (e.g. de-en)", Text("a configuration name such as de-en"),
        group=_DATA, metavar="CONFIG", **_MATCH,
    )  # fmt: skip
    dataset_revision: str | None = _option(
        None, "a branch, tag or commit of the Hub dataset", Text("a branch, tag or commit"),
        group=_DATA, metavar="REV", **_MATCH,
    )  # fmt: skip
    source_lang: str | None = _option(
        None, "with a 'translation' column of {language: text}: the source language key (e.g. en)",
        Text("a language key such as en"), group=_DATA, **_MATCH,
    )  # fmt: skip
    target_lang: str | None = _option(
        None, "with a 'translation' column: the target language key (e.g. de)", Text("a language key such as de"),
        group=_DATA, **_MATCH,
    )  # fmt: skip
    validation_split_percentage: float = _option(
        5, "percent of --dataset's train split held out for validation when it has no validation split "
        "(default {default})", Number("a percentage in [0, 100), such as 5", low=0, high=100),
        group=_DATA, metavar="PERCENT", **_MATCH,
    )  # fmt: skip
    streaming: bool = _option(
        False, "read --dataset's train split as a stream instead of loading it (corpora larger than memory); needs "
        "--max-steps or --max-time; without a validation split the first --eval-samples pairs are held out",
        Flag(), group=_DATA, action="store_true", **_MATCH,
    )  # fmt: skip
    tokenizer_sample: int = _option(
        100_000, "with --streaming: train the tokenizer on the first N pairs of the stream (default {default})",
        _POSITIVE, group=_DATA, metavar="N", **_MATCH,
    )  # fmt: skip
    source_column: str = _option(
        "source", "column (or JSON key) holding the input text (default: {default})", Text("a column name"),
        group=_DATA, **_MATCH,
    )  # fmt: skip
    target_column: str = _option(
        "target", "column (or JSON key) holding the output text (default: {default})", Text("a column name"),
        group=_DATA, **_MATCH,
    )  # fmt: skip

    # tokenizer
    tokenizer: str = _option(
        "char", "tokenizer trained on the training text: char (one token per character; default) or bpe "
        "(byte-level BPE)", Choice(TOKENIZER_KINDS), group="tokenizer", **_MATCH,
    )  # fmt: skip
    vocab_size: int = _option(
        2000, "BPE vocabulary size (default {default}; ignored for char)", _POSITIVE, group="tokenizer", **_MATCH
    )

    # model
    size: str = _option("seed", _SIZE_HELP, Choice(sorted(MODEL_SIZES)), group="model", **_MATCH)
    d_model: int | None = _option(None, "width d_model (overrides --size)", _POSITIVE, group="model", **_MATCH)
    n_heads: int | None = _option(None, "attention heads h (overrides --size)", _POSITIVE, group="model", **_MATCH)
    n_layers: int | None = _option(None, "layers N per stack (overrides --size)", _POSITIVE, group="model", **_MATCH)
    d_ff: int | None = _option(
        None, "feed-forward inner width d_ff (overrides --size)", _POSITIVE, group="model", **_MATCH
    )
    dropout: float | None = _option(
        None, "P_drop (overrides --size; default: the size's, %s; %s under --max-time without --recipe)"
        % (MODEL_SIZES["seed"]["dropout"], MAX_TIME_DEFAULTS["dropout"]),
        Number("a probability in [0, 1)", low=0, high=1), group="model", **_MATCH,
    )  # fmt: skip

    # optimisation: the length of the run (one of three), then the rest
    max_steps: int | None = _option(
        None, "optimizer steps to train for (default {default} unless --epochs or --max-time is given)", _POSITIVE,
        group="optimisation", exclusive="length",
    )  # fmt: skip
    epochs: float | None = _option(
        None, "train for this many passes over the data instead of --max-steps",
        Number("a positive number", low=0, low_open=True), group="optimisation", exclusive="length",
    )  # fmt: skip
    max_time: float | None = _option(
        None, "train for this much training time instead of --max-steps: 90s, 5m, 1h30m, 1.5h (a bare number is "
        "seconds); the learning-rate schedule is sized so that it ends at the limit",
        Duration(), group="optimisation", metavar="DURATION", exclusive="length", **_MATCH,
    )  # fmt: skip
    batch_size: int | None = _option(
        None, "examples per step (default {default}; %d under --max-time without --recipe: on a CPU a step costs in "
        "proportion to its examples, so smaller batches give more updates in the time)"
        % MAX_TIME_DEFAULTS["batch_size"],
        _POSITIVE, group="optimisation",
    )  # fmt: skip
    learning_rate: float | None = _option(
        None, "peak learning rate (default {default}; with --schedule paper it is d_model^-0.5 * warmup^-0.5 and "
        "this flag is refused)", Number("a positive number", low=0, low_open=True), group="optimisation",
    )  # fmt: skip
    schedule: str = _option(
        "linear", "learning-rate schedule: linear (warmup, then linear decay to zero at the last step; default), "
        "inverse_sqrt (warmup then ~1/sqrt(step), the paper's shape), paper (§5.3 exactly, Adam beta2 0.98 "
        "eps 1e-9), cosine, constant, constant_with_warmup", Choice(SCHEDULES), group="optimisation",
    )  # fmt: skip
    warmup_steps: int | None = _option(
        None, "linear warmup steps (default {default}; %d with --schedule paper)" % PAPER_WARMUP_STEPS,
        Integer(0, "an integer >= 0"), group="optimisation",
    )  # fmt: skip
    label_smoothing: float = _option(
        0.1, "label smoothing epsilon (default {default}, §5.4)", Number("a probability in [0, 1)", low=0, high=1),
        group="optimisation",
    )  # fmt: skip
    group_by_length: bool = _option(
        True, "sort examples by source length within random pools of 4 batches: less padding (a step of the "
        "default run costs about 30%% less) with batches still mixed (default: on; --no-group-by-length for "
        "fully random batches)", Flag(), group="optimisation", action="boolean_optional",
    )  # fmt: skip
    tokens_per_batch: int | None = _option(
        None, "batch by token count instead of --batch-size: similar-length pairs together, at most TOKENS padded "
        "tokens per side (the paper: 25000)", _POSITIVE, group="optimisation", metavar="TOKENS", **_MATCH,
    )  # fmt: skip
    recipe: str | None = _option(None, _RECIPE_HELP, Choice(sorted(RECIPES)), group="optimisation", **_MATCH)
    seed: int = _option(
        0, "random seed for initialisation, data order and dropout (default {default})",
        Integer(0, "an integer in [0, 2**32 - 1]", high=2**32 - 1), group="optimisation", **_MATCH,
    )  # fmt: skip
    threads: int | None = _option(
        None, "CPU threads for PyTorch (default: chosen by timing this process's share of the cores, at most 4, "
        "against 1 thread, again every 250 steps and whenever steps slow down; N pins N)", Threads(),
        group="optimisation",
    )  # fmt: skip

    # evaluation and output
    output_dir: str | None = _option(
        None, "run folder to write (default runs/<task or train-file name>)",
        Text("a folder name such as runs/dates"), group="evaluation and output",
    )  # fmt: skip
    eval_steps: int = _option(
        500, "evaluate and save a checkpoint every this many steps (default {default})", _POSITIVE,
        group="evaluation and output",
    )  # fmt: skip
    logging_steps: int = _option(
        50, "log the training loss every this many steps (default {default})", _POSITIVE,
        group="evaluation and output",
    )  # fmt: skip
    eval_samples: int = _option(
        1000, "evaluate on at most this many validation/test examples (default {default})", _POSITIVE,
        group="evaluation and output",
    )  # fmt: skip
    max_new_tokens: int | None = _option(
        None, "longest generated output (default: longest training target + 25%%)", _POSITIVE,
        group="evaluation and output",
    )  # fmt: skip
    eval_at_seconds: list[float] | None = _option(
        None, "also measure test exact match when training time (evaluation excluded) reaches these marks; for "
        "benchmarks", Marks(), group="evaluation and output", nargs="+", metavar="SECONDS",
    )  # fmt: skip
    no_visualize: bool = _option(
        False, "skip the attention visualization of a held-out example", Flag(), group="evaluation and output",
        action="store_true",
    )  # fmt: skip
    num_beams: int = _option(
        1, "beam width for evaluation and the saved model (default {default}, greedy)", _POSITIVE,
        group="evaluation and output",
    )  # fmt: skip
    length_penalty: float = _option(
        1.0, "beam search length penalty alpha (default {default}; the paper's 0.6 with --recipe paper)",
        Number("a finite number such as 0.6"), group="evaluation and output",
    )  # fmt: skip
    max_new_tokens_over_input: int | None = _option(
        None, "let outputs run to input length + N tokens (the paper's 50), for evaluation and generate",
        _POSITIVE, group="evaluation and output", metavar="N",
    )  # fmt: skip
    average_last: int = _option(
        1, "keep the last N checkpoints (one every --eval-steps, the last at the final step) and evaluate and "
        "save their average, as §6.1 does with N=5 (default {default}: the final weights)", _POSITIVE,
        group="evaluation and output", metavar="N",
    )  # fmt: skip

    # the run folder, and the command's output
    resume: bool = _option(
        False, "continue an interrupted (or finished) run in --output-dir from its last checkpoint", Flag(),
        group=None, action="store_true", exclusive="state",
    )  # fmt: skip
    overwrite: bool = _option(
        False, "replace an existing run folder (only once the new run has finished)", Flag(), group=None,
        action="store_true", exclusive="state",
    )  # fmt: skip
    quiet: bool = _option(
        False, "no progress bars or log lines, only the final summary", Flag(), group=None, action="store_true",
        flags=("-q", "--quiet"),
    )  # fmt: skip

    @classmethod
    def from_namespace(cls, namespace: Any) -> TrainOptions:
        """The options held by an argparse namespace (other attributes, such as ``command``, are ignored).
        A parser built by `add_arguments` leaves out the options whose flags were not typed."""
        return cls(**{name: value for name, value in vars(namespace).items() if name in _FIELD_NAMES})

    @property
    def given(self) -> frozenset[str]:
        """The names of the options that were set (on the command line, or as keywords)."""
        return frozenset(name for name in _FIELD_NAMES if getattr(self, name) is not NOT_GIVEN)

    def to_dict(self) -> dict[str, Any]:
        """Every option's value, its default where it was not given (``run_arguments.json`` holds this)."""
        return {
            name: _FIELDS[name].metadata["default"] if value is NOT_GIVEN else value
            for name, value in ((name, getattr(self, name)) for name in _FIELD_NAMES)
        }

    def with_recipe(self) -> TrainOptions:
        """Kept for callers of the earlier ``TrainingRunOptions``: the same as ``resolve(self)``."""
        return resolve(self)

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELD_NAMES if name in self.given)
        return f"{type(self).__name__}({given})"


TrainingRunOptions = TrainOptions  # the earlier name, kept for notebooks and scripts

_FIELDS: dict[str, dataclasses.Field] = {field.name: field for field in dataclasses.fields(TrainOptions)}
_FIELD_NAMES = tuple(_FIELDS)

# Every option's value when it is not given; for the options whose default depends on others (None in the
# table), the value `resolve` chooses when nothing else decides.
DEFAULTS: dict[str, Any] = {
    **{name: field.metadata["default"] for name, field in _FIELDS.items()},
    **_CHOSEN_DEFAULTS,
}

# Options that must match when resuming (they decide the model, the data, the tokenizer or the time budget).
RESUME_MUST_MATCH = tuple(name for name, field in _FIELDS.items() if field.metadata["must_match_on_resume"])


# ---------------------------------------------------------------------------------------------
# The command line, built from the table
# ---------------------------------------------------------------------------------------------


def _help(name: str) -> str:
    default = DEFAULTS[name]
    return _FIELDS[name].metadata["help"].replace("{default}", str(default))


_READ_BY_THE_COMMAND_LINE = ("quiet",)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every option of `TrainOptions` to ``parser``, in the table's order and groups.

    No argument has a default (argparse.SUPPRESS): an option whose flag is not typed stays out of the
    namespace, which is how `TrainOptions.from_namespace` knows what was given. The exception is
    ``quiet``, which the command line reads before any command runs (it decides the logging); it takes
    part in no recipe and no rule, so "given" does not matter for it.
    """
    groups: dict[str | None, Any] = {None: parser}
    exclusive: dict[tuple[str | None, str], Any] = {}
    for name, field in _FIELDS.items():
        meta = field.metadata
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(meta["group"])
        container = groups[meta["group"]]
        if meta["exclusive"]:
            key = (meta["group"], meta["exclusive"])
            if key not in exclusive:
                exclusive[key] = container.add_mutually_exclusive_group()
            container = exclusive[key]
        default = meta["default"] if name in _READ_BY_THE_COMMAND_LINE else argparse.SUPPRESS
        kwargs: dict[str, Any] = dict(dest=name, default=default, help=_help(name))
        if meta["action"] == "store_true":
            kwargs["action"] = "store_true"
        elif meta["action"] == "boolean_optional":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(meta["kind"], Choice):
            kwargs["choices"] = meta["kind"].choices
        else:
            kwargs["type"] = ArgumentType(name, meta["kind"])
        for key in ("metavar", "nargs"):
            if meta[key] is not None:
                kwargs[key] = meta[key]
        container.add_argument(*(meta["flags"] or (flag_name(name),)), **kwargs)
    return parser


# ---------------------------------------------------------------------------------------------
# resolve: the recipe, every check, the defaults
# ---------------------------------------------------------------------------------------------


def fsdp_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``accelerate launch`` was asked for FSDP (it sets ACCELERATE_USE_FSDP for every process)."""
    value = (os.environ if environ is None else environ).get("ACCELERATE_USE_FSDP", "")
    return value.strip().lower() in {"1", "true", "yes", "y", "on", "t"}  # accelerate's str_to_bool


def resolve(options: TrainOptions | None = None, /, **overrides: Any) -> TrainOptions:
    """The plan a run follows: ``options`` (keywords override its fields) with the recipe applied, every
    value and every rule between options checked, and the defaults filled in.

    The recipe fills the options that were not given; one given, even to its default value, wins. An
    explicit ``learning_rate`` with the recipe and no ``schedule`` turns the recipe's schedule into
    ``inverse_sqrt`` (the paper's shape) peaking at that rate, with the paper's 4000 warmup steps unless
    ``warmup_steps`` is given. Filled in: ``max_steps`` (2000, unless ``epochs`` or ``max_time`` sets the
    length), ``learning_rate`` (5e-3; None with ``schedule="paper"``, whose peak is the paper's formula),
    ``warmup_steps`` (100; 4000 with ``schedule="paper"``) and ``batch_size`` (96); with ``max_time`` and no
    ``recipe``, ``batch_size`` and ``dropout`` come from `MAX_TIME_DEFAULTS` (48 and 0; otherwise ``dropout``
    stays None, the ``size`` preset's). ``threads`` stays None ("every core this
    process may use", chosen by the run). ``task`` stays None when no data source is given (the run then
    trains the dates task). Resolving a resolved plan gives it back unchanged.

    Raises `OptionError` (exit code 2) naming the parameter, its value and what was expected.
    """
    options = options if options is not None else TrainOptions()
    if not isinstance(options, TrainOptions):
        raise OptionError("expected TrainOptions (or keywords), got {got}", got=type(options).__name__)
    unknown = sorted(set(overrides) - set(_FIELD_NAMES))
    if unknown:
        raise OptionError("unknown option(s) {names}; expected names of TrainOptions fields", names=", ".join(unknown))
    options = dataclasses.replace(options, **overrides)
    given = {name: _checked(name, getattr(options, name)) for name in options.given}
    recipe_values = _recipe_values(given)
    values = {name: given.get(name, recipe_values.get(name, _FIELDS[name].metadata["default"])) for name in _FIELDS}
    values = {name: _normalised(name, value) for name, value in values.items()}
    _check_rules(values, set(given), recipe_values)
    if values["max_steps"] is None and values["epochs"] is None and values["max_time"] is None:
        values["max_steps"] = _CHOSEN_DEFAULTS["max_steps"]
    if values["learning_rate"] is None and values["schedule"] != "paper":
        values["learning_rate"] = _CHOSEN_DEFAULTS["learning_rate"]
    if values["warmup_steps"] is None:
        paper = values["schedule"] == "paper"
        values["warmup_steps"] = PAPER_WARMUP_STEPS if paper else _CHOSEN_DEFAULTS["warmup_steps"]
    against_the_clock = values["max_time"] is not None and values["recipe"] is None
    if values["batch_size"] is None:
        values["batch_size"] = (MAX_TIME_DEFAULTS if against_the_clock else _CHOSEN_DEFAULTS)["batch_size"]
    if values["dropout"] is None and against_the_clock:  # otherwise None: the --size preset's P_drop
        values["dropout"] = MAX_TIME_DEFAULTS["dropout"]
    plan = TrainOptions(**values)
    model_sizes(plan)  # d_model divisible by n_heads, and a size that fits
    return plan


def _checked(name: str, value: Any) -> Any:
    """A given value, checked by its option's kind (None is accepted where the table's default is None)."""
    if value is None and _FIELDS[name].metadata["default"] is None:
        return None
    try:
        return _FIELDS[name].metadata["kind"].check(value)
    except Invalid as invalid:
        raise invalid.error(name) from None


def _normalised(name: str, value: Any) -> Any:
    """A default or recipe value in the form a given value would have (5 -> 5.0 for a float option)."""
    return value if value is None else _FIELDS[name].metadata["kind"].check(value)


def _recipe_values(given: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's values for the options that were not given."""
    recipe = given.get("recipe")
    if recipe is None:
        return {}
    values = {name: value for name, value in RECIPES[recipe].items() if name not in given}
    if "schedule" in values and given.get("learning_rate") is not None:
        # An explicit peak with the paper's shape: inverse_sqrt keeps §5.3's warmup and 1/sqrt(step) decay.
        values["schedule"] = "inverse_sqrt"
        logger.info("--recipe %s with --learning-rate: schedule inverse_sqrt peaking at that rate.", recipe)
        if "warmup_steps" not in given:
            values["warmup_steps"] = PAPER_WARMUP_STEPS
    if given.get("streaming") and "tokens_per_batch" in values:
        # Token batches sort the whole training set by length, which a stream cannot: batches of --batch-size.
        del values["tokens_per_batch"]
        logger.info("--recipe %s with --streaming: batches of --batch-size instead of --tokens-per-batch.", recipe)
    return values


def _check_rules(values: dict[str, Any], given: set[str], recipe_values: Mapping[str, Any]) -> None:
    """The rules between options (each value on its own was checked by its kind)."""
    sources = [name for name in ("task", "train_file", "dataset") if values[name]]
    if len(sources) > 1:
        raise OptionError(
            " and ".join("{%s}" % name for name in sources) + " both given; expected one source of training data "
            "(a built-in task, your own files, or a datasets/Hub dataset)."
        )
    if values["dataset"] is None:
        dataset_only = [name for name in ("dataset_config", "dataset_revision", "source_lang", "target_lang")
                        if values[name] is not None]  # fmt: skip
        if dataset_only:
            names = ", ".join("{%s}" % name for name in dataset_only)
            raise OptionError(names + " only apply to {dataset}; expected {dataset} too.")
    elif values["num_train"]:
        raise OptionError("{num_train} only applies to built-in tasks; drop it with {dataset}.")
    if values["train_file"] is None and (values["validation_file"] or values["test_file"]):
        raise OptionError("{validation_file}/{test_file} need {train_file}; expected your own training file too.")
    if values["train_file"] and values["num_train"]:
        raise OptionError("{num_train} only applies to built-in tasks; drop it with {train_file}.")
    lengths = [name for name in ("max_steps", "epochs", "max_time") if values[name] is not None]
    if len(lengths) > 1:
        raise OptionError(
            " and ".join("{%s}" % name for name in lengths) + " both given; expected one way to set the length "
            "of the run."
        )
    if values["streaming"]:
        if not values["dataset"]:
            raise OptionError("{streaming} reads a {dataset} as a stream; expected {dataset} too.")
        if values["max_steps"] is None and values["max_time"] is None:
            raise OptionError(
                "{streaming} needs {max_steps} or {max_time} (a stream has no known length, so {epochs} cannot be "
                "counted); expected {max_steps} N or {max_time} DURATION."
            )
        if values["tokens_per_batch"]:
            raise OptionError(
                "{tokens_per_batch} sorts the whole training set by length, which a stream cannot; expected "
                "{batch_size} with {streaming}."
            )
    if values["schedule"] == "paper" and values["learning_rate"] is not None:
        source = " (from {recipe} %s)" % values["recipe"] if "schedule" in recipe_values else ""
        raise OptionError(
            "{learning_rate} conflicts with {schedule} paper%s (the paper fixes the peak at d_model^-0.5 * "
            "warmup^-0.5); drop one of them." % source
        )
    if values["resume"] and values["overwrite"]:
        raise OptionError("{resume} and {overwrite} both given; expected one of them.")
    marks, budget = values["eval_at_seconds"], values["max_time"]
    if marks and budget is not None and max(marks) > budget:
        raise OptionError(
            "{eval_at_seconds=} reaches past {max_time=} seconds of training; expected marks within the time limit.",
            eval_at_seconds=marks, max_time=budget,
        )  # fmt: skip
    if values["average_last"] > 1 and fsdp_requested():
        source = " (from {recipe} %s)" % values["recipe"] if "average_last" in recipe_values else ""
        raise OptionError(
            "{average_last=}%s cannot be used under FSDP (accelerate launch with an FSDP configuration): the "
            "checkpoints it averages are saved sharded; expected {average_last} 1 with FSDP, or average the "
            "checkpoints afterwards with `miniformer average`." % source,
            average_last=values["average_last"],
        )  # fmt: skip


def model_sizes(options: TrainOptions) -> dict[str, Any]:
    """The model's sizes: the ``size`` preset with any explicit ``d_model`` ... ``dropout`` on top.

    Raises `OptionError` when ``d_model`` is not a multiple of ``n_heads`` or the model would be too
    large to allocate (`MAX_PARAMETERS`).
    """
    size = options.size if options.size is not NOT_GIVEN else DEFAULTS["size"]
    if size not in MODEL_SIZES:
        raise OptionError("{size=} is unknown; expected one of {sizes}.", size=size, sizes=", ".join(MODEL_SIZES))
    sizes = dict(MODEL_SIZES[size])
    for name in ("d_model", "n_heads", "n_layers", "d_ff", "dropout"):
        if getattr(options, name) not in (None, NOT_GIVEN):
            sizes[name] = getattr(options, name)
    if sizes["d_model"] % sizes["n_heads"]:
        raise OptionError(
            "{d_model=} is not divisible by {n_heads=}; expected d_model a multiple of n_heads.",
            d_model=sizes["d_model"], n_heads=sizes["n_heads"],
        )  # fmt: skip
    # Refuse before allocating: each layer holds about 4·D² (attention) + 2·D·d_ff (feed-forward)
    # weights, the decoder's twice the attention; the embeddings add vocabulary · D.
    d_model, d_ff, layers = sizes["d_model"], sizes["d_ff"], sizes["n_layers"]
    estimate = layers * (12 * d_model * d_model + 4 * d_model * d_ff)
    if estimate > MAX_PARAMETERS:
        raise OptionError(
            "the model would have about {estimate:,} parameters (d_model {d}, d_ff {f}, {layers} layers), over "
            "the limit of {limit:,}; expected a smaller {d_model}/{d_ff}/{n_layers} (the paper's big model has "
            "213 million).",
            estimate=estimate, d=d_model, f=d_ff, layers=layers, limit=MAX_PARAMETERS,
        )  # fmt: skip
    return sizes


def check_tokens_per_batch(tokens_per_batch: int | None, longest_example_tokens: int) -> None:
    """Refuse a token budget smaller than the longest example (in tokens, the longer side of the pair).

    Such an example would get a batch of its own over the budget, so the stated budget would not hold;
    the pipeline calls this once the data is tokenized, before training.
    """
    if tokens_per_batch is None:
        return
    if tokens_per_batch < longest_example_tokens:
        raise OptionError(
            "{tokens_per_batch=} is smaller than the longest example ({longest} tokens), which would get a batch "
            "of its own over the budget; expected {tokens_per_batch} of at least {longest}.",
            tokens_per_batch=tokens_per_batch, longest=longest_example_tokens,
        )  # fmt: skip
