"""The ``miniformer train`` pipeline: options -> data -> tokenizer -> model -> fit -> finish.

`run_training` reads top to bottom as the run goes; each step is a function of its own, taking the
narrow values it needs by keyword:

1. `options.resolve`: the recipe, checks and defaults, once (and `options.model_sizes`).
2. `_load_data`: the splits, the texts the tokenizer learns from, and the data fingerprint that
   ``--resume`` compares.
3. `_make_tokenizer`: train (or, when resuming, reload) the tokenizer in the staging folder.
4. `_make_model`: the config, the input checks that need the tokenizer, the model.
5. `_fit`: `trainer.TransformerTrainer` trains, with checkpoints, the time limit and the thread choice.
6. `_finish`: final evaluation, metrics, weights, loss curve, attention plots, model card, publishing.

The trainer itself lives in `trainer`, its callbacks in `callbacks`, several processes in
`distributed`, the thread choice in `threads`; the run folder's layout in `runs`. The names below are
re-exported for code that imported them from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from transformers import TrainerState, set_seed
from transformers.trainer import TRAINER_STATE_NAME

from . import run_report, runs
from .callbacks import NonFiniteCheck, NonFiniteTrainingError, TrainingClockCallback, check_training_weights, saved_training_seconds
from .distributed import distributed_state, gathered_model, unsharded_class
from .generation import check_generation_inputs, generate_texts, generate_texts_with_cuts, token_lengths
from .metrics import Seq2SeqMetrics, character_error_rate, compute_text_metrics, edit_distance, exact_match
from .options import DEFAULTS, TrainingRunOptions, check_tokens_per_batch, model_sizes, resolve
from .runs import CHECKPOINTS, RunError
from .threads import ThreadChooser, default_threads
from .trainer import (
    MAX_TIME_STEP_LIMIT,
    PAPER_ADAM_BETA2,
    PAPER_ADAM_EPSILON,
    PAPER_WARMUP_STEPS,
    SCHEDULES,
    STAGING_DIR,
    AtomicCheckpointSeq2SeqTrainer,
    TransformerTrainer,
    last_complete_checkpoint,
    paper_learning_rate,
)

logger = logging.getLogger(__name__)

__all__ = [
    # the pipeline
    "TrainingRunOptions",
    "TrainingRunResult",
    "run_training",
    "load_training_data",
    # re-exported from trainer, callbacks, metrics and generation
    "AtomicCheckpointSeq2SeqTrainer",
    "NonFiniteCheck",
    "NonFiniteTrainingError",
    "PAPER_ADAM_BETA2",
    "PAPER_ADAM_EPSILON",
    "PAPER_WARMUP_STEPS",
    "SCHEDULES",
    "STAGING_DIR",
    "Seq2SeqMetrics",
    "TrainingClockCallback",
    "TransformerTrainer",
    "character_error_rate",
    "check_generation_inputs",
    "compute_text_metrics",
    "edit_distance",
    "exact_match",
    "generate_texts",
    "generate_texts_with_cuts",
    "last_complete_checkpoint",
    "paper_learning_rate",
]

# --group-by-length sorts examples by length within random pools of this many batches (batching.LengthPoolSampler).
LENGTH_POOL_BATCHES = 4

@dataclass
class TrainingRunResult:
    """What `run_training` did: the run folder, its metrics, and whether there was anything to do."""

    output_dir: Path
    metrics: dict[str, Any]
    already_finished: bool = False
    cut_outputs: int = 0


@dataclass
class _RunFolder:
    """Where the run goes: the published folder, the staging folder it is assembled in, and the folder
    a ``--resume`` continues (the staging folder of an interrupted run, or a finished run folder)."""

    output_dir: Path
    staging: Path
    resume_from: Path | None


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
    started = time.perf_counter()
    options = resolve(options, **overrides)  # the recipe, every check and the defaults, once (options.py)
    recorded = options.to_dict()  # the option values run_arguments.json and metrics.json record
    sizes = model_sizes(options)
    thread_chooser = _set_threads(options.threads)
    task_name = _task_name(options)
    folder = _run_folder(
        output_dir=options.output_dir, task_name=task_name, resume=options.resume, overwrite=options.overwrite,
        recorded=recorded,
    )  # fmt: skip
    data, tokenizer_texts, fingerprint = _load_data(options)  # DataError surfaces here, before anything is written
    if folder.resume_from is not None:
        _check_resume_data(folder.resume_from, fingerprint)
    planned_steps = _planned_steps(options, None if options.streaming else len(data["train"]))
    if folder.resume_from is not None:
        finished = _check_resume_length(folder, planned_steps=planned_steps, max_time=options.max_time)
        if finished is not None:
            return finished

    set_seed(options.seed)
    # Under torchrun / accelerate launch, the main process writes files and the others wait for it.
    distributed = distributed_state()
    is_main = distributed is None or distributed.is_main_process
    if distributed is not None:
        distributed.wait_for_everyone()  # every process has checked the folders before any is created
        thread_chooser = None  # every process must run the same steps: no probes between them
    staging = folder.staging
    lock = runs.RunLock(staging)
    # Folders this run creates above the staging folder (runs/ for runs/dates), removed again on a failed start.
    new_parents = [parent for parent in staging.parents if not parent.exists()]
    if is_main:
        _prepare_staging(resume=options.resume, output_dir=folder.output_dir, staging=staging, lock=lock)
    try:
        resuming = options.resume and last_complete_checkpoint(staging / CHECKPOINTS) is not None
        tokenizer = _make_tokenizer(
            texts=tokenizer_texts, kind=options.tokenizer, vocab_size=options.vocab_size, staging=staging,
            reuse=resuming, run_arguments={**recorded, "data_fingerprint": fingerprint},
            is_main=is_main, distributed=distributed,
        )  # fmt: skip
        model, config, finished_checkpoint = _make_model(
            tokenizer=tokenizer, sizes=sizes, data=data, max_new_tokens=options.max_new_tokens,
            tokens_per_batch=options.tokens_per_batch,
            finished_checkpoint=_finished_checkpoint(staging / CHECKPOINTS, planned_steps, options.max_time) if resuming else None,
        )  # fmt: skip
        fitted = _fit(
            model=model, tokenizer=tokenizer, train=data["train"],
            evaluation=_first(data["validation"], options.eval_samples), test=_first(data["test"], options.eval_samples),
            trainer_arguments=_trainer_arguments(options), eval_at_seconds=options.eval_at_seconds,
            average_last=options.average_last, staging=staging, resuming=resuming,
            finished_checkpoint=finished_checkpoint, thread_chooser=thread_chooser, distributed=distributed,
            started=started,
        )  # fmt: skip
        result = _finish(
            fitted=fitted, recorded=recorded, visualize=not options.no_visualize,
            num_train=None if options.streaming else len(data["train"]), config=config, sizes=sizes,
            task_name=task_name, fingerprint=fingerprint, folder=folder, started=started, is_main=is_main,
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


# ---------------------------------------------------------------------------------------------
# 1. Options
# ---------------------------------------------------------------------------------------------


def _set_threads(threads: int | None) -> ThreadChooser | None:
    """PyTorch's thread count for this process: ``threads`` when given, else chosen by measuring."""
    if threads is not None:
        torch.set_num_threads(threads)
        return None
    many = default_threads()
    torch.set_num_threads(many)
    return ThreadChooser(many) if many > 1 else None


