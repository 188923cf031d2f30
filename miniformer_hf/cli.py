"""The ``miniformer`` command: train, generate, evaluate, visualize, demo, push.

``miniformer train`` with no arguments trains the seed-size model on the built-in date task and
writes a run folder (model, tokenizer, generation config, model card, metrics, loss curve, attention
views). The folder is assembled in ``<output-dir>.incomplete`` and renamed into place only when the
run has finished, so a failed or killed run never leaves a half-written run folder, and an existing
run folder is never touched without ``--overwrite`` (or ``--resume``).

Exit codes: 0 success, 1 bad data/model/run state, 2 bad command-line usage. Errors are one line on
stderr. This module only wires arguments to `miniformer_hf.training`, `data` and `tokenization`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("miniformer_hf.cli")

# The seed's model and the paper's base model (Table 3); explicit --d-model etc. override them.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.1),
    "seed": dict(d_model=64, n_heads=4, n_layers=3, d_ff=256, dropout=0.1),
    "small": dict(d_model=128, n_heads=4, n_layers=3, d_ff=512, dropout=0.1),
    "base": dict(d_model=512, n_heads=8, n_layers=6, d_ff=2048, dropout=0.1),
}

# Tuned so that the default run (seed model, date task) finishes within 10 minutes on 2 CPU cores.
DEFAULTS = dict(
    task="dates",
    size="seed",
    batch_size=128,
    learning_rate=3e-3,
    schedule="inverse_sqrt",
    warmup_steps=200,
    label_smoothing=0.1,
    max_steps=2000,
    eval_steps=500,
    logging_steps=50,
    eval_samples=1000,
    threads=1,
    seed=0,
    group_by_length=False,
)

INCOMPLETE_SUFFIX = ".incomplete"
CHECKPOINTS = "checkpoints"
RUN_ARGUMENTS = "run_arguments.json"
# Arguments that must match when resuming (they decide the model, the data or the tokenizer).
RESUME_MUST_MATCH = (
    "task", "train_file", "validation_file", "test_file", "source_column", "target_column", "tokenizer",
    "vocab_size", "num_train", "size", "d_model", "n_heads", "n_layers", "d_ff", "dropout", "seed",
)  # fmt: skip


class CommandError(Exception):
    """A problem to report on one line; ``exit_code`` 1 (data/model/state) or 2 (usage)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------
