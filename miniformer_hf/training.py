"""Training Miniformer: a thin layer over `transformers.Seq2SeqTrainer`.

`TransformerTrainer` keeps the seed's two-line API::

    trainer = TransformerTrainer(model=model, learning_rate=5e-5, batch_size=32)
    trainer.train(train_dataset, epochs=10)

and hands everything else to the Hugging Face trainer it builds (``trainer.hf_trainer``): any
`Seq2SeqTrainingArguments` field passes through as a keyword, and callbacks, ``evaluate``,
``predict`` and ``resume_from_checkpoint`` are the library's own.

What this module adds to the library:

* ``schedule="paper"``: the learning rate of §5.3, lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5),
  with Adam's β2 = 0.98 and ε = 1e-9. Its shape is exactly transformers' ``"inverse_sqrt"`` schedule
  (linear warmup, then decay ∝ step^-0.5, with ``timescale = warmup``); the paper's formula only fixes
  the peak, d_model^-0.5 · warmup^-0.5, which becomes the learning rate. ``schedule="inverse_sqrt"``
  keeps the shape with a peak you choose. ``label_smoothing=0.1`` is §5.4 (computed by the model, from its ``config.label_smoothing``).
* `compute_text_metrics` / `Seq2SeqMetrics`: exact match, character error rate (Levenshtein distance
  over reference length) and BLEU/chrF from sacrebleu, on generated text.
* `AtomicCheckpointSeq2SeqTrainer`: checkpoints are written into a staging folder and renamed into
  place only when complete, so a run killed at any moment never leaves a ``checkpoint-N`` folder that a
  resume would pick up half-written. (transformers 5.24 writes ``checkpoint-N`` in place.)
* `TrainingClockCallback`: evaluates held-out exact match when the *training* time (wall time minus the
  time spent evaluating) reaches given marks; the training benchmark uses it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu
import torch
from datasets import Dataset, DatasetDict, IterableDataset
from transformers import (
    DataCollatorForSeq2Seq,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    TrainerState,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, rotate_checkpoints

from . import runs
from .runs import CHECKPOINTS, DEFAULTS, MODEL_SIZES, SCHEDULES, RunError, TrainingRunOptions, publish_folder
from .generation import _length_over_input, check_generation_inputs, generate_texts, generate_texts_with_cuts, token_lengths
from .metrics import Seq2SeqMetrics, bleu_signature, character_error_rate, compute_text_metrics, edit_distance, exact_match
from .tokenization import tokenize_pairs

logger = logging.getLogger(__name__)

__all__ = [
    "AtomicCheckpointSeq2SeqTrainer",
    "PAPER_ADAM_BETA2",
    "PAPER_ADAM_EPSILON",
    "SCHEDULES",
    "Seq2SeqMetrics",
    "TrainingClockCallback",
    "TrainingRunOptions",
    "TrainingRunResult",
    "TransformerTrainer",
    "character_error_rate",
    "compute_text_metrics",
    "edit_distance",
    "exact_match",
    "NonFiniteTrainingError",
    "generate_texts",
    "generate_texts_with_cuts",
    "check_generation_inputs",
    "last_complete_checkpoint",
    "paper_learning_rate",
    "run_training",
]

# §5.3: Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9.
PAPER_ADAM_BETA2 = 0.98
PAPER_ADAM_EPSILON = 1e-9
PAPER_WARMUP_STEPS = 4000

# Our names for the schedules (`SCHEDULES`, from `runs`); any other name transformers' `get_scheduler`
# knows passes through.

# Checkpoints are staged here (inside output_dir) and renamed to output_dir/checkpoint-N when complete.
# The name does not match transformers' "checkpoint-<step>" pattern, so no resume ever picks it up.
STAGING_DIR = ".checkpoint-staging"


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule (§5.3)
# ---------------------------------------------------------------------------------------------


def paper_learning_rate(d_model: int, warmup_steps: int = PAPER_WARMUP_STEPS, scale: float = 1.0) -> float:
    """Peak learning rate of §5.3, reached at step = warmup_steps: ``scale · d_model^-0.5 · warmup^-0.5``.

    Before the peak the paper's lrate rises linearly (step · warmup^-1.5 · d_model^-0.5) and after it
    decays as d_model^-0.5 · step^-0.5 = peak · sqrt(warmup / step), which is transformers'
    ``"inverse_sqrt"`` schedule with ``timescale = warmup_steps`` and this peak as learning rate.
    (The library's scheduler is stepped after each update, so update k uses the paper's lrate(k - 1):
    the very first update has learning rate 0.)
    """
    if warmup_steps <= 0:
        raise ValueError(
            f"warmup_steps={warmup_steps} is invalid for the paper's schedule; expected a positive integer."
        )
    return scale * d_model**-0.5 * warmup_steps**-0.5


# ---------------------------------------------------------------------------------------------
# Checkpoints that are complete or absent
# ---------------------------------------------------------------------------------------------


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` (complete by construction), or None."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return None
    return get_last_checkpoint(folder)


class AtomicCheckpointSeq2SeqTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose checkpoints appear all at once.

    The library's own ``_save_checkpoint`` writes into ``<output_dir>/.checkpoint-staging/checkpoint-N``
    (a name that ``resume_from_checkpoint=True`` ignores); when every process has finished writing, the
    main process renames it to ``<output_dir>/checkpoint-N`` (one ``os.replace``, atomic on POSIX) and
    then rotates old checkpoints. A run killed at any moment leaves either the previous checkpoints or
    the new one, never a partial one where a resume looks.

    It also counts the seconds spent in ``evaluate`` (``evaluation_seconds``) so that callbacks can
    tell training time from evaluation time.
    """

    def __init__(self, *args, tokens_per_batch: int | None = None, length_pool: int | None = None, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        # The library sets model.config.use_cache to args.use_cache (False) for training; the saved
        # configs (checkpoints and the final model) keep the model's own value, so inference caches.
        self._model_use_cache = getattr(getattr(model, "config", None), "use_cache", None)
        super().__init__(*args, **kwargs)
        self.tokens_per_batch = tokens_per_batch
        self.length_pool = length_pool
        self._staging_root: str | None = None
        self.evaluation_seconds = 0.0
        # A model that smooths its own loss (Miniformer's config.label_smoothing, one blocked pass) is told
        # the factor, so the library's LabelSmoother does not compute a second, full log-softmax.
        config = getattr(self.accelerator.unwrap_model(self.model), "config", None)
        if isinstance(getattr(config, "label_smoothing", None), float):
            config.label_smoothing, self.label_smoother = float(self.args.label_smoothing_factor), None
        self.add_callback(NonFiniteCheck(check_gradients=getattr(self.accelerator, "scaler", None) is None))

    def _get_output_dir(self, trial):
        if self._staging_root is not None:
            return self._staging_root
        return super()._get_output_dir(trial=trial)

    def _save_checkpoint(self, model, trial):
        # A checkpoint is only ever written from finite weights, so the last one on disk is a good one.
        _check_finite_weights(self.model, self.state.global_step, "when its checkpoint was due")
        run_dir = self._get_output_dir(trial=trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING_DIR)
        staged, final = os.path.join(staging_root, name), os.path.join(run_dir, name)
        if self.args.should_save and os.path.exists(staged):
            shutil.rmtree(staged)  # left by a run killed while writing this very step
        self.accelerator.wait_for_everyone()
        # The library's own checkpoint writer, with its rotation disabled: it would run in the staging folder.
        save_total_limit, self.args.save_total_limit = self.args.save_total_limit, None
        self._staging_root = staging_root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root = None
            self.args.save_total_limit = save_total_limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            publish_folder(staged, final)
            shutil.rmtree(staging_root, ignore_errors=True)
            if self.state.best_global_step:
                best = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}")
                if os.path.isdir(best):
                    self.state.best_model_checkpoint = best
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def _model_config_for_saving(self):
        config = getattr(self.model, "config", None)
        if config is None or self._model_use_cache is None:
            yield
            return
        during_training, config.use_cache = config.use_cache, self._model_use_cache
        try:
            yield
        finally:
            config.use_cache = during_training

    def save_model(self, *args, **kwargs):
        with self._model_config_for_saving():
            return super().save_model(*args, **kwargs)

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        finally:
            config = getattr(self.model, "config", None)
            if config is not None and self._model_use_cache is not None:
                config.use_cache = self._model_use_cache

    def _get_train_sampler(self, train_dataset=None):
        if self.length_pool is None:
            return super()._get_train_sampler(train_dataset)
        from .batching import LengthPoolSampler

        dataset = self.train_dataset if train_dataset is None else train_dataset
        if not hasattr(dataset, "__len__") or "input_ids" not in getattr(dataset, "column_names", ()):
            return super()._get_train_sampler(train_dataset)  # a stream, or no token ids: the library's order
        lengths = [len(ids) for ids in dataset["input_ids"]]
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthPoolSampler(lengths, batch, self.length_pool, seed=self.args.seed)

    def get_train_dataloader(self):
        if self.tokens_per_batch is None:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        from .batching import TokenBatchSampler

        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        lengths = [max(len(source), len(target)) for source, target in zip(dataset["input_ids"], dataset["labels"])]
        sampler = TokenBatchSampler(lengths, self.tokens_per_batch, seed=self.args.seed)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)  # under several processes, each takes every n-th batch

    # -- FSDP on the CPU ----------------------------------------------------------------------------

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        _enable_fsdp_on_cpu(self)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # Under FSDP the model's class is torch's FSDP subclass of ours: saving it as is would copy torch's
        # FSDP sources instead of modeling_miniformer.py next to the weights. Save a plain copy instead,
        # built from the full state dict that `save_model` has gathered on the main process.
        plain_class = _unsharded_class(self.model)
        if plain_class is None:
            return super()._save(output_dir, state_dict=state_dict)
        if not self.args.should_save:
            return None
        if state_dict is None:
            raise ValueError("an FSDP model is saved from its gathered state dict; expected save_model(), not _save().")
        plain = plain_class(self.model.config)
        plain.load_state_dict(state_dict, strict=False)  # tied lm_head.weight may be absent; it follows the embedding
        plain.generation_config = copy.deepcopy(self.model.generation_config)
        sharded, self.model = self.model, plain
        try:
            return super()._save(output_dir, state_dict=plain.state_dict())
        finally:
            self.model = sharded

    def prediction_step(self, *args, **kwargs):
        # Seq2SeqTrainer fills library defaults (max_length=20 ...) into the model's generation config,
        # which then clashes with its max_new_tokens on every later generate(); keep the config as set.
        generation_config = copy.deepcopy(self.model.generation_config)
        inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
        if inputs is not None and "input_ids" in inputs:
            kwargs = _length_over_input(self.model, inputs["input_ids"], kwargs)
        try:
            return super().prediction_step(*args, **kwargs)
        finally:
            self.model.generation_config = generation_config

    def evaluate(self, eval_dataset=None, *args, **kwargs):
        started = time.perf_counter()
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        metrics = self.compute_metrics if isinstance(self.compute_metrics, Seq2SeqMetrics) else None
        previous = None if metrics is None else metrics.references
        if metrics is not None and isinstance(dataset, Dataset) and "target" in dataset.column_names:
            metrics.references = list(dataset["target"])  # score against the raw text, not decoded labels
        try:
            return super().evaluate(eval_dataset, *args, **kwargs)
        finally:
            if metrics is not None:
                metrics.references = previous
            self.evaluation_seconds += time.perf_counter() - started

    def training_step(self, model, inputs, *args, **kwargs):
        loss = super().training_step(model, inputs, *args, **kwargs)
        if not bool(torch.isfinite(loss).all()):
            raise NonFiniteTrainingError(self.state.global_step + 1, f"the training loss is {loss.item()}")
        return loss


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run_training`; the message says what was kept and how to continue."""


class NonFiniteTrainingError(RunError):
    """Training met a NaN or infinite loss, gradient or weight; ``step`` is the step it happened in."""

    def __init__(self, step: int, problem: str):
        self.step = step
        self.problem = problem
        super().__init__(f"training stopped at step {step}: {problem}")


def _local_shard(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _non_finite_tensors(named_tensors) -> list[str]:
    """Names of the tensors holding a NaN or infinity (one summed check first: the common case is none)."""
    named_tensors = [(name, tensor) for name, tensor in named_tensors if tensor is not None]
    if not named_tensors:
        return []
    with torch.no_grad():
        # Under FSDP each process holds shards (DTensors): check this process's own shard of every tensor.
        named_tensors = [(name, _local_shard(tensor.detach())) for name, tensor in named_tensors]
        tensors = [tensor for _, tensor in named_tensors]
        if hasattr(torch.nn.utils, "get_total_norm"):  # one fused pass (torch >= 2.6), about 0.6 ms per step here
            total = torch.nn.utils.get_total_norm(tensors)
        else:
            total = torch.stack([tensor.sum(dtype=torch.float64) for tensor in tensors]).sum()
        if bool(torch.isfinite(total)):
            return []
        # Non-finite total (or a finite-valued norm that overflowed): name the tensors that really are.
        return [name for name, tensor in named_tensors if not bool(torch.isfinite(tensor).all())]


def _check_finite_weights(model, step: int, when: str) -> None:
    bad = _non_finite_tensors(model.named_parameters())
    if bad:
        raise NonFiniteTrainingError(step, f"{len(bad)} weight tensor(s) are NaN or infinite {when} (first: {bad[0]})")


class NonFiniteCheck(TrainerCallback):
    """Stop training at the first non-finite gradient (before the optimizer uses it) or weight.

    Gradients are not checked under a mixed-precision gradient scaler, whose overflows are expected
    and skipped by design. The loss is checked in `AtomicCheckpointSeq2SeqTrainer.training_step`.
    """

    def __init__(self, check_gradients: bool = True):
        self.check_gradients = check_gradients

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.check_gradients and model is not None:
            bad = _non_finite_tensors((name, p.grad) for name, p in model.named_parameters())
            if bad:
                raise NonFiniteTrainingError(
                    state.global_step + 1, f"{len(bad)} gradient tensor(s) are NaN or infinite (first: {bad[0]})"
                )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            _check_finite_weights(model, state.global_step, "after the optimizer step")


def _fsdp_requested_on_cpu() -> bool:
    """``accelerate launch`` with an FSDP configuration (it sets ACCELERATE_USE_FSDP) on a machine without GPUs."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and _launched_on_cpu_only()


def _enable_fsdp_on_cpu(trainer: Seq2SeqTrainer) -> None:
    """Turn on the FSDP plugin that ``accelerate launch --config_file <fsdp config>`` asked for, on the CPU.

    accelerate 1.15 only switches to FSDP for accelerator backends and quietly falls back to plain
    data parallelism (every process holding the whole model) for CPU processes; FSDP2 itself
    (``torch.distributed.fsdp.fully_shard``) runs on the CPU with gloo since torch 2.6. The plugin is
    read from the same environment variables the launcher sets for GPUs (FSDP_VERSION,
    FSDP_AUTO_WRAP_POLICY, FSDP_TRANSFORMER_CLS_TO_WRAP, FSDP_STATE_DICT_TYPE ...).
    """
    state = trainer.accelerator.state
    if not _fsdp_requested_on_cpu() or getattr(state, "fsdp_plugin", None) is not None:
        return
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    # Both shared states: every AcceleratorState() built later copies distributed_type from PartialState.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    trainer.is_fsdp_enabled = True


def _unsharded_class(model) -> type | None:
    """The model's own class when FSDP2 has swapped in its ``FSDP<Name>`` subclass, else None."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without FSDP2
        return None
    if not isinstance(model, FSDPModule):
        return None
    return next(base for base in type(model).__mro__[1:] if not issubclass(base, FSDPModule))


# ---------------------------------------------------------------------------------------------
# Exact match against the training clock
# ---------------------------------------------------------------------------------------------


class TrainingClockCallback(TrainerCallback):
    """Evaluate ``evaluate_fn(model) -> dict`` when the training time reaches each of ``marks_seconds``.

    Training time is wall time since training began minus the seconds spent in the trainer's own
    evaluations and in these ones; checkpoint saving and logging count as training. Results go to
    ``self.results`` (a list of dicts with ``seconds``, ``training_seconds``, ``step`` and the metrics)
    and, if ``path`` is given, to a JSON file rewritten after each mark.
    """

    def __init__(self, marks_seconds: Sequence[float], evaluate_fn: Callable[[Any], Mapping[str, float]], path=None):
        self.marks = sorted(float(mark) for mark in marks_seconds)
        self.evaluate_fn = evaluate_fn
        self.path = path
        self.results: list[dict[str, float]] = []
        self.trainer: AtomicCheckpointSeq2SeqTrainer | None = None
        self._started: float | None = None
        self._own_evaluation_seconds = 0.0

    def training_seconds(self) -> float:
        if self._started is None:
            return 0.0
        trainer_evaluation = self.trainer.evaluation_seconds if self.trainer is not None else 0.0
        return time.perf_counter() - self._started - trainer_evaluation - self._own_evaluation_seconds

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        while self.marks and self.training_seconds() >= self.marks[0]:
            mark = self.marks.pop(0)
            measured = self.training_seconds()
            started = time.perf_counter()
            metrics = dict(self.evaluate_fn(model))
            self._own_evaluation_seconds += time.perf_counter() - started
            self.results.append({"seconds": mark, "training_seconds": measured, "step": state.global_step, **metrics})
            logger.info("After %.0f s of training (step %d): %s", mark, state.global_step, metrics)
            if self.path is not None and args.should_save:
                with open(self.path, "w", encoding="utf-8") as handle:
                    json.dump(self.results, handle, indent=2)


# ---------------------------------------------------------------------------------------------
# The seed's trainer
# ---------------------------------------------------------------------------------------------


class TransformerTrainer:
    """Train a Miniformer (or any seq2seq ``transformers`` model) with `Seq2SeqTrainer`.

    Args:
        model: the model to train, e.g. ``Transformer(vocab_size=1000, d_model=64, ...)``.
        tokenizer: needed for raw ``source``/``target`` text and for text metrics; optional when the
            datasets are already tokenized (``input_ids``, ``labels``).
        learning_rate: peak learning rate. Default 5e-5 (the library's), or with ``schedule="paper"``
            the paper's d_model^-0.5 · warmup^-0.5 (passing both is an error: the paper fixes it).
        batch_size: examples per device per step, for training and evaluation.
        schedule: ``"paper"`` (§5.3: warmup then inverse square root, Adam β2 0.98, ε 1e-9),
            ``"inverse_sqrt"`` (the same shape, your peak), or any transformers scheduler name.
        warmup_steps: linear warmup length; default 4000 with ``schedule="paper"``, otherwise 0.
        label_smoothing: ε_ls of §5.4 (the paper uses 0.1).
        output_dir: where checkpoints go (the library's default ``trainer_output`` if omitted).
        max_new_tokens: generation length for evaluation and `generate`; default: the longest
            training target plus a margin, or 64 if unknown.
        callbacks: `TrainerCallback`s passed to the library's trainer.
        quiet: no progress bars and no metric lines on the console (``log_history`` still has them).
        tokens_per_batch: batch by token count instead of ``batch_size`` (§5.1): examples of similar
            length together, at most this many padded tokens per side per batch (the paper: about 25,000).
        length_pool: sort examples by source length within random pools of this many batches
            (`batching.LengthPoolSampler`): less padding, batches still mixed. ``miniformer train`` uses 4.
        num_beams, length_penalty, max_new_tokens_over_input: decoding for evaluation and the saved
            generation config; default greedy. §6.1 uses beam 4, length penalty 0.6 and at most input
            length + 50 output tokens (``max_new_tokens_over_input=50``).
        **training_arguments: any other `Seq2SeqTrainingArguments` field (``weight_decay``,
            ``eval_strategy``, ``save_steps``, ``seed``, ``report_to`` ...), passed through unchanged.

    After `train`, ``hf_trainer`` is the `Seq2SeqTrainer`; use it for anything this class does not wrap.
    """

    def __init__(
        self,
        model,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        learning_rate: float | None = None,
        batch_size: int = 32,
        schedule: str = "linear",
        warmup_steps: int | None = None,
        label_smoothing: float = 0.0,
        output_dir: str | os.PathLike | None = None,
        max_new_tokens: int | None = None,
        callbacks: Sequence[TrainerCallback] | None = None,
        quiet: bool = False,
        tokens_per_batch: int | None = None,
        length_pool: int | None = None,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        max_new_tokens_over_input: int | None = None,
        **training_arguments,
    ):
        if tokens_per_batch is not None and tokens_per_batch <= 0:
            raise ValueError(f"tokens_per_batch={tokens_per_batch} is invalid; expected a positive number of tokens.")
        self.tokens_per_batch = tokens_per_batch
        if length_pool is not None and (isinstance(length_pool, bool) or not isinstance(length_pool, int) or length_pool < 1):
            raise ValueError(f"length_pool={length_pool!r} is invalid; expected a positive number of batches, e.g. 4.")
        self.length_pool = length_pool
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.max_new_tokens_over_input = max_new_tokens_over_input
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size} is invalid; expected a positive integer.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing={label_smoothing} is invalid; expected a value in [0, 1), e.g. 0.1 (§5.4)."
            )
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.callbacks = list(callbacks or [])
        self.quiet = quiet
        if quiet:
            training_arguments.setdefault("disable_tqdm", True)
        self.hf_trainer: AtomicCheckpointSeq2SeqTrainer | None = None
        self._arguments = self._training_arguments(
            learning_rate, batch_size, schedule, warmup_steps, label_smoothing, output_dir, training_arguments
        )

    def _training_arguments(
        self, learning_rate, batch_size, schedule, warmup_steps, label_smoothing, output_dir, extra
    ):
        arguments: dict[str, Any] = {
            "per_device_train_batch_size": batch_size,
            "per_device_eval_batch_size": batch_size,
            "label_smoothing_factor": label_smoothing,
            "predict_with_generate": True,
            "report_to": "none",
            "save_strategy": "no",
            "eval_strategy": "no",
            "logging_strategy": "steps",
            "logging_steps": 50,
            "dataloader_pin_memory": torch.cuda.is_available(),
        }
        if output_dir is not None:
            arguments["output_dir"] = os.fspath(output_dir)
        if schedule == "paper":
            if learning_rate is not None:
                raise ValueError(
                    f"learning_rate={learning_rate} conflicts with schedule='paper', whose peak is "
                    "d_model^-0.5 * warmup_steps^-0.5; expected one of them (use schedule='inverse_sqrt' "
                    "to choose the peak yourself)."
                )
            warmup_steps = PAPER_WARMUP_STEPS if warmup_steps is None else warmup_steps
            d_model = getattr(getattr(self.model, "config", None), "d_model", None)
            if d_model is None:
                raise ValueError("schedule='paper' needs model.config.d_model; expected a Miniformer model.")
            learning_rate = paper_learning_rate(d_model, warmup_steps)
            arguments.update(adam_beta2=PAPER_ADAM_BETA2, adam_epsilon=PAPER_ADAM_EPSILON, weight_decay=0.0)
            schedule = "inverse_sqrt"
        arguments["learning_rate"] = 5e-5 if learning_rate is None else learning_rate
        arguments["lr_scheduler_type"] = schedule
        arguments["warmup_steps"] = 0 if warmup_steps is None else warmup_steps
        if schedule == "inverse_sqrt" and arguments["warmup_steps"] > 0:
            # timescale = warmup makes the decay peak · sqrt(warmup / step), the paper's curve.
            arguments["lr_scheduler_kwargs"] = {"timescale": arguments["warmup_steps"]}
        if _launched_on_cpu_only():
            # Under torchrun / accelerate launch on a machine without an accelerator, the library only
            # sets up gloo DDP when told to use the CPU; without it each process would train alone.
            arguments["use_cpu"] = True
        arguments.update(extra)
        return arguments

    # -- data ------------------------------------------------------------------------------------

    def prepare_dataset(self, dataset: Dataset, keep_targets: bool = False) -> Dataset:
        """A tokenized dataset as is; raw ``source``/``target`` text tokenized with the tokenizer
        (with ``keep_targets``, the raw ``target`` column is kept beside the tokens, for metrics)."""
        if isinstance(dataset, IterableDataset):
            return self._prepare_stream(dataset)
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"expected a datasets.Dataset, got {type(dataset).__name__}; pass one split "
                "(e.g. dataset['train']) or build one with datasets.Dataset.from_dict."
            )
        columns = set(dataset.column_names)
        if {"input_ids", "labels"} <= columns:
            return dataset
        if {"source", "target"} <= columns:
            if self.tokenizer is None:
                raise ValueError(
                    "the dataset holds raw 'source'/'target' text but no tokenizer was given; expected "
                    "TransformerTrainer(model, tokenizer=...) or a dataset with 'input_ids' and 'labels'."
                )
            tokenized = tokenize_pairs(dataset, self.tokenizer)
            if keep_targets and self._arguments.get("remove_unused_columns", True):
                # The raw targets ride along (the library drops unused columns before batching) so
                # that metrics compare generations with the text itself, not its decoded tokens.
                tokenized = tokenized.add_column("target", list(dataset["target"]))
            return tokenized
        raise ValueError(
            f"the dataset has columns {sorted(columns)}; expected 'input_ids' and 'labels' (tokenized) "
            "or 'source' and 'target' (raw text, with a tokenizer)."
        )

    def _prepare_stream(self, stream: IterableDataset) -> IterableDataset:
        """A stream of raw pairs tokenized as it is read; pairs longer than the model's positional table
        (``max_position_embeddings``) are skipped, since one cannot be refused before training starts."""
        if self.tokenizer is None:
            raise ValueError("a stream of raw pairs needs a tokenizer; expected TransformerTrainer(model, tokenizer=...).")
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        tokenized = stream.map(partial(_encode_pairs, tokenizer=self.tokenizer), batched=True,
                               remove_columns=["source", "target"])  # fmt: skip
        return tokenized.filter(partial(_fits, limit=limit)) if limit else tokenized

    def _generation_config(self, train_dataset: Dataset | None) -> None:
        """Greedy decoding (or the beam search asked for) with room for the longest training target (or
        ``max_new_tokens``; with ``max_new_tokens_over_input`` N, the longest training source + N, the cap
        for tools that do not know the per-batch limit)."""
        max_new_tokens = self.max_new_tokens
        if not isinstance(train_dataset, Dataset):
            train_dataset = None  # a stream: its longest target is unknown (pass max_new_tokens)
        if max_new_tokens is None and train_dataset is not None and "labels" in train_dataset.column_names:
            if self.max_new_tokens_over_input is not None:
                longest = max((len(ids) for ids in train_dataset["input_ids"]), default=0)
                max_new_tokens = longest + self.max_new_tokens_over_input
            else:
                longest = max((len(labels) for labels in train_dataset["labels"]), default=0)
                max_new_tokens = max(longest + max(longest // 4, 2), 4)
        current = getattr(self.model, "generation_config", None)
        if current is None:
            return
        if max_new_tokens is None and current.max_new_tokens:
            max_new_tokens = current.max_new_tokens
        elif max_new_tokens is None and current.max_length and current.max_length != GenerationConfig().max_length:
            max_new_tokens = max(current.max_length - 1, 1)  # set by an earlier run of this trainer
        elif max_new_tokens is None:
            max_new_tokens = 64
        self.max_new_tokens = max_new_tokens
        config = self.model.config
        # Stored as max_length (the decoder start token plus max_new_tokens), the library's default
        # knob: a caller's generate(max_length=80) or generation_max_length=80 then replaces it, where a
        # stored max_new_tokens would silently take precedence over both.
        self.model.generation_config = GenerationConfig(
            max_length=max_new_tokens + 1,
            do_sample=False,
            num_beams=self.num_beams,
            **({"length_penalty": self.length_penalty} if self.num_beams > 1 else {}),
            **({"max_new_tokens_over_input": self.max_new_tokens_over_input} if self.max_new_tokens_over_input else {}),
            pad_token_id=config.pad_token_id,
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            decoder_start_token_id=config.decoder_start_token_id,
        )

    # -- the library's trainer -----------------------------------------------------------------

    def build(self, train_dataset: Dataset | None = None, eval_dataset: Dataset | None = None, **overrides):
        """Build (or rebuild) ``hf_trainer`` for these datasets; ``overrides`` are training arguments."""
        train = None if train_dataset is None else self.prepare_dataset(train_dataset)
        self._arguments.update(overrides)
        evaluation = None if eval_dataset is None else self.prepare_dataset(eval_dataset, keep_targets=True)
        arguments = dict(self._arguments)
        if evaluation is None and arguments.get("eval_strategy", "no") != "no":
            logger.warning(
                "eval_strategy=%r without an eval_dataset: evaluation is switched off.", arguments["eval_strategy"]
            )
            arguments["eval_strategy"] = "no"
        self._generation_config(train)
        collator = (
            DataCollatorForSeq2Seq(
                self.tokenizer,
                model=self.model,  # builds decoder_input_ids from labels, needed when label smoothing pops them
                label_pad_token_id=-100,
                pad_to_multiple_of=None,
            )
            if self.tokenizer is not None
            else _PaddingCollator(self.model)
        )
        metrics = Seq2SeqMetrics(self.tokenizer) if self.tokenizer is not None else None
        self.hf_trainer = AtomicCheckpointSeq2SeqTrainer(
            model=self.model,
            args=Seq2SeqTrainingArguments(**arguments),
            data_collator=collator,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=self.tokenizer,
            compute_metrics=metrics,
            callbacks=list(self.callbacks),
            tokens_per_batch=self.tokens_per_batch,
            length_pool=self.length_pool,
        )
        for callback in self.callbacks:
            if isinstance(callback, TrainingClockCallback):
                callback.trainer = self.hf_trainer
        if self.quiet:
            # With tqdm off the library prints each log dict instead; quiet means neither.
            self.hf_trainer.remove_callback(PrinterCallback)
            self.hf_trainer.remove_callback(ProgressCallback)
        return self.hf_trainer

    @property
    def args(self) -> Seq2SeqTrainingArguments:
        return self.hf_trainer.args if self.hf_trainer is not None else Seq2SeqTrainingArguments(**self._arguments)

    def train(
        self,
        train_dataset: Dataset | DatasetDict,
        epochs: float | None = None,
        *,
        max_steps: int | None = None,
        eval_dataset: Dataset | None = None,
        resume_from_checkpoint: str | bool | None = None,
        **overrides,
    ):
        """Train for ``epochs`` (default 3) or ``max_steps``; returns the library's `TrainOutput`.

        ``train_dataset`` may be a `DatasetDict`: its ``train`` split trains and its ``validation``
        split (if any, and no ``eval_dataset`` is given) evaluates. ``resume_from_checkpoint`` is
        passed to the library (``True`` means the newest complete checkpoint in ``output_dir``).
        """
        if isinstance(train_dataset, DatasetDict):
            if "train" not in train_dataset:
                raise ValueError(f"the DatasetDict has splits {sorted(train_dataset)}; expected a 'train' split.")
            if eval_dataset is None and "validation" in train_dataset:
                eval_dataset = train_dataset["validation"]
            train_dataset = train_dataset["train"]
        if epochs is not None:
            overrides["num_train_epochs"] = epochs
        if max_steps is not None:
            overrides["max_steps"] = max_steps
        trainer = self.build(train_dataset, eval_dataset, **overrides)
        if resume_from_checkpoint is True and last_complete_checkpoint(trainer.args.output_dir) is None:
            logger.info("No checkpoint in %s to resume from; starting from scratch.", trainer.args.output_dir)
            resume_from_checkpoint = None
        return trainer.train(resume_from_checkpoint=resume_from_checkpoint)

    def evaluate(self, eval_dataset: Dataset | None = None, metric_key_prefix: str = "eval", **gen_kwargs) -> dict:
        """Loss plus text metrics (exact match, CER, BLEU, chrF) of greedy generations on ``eval_dataset``."""
        dataset = None if eval_dataset is None else self.prepare_dataset(eval_dataset, keep_targets=True)
        if self.hf_trainer is None:
            self.build(None, dataset)
        return self.hf_trainer.evaluate(dataset, metric_key_prefix=metric_key_prefix, **gen_kwargs)

    def generate(self, texts: Sequence[str], **generate_kwargs) -> list[str]:
        """Generate (greedily, by default) a target for each source text."""
        if self.tokenizer is None:
            raise ValueError("generate needs a tokenizer; expected TransformerTrainer(model, tokenizer=...).")
        return generate_texts(
            self.model, self.tokenizer, texts, batch_size=self.args.per_device_eval_batch_size, **generate_kwargs
        )

    def save_model(self, output_dir: str | os.PathLike) -> None:
        """Save the model (safetensors, config with ``auto_map``, code files, generation config) and tokenizer.

        Under FSDP every process must call this (the full weights are gathered from all of them); only
        the main process writes.
        """
        output_dir = os.fspath(output_dir)
        if self.hf_trainer is not None and _unsharded_class(self.model) is not None:
            self.hf_trainer.save_model(output_dir)
            return
        self.model.save_pretrained(output_dir)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(output_dir)


def _encode_pairs(batch: dict[str, list], tokenizer) -> dict[str, list]:
    sources = tokenizer(batch["source"], truncation=False, return_token_type_ids=False)
    targets = tokenizer(batch["target"], truncation=False, return_token_type_ids=False, return_attention_mask=False)
    return {"input_ids": sources["input_ids"], "attention_mask": sources["attention_mask"], "labels": targets["input_ids"]}


def _fits(example: dict, limit: int) -> bool:
    return len(example["input_ids"]) <= limit and len(example["labels"]) <= limit


def _launched_on_cpu_only() -> bool:
    """Several processes were launched (WORLD_SIZE > 1) and there is no GPU or other accelerator."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()


class _PaddingCollator:
    """Pads ``input_ids``/``attention_mask`` with pad id and ``labels`` with -100 when there is no
    tokenizer (tokenized datasets only), and builds ``decoder_input_ids`` from the labels."""

    def __init__(self, model):
        config = model.config
        self.pad_token_id = config.pad_token_id
        self.model = model

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        def pad(key: str, value: int) -> torch.Tensor:
            rows = [list(feature[key]) for feature in features]
            width = max(len(row) for row in rows)
            return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)

        batch = {"input_ids": pad("input_ids", self.pad_token_id), "labels": pad("labels", -100)}
        if "attention_mask" in features[0]:
            batch["attention_mask"] = pad("attention_mask", 0)
        else:
            batch["attention_mask"] = (batch["input_ids"] != self.pad_token_id).long()
        if hasattr(self.model, "prepare_decoder_input_ids_from_labels"):
            batch["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        return batch


# ---------------------------------------------------------------------------------------------
# The whole run: data -> tokenizer -> model -> trainer -> run folder
# ---------------------------------------------------------------------------------------------


# --group-by-length sorts examples by length within random pools of this many batches (batching.LengthPoolSampler).
LENGTH_POOL_BATCHES = 4

# Larger models are refused before any allocation (a typo such as --d-model 100000 asks for 10^11).
MAX_PARAMETERS = 2_000_000_000


@dataclass
class TrainingRunResult:
    """What `run_training` did: the run folder, its metrics, and whether there was anything to do."""

    output_dir: Path
    metrics: dict[str, Any]
    already_finished: bool = False
    cut_outputs: int = 0


def run_training(options: TrainingRunOptions | None = None, **overrides) -> TrainingRunResult:
    """Train a Miniformer and write a run folder, exactly as ``miniformer train`` does.

    ``options`` is a `TrainingRunOptions` (the command's flags, same names); keywords override its
    fields, so ``run_training(task="copy", size="tiny", max_steps=50, output_dir="runs/copy")`` works
    in a notebook. The run is assembled in ``<output_dir>.incomplete`` (locked against a second run)
    and published with one rename when it has finished.

    Raises `RunError` (one line, with ``exit_code`` 2 for conflicting options and 1 otherwise) for
    anything the user can fix, `DataError` for bad data, and `NonFiniteTrainingError` (a `RunError`)
    when the loss, the gradients or the weights stop being finite.
    """
    options = dataclasses.replace(options or TrainingRunOptions(), **overrides).with_recipe()
    started = time.perf_counter()
    _check_options(options)
    if options.threads is None:
        options = dataclasses.replace(options, threads=runs.default_threads())
    torch.set_num_threads(options.threads)  # as the command does: this process's PyTorch threads
    task_name = _task_name(options)
    output_dir = runs.resolve_output_dir(Path("runs") / task_name if options.output_dir is None else options.output_dir)
    staging = runs.staging_folder(output_dir)
    sizes = model_sizes(options)
    runs.check_output_folder(options, output_dir, staging)
    resume_from = staging if (options.resume and runs.has_checkpoint(staging)) else output_dir
    if options.resume:
        runs.check_resume_options(options, resume_from)

    data = load_training_data(options)  # DataError (bad file) surfaces here, before anything is written
    fingerprinted = ("validation", "test") if options.streaming else ("train", "validation", "test")
    fingerprint = runs.data_fingerprint(
        (name, data[name]["source"], data[name]["target"]) for name in fingerprinted
    )  # a stream is too long to read twice: its validation/test pairs and the options stand for it
    if options.resume:
        _check_resume_data(resume_from, fingerprint)
    planned_steps = _planned_steps(options, None if options.streaming else len(data["train"]))
    done_steps = _checkpoint_step(resume_from / CHECKPOINTS) if options.resume else None
    if done_steps is not None and done_steps > planned_steps:
        raise RunError(
            f"--resume asks for {planned_steps} steps, but the run in {resume_from} has already done {done_steps}; "
            f"expected --max-steps {done_steps} or more (or a new run).",
            2,
        )
    if options.resume and resume_from == output_dir and _finished_steps(output_dir / CHECKPOINTS) == planned_steps:
        metrics = runs.read_json(output_dir / "metrics.json") if (output_dir / "metrics.json").is_file() else {}
        logger.info("%s already finished its %d steps; nothing to do.", output_dir, planned_steps)
        return TrainingRunResult(output_dir, metrics, already_finished=True)

    set_seed(options.seed)
    # Under torchrun / accelerate launch, the main process writes files and the others wait for it.
    distributed = _distributed_state()
    is_main = distributed is None or distributed.is_main_process
    if distributed is not None:
        distributed.wait_for_everyone()  # every process has checked the folders before any is created
    lock = runs.RunLock(staging)
    # Folders this run creates above the staging folder (runs/ for runs/dates), removed again on a failed start.
    new_parents = [parent for parent in staging.parents if not parent.exists()]
    if is_main:
        _prepare_staging(options, output_dir, staging, lock)
    try:
        result = _train_in_staging(
            options, data, sizes, task_name, output_dir, staging, fingerprint, planned_steps, started,
            distributed, is_main,
        )  # fmt: skip
    except BaseException as error:
        if is_main:
            lock.release()
            if not runs.has_checkpoint(staging):
                shutil.rmtree(staging, ignore_errors=True)  # a failed start leaves nothing behind
                for parent in new_parents:  # innermost first
                    with contextlib.suppress(OSError):
                        parent.rmdir()  # only if still empty
        raise _explained(error, staging) from error
    lock.release()
    return result


def _task_name(options: TrainingRunOptions) -> str:
    """What the run is named after: the training file, the dataset (its last path part) or the task."""
    if options.train_file:
        return Path(options.train_file).stem
    if options.dataset:
        return Path(options.dataset.rstrip("/")).name or "dataset"
    return options.task or DEFAULTS["task"]


def _check_options(options: TrainingRunOptions) -> None:
    sources = [flag for flag, value in (("--task", options.task), ("--train-file", options.train_file),
                                        ("--dataset", options.dataset)) if value]  # fmt: skip
    if len(sources) > 1:
        raise RunError(
            f"{' and '.join(sources)} both given; expected one source of training data (a built-in task, your "
            "own files, or a datasets/Hub dataset).",
            2,
        )
    if options.dataset is None:
        dataset_only = [flag for flag, value in (
            ("--dataset-config", options.dataset_config), ("--dataset-revision", options.dataset_revision),
            ("--source-lang", options.source_lang), ("--target-lang", options.target_lang),
        ) if value]  # fmt: skip
        if dataset_only:
            raise RunError(f"{', '.join(dataset_only)} only apply to --dataset; expected --dataset NAME too.", 2)
    elif options.num_train:
        raise RunError("--num-train only applies to built-in tasks; drop it with --dataset.", 2)
    if not 0 <= options.validation_split_percentage < 100:
        raise RunError(
            f"--validation-split-percentage {options.validation_split_percentage} is outside [0, 100); expected a "
            "percentage such as 5.",
            2,
        )
    if options.streaming:
        if not options.dataset:
            raise RunError("--streaming reads a --dataset as a stream; expected --dataset NAME too.", 2)
        if options.max_steps is None or options.epochs is not None:
            raise RunError(
                "--streaming needs --max-steps (a stream has no known length, so --epochs cannot be counted); "
                "expected --max-steps N.",
                2,
            )
        if options.tokens_per_batch:
            raise RunError(
                "--tokens-per-batch sorts the whole training set by length, which a stream cannot; expected "
                "--batch-size with --streaming.",
                2,
            )
    if options.average_last < 1:
        raise RunError(f"--average-last {options.average_last}; expected a positive number of checkpoints.", 2)
    if options.schedule == "paper" and options.learning_rate is not None:
        raise RunError(
            "--learning-rate conflicts with --schedule paper (the paper fixes the peak at d_model^-0.5 * "
            "warmup^-0.5); drop one of them.",
            2,
        )
    if options.train_file is None and (options.validation_file or options.test_file):
        raise RunError("--validation-file/--test-file need --train-file; expected your own training file too.", 2)
    if options.train_file and options.task:
        raise RunError("--task and --train-file both given; expected a built-in task or your own files, not both.", 2)
    if options.train_file and options.num_train:
        raise RunError("--num-train only applies to built-in tasks; drop it with --train-file.", 2)
    if options.max_steps is not None and options.epochs is not None:
        raise RunError("--max-steps and --epochs both given; expected one way to set the length of the run.", 2)
    if options.resume and options.overwrite:
        raise RunError("--resume and --overwrite both given; expected one of them.", 2)


def model_sizes(options: TrainingRunOptions) -> dict[str, Any]:
    """The model's sizes: the ``size`` preset with any explicit ``d_model`` ... ``dropout`` on top."""
    if options.size not in MODEL_SIZES:
        raise RunError(f"--size {options.size!r} is unknown; expected one of {sorted(MODEL_SIZES)}.", 2)
    sizes = dict(MODEL_SIZES[options.size])
    for name in ("d_model", "n_heads", "n_layers", "d_ff", "dropout"):
        if getattr(options, name) is not None:
            sizes[name] = getattr(options, name)
    if sizes["d_model"] % sizes["n_heads"]:
        raise RunError(
            f"--d-model {sizes['d_model']} is not divisible by --n-heads {sizes['n_heads']}; expected d_model a "
            "multiple of n_heads.",
            2,
        )
    # Refuse before allocating: each layer holds about 4·D² (attention) + 2·D·d_ff (feed-forward)
    # weights, the decoder's twice the attention; the embeddings add vocabulary · D.
    d_model, d_ff, layers = sizes["d_model"], sizes["d_ff"], sizes["n_layers"]
    estimate = layers * (12 * d_model * d_model + 4 * d_model * d_ff)
    if estimate > MAX_PARAMETERS:
        raise RunError(
            f"the model would have about {estimate:,} parameters (d_model {d_model}, d_ff {d_ff}, {layers} layers), "
            f"over the limit of {MAX_PARAMETERS:,}; expected a smaller --d-model/--d-ff/--n-layers (the paper's "
            "big model has 213 million).",
            2,
        )
    return sizes


def load_training_data(options: TrainingRunOptions) -> DatasetDict:
    """The splits to train on (train, validation, test); `DataError` on bad files or requests."""
    from .data import load_dataset_pairs, load_task, load_text_pairs

    if options.dataset and options.streaming:
        return _load_streamed_dataset(options)
    if options.dataset:
        data = load_dataset_pairs(**_dataset_request(options), validation_split_percentage=options.validation_split_percentage)
        if "validation" not in data:
            raise RunError(
                f"--dataset {options.dataset} has no 'validation' split and --validation-split-percentage is 0; "
                "expected a percentage above 0 to hold some training pairs out for evaluation.",
                2,
            )
    elif options.train_file:
        files = {"train": options.train_file}
        if options.validation_file:
            files["validation"] = options.validation_file
        if options.test_file:
            files["test"] = options.test_file
        data = load_text_pairs(
            files, options.source_column, options.target_column, seed=options.seed, with_origin=True
        )
    else:
        kwargs: dict[str, Any] = {"seed": options.seed}
        if options.num_train is not None:
            kwargs["num_train"] = options.num_train
        data = load_task(options.task or DEFAULTS["task"], **kwargs)
    if "test" not in data:
        data["test"] = data["validation"]
    return data


def _dataset_request(options: TrainingRunOptions) -> dict[str, Any]:
    """The `load_dataset_pairs` arguments that ``--dataset`` and its companion flags give."""
    return dict(
        name=options.dataset,
        config=options.dataset_config,
        revision=options.dataset_revision,
        source_lang=options.source_lang,
        target_lang=options.target_lang,
        source_column=options.source_column,
        target_column=options.target_column,
        seed=options.seed,
    )


def _load_streamed_dataset(options: TrainingRunOptions) -> dict:
    """``train`` as a stream; ``validation`` and ``test`` (at most ``eval_samples`` pairs each) in memory."""
    from .data import load_dataset_pairs

    streams = load_dataset_pairs(**_dataset_request(options), streaming=True, validation_examples=options.eval_samples)
    data = {"train": streams["train"]}
    for split in ("validation", "test"):
        if split in streams:
            data[split] = Dataset.from_list(list(streams[split].take(options.eval_samples)))
    data.setdefault("test", data["validation"])
    return data


def _tokenizer_texts(train, options: TrainingRunOptions) -> list[str]:
    """The texts the tokenizer learns from: all of an in-memory training set, the first
    ``tokenizer_sample`` pairs of a stream."""
    if not options.streaming:
        return list(train["source"]) + list(train["target"])
    pairs = list(train.take(options.tokenizer_sample))
    return [pair["source"] for pair in pairs] + [pair["target"] for pair in pairs]


def _check_resume_data(folder: Path, fingerprint: str) -> None:
    saved_path = folder / runs.RUN_ARGUMENTS
    saved = runs.read_json(saved_path).get("data_fingerprint") if saved_path.is_file() else None
    if saved is not None and saved != fingerprint:
        raise RunError(
            f"--resume refused: the data differ from those the run in {folder} was trained on (fingerprint "
            f"{saved[:19]}..., now {fingerprint[:19]}...); its tokenizer and metrics would no longer fit. Restore "
            "the original data, or start a new run (--overwrite or another --output-dir)."
        )


def _planned_steps(options: TrainingRunOptions, num_train: int) -> int:
    if options.epochs is None:
        return options.max_steps or DEFAULTS["max_steps"]
    world = max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    steps_per_epoch = max(math.ceil(num_train / (options.batch_size * world)), 1)
    return math.ceil(options.epochs * steps_per_epoch)


def _checkpoint_step(checkpoints: Path) -> int | None:
    last = last_complete_checkpoint(checkpoints)
    if last is None:
        return None
    return TrainerState.load_from_json(os.path.join(last, "trainer_state.json")).global_step


def _finished_steps(checkpoints: Path) -> int | None:
    """The step of the newest checkpoint when it is also the last step of its run, else None."""
    last = last_complete_checkpoint(checkpoints)
    if last is None:
        return None
    state = TrainerState.load_from_json(os.path.join(last, "trainer_state.json"))
    return state.global_step if state.global_step >= state.max_steps else None


def _prepare_staging(options: TrainingRunOptions, output_dir: Path, staging: Path, lock: runs.RunLock) -> None:
    """Create (or reuse, when resuming) the staging folder and take its lock."""
    if staging.is_dir() and not (options.resume and runs.has_checkpoint(staging)):
        # Nobody holds its lock (checked before): an abandoned start, or --overwrite starting over.
        shutil.rmtree(staging)
    if options.resume and not staging.is_dir():
        # Continue a finished run without touching it until the end.
        shutil.copytree(output_dir, staging, ignore=shutil.ignore_patterns(runs.LOCK_FILE))
    staging.mkdir(parents=True, exist_ok=True)
    if not lock.try_acquire():
        raise RunError(
            f"a run (PID {lock.owner()}) started writing {output_dir} at the same moment; nothing was touched. "
            "Wait for it to finish, or choose another --output-dir."
        )


def _explained(error: BaseException, staging: Path) -> BaseException:
    """The exception to raise for ``error``: disk-full and non-finite failures get a one-line story."""
    checkpoint = last_complete_checkpoint(staging / CHECKPOINTS)
    kept = (
        f"the last good checkpoint, {checkpoint}, is kept (rerun the same command with --resume)"
        if checkpoint
        else "no checkpoint had been written, so nothing was kept"
    )
    if isinstance(error, NonFiniteTrainingError):
        return NonFiniteTrainingError(
            error.step,
            f"{error.problem}; {kept}, and no run folder was written. Expected finite values: lower "
            "--learning-rate or raise --warmup-steps.",
        )
    if isinstance(error, KeyboardInterrupt):
        hint = "rerun the same command with --resume" if checkpoint else "rerun the same command to start again"
        return RunInterrupted(f"interrupted; {kept.split(' (rerun')[0]}: {hint}.")
    if runs.disk_full(error) or "No space left" in str(error) or "StorageFull" in str(error):
        return RunError(f"no space left on the device while writing {staging}; {kept}. Free some space first.")
    return error


def _train_in_staging(
    options, data, sizes, task_name, output_dir, staging, fingerprint, planned_steps, started, distributed, is_main
) -> TrainingRunResult:
    from transformers import PreTrainedTokenizerFast

    from . import MiniformerConfig, MiniformerForConditionalGeneration
    from .tokenization import train_tokenizer

    resuming = options.resume and last_complete_checkpoint(staging / CHECKPOINTS) is not None
    if is_main and not (resuming and (staging / "tokenizer.json").is_file()):
        texts = _tokenizer_texts(data["train"], options)
        kind_kwargs = {"vocab_size": options.vocab_size} if options.tokenizer == "bpe" else {}
        try:
            tokenizer = train_tokenizer(texts, kind=options.tokenizer, **kind_kwargs)
        except ValueError as error:
            raise RunError(f"--tokenizer {options.tokenizer} --vocab-size {options.vocab_size}: {error}", 2) from error
        tokenizer.save_pretrained(staging)
    if is_main:
        runs.write_json(staging / runs.RUN_ARGUMENTS, {**options.to_dict(), "data_fingerprint": fingerprint})
    if distributed is not None:
        distributed.wait_for_everyone()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(staging)  # the same tokenizer in every process

    config = MiniformerConfig(vocab_size=len(tokenizer), **sizes)
    if options.max_new_tokens is not None and options.max_new_tokens > config.max_position_embeddings:
        raise RunError(
            f"--max-new-tokens {options.max_new_tokens} exceeds the model's positional table of "
            f"{config.max_position_embeddings} positions; expected --max-new-tokens {config.max_position_embeddings} "
            "or less.",
            2,
        )
    _check_sequence_lengths(data, tokenizer, config.max_position_embeddings)
    finished_checkpoint = None
    if resuming and _finished_steps(staging / CHECKPOINTS) == planned_steps:
        # Killed after its last step (during the final evaluation or save): finish from that checkpoint
        # exactly as the uninterrupted run would have, without training another step.
        finished_checkpoint = last_complete_checkpoint(staging / CHECKPOINTS)
        model = MiniformerForConditionalGeneration.from_pretrained(finished_checkpoint)
    else:
        model = MiniformerForConditionalGeneration(config)
    logger.info("Model: %s parameters, %s", f"{model.num_parameters():,}", sizes)

    evaluation = data["validation"].select(range(min(options.eval_samples, len(data["validation"]))))
    test = data["test"].select(range(min(options.eval_samples, len(data["test"]))))
    callbacks = []
    clock = None
    if options.eval_at_seconds:

        def test_exact_match(current_model) -> dict[str, float]:
            predictions = generate_texts(current_model, tokenizer, test["source"], batch_size=256)
            return {"exact_match": compute_text_metrics(predictions, test["target"])["exact_match"]}

        clock = TrainingClockCallback(options.eval_at_seconds, test_exact_match, path=staging / "metrics_by_time.json")
        callbacks.append(clock)

    warmup = options.warmup_steps
    if warmup is None and options.schedule != "paper":
        warmup = DEFAULTS["warmup_steps"]
    length = (
        {"num_train_epochs": options.epochs} if options.epochs else {"max_steps": options.max_steps or DEFAULTS["max_steps"]}
    )
    trainer = TransformerTrainer(
        model,
        tokenizer,
        learning_rate=None if options.schedule == "paper" else (options.learning_rate or DEFAULTS["learning_rate"]),
        batch_size=options.batch_size,
        schedule=options.schedule,
        warmup_steps=warmup,
        label_smoothing=options.label_smoothing,
        output_dir=staging / CHECKPOINTS,
        max_new_tokens=options.max_new_tokens,
        callbacks=callbacks,
        quiet=options.quiet,
        seed=options.seed,
        eval_strategy="steps",
        eval_steps=options.eval_steps,
        save_strategy="steps",
        save_steps=options.eval_steps,
        save_total_limit=options.average_last,  # the checkpoints to average (1: only the newest, for resume)
        logging_steps=options.logging_steps,
        per_device_eval_batch_size=max(options.batch_size, 256),
        dataloader_num_workers=0,
        length_pool=LENGTH_POOL_BATCHES if options.group_by_length else None,
        tokens_per_batch=options.tokens_per_batch,
        num_beams=options.num_beams,
        length_penalty=options.length_penalty,
        max_new_tokens_over_input=options.max_new_tokens_over_input,
        **length,
    )
    if finished_checkpoint is None:
        train_output = trainer.train(
            data["train"], eval_dataset=evaluation, resume_from_checkpoint=True if resuming else None
        )
        train_metrics = train_output.metrics
    else:
        trainer.build(data["train"], evaluation)
        trainer.hf_trainer.state = TrainerState.load_from_json(os.path.join(finished_checkpoint, "trainer_state.json"))
        train_metrics = {}
    training_seconds = time.perf_counter() - started
    state = trainer.hf_trainer.state
    averaged_from = _average_last_checkpoints(trainer, staging / CHECKPOINTS, options.average_last, distributed)

    final_validation = trainer.evaluate(evaluation, metric_key_prefix="validation")
    final_test = trainer.evaluate(test, metric_key_prefix="test")
    arguments = trainer.hf_trainer.args
    # Flat keys as the model card (miniformer_hf.sharing) reads them; "eval_*" are the held-out test split.
    metrics: dict[str, Any] = {
        "task": task_name,
        "eval_split": "test",
        **{f"eval_{name}": final_test[f"test_{name}"] for name in ("exact_match", "cer", "bleu", "chrf", "loss")},
        **{
            f"validation_{name}": final_validation[f"validation_{name}"]
            for name in ("exact_match", "cer", "bleu", "loss")
        },
        "train_runtime": train_metrics.get("train_runtime"),
        "train_loss": train_metrics.get("train_loss"),
        "max_steps": state.global_step,
        "epochs": round(state.epoch or 0, 3),
        "learning_rate": arguments.learning_rate,
        "schedule": options.schedule,
        "warmup_steps": arguments.warmup_steps,
        "per_device_train_batch_size": arguments.per_device_train_batch_size,
        "label_smoothing": arguments.label_smoothing_factor,
        "seed": options.seed,
        "train_samples": None if options.streaming else len(data["train"]),
        "num_evaluated": {"validation": len(evaluation), "test": len(test)},
        "num_parameters": model.num_parameters(),
        "model": sizes,
        "tokenizer": options.tokenizer,
        "threads": options.threads,
        "data_fingerprint": fingerprint,
    }
    if clock is not None:
        metrics["by_training_time"] = clock.results
    if averaged_from:
        metrics["averaged_checkpoints"] = averaged_from
    metrics["bleu_signature"] = bleu_signature()  # BLEU is sacreBLEU's, on detokenized (decoded) text
    metrics["decoding"] = {"num_beams": options.num_beams, "length_penalty": options.length_penalty,
                           "max_new_tokens_over_input": options.max_new_tokens_over_input}  # fmt: skip
    if options.tokens_per_batch:
        metrics["tokens_per_batch"] = options.tokens_per_batch
    if options.recipe:
        metrics["recipe"] = options.recipe
    if options.dataset:
        # The model card lists a Hub id among the card's datasets; a local folder is named, not linked.
        local = "folder" if os.path.isdir(options.dataset) else "file" if os.path.isfile(options.dataset) else None
        metrics["dataset"] = f"{Path(options.dataset).name} (local {local})" if local else options.dataset
        metrics["dataset_config"] = options.dataset_config
        metrics["dataset_revision"] = options.dataset_revision
        metrics["dataset_languages"] = [options.source_lang or options.source_column,
                                        options.target_lang or options.target_column]  # fmt: skip
    if _unsharded_class(model) is not None:
        # FSDP: each process holds a shard. Gather the full weights (every process takes part) into a plain
        # model on the main process, which saves, checks and visualizes it like any other.
        model = _gathered_model(trainer)
        trainer.model = model
    if not is_main:
        return TrainingRunResult(output_dir, metrics)

    _check_finite_weights(model, state.global_step, "at the end of training")  # never publish a NaN model
    trainer.save_model(staging)  # safetensors, config (auto_map), code files, generation config, tokenizer
    runs.write_weights_checksum(staging)
    runs.write_json(staging / "log_history.json", state.log_history)
    _write_loss_curve(state.log_history, staging / "loss_curve.png")
    if not options.no_visualize:
        metrics["attention"] = _visualize(model, tokenizer, test[0], staging / "attention", trainer.max_new_tokens)
    metrics["training_wall_seconds"] = training_seconds
    metrics["wall_seconds"] = time.perf_counter() - started
    runs.write_json(staging / "metrics.json", metrics)
    _write_model_card(staging, config, metrics, model.num_parameters())
    runs.publish_folder(staging, output_dir)
    (output_dir / runs.LOCK_FILE).unlink(missing_ok=True)
    return TrainingRunResult(output_dir, metrics)


def _gathered_model(trainer: TransformerTrainer):
    """The full model of an FSDP run as a plain (unsharded) model on the main process; None elsewhere.

    Every process must call this: the weights are gathered from all of them."""
    hf_trainer = trainer.hf_trainer
    sharded = hf_trainer.model
    state_dict = hf_trainer.accelerator.get_state_dict(sharded)  # full on the main process, empty elsewhere
    if not hf_trainer.args.should_save:
        return None
    plain = _unsharded_class(sharded)(sharded.config)
    plain.load_state_dict(state_dict, strict=False)  # lm_head.weight follows the tied embedding
    plain.tie_weights()
    plain.generation_config = copy.deepcopy(sharded.generation_config)
    return plain.eval()


def _average_last_checkpoints(trainer: TransformerTrainer, checkpoints: Path, last: int, distributed) -> list[str]:
    """Replace the trained weights by the mean of the last ``last`` checkpoints (§6.1); their names.

    The final step is always among them (the trainer saves at the end of training). With ``last`` 1
    nothing changes.
    """
    if last <= 1:
        return []
    from .averaging import average_checkpoints, checkpoint_paths

    if _unsharded_class(trainer.model) is not None:
        raise RunError(
            "--average-last is not supported under FSDP (each process holds a shard); expected a run without it, "
            "then `miniformer average --model RUN --last N` on its checkpoints."
        )
    if distributed is not None:
        distributed.wait_for_everyone()  # the main process has finished writing the last checkpoint
    available = len(_checkpoint_folders(checkpoints))
    if available == 0:
        logger.warning("--average-last %d: no checkpoint was written; the final weights are kept.", last)
        return []
    paths = checkpoint_paths(checkpoints, min(last, available))
    if len(paths) < last:
        logger.warning("--average-last %d: only %d checkpoint(s) were written; averaging those.", last, len(paths))
    averaged = average_checkpoints(paths)
    trainer.model.load_state_dict(averaged, strict=False)  # lm_head.weight is tied to the embedding
    trainer.model.tie_weights()
    logger.info("Averaged the weights of %s.", ", ".join(path.name for path in paths))
    return [path.name for path in paths]


def _checkpoint_folders(checkpoints: Path) -> list[Path]:
    if not checkpoints.is_dir():
        return []
    return [path for path in checkpoints.iterdir() if path.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-")]


def _check_sequence_lengths(data: DatasetDict, tokenizer, limit: int) -> None:
    """Every source and target fits the positional table; the error names the file line."""
    for split in ("train", "validation", "test"):
        dataset = data[split]
        if not isinstance(dataset, Dataset):
            continue  # a stream: over-long pairs are skipped as they are read (TransformerTrainer.prepare_dataset)
        origins = dataset["origin"] if "origin" in dataset.column_names else None
        for column in ("source", "target"):
            for index, length in enumerate(token_lengths(tokenizer, dataset[column])):
                if length > limit:
                    where = origins[index] if origins else f"{split} example {index}"
                    raise RunError(
                        f"{where}: the {column} is {length} tokens long (end-of-sequence included), but the "
                        f"model's positional table holds {limit} positions; expected shorter examples: split "
                        "or drop the long ones."
                    )


def _distributed_state():
    """accelerate's process state when several processes were launched (torchrun, accelerate launch)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    # The same choice as TransformerTrainer's: gloo on the CPU when there is no accelerator.
    return PartialState(cpu=not torch.accelerator.is_available())


def _write_loss_curve(log_history: list[dict], path: Path) -> Path | None:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed, so no loss curve was drawn; install the viz extra.")
        return None
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    accuracy = [(entry["step"], entry["eval_exact_match"]) for entry in log_history if "eval_exact_match" in entry]
    figure = Figure(figsize=(7, 4), dpi=120)
    axes = figure.add_subplot(1, 1, 1)
    if train:
        axes.plot(*zip(*train), label="training loss (label-smoothed)")
    if evaluation:
        axes.plot(*zip(*evaluation), "o-", label="validation loss")
    axes.set_xlabel("step")
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
    figure.tight_layout()
    figure.savefig(path)
    return path


def _write_model_card(run_dir: Path, config, metrics: dict[str, Any], num_parameters: int) -> None:
    try:
        from .sharing import render_model_card
    except ImportError as error:
        logger.warning("No model card written (%s).", error)
        return
    render_model_card(config, metrics=metrics, num_parameters=num_parameters).save(run_dir / "README.md")


def _visualize(model, tokenizer, example: dict[str, str], out_dir: Path, max_new_tokens: int) -> dict[str, str]:
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
