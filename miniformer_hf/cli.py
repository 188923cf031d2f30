"""The ``miniformer`` command: train, generate, evaluate, visualize, demo, push.

``miniformer train`` with no arguments trains the seed-size model on the built-in date task and
writes a run folder (model, tokenizer, generation config, model card, metrics, loss curve, attention
views). The folder is assembled in ``<output-dir>.incomplete`` and renamed into place only when the
run has finished, so a failed or killed run never leaves a half-written run folder, and an existing
run folder is never touched without ``--overwrite`` (or ``--resume``).

This module only parses arguments and prints: the run itself is `miniformer_hf.training.run_training`
(a notebook calls it with the same options, `miniformer_hf.runs.TrainingRunOptions`), and what may
happen to a run folder is decided in `miniformer_hf.runs`. Nothing heavy (torch, transformers,
datasets, matplotlib, bertviz, the Hub client) is imported before a command runs, so ``--help`` and
usage errors answer at once (``python scripts/benchmark_cli.py`` measures it).

Exit codes: 0 success, 1 bad data/model/run state, 2 bad command-line usage, 130 interrupted. Errors
are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import runs
from .errors import MiniformerError
from .runs import RunError, TrainingRunOptions

logger = logging.getLogger("miniformer_hf.cli")

# Re-exported for scripts and tests that read them here; they live with the run options.
INCOMPLETE_SUFFIX = runs.INCOMPLETE_SUFFIX
MODEL_SIZES = runs.MODEL_SIZES
DEFAULTS = runs.DEFAULTS


# A problem to report on one line; ``exit_code`` 1 (data/model/state) or 2 (usage).
CommandError = RunError


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


def _thread_count(text: str) -> int:
    value = _positive_int(text)
    limit = 4 * (os.cpu_count() or 1)
    if value > limit:
        raise argparse.ArgumentTypeError(
            f"{value} threads is more than this machine can use ({os.cpu_count()} CPUs); expected at most {limit}"
        )
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
        "--threads", type=_thread_count, default=1, help="CPU threads for PyTorch (default 1)"
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
        "--threads", type=_thread_count, default=1, help="CPU threads for PyTorch (default 1)"
    )


def add_visualize_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``miniformer visualize --model DIR "source text" --out DIR``."""
    parser.add_argument("source", help="source text to encode (quote it)")
    parser.add_argument("--model", required=True, help="run folder written by `miniformer train` (or any saved model)")
    parser.add_argument("--out", required=True, help="folder to write the HTML views and PNG plots into")
    parser.add_argument("--target", default=None, help="also show the model teacher-forced on this target text")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest generated output (default 64)")
    parser.add_argument("--num-beams", type=int, default=None, help="beam size (default: the model's generation config)")
    return parser