# Argument parsers
# ---------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected a positive integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; expected an integer >= 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a positive number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected a positive number")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a value in [0, 1)") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``miniformer train: error: ...`` and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _add_data_arguments(parser: argparse.ArgumentParser, *, training: bool) -> None:
    from .data import BUILTIN_TASKS

    group = parser.add_argument_group("data")
    if training:
        group.add_argument(
            "--task",
            choices=sorted(BUILTIN_TASKS),
            default=None,
            help=f"built-in task, generated locally (default: {DEFAULTS['task']}, unless --train-file is given)",
        )
        group.add_argument("--train-file", help="your own training pairs: .jsonl, .json, .csv or .tsv")
        group.add_argument(
            "--validation-file",
            help="validation pairs (default: 10%% of --train-file is held out; used for periodic evaluation)",
        )
        group.add_argument(
            "--test-file", help="held-out pairs for the final evaluation (default: the validation split)"
        )
        group.add_argument(
            "--num-train",
            type=_positive_int,
            default=None,
            help="number of training examples a built-in task generates (default: the task's own, 50000 for dates)",
        )
    group.add_argument(
        "--source-column", default="source", help="column (or JSON key) holding the input text (default: source)"
    )
    group.add_argument(
        "--target-column", default="target", help="column (or JSON key) holding the output text (default: target)"
    )


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .tokenization import TOKENIZER_KINDS
    from .training import SCHEDULES

    _add_data_arguments(parser, training=True)
    group = parser.add_argument_group("tokenizer")
    group.add_argument(
        "--tokenizer",
        choices=TOKENIZER_KINDS,
        default="char",
        help="tokenizer trained on the training text: char (one token per character; default) or bpe (byte-level BPE)",
    )
    group.add_argument(
        "--vocab-size", type=_positive_int, default=2000, help="BPE vocabulary size (default 2000; ignored for char)"
    )

    group = parser.add_argument_group("model")
    group.add_argument(
        "--size",
        choices=sorted(MODEL_SIZES),
        default=DEFAULTS["size"],
        help="preset: "
        + "; ".join(
            f"{name} d_model={s['d_model']} heads={s['n_heads']} layers={s['n_layers']} d_ff={s['d_ff']}"
            for name, s in MODEL_SIZES.items()
        )
        + f" (default {DEFAULTS['size']}, the seed's model; base is the paper's)",
    )
    group.add_argument("--d-model", type=_positive_int, help="width d_model (overrides --size)")
    group.add_argument("--n-heads", type=_positive_int, help="attention heads h (overrides --size)")
    group.add_argument("--n-layers", type=_positive_int, help="layers N per stack (overrides --size)")
    group.add_argument("--d-ff", type=_positive_int, help="feed-forward inner width d_ff (overrides --size)")
    group.add_argument("--dropout", type=_probability, help="P_drop (overrides --size; default 0.1)")

    group = parser.add_argument_group("optimisation")
    length = group.add_mutually_exclusive_group()
    length.add_argument(
        "--max-steps",
        type=_positive_int,
        default=None,
        help=f"optimizer steps to train for (default {DEFAULTS['max_steps']} unless --epochs is given)",
    )
    length.add_argument(
        "--epochs",
        type=_positive_float,
        default=None,
        help="train for this many passes over the data instead of --max-steps",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULTS["batch_size"],
        help=f"examples per step (default {DEFAULTS['batch_size']})",
    )
    group.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help=f"peak learning rate (default {DEFAULTS['learning_rate']}; with --schedule paper it is d_model^-0.5 * warmup^-0.5 and this flag is refused)",
    )
    group.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=DEFAULTS["schedule"],
        help="learning-rate schedule: inverse_sqrt (linear warmup then ~1/sqrt(step), the paper's shape; default), "
        "paper (§5.3 exactly, Adam beta2 0.98 eps 1e-9), linear, cosine, constant, constant_with_warmup",
    )
    group.add_argument(
        "--warmup-steps",
        type=_non_negative_int,
        default=None,
        help=f"linear warmup steps (default {DEFAULTS['warmup_steps']}; 4000 with --schedule paper)",
    )
    group.add_argument(
        "--label-smoothing",
        type=_probability,
        default=DEFAULTS["label_smoothing"],
        help="label smoothing epsilon (default 0.1, §5.4)",
    )
    group.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS["group_by_length"],
        help="batch examples of similar source length together: about a third faster per step here, but each "
        "step learns less, so the default run reaches its accuracy later (default: off)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS["seed"],
        help="random seed for initialisation, data order and dropout (default 0)",
    )
    group.add_argument(
        "--threads",
        type=_positive_int,
        default=DEFAULTS["threads"],
        help="CPU threads for PyTorch (default 1: fastest for this small model on a shared machine)",
    )

    group = parser.add_argument_group("evaluation and output")
    group.add_argument(
        "--output-dir", default=None, help="run folder to write (default runs/<task or train-file name>)"
    )
    group.add_argument(
        "--eval-steps",
        type=_positive_int,
        default=DEFAULTS["eval_steps"],
        help=f"evaluate and save a checkpoint every this many steps (default {DEFAULTS['eval_steps']})",
    )
    group.add_argument(
        "--logging-steps",
        type=_positive_int,
        default=DEFAULTS["logging_steps"],
        help="log the training loss every this many steps (default 50)",
    )
    group.add_argument(
        "--eval-samples",
        type=_positive_int,
        default=DEFAULTS["eval_samples"],
        help=f"evaluate on at most this many validation/test examples (default {DEFAULTS['eval_samples']})",
    )
    group.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=None,
        help="longest generated output (default: longest training target + 25%%)",
    )
    group.add_argument(
        "--eval-at-seconds",
        type=_positive_float,
        nargs="+",
        default=None,
        metavar="SECONDS",
        help="also measure test exact match when training time (evaluation excluded) reaches these marks; for benchmarks",
    )
    group.add_argument(
        "--no-visualize", action="store_true", help="skip the attention visualization of a held-out example"
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted (or finished) run in --output-dir from its last checkpoint",
    )
    state.add_argument(
        "--overwrite", action="store_true", help="replace an existing run folder (only once the new run has finished)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or log lines, only the final summary"
    )


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "texts", nargs="+", metavar="TEXT", help="source texts, one output line each (quote texts with spaces)"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="run folder from `miniformer train` (or any saved seq2seq model with its tokenizer)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=None,
        help="longest output (default: the model's generation config)",
    )
    parser.add_argument(
        "--num-beams",
        type=_positive_int,
        default=None,
        help="beam search width (default: the model's generation config, greedy)",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=DEFAULTS["threads"], help="CPU threads for PyTorch (default 1)"
    )


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="run folder from `miniformer train` (or any saved seq2seq model with its tokenizer)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="pairs to score: .jsonl, .json, .csv or .tsv with source and target columns")
    source.add_argument("--task", help="a built-in task name instead of --data (its held-out --split is scored)")
    parser.add_argument("--split", default="test", help="split of --task to score (default test)")
    parser.add_argument(
        "--source-column", default="source", help="column (or JSON key) holding the input text (default: source)"
    )
    parser.add_argument(
        "--target-column", default="target", help="column (or JSON key) holding the expected output (default: target)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=256, help="examples per generation batch (default 256)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=None,
        help="longest output (default: the model's generation config)",
    )
    parser.add_argument("--num-beams", type=_positive_int, default=None, help="beam search width (default: greedy)")
    parser.add_argument("--limit", type=_positive_int, default=None, help="score only the first this many examples")
    parser.add_argument("--output", help="also write the metrics (and predictions) to this JSON file")
    parser.add_argument(
        "--threads", type=_positive_int, default=DEFAULTS["threads"], help="CPU threads for PyTorch (default 1)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="miniformer",
        description="Train, use and share Miniformer, the encoder-decoder Transformer of 'Attention Is All You Need'.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    train = commands.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a Miniformer. With no arguments: the seed-size model on the built-in date task "
        "(dates in words in 12 locales -> ISO), about 10 minutes on 2 CPU cores.",
    )
    _add_train_arguments(train)
    generate = commands.add_parser(
        "generate",
        help="generate outputs for source texts",
        description="Generate one output line per source text with a trained model.",
    )
    _add_generate_arguments(generate)
    evaluate = commands.add_parser(
        "evaluate",
        help="score a model on a data file",
        description="Print exact match, character error rate, BLEU and chrF of a trained model on a data file.",
    )
    _add_evaluate_arguments(evaluate)
    visualize = commands.add_parser(
        "visualize",
        help="attention views of one example",
        description="Write attention heatmaps and offline bertviz HTML for one source text.",
    )
    try:
        from .visualization import add_visualize_arguments
    except ImportError as error:
        visualize.set_defaults(
            unavailable=f"miniformer visualize is unavailable ({error}); install the viz extra: pip install 'miniformer-hf[viz]'"
        )
    else:
        add_visualize_arguments(visualize)
    demo = commands.add_parser(
        "demo",
        help="a live attention page (Gradio) for a run folder or Hub repo",
        description="Serve a local web page: type a source text, see the output (greedy or beam), the attention of "
        "each generated token over the source, and the top next tokens. Needs the demo extra.",
    )
    from .demo import add_demo_arguments  # standard library and torch only; Gradio is imported when the page starts

    add_demo_arguments(demo)
    push = commands.add_parser(
        "push",
        help="upload a run folder to the Hugging Face Hub",
        description="Upload a run folder (model, tokenizer, model card) to the Hugging Face Hub.",
    )
    try:
        from .sharing import add_push_arguments
    except ImportError as error:
        push.set_defaults(unavailable=f"miniformer push is unavailable in this installation ({error})")
    else:
        add_push_arguments(push)
    return parser


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _configure_logging(quiet: bool) -> None:
    import datasets
    import transformers

    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(format="%(message)s", level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("miniformer_hf").setLevel(level)
    transformers.utils.logging.set_verbosity_warning()
    if quiet:
        datasets.disable_progress_bars()


def _load_model_and_tokenizer(model_dir: str):
    path = Path(model_dir)
    if not path.exists():
        raise CommandError(f"--model {model_dir}: no such folder; expected a run folder written by `miniformer train`.")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise CommandError(
            f"--model {model_dir}: not a saved model folder (no config.json); expected a run folder written by "
            "`miniformer train` or save_pretrained. Check the path."
        )
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import miniformer_hf  # noqa: F401  (registers Miniformer with the Auto classes)

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a weight-loading bar is noise around one command's output
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        raise CommandError(
            f"--model {model_dir}: cannot load the model or its tokenizer ({error}); expected a run folder from `miniformer train`."
        ) from error
    model.eval()
    return model, tokenizer


def _generation_kwargs(args) -> dict[str, int]:
    kwargs = {}
    if getattr(args, "max_new_tokens", None) is not None:
        kwargs["max_new_tokens"] = args.max_new_tokens
    if getattr(args, "num_beams", None) is not None:
        kwargs["num_beams"] = args.num_beams
    return kwargs


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# miniformer train
# ---------------------------------------------------------------------------------------------


def _model_sizes(args) -> dict[str, Any]:
    sizes = dict(MODEL_SIZES[args.size])
    for name in ("d_model", "n_heads", "n_layers", "d_ff", "dropout"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    if sizes["d_model"] % sizes["n_heads"]:
        raise CommandError(
            f"--d-model {sizes['d_model']} is not divisible by --n-heads {sizes['n_heads']}; expected d_model a multiple of n_heads.",
            2,
        )
    return sizes


def _load_training_data(args):
    """The DatasetDict to train on (train, validation, test), raising DataError on bad files."""
    from .data import load_task, load_text_pairs

    if args.train_file:
        files = {"train": args.train_file}
        if args.validation_file:
            files["validation"] = args.validation_file
        if args.test_file:
            files["test"] = args.test_file
        data = load_text_pairs(files, args.source_column, args.target_column, seed=args.seed)
    else:
        kwargs = {"seed": args.seed}
        if args.num_train is not None:
            kwargs["num_train"] = args.num_train
        data = load_task(args.task or DEFAULTS["task"], **kwargs)
    if "test" not in data:
        data["test"] = data["validation"]
    return data


def _check_output_folder(args, output_dir: Path, staging: Path) -> None:
    if args.resume:
        if not staging.is_dir() and not (output_dir / CHECKPOINTS).is_dir():
            raise CommandError(
                f"--resume: no checkpoints in {staging} or {output_dir / CHECKPOINTS}; expected the --output-dir of an "
                "earlier run (and the same flags). Drop --resume to start a new run."
            )
        return
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())) and not args.overwrite:
        raise CommandError(
            f"--output-dir {output_dir} already exists and is not empty; pass --overwrite to replace it when the new run "
            "finishes, --resume to continue it, or choose another --output-dir.",
            2,
        )
    if staging.exists() and not args.overwrite:
        raise CommandError(
            f"an interrupted run was found in {staging}; pass --resume to continue it, --overwrite to start over, "
            "or choose another --output-dir.",
            2,
        )


