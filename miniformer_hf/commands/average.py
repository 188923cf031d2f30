"""``miniformer average --model RUN --last N``: average a run's checkpoints into a new run folder (§6.1)."""

from __future__ import annotations

from pathlib import Path

from .arguments import display_path, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="run folder from `miniformer train` whose checkpoints to average")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--last", type=positive_int("last"), default=5, metavar="N",
        help="average the newest N checkpoints (default 5, §6.1)",
    )
    which.add_argument(
        "--checkpoints", nargs="+", metavar="PATH", help="average these checkpoint folders instead (oldest first)"
    )
    parser.add_argument("--output-dir", help="run folder to write (default: <model>-averaged)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --output-dir")


def run(args) -> int:
    from ..averaging import checkpoint_paths, write_averaged_run

    model = Path(args.model)
    output_dir = Path(args.output_dir) if args.output_dir else model.with_name(model.name + "-averaged")
    paths = [Path(path) for path in args.checkpoints] if args.checkpoints else checkpoint_paths(model, last=args.last)
    written = write_averaged_run(paths, output_dir, source_run=model, overwrite=args.overwrite)
    print(f"Run folder: {display_path(written)} (average of {', '.join(path.name for path in paths)})")
    return 0
