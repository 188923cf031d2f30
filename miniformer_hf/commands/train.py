"""``miniformer train``: train a model and write a run folder (`miniformer_hf.training.run_training`).

The arguments moved here from ``cli.py`` as they were; the options table (``options.py``) replaces them.
"""

from __future__ import annotations

import argparse
import os

from .. import runs
from ..runs import DEFAULTS, MODEL_SIZES, TrainingRunOptions
from .arguments import display_path, non_negative_int, positive_float, positive_int, probability, thread_count


def _add_data_arguments(parser: argparse.ArgumentParser, *, training: bool) -> None:
    group = parser.add_argument_group("data")
    if training:
        group.add_argument(
            "--task",
            choices=sorted(runs.TASK_NAMES),
            default=None,
            help=f"built-in task, generated locally (default: {DEFAULTS['task']}, unless --train-file is given)",
        )
        group.add_argument("--train-file", help="your own training pairs: .jsonl, .json, .csv or .tsv")
        group.add_argument(
            "--validation-file",
            help="validation pairs (default: 10%% of --train-file is held out; used for periodic evaluation)",
        )
        group.add_argument(
            "--test-file", help="held-out pairs for the final evaluation (default: the validation split)"
        )
        group.add_argument(
            "--num-train",
            type=positive_int,
            default=None,
            help="number of training examples a built-in task generates (default: the task's own, 50000 for dates)",
        )
        group.add_argument(
            "--dataset",
            metavar="NAME",
            help="a datasets/Hub dataset: a Hub repo id (wmt/wmt14), a local dataset folder or a save_to_disk folder; "
            "its train, validation and test splits are used as named",
        )
        group.add_argument("--dataset-config", metavar="CONFIG", help="the dataset's configuration (e.g. de-en)")
        group.add_argument("--dataset-revision", metavar="REV", help="a branch, tag or commit of the Hub dataset")
        group.add_argument(
            "--source-lang",
            help="with a 'translation' column of {language: text}: the source language key (e.g. en)",
        )
        group.add_argument("--target-lang", help="with a 'translation' column: the target language key (e.g. de)")
        group.add_argument(
            "--validation-split-percentage",
            type=float,
            default=5.0,
            metavar="PERCENT",
            help="percent of --dataset's train split held out for validation when it has no validation split (default 5)",
        )
        group.add_argument(
            "--streaming",
            action="store_true",
            help="read --dataset's train split as a stream instead of loading it (corpora larger than memory); needs "
            "--max-steps; without a validation split the first --eval-samples pairs are held out",
        )
        group.add_argument(
            "--tokenizer-sample",
            type=positive_int,
            default=100_000,
            metavar="N",
            help="with --streaming: train the tokenizer on the first N pairs of the stream (default 100000)",
        )
    group.add_argument(
        "--source-column", default="source", help="column (or JSON key) holding the input text (default: source)"
    )
    group.add_argument(
        "--target-column", default="target", help="column (or JSON key) holding the output text (default: target)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser, training=True)
    group = parser.add_argument_group("tokenizer")
    group.add_argument(
        "--tokenizer",
        choices=runs.TOKENIZER_KINDS,
        default="char",
        help="tokenizer trained on the training text: char (one token per character; default) or bpe (byte-level BPE)",
    )
    group.add_argument(
        "--vocab-size", type=positive_int, default=2000, help="BPE vocabulary size (default 2000; ignored for char)"
    )

    group = parser.add_argument_group("model")
    group.add_argument(
        "--size",
        choices=sorted(MODEL_SIZES),
        default=DEFAULTS["size"],
        help="preset: "
        + "; ".join(
            f"{name} d_model={s['d_model']} heads={s['n_heads']} layers={s['n_layers']} d_ff={s['d_ff']}"
            for name, s in MODEL_SIZES.items()
        )
        + f" (default {DEFAULTS['size']}, the seed's model; base is the paper's)",
    )
    group.add_argument("--d-model", type=positive_int, help="width d_model (overrides --size)")
    group.add_argument("--n-heads", type=positive_int, help="attention heads h (overrides --size)")
    group.add_argument("--n-layers", type=positive_int, help="layers N per stack (overrides --size)")
    group.add_argument("--d-ff", type=positive_int, help="feed-forward inner width d_ff (overrides --size)")
    group.add_argument("--dropout", type=probability, help="P_drop (overrides --size; default 0.1)")

    group = parser.add_argument_group("optimisation")
    length = group.add_mutually_exclusive_group()
    length.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help=f"optimizer steps to train for (default {DEFAULTS['max_steps']} unless --epochs is given)",
    )
    length.add_argument(
        "--epochs",
        type=positive_float,
        default=None,
        help="train for this many passes over the data instead of --max-steps",
    )
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULTS["batch_size"],
        help=f"examples per step (default {DEFAULTS['batch_size']})",
    )
    group.add_argument(
        "--learning-rate",
        type=positive_float,
        default=None,
        help=f"peak learning rate (default {DEFAULTS['learning_rate']}; with --schedule paper it is d_model^-0.5 * warmup^-0.5 and this flag is refused)",
    )
    group.add_argument(
        "--schedule",
        choices=runs.SCHEDULES,
        default=DEFAULTS["schedule"],
        help="learning-rate schedule: linear (warmup, then linear decay to zero at the last step; default), "
        "inverse_sqrt (warmup then ~1/sqrt(step), the paper's shape), paper (§5.3 exactly, Adam beta2 0.98 "
        "eps 1e-9), cosine, constant, constant_with_warmup",
    )
    group.add_argument(
        "--warmup-steps",
        type=non_negative_int,
        default=None,
        help=f"linear warmup steps (default {DEFAULTS['warmup_steps']}; 4000 with --schedule paper)",
    )
    group.add_argument(
        "--label-smoothing",
        type=probability,
        default=DEFAULTS["label_smoothing"],
        help="label smoothing epsilon (default 0.1, §5.4)",
    )
    group.add_argument(
        "--group-by-length",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS["group_by_length"],
        help="sort examples by source length within random pools of 4 batches: less padding (a step of the "
        "default run costs about 30%% less) with batches still mixed (default: on; --no-group-by-length for "
        "fully random batches)",
    )
    group.add_argument(
        "--tokens-per-batch",
        type=positive_int,
        default=None,
        metavar="TOKENS",
        help="batch by token count instead of --batch-size: similar-length pairs together, at most TOKENS padded "
        "tokens per side (the paper: 25000)",
    )
    group.add_argument(
        "--recipe",
        choices=sorted(runs.RECIPES),
        default=None,
        help="paper: the paper's recipe (§5, §6.1): shared byte-level BPE (--vocab-size 37000), --tokens-per-batch "
        "25000, --schedule paper, label smoothing 0.1, --average-last 5, beam 4 with length penalty 0.6 and "
        "outputs up to input + 50; flags you set to other values win. With --size base it is the base model",
    )
    group.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULTS["seed"],
        help="random seed for initialisation, data order and dropout (default 0)",
    )
    group.add_argument(
        "--threads",
        type=thread_count,
        default=DEFAULTS["threads"],
        help="CPU threads for PyTorch (default: every core this process may use, at most 4; "
        "use 1 on a machine busy with other work)",
    )

    group = parser.add_argument_group("evaluation and output")
    group.add_argument(
        "--output-dir", default=None, help="run folder to write (default runs/<task or train-file name>)"
    )
    group.add_argument(
        "--eval-steps",
        type=positive_int,
        default=DEFAULTS["eval_steps"],
        help=f"evaluate and save a checkpoint every this many steps (default {DEFAULTS['eval_steps']})",
    )
    group.add_argument(
        "--logging-steps",
        type=positive_int,
        default=DEFAULTS["logging_steps"],
        help="log the training loss every this many steps (default 50)",
    )
    group.add_argument(
        "--eval-samples",
        type=positive_int,
        default=DEFAULTS["eval_samples"],
        help=f"evaluate on at most this many validation/test examples (default {DEFAULTS['eval_samples']})",
    )
    group.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=None,
        help="longest generated output (default: longest training target + 25%%)",
    )
    group.add_argument(
        "--eval-at-seconds",
        type=positive_float,
        nargs="+",
        default=None,
        metavar="SECONDS",
        help="also measure test exact match when training time (evaluation excluded) reaches these marks; for benchmarks",
    )
    group.add_argument(
        "--no-visualize", action="store_true", help="skip the attention visualization of a held-out example"
    )
    group.add_argument(
        "--num-beams", type=positive_int, default=1, help="beam width for evaluation and the saved model (default 1, greedy)"
    )
    group.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="beam search length penalty alpha (default 1.0; the paper's 0.6 with --recipe paper)",
    )
    group.add_argument(
        "--max-new-tokens-over-input",
        type=positive_int,
        default=None,
        metavar="N",
        help="let outputs run to input length + N tokens (the paper's 50), for evaluation and generate",
    )
    group.add_argument(
        "--average-last",
        type=positive_int,
        default=1,
        metavar="N",
        help="keep the last N checkpoints (one every --eval-steps, the last at the final step) and evaluate and "
        "save their average, as §6.1 does with N=5 (default 1: the final weights)",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted (or finished) run in --output-dir from its last checkpoint",
    )
    state.add_argument(
        "--overwrite", action="store_true", help="replace an existing run folder (only once the new run has finished)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or log lines, only the final summary"
    )


def run(args) -> int:
    from ..training import run_training

    result = run_training(TrainingRunOptions.from_namespace(args))
    shown = display_path(result.output_dir)
    if result.already_finished:
        print(f"Run folder: {shown} already finished all its steps; nothing was changed.")
        return 0
    if os.environ.get("RANK", "0") != "0":
        return 0
    metrics = result.metrics
    print(
        f"Run folder: {shown}\n"
        f"Held-out exact match: {metrics['eval_exact_match']:.4f} ({metrics['num_evaluated']['test']} test examples); "
        f"CER {metrics['eval_cer']:.4f}; BLEU {metrics['eval_bleu']:.1f}\n"
        f"Steps: {metrics['max_steps']}; wall time {metrics['wall_seconds']:.0f} s"
    )
    return 0
