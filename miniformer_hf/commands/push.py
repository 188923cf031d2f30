"""``miniformer push --model RUN --repo-id NAME``: upload a run folder to the Hub (`miniformer_hf.sharing`)."""

from __future__ import annotations

import logging

from ..errors import MiniformerError

logger = logging.getLogger("miniformer_hf.commands.push")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `miniformer train`")
    parser.add_argument(
        "--repo-id", required=True, metavar="NAME", help="Hub repository, e.g. your-name/miniformer-dates"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, metavar="BRANCH", help="branch to push to (default: main)")
    parser.add_argument("--token", default=None, help="Hub access token (default: HF_TOKEN or `hf auth login`)")
    parser.add_argument("--commit-message", default=None, help="message of the upload commit")


def run(args) -> int:
    try:
        from ..sharing import push_run_folder
    except ImportError as error:
        raise MiniformerError(f"miniformer push is unavailable in this installation ({error})") from error
    commit = push_run_folder(
        args.model,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        token=args.token,
        commit_message=args.commit_message,
    )
    logger.info("Done: %s", commit.commit_url)
    return 0
