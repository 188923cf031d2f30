"""``miniformer demo``: serve the live attention page for a run folder or Hub repo, or write a Space.

Arguments only; the work is in :mod:`miniformer_hf.demo` (importing this module imports neither Gradio nor torch,
so ``miniformer demo --help`` stays fast).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..demo import DEFAULT_HOST, DEFAULT_PORT, DemoError, check_host, check_port
from ..demo_space import check_space_folder, check_space_repo_id

logger = logging.getLogger("miniformer_hf.demo")

HELP = "a live attention page (Gradio) for a run folder or Hub repo"
DESCRIPTION = (
    "Serve a local web page: type a source text, see the output (greedy or beam), the attention of each generated "
    "token over the source, and the top next tokens. Needs the demo extra."
)


def _argument_type(check):
    """An argparse type from a demo check: its DemoError message becomes the usage error (exit code 2)."""

    def parse(text: str):
        try:
            return check(text)
        except DemoError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.__name__.removeprefix("check_")  # argparse names the type in its messages
    return parse


def add_arguments(parser: Any) -> Any:
    """``miniformer demo --model RUN_OR_REPO [--host H] [--port P] [--share] [--write-space DIR [--space-repo ID]]``."""
    parser.add_argument("--model", required=True, metavar="RUN_OR_REPO",
                        help="run folder written by `miniformer train`, or a Hub repo id (user/name)")
    parser.add_argument("--host", default=DEFAULT_HOST, type=_argument_type(check_host),
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=_argument_type(check_port), default=DEFAULT_PORT,
                        help=f"port 1-65535 (default {DEFAULT_PORT}; 0: the first free port from {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) for a repo id")
    parser.add_argument("--write-space", metavar="DIR", default=None, type=_argument_type(check_space_folder),
                        help="write a Hugging Face Space (app.py, requirements.txt) for the repo id --model, then exit")
    parser.add_argument("--space-repo", metavar="REPO_ID", default=None, type=_argument_type(check_space_repo_id),
                        help="with --write-space and a local --model folder: the Hub repo the Space loads "
                        "(push the run there first); the folder gives the Space its examples")
    return parser


def run(args: Any) -> int:
    """Run ``miniformer demo``; returns the exit code. Raises DemoError / ImportError with one-line messages."""
    from .. import demo

    if args.space_repo and not args.write_space:
        raise DemoError("--space-repo only applies with --write-space DIR; add --write-space or drop --space-repo.")
    if args.write_space:
        return _write_space(args)
    demo.check_host_resolves(args.host, args.port)
    try:
        demo.import_gradio()  # before loading the model: a missing extra is reported at once
    except ImportError as error:
        raise DemoError(str(error)) from error
    demo_model = demo.load_demo_model(args.model, revision=args.revision)
    port = None if args.port == 0 else args.port
    app, url = demo.launch(demo_model, host=args.host, port=port, share=args.share, block=False)
    logger.info("Miniformer demo of %s: open %s in a browser (Ctrl+C stops it).", args.model, url)
    try:
        app.block_thread()
    finally:
        app.close()
    return 0


def _write_space(args: Any) -> int:
    from ..demo import held_out_examples
    from ..demo_space import write_space

    local = Path(args.model).expanduser().is_dir()
    repo_id = args.space_repo or args.model
    if local and not args.space_repo:
        raise DemoError(
            f"--model {args.model} is a local folder, but a Space runs on Hugging Face and cannot read this machine's "
            "files: its app.py would fail to load the model. Push the run first (miniformer push --model "
            f"{args.model} --repo-id user/name), then add --space-repo user/name (or pass --model user/name)."
        )
    examples = held_out_examples(args.model) if local else []
    written = write_space(args.write_space, repo_id, examples=examples)
    logger.info("Wrote a Space for %s to %s (%d files). Try it locally: cd %s && python app.py",
                repo_id, args.write_space, len(written), args.write_space)
    return 0
