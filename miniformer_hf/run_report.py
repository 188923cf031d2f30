"""What a finished training run writes besides its weights: the content of ``metrics.json``, the loss
curve (losses, exact match and learning rate over the steps), the attention plots and the model card.

The pipeline (`training`) calls these at its last step; the file names are `runs`'.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import torch

from .metrics import bleu_signature
from .runs import MODEL_CARD_FILE, split_metrics

logger = logging.getLogger(__name__)

__all__ = ["loss_curve_figure", "run_metrics", "visualize_attention", "write_loss_curve", "write_model_card"]


def run_metrics(*, fitted, recorded: Mapping[str, Any], final_validation: dict, final_test: dict,
                 sizes: dict, task_name: str, fingerprint: str, num_train: int | None) -> dict[str, Any]:  # fmt: skip
    """metrics.json: flat keys as the model card (`sharing`) reads them; "eval_*" are the held-out test split.

    The figures' keys follow the schema of `runs` (`runs.split_metrics`: every name of
    `metrics.EVAL_METRIC_NAMES`, chrF included, for both splits). ``recorded``: the run's option values
    by name, as ``run_arguments.json`` holds them (``TrainOptions.to_dict()``).
    """
    hf_trainer = fitted.trainer.hf_trainer
    arguments, state = hf_trainer.args, hf_trainer.state
    metrics: dict[str, Any] = {
        "task": task_name,
        "eval_split": "test",
        **split_metrics(final_test, prefix="eval", source_prefix="test"),
        **split_metrics(final_validation, prefix="validation"),
        "train_runtime": fitted.train_metrics.get("train_runtime"),
        "train_loss": fitted.train_metrics.get("train_loss"),
        "max_steps": state.global_step,
        "epochs": round(state.epoch or 0, 3),
        "learning_rate": arguments.learning_rate,
        "schedule": recorded["schedule"],
        "warmup_steps": arguments.warmup_steps,
        "per_device_train_batch_size": arguments.per_device_train_batch_size,
        "label_smoothing": arguments.label_smoothing_factor,
        "seed": recorded["seed"],
        "train_samples": num_train,
        "num_evaluated": {"validation": len(fitted.evaluation), "test": len(fitted.test)},
        "num_parameters": fitted.model.num_parameters(),
        "model": sizes,
        "tokenizer": recorded["tokenizer"],
        "threads": torch.get_num_threads() if recorded["threads"] is None else recorded["threads"],
        "data_fingerprint": fingerprint,
    }
    chooser = hf_trainer.thread_chooser
    if chooser is not None:
        metrics["thread_choices"] = [{"step": step, "threads": threads} for step, threads in chooser.choices]
    metrics["training_seconds"] = hf_trainer.clock.seconds()  # evaluations excluded, across resumes
    if recorded["max_time"] is not None:
        metrics["max_time"] = recorded["max_time"]
    if fitted.clock is not None:
        metrics["by_training_time"] = fitted.clock.results
    if fitted.averaged_from:
        metrics["averaged_checkpoints"] = fitted.averaged_from
    metrics["bleu_signature"] = bleu_signature()  # BLEU is sacreBLEU's, on detokenized (decoded) text
    metrics["decoding"] = {name: recorded[name] for name in ("num_beams", "length_penalty", "max_new_tokens_over_input")}
    if recorded["tokens_per_batch"]:
        metrics["tokens_per_batch"] = recorded["tokens_per_batch"]
    if recorded["recipe"]:
        metrics["recipe"] = recorded["recipe"]
    dataset = recorded["dataset"]
    if dataset:
        # The model card lists a Hub id among the card's datasets; a local folder is named, not linked.
        local = "folder" if os.path.isdir(dataset) else "file" if os.path.isfile(dataset) else None
        metrics["dataset"] = f"{Path(dataset).name} (local {local})" if local else dataset
        metrics["dataset_config"] = recorded["dataset_config"]
        metrics["dataset_revision"] = recorded["dataset_revision"]
        metrics["dataset_languages"] = [recorded["source_lang"] or recorded["source_column"],
                                        recorded["target_lang"] or recorded["target_column"]]  # fmt: skip
    return metrics


def write_loss_curve(log_history: list[dict], path: Path) -> Path | None:
    """Draw `loss_curve_figure` into ``path`` (None, with a warning, without matplotlib)."""
    try:
        figure = loss_curve_figure(log_history)
    except ImportError:
        logger.warning("matplotlib is not installed, so no loss curve was drawn; install the viz extra.")
        return None
    figure.savefig(path)
    return path


def loss_curve_figure(log_history: list[dict]):
    """Two panels over the steps: losses and validation exact match above, the learning rate below."""
    from matplotlib.figure import Figure

    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    accuracy = [(entry["step"], entry["eval_exact_match"]) for entry in log_history if "eval_exact_match" in entry]
    rates = [(entry["step"], entry["learning_rate"]) for entry in log_history if "learning_rate" in entry]
    figure = Figure(figsize=(7, 5.5), dpi=120)
    axes, rate_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    if train:
        axes.plot(*zip(*train), label="training loss (label-smoothed)")
    if evaluation:
        axes.plot(*zip(*evaluation), "o-", label="validation loss")
    axes.set_ylabel("cross-entropy")
    axes.set_yscale("log")
    axes.grid(alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if accuracy:
        right = axes.twinx()
        right.plot(*zip(*accuracy), "s--", color="tab:green", label="validation exact match")
        right.set_ylabel("exact match")
        right.set_ylim(0, 1.02)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        axes.legend(handles, labels, loc="center right")  # the curves run along the top and bottom edges
    axes.set_title("Miniformer training")
    if rates:
        rate_axes.plot(*zip(*rates), color="tab:purple")
    rate_axes.set_ylabel("learning rate")
    rate_axes.set_xlabel("step")
    rate_axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    rate_axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def write_model_card(run_dir: Path, config, metrics: dict[str, Any], num_parameters: int) -> None:
    try:
        from .sharing import render_model_card
    except ImportError as error:
        logger.warning("No model card written (%s).", error)
        return
    render_model_card(config, metrics=metrics, num_parameters=num_parameters).save(run_dir / MODEL_CARD_FILE)


def visualize_attention(model, tokenizer, example: dict[str, str], out_dir: Path, max_new_tokens: int) -> dict[str, str]:
    try:
        from .visualization import visualize_example
    except ImportError as error:
        logger.warning("No attention visualization (%s); install the viz extra.", error)
        return {}
    try:
        written = visualize_example(
            model, tokenizer, example["source"], out_dir, target_text=example["target"], max_new_tokens=max_new_tokens
        )
    except Exception as error:  # a plot must not fail a finished training run
        logger.warning(
            "The attention visualization failed (%s: %s); the run is complete without it.", type(error).__name__, error
        )
        return {}
    return {name: os.path.relpath(path, out_dir.parent) for name, path in written.items()}