def add_push_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``miniformer push``."""
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `miniformer train`")
    parser.add_argument(
        "--repo-id", required=True, metavar="NAME", help="Hub repository, e.g. your-name/miniformer-dates"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, metavar="BRANCH", help="branch to push to (default: main)")
    parser.add_argument("--token", default=None, help="Hub access token (default: HF_TOKEN or `hf auth login`)")
    parser.add_argument("--commit-message", default=None, help="message of the upload commit")
    return parser


def _add_average_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="run folder from `miniformer train` whose checkpoints to average")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--last", type=_positive_int, default=5, metavar="N", help="average the newest N checkpoints (default 5, §6.1)"
    )
    which.add_argument(
        "--checkpoints", nargs="+", metavar="PATH", help="average these checkpoint folders instead (oldest first)"
    )
    parser.add_argument("--output-dir", help="run folder to write (default: <model>-averaged)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --output-dir")


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
        "(dates in words in 12 locales -> ISO), about 3 minutes on 2 CPU cores.",
    )
    from .commands import train as train_command  # the options table (options.py) builds its flags

    train_command.add_arguments(train)
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
    average = commands.add_parser(
        "average",
        help="average the last checkpoints of a run into a new run folder",
        description="Average the weights of a run's last N checkpoints (or the given checkpoint folders), as §6.1 "
        "of the paper does, and write the result as a run folder that generate, evaluate and push accept.",
    )
    _add_average_arguments(average)
    visualize = commands.add_parser(
        "visualize",
        help="attention views of one example",
        description="Write attention heatmaps and offline bertviz HTML for one source text.",
    )
    add_visualize_arguments(visualize)
    demo = commands.add_parser(
        "demo",
        help="a live attention page (Gradio) for a run folder or Hub repo",
        description="Serve a local web page: type a source text, see the output (greedy or beam), the attention of "
        "each generated token over the source, and the top next tokens. Needs the demo extra.",
    )
    from .commands import demo as demo_command  # the standard library only; Gradio and torch load when the page starts

    demo_command.add_arguments(demo)
    push = commands.add_parser(
        "push",
        help="upload a run folder to the Hugging Face Hub",
        description="Upload a run folder (model, tokenizer, model card) to the Hugging Face Hub.",
    )
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
        transformers.utils.logging.disable_progress_bar()  # "Writing model shards", "Loading weights"


def _load_model_and_tokenizer(model_dir: str):
    return runs.load_run_folder(model_dir)


def _generation_kwargs(args) -> dict[str, int]:
    kwargs = {}
    if getattr(args, "max_new_tokens", None) is not None:
        kwargs["max_new_tokens"] = args.max_new_tokens
    if getattr(args, "num_beams", None) is not None:
        kwargs["num_beams"] = args.num_beams
    return kwargs


# ---------------------------------------------------------------------------------------------
# miniformer train
# ---------------------------------------------------------------------------------------------


def _display_path(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it (runs/dates), else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_train(args) -> int:
    from .commands import train as train_command

    return train_command.run(args)


# ---------------------------------------------------------------------------------------------
# miniformer generate / evaluate
# ---------------------------------------------------------------------------------------------


def run_generate(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from .generation import check_generation_inputs, generate_texts_with_cuts

    model, tokenizer = _load_model_and_tokenizer(args.model)
    length = check_generation_inputs(model, tokenizer, args.texts, args.max_new_tokens)
    outputs, cut = generate_texts_with_cuts(model, tokenizer, args.texts, **_generation_kwargs(args))
    for text in outputs:
        print(text)
    _warn_about_cut_outputs(cut, len(outputs), length, model)
    return 0


def _warn_about_cut_outputs(cut: list[int], total: int, length: int | None, model) -> None:
    if not cut:
        return
    numbers = ", ".join(str(index + 1) for index in cut[:10]) + (" ..." if len(cut) > 10 else "")
    limit = getattr(model.config, "max_position_embeddings", None)
    print(
        f"miniformer: warning: {len(cut)} of {total} outputs ({numbers}) were cut at the generation length of "
        f"{length} tokens before they ended; pass a larger --max-new-tokens"
        + (f" (at most {limit})." if limit else "."),
        file=sys.stderr,
    )


def run_evaluate(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from .data import load_task, load_text_pairs
    from .generation import check_generation_inputs, generate_texts_with_cuts
    from .metrics import bleu_signature, compute_text_metrics

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
    length = check_generation_inputs(model, tokenizer, dataset["source"], args.max_new_tokens)
    started = time.perf_counter()
    predictions, cut = generate_texts_with_cuts(
        model, tokenizer, dataset["source"], batch_size=args.batch_size, **_generation_kwargs(args)
    )
    metrics = {
        **compute_text_metrics(predictions, dataset["target"]),
        "num_examples": len(dataset),
        "num_cut_by_generation_length": len(cut),
        "seconds": time.perf_counter() - started,
        "bleu_signature": bleu_signature(),
    }
    print(json.dumps(metrics, indent=2))
    _warn_about_cut_outputs(cut, len(predictions), length, model)
    if args.output:
        records = [
            {"source": s, "target": t, "prediction": p}
            for s, t, p in zip(dataset["source"], dataset["target"], predictions)
        ]
        runs.write_json(Path(args.output), {"metrics": metrics, "predictions": records})
    return 0


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def run_average(args) -> int:
    from .averaging import AveragingError, checkpoint_paths, write_averaged_run

    model = Path(args.model)
    output_dir = Path(args.output_dir) if args.output_dir else model.with_name(model.name + "-averaged")
    try:
        paths = [Path(path) for path in args.checkpoints] if args.checkpoints else checkpoint_paths(model, args.last)
        written = write_averaged_run(paths, output_dir, source_run=model, overwrite=args.overwrite)
    except AveragingError as error:
        raise CommandError(str(error)) from error
    print(f"Run folder: {_display_path(written)} (average of {', '.join(path.name for path in paths)})")
    return 0


def run_visualize(args) -> int:
    try:
        from .visualization import run_visualize as visualize
    except ImportError as error:
        raise CommandError(
            f"miniformer visualize is unavailable ({error}); install the viz extra: pip install 'miniformer-hf[viz]'"
        ) from error
    return visualize(args)


def run_demo(args) -> int:
    from .commands import demo as demo_command

    return demo_command.run(args)  # DemoError is a MiniformerError: main() prints it as one line


def run_push(args) -> int:
    try:
        from .sharing import run_push as push
    except ImportError as error:
        raise CommandError(f"miniformer push is unavailable in this installation ({error})") from error
    return push(args)


COMMANDS = {
    "train": run_train,
    "generate": run_generate,
    "evaluate": run_evaluate,
    "average": run_average,
    "visualize": run_visualize,
    "demo": run_demo,
    "push": run_push,
}


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
    try:
        _configure_logging(getattr(args, "quiet", False))
    except ImportError as error:
        print(f"miniformer {args.command}: error: {error}; reinstall miniformer-hf", file=sys.stderr)
        return 1

    try:
        return COMMANDS[args.command](args)
    except MiniformerError as error:
        print(f"miniformer {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as error:
        message = str(error) or "interrupted"
        print(f"miniformer {args.command}: {message}", file=sys.stderr)
        return 130
    except (OSError, ValueError) as error:  # unwritable folders, models that do not fit the data, SharingError ...
        print(
            f"miniformer {args.command}: error: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
