"""``miniformer visualize --model RUN "source text" --out DIR``: attention heatmaps and offline bertviz HTML."""

from __future__ import annotations

import logging

from ..errors import MiniformerError
from .arguments import add_generation_arguments, generation_kwargs

logger = logging.getLogger("miniformer_hf.commands.visualize")


def add_arguments(parser) -> None:
    parser.add_argument("source", help="source text to encode (quote it)")
    parser.add_argument("--model", required=True, help="run folder written by `miniformer train` (or any saved model)")
    parser.add_argument("--out", required=True, help="folder to write the HTML views and PNG plots into")
    parser.add_argument("--target", default=None, help="also show the model teacher-forced on this target text")
    add_generation_arguments(parser, max_new_tokens=64)


def run(args) -> int:
    try:
        from ..visualization import visualize_example
    except ImportError as error:
        raise MiniformerError(
            f"miniformer visualize is unavailable ({error}); install the viz extra: pip install 'miniformer-hf[viz]'"
        ) from error
    from ..generation import check_generation_inputs
    from ..runs import load_run_folder

    model, tokenizer = load_run_folder(args.model, use="visualize")  # config, checksum, NaN: one clear error
    check_generation_inputs(model, tokenizer, [args.source], args.max_new_tokens)  # before anything is written
    written = visualize_example(
        model, tokenizer, args.source, args.out, target_text=args.target, **generation_kwargs(args)
    )
    for name, path in written.items():
        logger.debug("%s: %s", name, path)
    logger.info(
        "Wrote %d attention views to %s (%s). Open %s in any browser; it needs no network.",
        len(written), args.out, ", ".join(sorted(path.name for path in written.values())),
        written["generation_html"],
    )  # fmt: skip
    return 0