def _resume_arguments_match(args, staging: Path) -> None:
    saved_path = staging / RUN_ARGUMENTS
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    current = vars(args)
    different = [name for name in RESUME_MUST_MATCH if name in saved and saved[name] != current.get(name)]
    if different:
        details = ", ".join(
            f"--{name.replace('_', '-')} {saved[name]!r} (now {current.get(name)!r})" for name in different
        )
        raise CommandError(
            f"--resume with different data/model flags: the run used {details}; expected the same flags as the interrupted run.",
            2,
        )


def _write_loss_curve(log_history: list[dict], path: Path) -> Path | None:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed, so no loss curve was drawn; install the viz extra.")
        return None
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    accuracy = [(entry["step"], entry["eval_exact_match"]) for entry in log_history if "eval_exact_match" in entry]
    figure = Figure(figsize=(7, 4), dpi=120)
    axes = figure.add_subplot(1, 1, 1)
    if train:
        axes.plot(*zip(*train), label="training loss (label-smoothed)")
    if evaluation:
        axes.plot(*zip(*evaluation), "o-", label="validation loss")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy")
    axes.set_yscale("log")
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if accuracy:
        right = axes.twinx()
        right.plot(*zip(*accuracy), "s--", color="tab:green", label="validation exact match")
        right.set_ylabel("exact match")
        right.set_ylim(0, 1.02)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        axes.legend(handles, labels, loc="center right")  # the curves run along the top and bottom edges
    axes.set_title("Miniformer training")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _write_model_card(run_dir: Path, config, metrics: dict[str, Any], num_parameters: int) -> None:
    try:
        from .sharing import render_model_card
    except ImportError as error:
        logger.warning("No model card written (%s).", error)
        return
    render_model_card(config, metrics=metrics, num_parameters=num_parameters).save(run_dir / "README.md")