def _task_name(options: TrainingRunOptions) -> str:
    """What the run is named after: the training file, the dataset (its last path part) or the task."""
    if options.train_file:
        return Path(options.train_file).stem
    if options.dataset:
        return Path(options.dataset.rstrip("/")).name or "dataset"
    return options.task or DEFAULTS["task"]


def _run_folder(*, output_dir: str | None, task_name: str, resume: bool, overwrite: bool, recorded: dict) -> _RunFolder:
    """The run's folders, checked: ``--overwrite`` and ``--resume`` rules (a resumed run's recorded
    options against ``recorded``), a live run's lock."""
    output_dir = runs.resolve_output_dir(Path("runs") / task_name if output_dir is None else output_dir)
    staging = runs.staging_folder(output_dir)
    runs.check_destination(output_dir, staging, resume=resume, overwrite=overwrite)
    if not resume:
        return _RunFolder(output_dir, staging, None)
    resume_from = staging if runs.has_checkpoint(staging) else output_dir
    runs.check_resume_options(resume_from, current=recorded)
    return _RunFolder(output_dir, staging, resume_from)


# ---------------------------------------------------------------------------------------------
# 2. Data
# ---------------------------------------------------------------------------------------------


def _load_data(options: TrainingRunOptions) -> tuple[DatasetDict, list[str], str]:
    """The splits, the texts the tokenizer learns from, and the fingerprint of what the run consumes.

    An in-memory training set is fingerprinted whole. A stream is too long to read twice: its
    fingerprint covers the source's identity, the pairs the tokenizer reads from it (the first
    ``tokenizer_sample``, read again by ``--resume`` to compare) and the in-memory validation/test pairs.
    """
    data = load_training_data(options)
    if not options.streaming:
        texts = list(data["train"]["source"]) + list(data["train"]["target"])
        splits = [(name, data[name]["source"], data[name]["target"]) for name in ("train", "validation", "test")]
        return data, texts, runs.data_fingerprint(splits)
    pairs = list(data["train"].take(options.tokenizer_sample))
    sources, targets = [pair["source"] for pair in pairs], [pair["target"] for pair in pairs]
    identity = repr(sorted(_dataset_request(options).items()))
    splits = [("validation", data["validation"]["source"], data["validation"]["target"]),
              ("test", data["test"]["source"], data["test"]["target"]),
              ("stream", [identity], [""]), ("tokenizer sample", sources, targets)]  # fmt: skip
    return data, sources + targets, runs.data_fingerprint(splits)


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


