"""Miniformer's trainer: a thin layer over `transformers.Seq2SeqTrainer`.

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
* ``max_time``: train for that many seconds of training time (`callbacks.TrainingClock`: evaluations
  excluded) instead of a step count; the ``"linear"`` and ``"cosine"`` schedules then decay with the
  training time, reaching their end value at the limit (`time_budget_schedule`).
* `AtomicCheckpointSeq2SeqTrainer`: checkpoints are written into a staging folder and renamed into
  place only when complete, so a run killed at any moment never leaves a ``checkpoint-N`` folder that a
  resume would pick up half-written. (transformers 5.24 writes ``checkpoint-N`` in place.) Each
  checkpoint also keeps the training time spent so far, which a resumed run continues.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from datasets import Dataset, DatasetDict, IterableDataset
from transformers import (
    DataCollatorForSeq2Seq,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, rotate_checkpoints

from .callbacks import (
    MaxTimeCallback,
    NonFiniteCheck,
    NonFiniteTrainingError,
    TrainingClock,
    TrainingClockCallback,
    check_training_weights,
)
from .distributed import enable_fsdp_on_cpu, launched_on_cpu_only, plain_model, unsharded_class
from .generation import _length_over_input, generate_texts
from .metrics import Seq2SeqMetrics
from .options import PAPER_WARMUP_STEPS, SCHEDULES
from .runs import publish_folder
from .threads import ThreadChooser, probe_step
from .tokenization import tokenize_pairs

logger = logging.getLogger(__name__)

__all__ = [
    "AtomicCheckpointSeq2SeqTrainer",
    "PAPER_ADAM_BETA2",
    "PAPER_ADAM_EPSILON",
    "PAPER_WARMUP_STEPS",
    "SCHEDULES",
    "STAGING_DIR",
    "TransformerTrainer",
    "last_complete_checkpoint",
    "paper_learning_rate",
    "time_budget_schedule",
]

# §5.3: Adam with β1 = 0.9, β2 = 0.98, ε = 1e-9.
PAPER_ADAM_BETA2 = 0.98
PAPER_ADAM_EPSILON = 1e-9

# Checkpoints are staged here (inside output_dir) and renamed to output_dir/checkpoint-N when complete.
# The name does not match transformers' "checkpoint-<step>" pattern, so no resume ever picks it up.
STAGING_DIR = ".checkpoint-staging"

# The step limit of a run that only has a time limit: the library needs one, and this one is never reached.
MAX_TIME_STEP_LIMIT = 1_000_000_000

# Schedules whose decay ends somewhere; under max_time they end at the time limit. The others
# ("constant", "inverse_sqrt", "paper" ...) have no end and keep their shape, counted in steps.
TIME_SIZED_SCHEDULES = ("linear", "cosine")


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules (§5.3, and the time budget)
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


def time_budget_schedule(optimizer, schedule: str, warmup_steps: int, max_time: float, clock: TrainingClock):
    """A ``LambdaLR`` whose decay is sized to ``max_time`` seconds of training instead of a step count.

    The factor is ``min(1, step / warmup_steps) · decay(t / max_time)`` with t the training time read
    from ``clock`` when the scheduler steps: ``1 - p`` for ``"linear"``, ``(1 + cos(π·p)) / 2`` for
    ``"cosine"``, both 0 at the limit. Warmup stays counted in steps, as without a time limit. The
    factor depends only on the step and the clock, both restored by a resumed run.
    """
    if schedule not in TIME_SIZED_SCHEDULES:
        raise ValueError(f"schedule={schedule!r} has no end to size; expected one of {TIME_SIZED_SCHEDULES}.")

    def factor(step: int) -> float:  # a plain function: LambdaLR's state_dict skips it
        progress = min(max(clock.seconds() / max_time, 0.0), 1.0)
        decay = 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        warm = 1.0 if step >= warmup_steps else step / warmup_steps
        return warm * decay

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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

    Its `TrainingClock` (``clock``) measures training time: ``evaluate`` pauses it (and adds to
    ``evaluation_seconds``), each checkpoint saves it, and ``train(resume_from_checkpoint=...)``
    continues from the saved value. With ``max_time`` (seconds) training ends when the clock reaches it,
    and a ``"linear"`` or ``"cosine"`` schedule decays to its end value at that moment.
    """

    def __init__(
        self,
        *args,
        tokens_per_batch: int | None = None,
        length_pool: int | None = None,
        max_time: float | None = None,
        thread_chooser: ThreadChooser | None = None,
        **kwargs,
    ):
        model = kwargs.get("model", args[0] if args else None)
        # The library sets model.config.use_cache to args.use_cache (False) for training; the saved
        # configs (checkpoints and the final model) keep the model's own value, so inference caches.
        self._model_use_cache = getattr(getattr(model, "config", None), "use_cache", None)
        super().__init__(*args, **kwargs)
        self.tokens_per_batch = tokens_per_batch
        self.length_pool = length_pool
        self._staging_root: str | None = None
        self.evaluation_seconds = 0.0
        self.clock = TrainingClock()
        self.max_time = max_time
        self.thread_chooser = thread_chooser
        self.add_callback(self.clock)
        if max_time is not None:
            self.add_callback(MaxTimeCallback(max_time, self.clock))
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
        check_training_weights(self.model, step=self.state.global_step, when="when its checkpoint was due")
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
            self.clock.save(staged)  # a resumed run continues this training time
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

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        if isinstance(checkpoint, (str, os.PathLike)):
            self.clock.restore(checkpoint)
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
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
        enable_fsdp_on_cpu(self)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # Under FSDP the model's class is torch's FSDP subclass of ours: saving it as is would copy torch's
        # FSDP sources instead of modeling_miniformer.py next to the weights. Save a plain copy instead,
        # built from the full state dict that `save_model` has gathered on the main process.
        if unsharded_class(self.model) is None:
            return super()._save(output_dir, state_dict=state_dict)
        if not self.args.should_save:
            return None
        if state_dict is None:
            raise ValueError("an FSDP model is saved from its gathered state dict; expected save_model(), not _save().")
        plain = plain_model(self.model, state_dict)
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

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.max_time is None or self.lr_scheduler is not None or self.args.lr_scheduler_type not in TIME_SIZED_SCHEDULES:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = time_budget_schedule(
            self.optimizer if optimizer is None else optimizer,
            schedule=getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type),
            warmup_steps=self.args.get_warmup_steps(num_training_steps),
            max_time=self.max_time,
            clock=self.clock,
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def evaluate(self, eval_dataset=None, *args, **kwargs):
        started = time.perf_counter()
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        metrics = self.compute_metrics if isinstance(self.compute_metrics, Seq2SeqMetrics) else None
        previous = None if metrics is None else metrics.references
        if metrics is not None and isinstance(dataset, Dataset) and "target" in dataset.column_names:
            metrics.references = list(dataset["target"])  # score against the raw text, not decoded labels
        try:
            with self.clock.paused():
                return super().evaluate(eval_dataset, *args, **kwargs)
        finally:
            if metrics is not None:
                metrics.references = previous
            self.evaluation_seconds += time.perf_counter() - started

    def training_step(self, model, inputs, *args, **kwargs):
        if self.thread_chooser is not None and self.thread_chooser.due(self.state.global_step):
            model.train()
            probe = probe_step(model, self._prepare_inputs(inputs))
            self.thread_chooser.choose(self.state.global_step, probe, torch.set_num_threads)
        started = time.perf_counter()
        loss = super().training_step(model, inputs, *args, **kwargs)
        if self.thread_chooser is not None:
            self.thread_chooser.observe(time.perf_counter() - started)
        if not bool(torch.isfinite(loss).all()):
            raise NonFiniteTrainingError(self.state.global_step + 1, f"the training loss is {loss.item()}")
        return loss



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
        label_smoothing: ε_ls of §5.4; default 0.1, as the paper (0 trains on plain cross-entropy).
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
        max_time: seconds of training (evaluations excluded) after which training ends; a ``"linear"`` or
            ``"cosine"`` schedule then decays to its end value at that moment. Without ``epochs`` or
            ``max_steps`` the time limit alone ends the run. A resumed run continues the time budget.
        thread_chooser: a `threads.ThreadChooser` that picks the thread count by timing (``miniformer
            train`` without ``--threads``); None keeps PyTorch's count as set.
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
        label_smoothing: float = 0.1,
        output_dir: str | os.PathLike | None = None,
        max_new_tokens: int | None = None,
        callbacks: Sequence[TrainerCallback] | None = None,
        quiet: bool = False,
        tokens_per_batch: int | None = None,
        length_pool: int | None = None,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        max_new_tokens_over_input: int | None = None,
        max_time: float | None = None,
        thread_chooser: ThreadChooser | None = None,
        **training_arguments,
    ):
        if max_time is not None and not (isinstance(max_time, (int, float)) and math.isfinite(max_time) and max_time > 0):
            raise ValueError(f"max_time={max_time!r} is invalid; expected a positive number of seconds, e.g. 90.")
        self.max_time = max_time
        self.thread_chooser = thread_chooser
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
        if launched_on_cpu_only():
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
        # Stored as max_new_tokens, not max_length: the common call generate(max_new_tokens=...) (and the
        # pipeline's) then replaces it quietly, where a stored max_length made every such call warn "Both
        # max_new_tokens and max_length seem to have been set". A caller's max_length is overridden by it.
        self.model.generation_config = GenerationConfig(
            max_new_tokens=max_new_tokens,
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
            max_time=self.max_time,
            thread_chooser=self.thread_chooser,
        )
        for callback in self.callbacks:
            if isinstance(callback, TrainingClockCallback):
                callback.use_clock(self.hf_trainer.clock)
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
        length_given = {"max_steps", "num_train_epochs"} & ({*overrides} | {*self._arguments})
        if self.max_time is not None and not length_given:
            overrides["max_steps"] = MAX_TIME_STEP_LIMIT  # the time limit ends the run
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
        if self.hf_trainer is not None and unsharded_class(self.model) is not None:
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


def launched_on_cpu_only() -> bool:
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

