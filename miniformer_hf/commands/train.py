"""``miniformer train``: train a model and write a run folder (`miniformer_hf.training.run_training`).

The flags come from the options table (`miniformer_hf.options`); this module adds them, resolves what
was typed into a plan (errors name flags, exit code 2) and prints the run's summary.
"""

from __future__ import annotations

import argparse
import os
from ..options import OptionError, TrainOptions, add_arguments as add_option_arguments, resolve
from .arguments import display_path


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every option of `TrainOptions`, as a flag (``--max-steps`` for ``max_steps``)."""
    return add_option_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        plan = resolve(TrainOptions.from_namespace(args))  # before the heavy imports: a bad flag answers at once
        from ..training import run_training

        result = run_training(plan)
    except OptionError as error:  # said with flags, as the user typed them
        raise error.on_command_line() from None
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

