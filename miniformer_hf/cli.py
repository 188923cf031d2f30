"""The ``miniformer`` command: parse, configure logging, dispatch, turn errors into exit codes.

Each subcommand is a module of `miniformer_hf.commands` (its arguments and its ``run``); this module
only builds the parser from that registry and maps one error family to exit codes. Nothing heavy
(torch, transformers, datasets, matplotlib, bertviz, the Hub client) is imported before a command
runs, so ``--help`` and usage errors answer at once (``python scripts/benchmark_cli.py`` measures it).

Exit codes: 0 success, 1 bad data/model/run state, 2 bad command-line usage, 130 interrupted (Ctrl-C,
also while the libraries are still loading). Errors are one line on stderr.
"""

from __future__ import annotations

import logging
import sys

from .commands import build_parser
from .errors import MiniformerError

__all__ = ["build_parser", "main"]


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


def _run(args) -> int:
    from .commands import command_module

    try:
        _configure_logging(args.quiet)
    except ImportError as error:
        raise MiniformerError(f"{error}; reinstall miniformer-hf") from error
    return command_module(args.command).run(args)


def main(argv: list[str] | None = None) -> int:
    """Run ``miniformer`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    command = "miniformer"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version (0) and usage errors (2)
            return int(exit_.code or 0)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        command = f"miniformer {args.command}"
        return _run(args)
    except MiniformerError as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # unwritable folders, a full disk: said in one line, with what was kept
        from .runs import explain_os_error

        print(f"{command}: error: {explain_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:  # also while torch or transformers are being imported
        print(f"{command}: {str(error) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
