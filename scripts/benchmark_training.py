#!/usr/bin/env python
"""Benchmark the default `miniformer train`: wall time, held-out exact match, and exact match after
60, 90 and 300 seconds of training.

    python scripts/benchmark_training.py                   # the default run (about 10 minutes on 2 cores)
    python scripts/benchmark_training.py --bart            # also the BART reference, same data and budget
    python scripts/benchmark_training.py --task numbers --bart   # long outputs (~100 characters): both recipes
    python scripts/benchmark_training.py --json out.json -- --max-steps 500   # extra flags for miniformer train
    python scripts/benchmark_training.py --max-time 60s 90s 300s --seeds 0 1 2   # time budgets (see below)

The default run is started as a subprocess exactly as a user types it (`miniformer train`, plus
``--task`` when one is given), plus ``--eval-at-seconds 60 90 300``: when the training clock reaches
those marks, greedy exact match on the held-out test examples is measured. The training clock is wall time since training began minus the
time spent evaluating (periodic validation and these measurements), so evaluation does not count
against training; data generation, tokenizer training and start-up are not training either. The
wall time reported is the whole command, start-up to run folder.

With ``--max-time``, each budget (and each of ``--seeds``) is its own run, `miniformer train --max-time BUDGET
--seed S` as a user types it, whose schedule ends at the budget; the table gives the steps it reached in that time,
its training time and the held-out exact match of the model it published.

The BART reference (``--bart``) trains `BartForConditionalGeneration` of the same size as the seed
model from scratch with `Seq2SeqTrainer` on the same dates: character tokenizer, AdamW 1e-3, warmup
then inverse square root, batch 64, label smoothing 0.1, as many torch threads as the default
`miniformer train` uses (every core, at most 4; ``--bart-threads`` to change), and is measured with the same
clock. It is a point of comparison only and is not part of the package.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKS = (60.0, 90.0, 300.0)


def machine_load() -> str:
    try:
        return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "load average unavailable"


def train(arguments: list[str], output_dir: Path) -> tuple[dict, float, str]:
    """Run `miniformer train ARGUMENTS --output-dir OUTPUT_DIR --overwrite` as a user types it; return its
    metrics.json, its wall time and the machine's load average before it started."""
    executable = shutil.which("miniformer")
    command = [*([executable] if executable else [sys.executable, "-m", "miniformer_hf.cli"]), "train", *arguments,
               "--output-dir", str(output_dir), "--overwrite"]  # fmt: skip
    load_before = machine_load()
    started = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark: `{' '.join(command)}` failed with exit code {result.returncode}")
    return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8")), wall, load_before


def run_miniformer(extra: list[str], output_dir: Path, task: str | None = None) -> dict:
    arguments = [*(["--task", task] if task else []), "--eval-at-seconds", *map(str, MARKS), *extra]
    metrics, wall, load_before = train(arguments, output_dir)
    by_time = {
        f"exact_match_after_{int(entry['seconds'])}s": entry["exact_match"]
        for entry in metrics.get("by_training_time", [])
    }
    notes = []
    for mark in MARKS:
        key = f"exact_match_after_{int(mark)}s"
        if key not in by_time:
            # Training ended before this mark: the finished model is what a user has at that time.
            by_time[key] = metrics["eval_exact_match"]
            notes.append(f"training ended before {mark:.0f} s; {key} is the final model's")
    return {
        "name": f"miniformer (`miniformer train{' --task ' + task if task else ''}`)",
        "command": " ".join(["miniformer train", *(["--task", task] if task else []), *extra]),
        "wall_seconds": wall,
        "training_seconds": metrics.get("train_runtime"),
        "steps": metrics.get("max_steps"),
        "held_out_exact_match": metrics["eval_exact_match"],
        "held_out_examples": metrics["num_evaluated"]["test"],
        **by_time,
        "notes": notes,
        "load_before": load_before,
        "load_after": machine_load(),
    }


