"""``miniformer generate --model RUN "text" ...``: one output line per source text."""

from __future__ import annotations

import sys

from .arguments import positive_int, thread_count


def add_arguments(parser) -> None:
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
        type=positive_int("max_new_tokens"),
        default=None,
        help="longest output (default: the model's generation config)",
    )
    parser.add_argument(
        "--num-beams",
        type=positive_int("num_beams"),
        default=None,
        help="beam search width (default: the model's generation config, greedy)",
    )
    parser.add_argument("--threads", type=thread_count(), default=1, help="CPU threads for PyTorch (default 1)")


def generation_kwargs(args) -> dict[str, int]:
    """``max_new_tokens`` / ``num_beams`` for ``generate`` where the command line gave them."""
    kwargs = {}
    if getattr(args, "max_new_tokens", None) is not None:
        kwargs["max_new_tokens"] = args.max_new_tokens
    if getattr(args, "num_beams", None) is not None:
        kwargs["num_beams"] = args.num_beams
    return kwargs


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