def _check_resume_data(folder: Path, fingerprint: str) -> None:
    saved_path = folder / runs.RUN_ARGUMENTS
    saved = runs.read_json(saved_path).get("data_fingerprint") if saved_path.is_file() else None
    if saved is not None and saved != fingerprint:
        raise RunError(
            f"--resume refused: the data differ from those the run in {folder} was trained on (fingerprint "
            f"{saved[:19]}..., now {fingerprint[:19]}...); its tokenizer and metrics would no longer fit. Restore "
            "the original data, or start a new run (--overwrite or another --output-dir)."
        )


def _planned_steps(options: TrainingRunOptions, num_train: int | None) -> int:
    if options.epochs is None:
        # resolved options: max_steps is filled unless the time limit ends the run
        return MAX_TIME_STEP_LIMIT if options.max_steps is None else options.max_steps
    world = max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    steps_per_epoch = max(math.ceil(num_train / (options.batch_size * world)), 1)
    return math.ceil(options.epochs * steps_per_epoch)


def _check_resume_length(folder: _RunFolder, *, planned_steps: int, max_time: float | None) -> TrainingRunResult | None:
    """Refuse a ``--resume`` that asks for fewer steps than were done; the result of a finished run."""
    resume_from = folder.resume_from
    last = last_complete_checkpoint(resume_from / CHECKPOINTS)
    done_steps = None if last is None else _checkpoint_state(last).global_step
    if done_steps is not None and done_steps > planned_steps:
        raise RunError(
            f"--resume asks for {planned_steps} steps, but the run in {resume_from} has already done {done_steps}; "
            f"expected --max-steps {done_steps} or more (or a new run).",
            2,
        )
    output_dir = folder.output_dir
    if resume_from == output_dir and _finished_checkpoint(output_dir / CHECKPOINTS, planned_steps, max_time):
        metrics = runs.read_json(output_dir / runs.METRICS_FILE) if (output_dir / runs.METRICS_FILE).is_file() else {}
        logger.info("%s already finished its training; nothing to do.", output_dir)
        return TrainingRunResult(output_dir, metrics, already_finished=True)
    return None


def _checkpoint_state(checkpoint: str) -> TrainerState:
    return TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE_NAME))


def _finished_checkpoint(checkpoints: Path, planned_steps: int, max_time: float | None) -> str | None:
    """The newest checkpoint when it ends its run (its last step, or its time limit reached), else None."""
    last = last_complete_checkpoint(checkpoints)
    if last is None:
        return None
    state = _checkpoint_state(last)
    if state.global_step >= state.max_steps and state.global_step == planned_steps:
        return last
    seconds = saved_training_seconds(last)
    if max_time is not None and seconds is not None and seconds >= max_time:
        return last
    return None