def run_max_time(budget: str, seed: str | None, extra: list[str], output_dir: Path, task: str | None = None) -> dict:
    """`miniformer train --max-time budget [--seed seed]`: one run of its own (see the module docstring)."""
    flags = [*(["--task", task] if task else []), "--max-time", budget, *(["--seed", seed] if seed is not None else [])]
    metrics, wall, load_before = train([*flags, *extra], output_dir)
    return {
        "name": " ".join(["miniformer train", *flags]),
        "command": " ".join(["miniformer train", *flags, *extra]),
        "max_time": metrics["max_time"],
        "wall_seconds": wall,
        "training_seconds": metrics["training_seconds"],
        "steps": metrics["max_steps"],
        "batch_size": metrics.get("per_device_train_batch_size"),
        "threads": metrics.get("threads"),
        "held_out_exact_match": metrics["eval_exact_match"],
        "held_out_examples": metrics["num_evaluated"]["test"],
        "load_before": load_before,
        "load_after": machine_load(),
    }


def run_bart_reference(max_seconds: float, num_threads: int = 1, task: str = "dates") -> dict:
    """BART of the seed model's size, from scratch, with the library's Seq2SeqTrainer (see module docstring)."""
    import torch

    torch.set_num_threads(num_threads)
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        TrainerCallback,
        set_seed,
    )

    from miniformer_hf.data import load_task
    from miniformer_hf.tokenization import tokenize_pairs, train_char_tokenizer
    from miniformer_hf.training import TrainingClockCallback, compute_text_metrics, generate_texts

    load_before = machine_load()
    started = time.perf_counter()
    set_seed(0)
    data = load_task(task, seed=0)
    tokenizer = train_char_tokenizer(list(data["train"]["source"]) + list(data["train"]["target"]))
    train = tokenize_pairs(data["train"], tokenizer)
    test = data["test"]
    longest_target = max(len(labels) for labels in train["labels"])
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=64, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, dropout=0.1,
        max_position_embeddings=max(128, 2 * longest_target),
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, forced_eos_token_id=None,
    )  # fmt: skip
    model = BartForConditionalGeneration(config)
    model.generation_config.max_new_tokens = longest_target + max(longest_target // 4, 2)  # as TransformerTrainer
    model.generation_config.num_beams = 1
    model.generation_config.max_length = None

    def exact_match(current_model) -> dict:
        predictions = generate_texts(current_model, tokenizer, test["source"], batch_size=256)
        return {"exact_match": compute_text_metrics(predictions, test["target"])["exact_match"]}

    class StopAfter(TrainerCallback):
        def __init__(self, clock):
            self.clock = clock

        def on_step_end(self, args, state, control, **kwargs):
            if self.clock.training_seconds() >= max_seconds:
                control.should_training_stop = True

    clock = TrainingClockCallback(MARKS, exact_match)
    output_dir = tempfile.mkdtemp(prefix="bart-reference-")
    arguments = Seq2SeqTrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=64, learning_rate=1e-3, lr_scheduler_type="inverse_sqrt",
        warmup_steps=200, label_smoothing_factor=0.1, max_steps=100_000, save_strategy="no", eval_strategy="no",
        logging_steps=100, report_to="none", seed=0, dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = Seq2SeqTrainer(
        model=model, args=arguments, train_dataset=train, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        callbacks=[clock, StopAfter(clock)],
    )  # fmt: skip
    trainer.train()
    training_seconds = clock.training_seconds()  # before the final evaluation, which is not training
    final = exact_match(model)["exact_match"]
    shutil.rmtree(output_dir, ignore_errors=True)
    return {
        "name": f"BART reference (Seq2SeqTrainer, stopped at {max_seconds:.0f} s of training)",
        "command": "python scripts/benchmark_training.py --bart",
        "wall_seconds": time.perf_counter() - started,
        "training_seconds": training_seconds,
        "steps": trainer.state.global_step,
        "held_out_exact_match": final,
        "held_out_examples": len(test),
        **{f"exact_match_after_{int(entry['seconds'])}s": entry["exact_match"] for entry in clock.results},
        "load_before": load_before,
        "load_after": machine_load(),
    }


def print_table(rows: list[dict]) -> None:
    columns = [
        ("run", "name", "{}"),
        ("wall s", "wall_seconds", "{:.0f}"),
        ("train s", "training_seconds", "{:.0f}"),
        ("steps", "steps", "{}"),
        ("EM @60 s", "exact_match_after_60s", "{:.3f}"),
        ("EM @90 s", "exact_match_after_90s", "{:.3f}"),
        ("EM @300 s", "exact_match_after_300s", "{:.3f}"),
        ("batch", "batch_size", "{}"),
        ("threads", "threads", "{}"),
        ("EM final", "held_out_exact_match", "{:.4f}"),
        ("load before/after", None, "{}"),
    ]
    # The columns some row fills: the marks for the default run, batch and threads for --max-time runs.
    columns = [column for column in columns if column[1] is None or any(column[1] in row for row in rows)]
    lines = [[title for title, _, _ in columns]]
    for row in rows:
        cells = []
        for _, key, fmt in columns:
            if key is None:
                cells.append(f"{row['load_before'].split()[-3]} / {row['load_after'].split()[-3]}")
            else:
                value = row.get(key)
                cells.append("-" if value is None else fmt.format(value))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    for index, line in enumerate(lines):
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def _as_train_checks(name: str):
    """argparse's ``type`` for a value passed on to `miniformer train`'s option ``name``: checked by the options
    table's own kind (so a typo fails before the first run, with the command's own message); the text is kept."""
    from miniformer_hf.option_values import ArgumentType
    from miniformer_hf.options import TrainOptions

    check = ArgumentType(name, next(f.metadata["kind"] for f in dataclasses.fields(TrainOptions) if f.name == name))

    def typed(text: str) -> str:
        check(text)
        return text

    typed.__name__ = name
    return typed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output-dir",
        default="runs/benchmark",
        help="run folder for the miniformer run (default runs/benchmark; replaced)",
    )
    parser.add_argument(
        "--json", default="benchmark_training.json", help="where to write the results (default benchmark_training.json)"
    )
    parser.add_argument("--bart", action="store_true", help="also train the BART reference for the same training time")
    parser.add_argument("--bart-only", action="store_true", help="run only the BART reference")
    parser.add_argument(
        "--bart-seconds",
        type=float,
        default=None,
        help="BART training budget (default: the miniformer run's training time, at least 300 s)",
    )
    parser.add_argument("--task", default=None, help="built-in task for both runs (default: miniformer's default, dates)")
    parser.add_argument(
        "--bart-threads",
        type=int,
        default=None,
        help="torch threads for the BART reference (default: as many as the default miniformer train uses)",
    )
    parser.add_argument(
        "--max-time",
        nargs="+",
        type=_as_train_checks("max_time"),
        default=None,
        metavar="DURATION",
        help="instead of the default run: one `miniformer train --max-time DURATION` run per budget (60s 90s 300s)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=_as_train_checks("seed"), default=None, metavar="SEED", help="with --max-time: one run per seed"
    )
    parser.add_argument("extra", nargs="*", help="extra flags for `miniformer train`, after --")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.max_time is None:
        parser.error("--seeds goes with --max-time; expected --max-time DURATION ... --seeds SEED ...")
    if args.max_time is not None and (args.bart or args.bart_only):
        parser.error("--max-time runs Miniformer only; expected it without --bart and --bart-only")

    rows = []
    if args.max_time is not None:
        for budget in args.max_time:
            for seed in args.seeds or [None]:
                rows.append(run_max_time(budget, seed, args.extra, Path(args.output_dir), args.task))
    elif not args.bart_only:
        rows.append(run_miniformer(args.extra, Path(args.output_dir), args.task))
    if args.bart or args.bart_only:
        budget = args.bart_seconds or max(MARKS[-1] + 1, (rows[0]["training_seconds"] or 0) if rows else 0)
        from miniformer_hf.runs import default_threads

        threads = args.bart_threads or default_threads()
        rows.append(run_bart_reference(budget, threads, args.task or "dates"))
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "task": args.task or "dates",
        "clock": "training seconds = wall time since training began minus time spent evaluating",
        "runs": rows,
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(rows)
    print(f"\nResults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
