"""``miniformer generate --model RUN "text" ...``: one output line per source text."""

from __future__ import annotations

import sys

from .arguments import add_generation_arguments, add_threads_argument, generation_kwargs

__all__ = ["add_arguments", "generation_kwargs", "run", "warn_about_cut_outputs"]


def add_arguments(parser) -> None:
    parser.add_argument(
        "texts", nargs="+", metavar="TEXT", help="source texts, one output line each (quote texts with spaces)"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="run folder from `miniformer train` (or any saved seq2seq model with its tokenizer)",
    )
    add_generation_arguments(parser)
    add_threads_argument(parser)


def warn_about_cut_outputs(cut: list[int], total: int, length: int | None, model) -> None:
    """One warning line on stderr naming the outputs that the generation length cut before they ended."""
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


def run(args) -> int:
    import torch

    from ..generation import check_generation_inputs, generate_texts_with_cuts
    from ..runs import load_run_folder

    torch.set_num_threads(args.threads)
    model, tokenizer = load_run_folder(args.model, use="generate")
    length = check_generation_inputs(model, tokenizer, args.texts, args.max_new_tokens)
    outputs, cut = generate_texts_with_cuts(model, tokenizer, args.texts, **generation_kwargs(args))
    for text in outputs:
        print(text)
    warn_about_cut_outputs(cut, len(outputs), length, model)
    return 0