def _visualize(model, tokenizer, example: dict[str, str], out_dir: Path, max_new_tokens: int) -> dict[str, str]:
    try:
        from .visualization import visualize_example
    except ImportError as error:
        logger.warning("No attention visualization (%s); install the viz extra.", error)
        return {}
    try:
        written = visualize_example(
            model, tokenizer, example["source"], out_dir, target_text=example["target"], max_new_tokens=max_new_tokens
        )
    except Exception as error:  # a plot must not fail a finished training run
        logger.warning(
            "The attention visualization failed (%s: %s); the run is complete without it.", type(error).__name__, error
        )
        return {}
    return {name: os.path.relpath(path, out_dir.parent) for name, path in written.items()}


def _finalise(staging: Path, output_dir: Path) -> None:
    """Move the finished staging folder to ``output_dir``, replacing an old run only now."""
    previous = None
    if output_dir.exists():
        previous = output_dir.with_name(f"{output_dir.name}.replaced-{os.getpid()}")
        os.replace(output_dir, previous)
    os.replace(staging, output_dir)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _distributed_state():
    """accelerate's process state when several processes were launched (torchrun, accelerate launch)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # The same choice as TransformerTrainer's: gloo on the CPU when there is no accelerator.
    return PartialState(cpu=not torch.accelerator.is_available())


def run_train(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from transformers import PreTrainedTokenizerFast, set_seed

    from . import MiniformerConfig, MiniformerForConditionalGeneration
    from .tokenization import train_tokenizer
    from .training import (
        TrainingClockCallback,
        TransformerTrainer,
        compute_text_metrics,
        generate_texts,
        last_complete_checkpoint,
    )

    started = time.perf_counter()
    if args.schedule == "paper" and args.learning_rate is not None:
        raise CommandError(
            "--learning-rate conflicts with --schedule paper (the paper fixes the peak at d_model^-0.5 * warmup^-0.5); drop one of them.",
            2,
        )
    if args.train_file is None and (args.validation_file or args.test_file):
        raise CommandError("--validation-file/--test-file need --train-file; expected your own training file too.", 2)
    if args.train_file and args.task:
        raise CommandError(
            "--task and --train-file both given; expected a built-in task or your own files, not both.", 2
        )
    if args.train_file and args.num_train:
        raise CommandError("--num-train only applies to built-in tasks; drop it with --train-file.", 2)
    task_name = Path(args.train_file).stem if args.train_file else (args.task or DEFAULTS["task"])
    output_dir = Path(args.output_dir or Path("runs") / task_name)
    staging = output_dir.with_name(output_dir.name + INCOMPLETE_SUFFIX)
    sizes = _model_sizes(args)
    _check_output_folder(args, output_dir, staging)
    if args.resume and staging.is_dir():
        _resume_arguments_match(args, staging)
    elif args.resume:
        _resume_arguments_match(args, output_dir)

    data = _load_training_data(args)  # DataError (bad file) surfaces here, before anything is written
    set_seed(args.seed)
    # Under torchrun / accelerate launch, the main process writes files and the others wait for it.
    distributed = _distributed_state()
    is_main = distributed is None or distributed.is_main_process
    if distributed is not None:
        distributed.wait_for_everyone()  # every process has checked the folders before any is created

    # Everything is written into the staging folder; a fresh run starts from an empty one.
    if is_main:
        if args.resume and not staging.is_dir():
            shutil.copytree(output_dir, staging)  # continue a finished run without touching it until the end
        elif not args.resume and staging.exists():
            shutil.rmtree(staging)  # --overwrite: start over
        staging.mkdir(parents=True, exist_ok=True)
    resuming = args.resume and last_complete_checkpoint(staging / CHECKPOINTS) is not None
    if is_main and not (resuming and (staging / "tokenizer.json").is_file()):
        texts = list(data["train"]["source"]) + list(data["train"]["target"])
        kind_kwargs = {"vocab_size": args.vocab_size} if args.tokenizer == "bpe" else {}
        train_tokenizer(texts, kind=args.tokenizer, **kind_kwargs).save_pretrained(staging)
    if is_main:
        _write_json(staging / RUN_ARGUMENTS, {k: v for k, v in vars(args).items() if k not in ("func",)})
    if distributed is not None:
        distributed.wait_for_everyone()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(staging)  # the same tokenizer in every process

    config = MiniformerConfig(vocab_size=len(tokenizer), **sizes)
    model = MiniformerForConditionalGeneration(config)
    logger.info("Model: %s parameters, %s", f"{model.num_parameters():,}", sizes)

    evaluation = data["validation"].select(range(min(args.eval_samples, len(data["validation"]))))
    test = data["test"].select(range(min(args.eval_samples, len(data["test"]))))
    callbacks = []
    clock = None
    if args.eval_at_seconds:

        def test_exact_match(current_model) -> dict[str, float]:
            predictions = generate_texts(current_model, tokenizer, test["source"], batch_size=256)
            return {"exact_match": compute_text_metrics(predictions, test["target"])["exact_match"]}

        clock = TrainingClockCallback(args.eval_at_seconds, test_exact_match, path=staging / "metrics_by_time.json")
        callbacks.append(clock)

    warmup = (
        args.warmup_steps
        if args.warmup_steps is not None
        else (None if args.schedule == "paper" else DEFAULTS["warmup_steps"])
    )
    length = (
        {"num_train_epochs": args.epochs} if args.epochs else {"max_steps": args.max_steps or DEFAULTS["max_steps"]}
    )
    trainer = TransformerTrainer(
        model,
        tokenizer,
        learning_rate=None if args.schedule == "paper" else (args.learning_rate or DEFAULTS["learning_rate"]),
        batch_size=args.batch_size,
        schedule=args.schedule,
        warmup_steps=warmup,
        label_smoothing=args.label_smoothing,
        output_dir=staging / CHECKPOINTS,
        max_new_tokens=args.max_new_tokens,
        callbacks=callbacks,
        seed=args.seed,
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        save_strategy="steps",
        save_steps=args.eval_steps,
        save_total_limit=1,
        logging_steps=args.logging_steps,
        per_device_eval_batch_size=max(args.batch_size, 256),
        disable_tqdm=args.quiet,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        **length,
    )
    train_output = trainer.train(
        data["train"], eval_dataset=evaluation, resume_from_checkpoint=True if resuming else None
    )
    training_seconds = time.perf_counter() - started

    final_validation = trainer.evaluate(evaluation, metric_key_prefix="validation")
    final_test = trainer.evaluate(test, metric_key_prefix="test")
    arguments = trainer.hf_trainer.args
    # Flat keys as the model card (miniformer_hf.sharing) reads them; "eval_*" are the held-out test split.
    metrics: dict[str, Any] = {
        "task": task_name,
        "eval_split": "test",
        **{f"eval_{name}": final_test[f"test_{name}"] for name in ("exact_match", "cer", "bleu", "chrf", "loss")},
        **{
            f"validation_{name}": final_validation[f"validation_{name}"]
            for name in ("exact_match", "cer", "bleu", "loss")
        },
        "train_runtime": train_output.metrics.get("train_runtime"),
        "train_loss": train_output.metrics.get("train_loss"),
        "max_steps": trainer.hf_trainer.state.global_step,
        "epochs": round(trainer.hf_trainer.state.epoch or 0, 3),
        "learning_rate": arguments.learning_rate,
        "schedule": args.schedule,
        "warmup_steps": arguments.warmup_steps,
        "per_device_train_batch_size": arguments.per_device_train_batch_size,
        "label_smoothing": arguments.label_smoothing_factor,
        "seed": args.seed,
        "train_samples": len(data["train"]),
        "num_evaluated": {"validation": len(evaluation), "test": len(test)},
        "num_parameters": model.num_parameters(),
        "model": sizes,
        "tokenizer": args.tokenizer,
        "threads": args.threads,
    }
    if clock is not None:
        metrics["by_training_time"] = clock.results
    if not is_main:
        return 0

    trainer.save_model(staging)  # safetensors, config (auto_map), code files, generation config, tokenizer
    _write_json(staging / "log_history.json", trainer.hf_trainer.state.log_history)
    _write_loss_curve(trainer.hf_trainer.state.log_history, staging / "loss_curve.png")
    if not args.no_visualize:
        metrics["attention"] = _visualize(model, tokenizer, test[0], staging / "attention", trainer.max_new_tokens)
    metrics["training_wall_seconds"] = training_seconds
    metrics["wall_seconds"] = time.perf_counter() - started
    _write_json(staging / "metrics.json", metrics)
    _write_model_card(staging, config, metrics, model.num_parameters())
    _finalise(staging, output_dir)
    print(
        f"Run folder: {output_dir}\n"
        f"Held-out exact match: {metrics['eval_exact_match']:.4f} ({len(test)} test examples); "
        f"CER {metrics['eval_cer']:.4f}; BLEU {metrics['eval_bleu']:.1f}\n"
        f"Steps: {metrics['max_steps']}; wall time {metrics['wall_seconds']:.0f} s"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# miniformer generate / evaluate
# ---------------------------------------------------------------------------------------------


def run_generate(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from .training import generate_texts

    model, tokenizer = _load_model_and_tokenizer(args.model)
    for text in generate_texts(model, tokenizer, args.texts, **_generation_kwargs(args)):
        print(text)
    return 0


def run_evaluate(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from .data import load_task, load_text_pairs
    from .training import compute_text_metrics, generate_texts

    if args.data:
        dataset = load_text_pairs(args.data, args.source_column, args.target_column, validation_fraction=0)["train"]
    else:
        splits = load_task(args.task)
        if args.split not in splits:
            raise CommandError(
                f"--split {args.split!r} is not a split of task {args.task!r}; expected one of {sorted(splits)}.", 2
            )
        dataset = splits[args.split]
    model, tokenizer = _load_model_and_tokenizer(args.model)
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    started = time.perf_counter()
    predictions = generate_texts(
        model, tokenizer, dataset["source"], batch_size=args.batch_size, **_generation_kwargs(args)
    )
    metrics = {
        **compute_text_metrics(predictions, dataset["target"]),
        "num_examples": len(dataset),
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(metrics, indent=2))
    if args.output:
        records = [
            {"source": s, "target": t, "prediction": p}
            for s, t, p in zip(dataset["source"], dataset["target"], predictions)
        ]
        _write_json(Path(args.output), {"metrics": metrics, "predictions": records})
    return 0


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

COMMANDS = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate}


def main(argv: list[str] | None = None) -> int:
    """Run ``miniformer`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) and usage errors (2)
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "unavailable", None):
        print(f"miniformer {args.command}: error: {args.unavailable}", file=sys.stderr)
        return 1
    _configure_logging(getattr(args, "quiet", False))

    from .data import DataError

    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        if args.command == "visualize":
            from .visualization import run_visualize

            return run_visualize(args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args)
        from .sharing import run_push

        return run_push(args)
    except CommandError as error:
        print(f"miniformer {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except DataError as error:
        print(f"miniformer {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"miniformer {args.command}: interrupted; rerun with --resume to continue from the last checkpoint.",
            file=sys.stderr,
        )
        return 130
    except ImportError as error:  # an optional extra that is not installed; the message says how to install it
        print(f"miniformer {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:  # unwritable folders, models that do not fit the data, SharingError ...
        print(
            f"miniformer {args.command}: error: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
