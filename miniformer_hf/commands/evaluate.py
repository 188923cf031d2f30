"""``miniformer evaluate --model RUN --data FILE``: exact match, CER, BLEU and chrF on a data file or task split."""

from __future__ import annotations

import json
import time

from ..errors import MiniformerError
from .arguments import add_generation_arguments, add_threads_argument, generation_kwargs, positive_int
from .generate import warn_about_cut_outputs


def add_arguments(parser) -> None:
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
        "--batch-size", type=positive_int("batch_size"), default=256,
        help="examples per generation batch (default 256)",
    )
    add_generation_arguments(parser)
    parser.add_argument(
        "--limit", type=positive_int("limit"), default=None, help="score only the first this many examples"
    )
    parser.add_argument("--output", help="also write the metrics (and predictions) to this JSON file")
    add_threads_argument(parser)


def _dataset(args):
    from ..data import load_task, load_text_pairs

    if args.data:
        return load_text_pairs(args.data, args.source_column, args.target_column, validation_fraction=0)["train"]
    splits = load_task(args.task)
    if args.split not in splits:
        raise MiniformerError(
            f"--split {args.split!r} is not a split of task {args.task!r}; expected one of {sorted(splits)}.", 2
        )
    return splits[args.split]


def run(args) -> int:
    import torch

    from ..generation import check_generation_inputs, generate_texts_with_cuts
    from ..metrics import bleu_signature, compute_text_metrics
    from ..runs import load_run_folder, write_json

    torch.set_num_threads(args.threads)
    dataset = _dataset(args)
    model, tokenizer = load_run_folder(args.model, use="evaluate")
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    length = check_generation_inputs(model, tokenizer, dataset["source"], args.max_new_tokens)
    started = time.perf_counter()
    predictions, cut = generate_texts_with_cuts(
        model, tokenizer, dataset["source"], batch_size=args.batch_size, **generation_kwargs(args)
    )
    metrics = {
        **compute_text_metrics(predictions, dataset["target"]),
        "num_examples": len(dataset),
        "num_cut_by_generation_length": len(cut),
        "seconds": time.perf_counter() - started,
        "bleu_signature": bleu_signature(),
    }
    print(json.dumps(metrics, indent=2))
    warn_about_cut_outputs(cut, len(predictions), length, model)
    if args.output:
        records = [
            {"source": s, "target": t, "prediction": p}
            for s, t, p in zip(dataset["source"], dataset["target"], predictions)
        ]
        write_json(args.output, {"metrics": metrics, "predictions": records})
    return 0
