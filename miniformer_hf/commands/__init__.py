"""The ``miniformer`` subcommands: one module each, listed here.

Each module holds ``add_arguments(parser)`` (its flags) and ``run(args) -> int`` (it calls library
functions with keyword arguments and prints). `build_parser` imports the modules with importlib when
it builds the parser; they import only the standard library at the top, so ``miniformer --help``
answers at once, and the library (torch, transformers...) loads inside ``run``.

Feature modules (training, sharing, visualization, demo...) never import this package.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

__all__ = ["COMMANDS", "Command", "ArgumentParser", "build_parser", "command_module"]


class Command:
    """A subcommand: its module (``miniformer_hf.commands.<module>``), one-line help and description."""

    def __init__(self, module: str, help: str, description: str):
        self.module = module
        self.help = help
        self.description = description


# name -> Command, in the order ``miniformer --help`` lists them.
COMMANDS: dict[str, Command] = {
    "train": Command(
        "train",
        "train a model and write a run folder",
        "Train a Miniformer. With no arguments: the seed-size model on the built-in date task "
        "(dates in words in 12 locales -> ISO), about 3 minutes on 2 CPU cores.",
    ),
    "generate": Command(
        "generate",
        "generate outputs for source texts",
        "Generate one output line per source text with a trained model.",
    ),
    "evaluate": Command(
        "evaluate",
        "score a model on a data file",
        "Print exact match, character error rate, BLEU and chrF of a trained model on a data file.",
    ),
    "average": Command(
        "average",
        "average the last checkpoints of a run into a new run folder",
        "Average the weights of a run's last N checkpoints (or the given checkpoint folders), as §6.1 "
        "of the paper does, and write the result as a run folder that generate, evaluate and push accept.",
    ),
    "visualize": Command(
        "visualize",
        "attention views of one example",
        "Write attention heatmaps and offline bertviz HTML for one source text.",
    ),
    "demo": Command(
        "demo",
        "a live attention page (Gradio) for a run folder or Hub repo",
        "Serve a local web page: type a source text, see the output (greedy or beam), the attention of "
        "each generated token over the source, and the top next tokens. Needs the demo extra.",
    ),
    "push": Command(
        "push",
        "upload a run folder to the Hugging Face Hub",
        "Upload a run folder (model, tokenizer, model card) to the Hugging Face Hub.",
    ),
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``miniformer train: error: ...`` and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name`` (``add_arguments`` and ``run``)."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name].module}")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("miniformer-hf")
    except metadata.PackageNotFoundError:  # a source checkout that was never installed
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``miniformer`` parser: one subparser per entry of `COMMANDS`, each with ``-q/--quiet``."""
    parser = ArgumentParser(
        prog="miniformer",
        description="Train, use and share Miniformer, the encoder-decoder Transformer of 'Attention Is All You Need'.",
    )
    parser.add_argument("--version", action="version", version=f"miniformer {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, command in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.description)
        command_module(name).add_arguments(subparser)
        if "--quiet" not in subparser._option_string_actions:
            subparser.add_argument(
                "-q", "--quiet", action="store_true", help="no progress bars or log lines, only the command's output"
            )
    return parser