def _prepare_staging(*, resume: bool, output_dir: Path, staging: Path, lock: runs.RunLock) -> None:
    """Create (or reuse, when resuming) the staging folder and take its lock."""
    if staging.is_dir() and not (resume and runs.has_checkpoint(staging)):
        # Nobody holds its lock (checked before): an abandoned start, or --overwrite starting over.
        shutil.rmtree(staging)
    if resume and not staging.is_dir():
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
    if runs.disk_full(error):  # OSError ENOSPC, torch.save's "file write failed", safetensors' message
        return runs.explain_os_error(error, kept=f"{kept}; nothing was published")
    return error


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run_training`; the message says what was kept and how to continue."""


# ---------------------------------------------------------------------------------------------
# 3. Tokenizer
# ---------------------------------------------------------------------------------------------


def _make_tokenizer(*, texts, kind, vocab_size, staging: Path, reuse: bool, run_arguments: dict, is_main: bool, distributed):
    """Train the tokenizer into ``staging`` (or keep the one a resumed run has) and load it everywhere."""
    from transformers import PreTrainedTokenizerFast

    from .tokenization import train_tokenizer

    if is_main and not (reuse and (staging / runs.TOKENIZER_FILES[0]).is_file()):
        kind_kwargs = {"vocab_size": vocab_size} if kind == "bpe" else {}
        try:
            tokenizer = train_tokenizer(texts, kind=kind, **kind_kwargs)
        except ValueError as error:
            raise RunError(f"--tokenizer {kind} --vocab-size {vocab_size}: {error}", 2) from error
        tokenizer.save_pretrained(staging)
    if is_main:
        runs.write_json(staging / runs.RUN_ARGUMENTS, run_arguments)
    if distributed is not None:
        distributed.wait_for_everyone()
    return PreTrainedTokenizerFast.from_pretrained(staging)  # the same tokenizer in every process


# ---------------------------------------------------------------------------------------------
# 4. Model
# ---------------------------------------------------------------------------------------------


def _make_model(*, tokenizer, sizes: dict, data, max_new_tokens: int | None, tokens_per_batch: int | None,
                finished_checkpoint: str | None):  # fmt: skip
    """The config and the model (a finished checkpoint's, when a run was killed after its last step),
    after the checks that need the tokenizer: lengths against the positional table and the token budget."""
    from . import MiniformerConfig, MiniformerForConditionalGeneration

    config = MiniformerConfig(vocab_size=len(tokenizer), **sizes)
    if max_new_tokens is not None and max_new_tokens > config.max_position_embeddings:
        raise RunError(
            f"--max-new-tokens {max_new_tokens} exceeds the model's positional table of "
            f"{config.max_position_embeddings} positions; expected --max-new-tokens {config.max_position_embeddings} "
            "or less.",
            2,
        )
    longest = _check_sequence_lengths(data, tokenizer, config.max_position_embeddings)
    check_tokens_per_batch(tokens_per_batch, longest)
    if finished_checkpoint is not None:
        # Killed after its last step (during the final evaluation or save): finish from that checkpoint
        # exactly as the uninterrupted run would have, without training another step.
        model = MiniformerForConditionalGeneration.from_pretrained(finished_checkpoint)
    else:
        model = MiniformerForConditionalGeneration(config)
    logger.info("Model: %s parameters, %s", f"{model.num_parameters():,}", sizes)
    return model, config, finished_checkpoint


def _check_sequence_lengths(data: DatasetDict, tokenizer, limit: int) -> int:
    """Every source and target fits the positional table (the error names the file line); returns the
    longest training example in tokens (source or target), 0 for a stream."""
    longest = 0
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
                if split == "train":
                    longest = max(longest, length)
    return longest


# ---------------------------------------------------------------------------------------------
# 5. Fit
# ---------------------------------------------------------------------------------------------


@dataclass
class _Fitted:
    """What training leaves for the finish: the trainer, the (possibly averaged) model and the facts."""

    trainer: TransformerTrainer
    model: Any
    evaluation: Dataset
    test: Dataset
    train_metrics: dict
    training_wall_seconds: float
    clock: TrainingClockCallback | None
    averaged_from: list[str]


def _trainer_arguments(options: TrainingRunOptions) -> dict[str, Any]:
    """`TransformerTrainer`'s keyword arguments for these options: the one place the command's options
    become the trainer's (evaluation and checkpoints every ``eval_steps``, the last ``average_last`` kept)."""
    # `options` is resolved: warmup_steps, learning_rate (None for the paper's formula) and, unless epochs
    # or a time limit set the length, max_steps are filled in.
    if options.epochs:
        length = {"num_train_epochs": options.epochs}
    elif options.max_steps is None:
        length = {}  # the time limit ends the run
    else:
        length = {"max_steps": options.max_steps}
    return dict(
        learning_rate=options.learning_rate,
        batch_size=options.batch_size,
        schedule=options.schedule,
        warmup_steps=options.warmup_steps,
        label_smoothing=options.label_smoothing,
        max_new_tokens=options.max_new_tokens,
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
        max_time=options.max_time,
        **length,
    )


def _fit(*, model, tokenizer, train, evaluation: Dataset, test: Dataset, trainer_arguments: dict,
         eval_at_seconds: list[float] | None, average_last: int, staging: Path, resuming: bool,
         finished_checkpoint: str | None, thread_chooser: ThreadChooser | None, distributed, started: float) -> _Fitted:  # fmt: skip
    """Train (or rebuild the trainer of a finished checkpoint), then average the last checkpoints.
    ``started``: when the run began (``training_wall_seconds`` counts from there to the end of training)."""
    callbacks, clock = [], None
    if eval_at_seconds:

        def test_exact_match(current_model) -> dict[str, float]:
            predictions = generate_texts(current_model, tokenizer, test["source"], batch_size=256)
            return {"exact_match": compute_text_metrics(predictions, test["target"])["exact_match"]}

        clock = TrainingClockCallback(eval_at_seconds, test_exact_match, path=staging / runs.METRICS_BY_TIME_FILE)
        callbacks.append(clock)
    trainer = TransformerTrainer(
        model, tokenizer, output_dir=staging / CHECKPOINTS, callbacks=callbacks, thread_chooser=thread_chooser,
        **trainer_arguments,
    )  # fmt: skip
    if finished_checkpoint is None:
        train_output = trainer.train(train, eval_dataset=evaluation, resume_from_checkpoint=True if resuming else None)
        train_metrics = train_output.metrics
    else:
        trainer.build(train, evaluation)
        trainer.hf_trainer.state = _checkpoint_state(finished_checkpoint)
        trainer.hf_trainer.clock.restore(finished_checkpoint)
        train_metrics = {}
    training_wall_seconds = time.perf_counter() - started
    averaged_from = _average_last_checkpoints(trainer, staging / CHECKPOINTS, average_last, distributed)
    return _Fitted(trainer, trainer.model, evaluation, test, train_metrics, training_wall_seconds, clock, averaged_from)


def _first(split: Dataset, count: int) -> Dataset:
    return split.select(range(min(count, len(split))))


def _average_last_checkpoints(trainer: TransformerTrainer, checkpoints: Path, last: int, distributed) -> list[str]:
    """Replace the trained weights by the mean of the last ``last`` checkpoints (§6.1); their names.

    The final step is always among them (the trainer saves at the end of training). With ``last`` 1
    nothing changes.
    """
    if last <= 1:
        return []
    from .averaging import average_checkpoints, checkpoint_paths

    if unsharded_class(trainer.model) is not None:
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
    return [path for path in checkpoints.iterdir() if path.name.startswith("checkpoint-")]


# ---------------------------------------------------------------------------------------------
# 6. Finish
# ---------------------------------------------------------------------------------------------


def _finish(*, fitted: _Fitted, recorded: dict, visualize: bool, num_train: int | None, config, sizes: dict,
            task_name: str, fingerprint: str, folder: _RunFolder, started: float, is_main: bool) -> TrainingRunResult:  # fmt: skip
    """Evaluate, write the run folder's files into the staging folder, and publish it (``recorded``: the
    option values metrics.json records, `run_report.run_metrics`)."""
    trainer, model, staging = fitted.trainer, fitted.model, folder.staging
    final_validation = trainer.evaluate(fitted.evaluation, metric_key_prefix="validation")
    final_test = trainer.evaluate(fitted.test, metric_key_prefix="test")
    metrics = run_report.run_metrics(
        fitted=fitted, recorded=recorded, final_validation=final_validation, final_test=final_test, sizes=sizes,
        task_name=task_name, fingerprint=fingerprint, num_train=num_train,
    )  # fmt: skip
    state = trainer.hf_trainer.state
    if unsharded_class(model) is not None:
        # FSDP: each process holds a shard. Gather the full weights (every process takes part) into a plain
        # model on the main process, which saves, checks and visualizes it like any other.
        model = gathered_model(trainer.hf_trainer)
        trainer.model = model
    if not is_main:
        return TrainingRunResult(folder.output_dir, metrics)

    check_training_weights(model, step=state.global_step, when="at the end of training")  # never publish a NaN model
    trainer.save_model(staging)  # safetensors, config (auto_map), code files, generation config, tokenizer
    runs.write_weights_checksum(staging)
    runs.write_json(staging / runs.LOG_HISTORY_FILE, state.log_history)
    run_report.write_loss_curve(state.log_history, staging / runs.LOSS_CURVE_FILE)
    if visualize:
        metrics["attention"] = run_report.visualize_attention(model, trainer.tokenizer, fitted.test[0], staging / runs.ATTENTION_DIR, trainer.max_new_tokens)
    metrics["training_wall_seconds"] = fitted.training_wall_seconds
    metrics["wall_seconds"] = time.perf_counter() - started
    runs.write_json(staging / runs.METRICS_FILE, metrics)
    run_report.write_model_card(staging, config, metrics, model.num_parameters())
    runs.publish_folder(staging, folder.output_dir)
    (folder.output_dir / runs.LOCK_FILE).unlink(missing_ok=True)
    return TrainingRunResult(folder.output_dir, metrics)
