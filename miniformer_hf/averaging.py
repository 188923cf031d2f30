"""Checkpoint averaging, as in §6.1 of the paper: "for the base models, we used a single model
obtained by averaging the last 5 checkpoints, which were written at 10-minute intervals".

Averaging is an element-wise mean of the saved weights of several checkpoints of one run; the
result is a model of the same shape that usually scores a little better than the last checkpoint
alone (the average sits nearer the centre of the region the optimizer was wandering in).

* `checkpoint_paths` finds the last N ``checkpoint-<step>`` folders of a run (its ``checkpoints/``
  subfolder or the folder itself), oldest first.
* `average_state_dicts` / `average_checkpoints` compute the mean (in float64, cast back to each
  tensor's dtype). Integer buffers must agree across checkpoints and are kept as they are.
* `average_into_model` loads the mean into a model built from the newest checkpoint, so weights the
  model ties (the shared embedding and ``lm_head``) stay one tensor.
* `write_averaged_run` writes the result as a run folder (``miniformer average``); ``miniformer train
  --average-last N`` averages at the end of training instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from . import runs
from .errors import MiniformerError

__all__ = [
    "AveragingError",
    "average_checkpoints",
    "average_into_model",
    "average_state_dicts",
    "check_same_run",
    "checkpoint_paths",
    "write_averaged_run",
]

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
WEIGHTS_NAME = runs.WEIGHTS_FILE


class AveragingError(MiniformerError):
    """Checkpoints that cannot be averaged; the message says which and why."""


def _step(path: Path) -> int:
    match = _CHECKPOINT.fullmatch(path.name)
    return int(match.group(1)) if match else -1


def checkpoint_paths(run_dir: str | os.PathLike, last: int) -> list[Path]:
    """The newest ``last`` checkpoint folders of a run, oldest first.

    ``run_dir`` is a run folder of `miniformer train` (checkpoints in ``run_dir/checkpoints``) or a
    folder of ``checkpoint-<step>`` folders itself (a trainer's ``output_dir``).
    """
    if last < 1:
        raise AveragingError(f"last={last}; expected at least 1 checkpoint to average.")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AveragingError(f"{run_dir}: no such folder; expected a run folder written by `miniformer train`.")
    folder = run_dir / runs.CHECKPOINTS if (run_dir / runs.CHECKPOINTS).is_dir() else run_dir
    found = sorted(
        (path for path in folder.iterdir() if path.is_dir() and _step(path) >= 0 and (path / WEIGHTS_NAME).is_file()),
        key=_step,
    )
    if len(found) < last:
        raise AveragingError(
            f"{folder}: {len(found)} checkpoint(s) with {WEIGHTS_NAME} ({[path.name for path in found]}) but "
            f"{last} requested; expected a run trained with --average-last {last} (which keeps that many "
            "checkpoints), or a smaller --last."
        )
    return found[-last:]


def average_state_dicts(state_dicts: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors with the same names and shapes.

    The sum is taken in float64 and cast back to each tensor's dtype, so averaging copies of one
    state dict gives it back exactly. Non-floating tensors (step counters, index buffers) must be
    equal in every state dict and are returned unchanged.
    """
    if not state_dicts:
        raise AveragingError("no state dicts to average; expected at least one checkpoint.")
    first = state_dicts[0]
    for index, other in enumerate(state_dicts[1:], start=1):
        if set(other) != set(first):
            difference = sorted(set(other) ^ set(first))[:5]
            raise AveragingError(
                f"checkpoint {index} holds different weights from checkpoint 0 (for example {difference}); "
                "expected checkpoints of one model."
            )
    averaged = {}
    for name, tensor in first.items():
        tensors = [state_dict[name] for state_dict in state_dicts]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise AveragingError(f"{name!r} has shapes {sorted(shapes)}; expected checkpoints of one model.")
        if tensor.is_floating_point():
            total = torch.zeros(tensor.shape, dtype=torch.float64)
            for t in tensors:
                total += t.to(torch.float64)
            averaged[name] = (total / len(tensors)).to(tensor.dtype)
        else:
            if any(not torch.equal(t, tensor) for t in tensors[1:]):
                raise AveragingError(f"{name!r} is a {tensor.dtype} tensor that differs between checkpoints; "
                                     "expected integer buffers to agree.")  # fmt: skip
            averaged[name] = tensor.clone()
    return averaged


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise AveragingError(
            f"{path}: no {WEIGHTS_NAME}; expected a checkpoint folder (checkpoint-<step>) or a saved model folder."
        )
    try:
        return load_file(weights)
    except (SafetensorError, OSError) as error:
        raise AveragingError(
            f"{weights} cannot be read ({type(error).__name__}: {' '.join(str(error).split())}); the file is "
            "truncated or corrupted. Leave this checkpoint out (--checkpoints) or copy the run again."
        ) from None


def check_same_run(paths: Sequence[str | os.PathLike]) -> None:
    """Refuse checkpoints of different runs: different data, task, tokenizer or model configuration.

    Each checkpoint is compared with the first on what `runs.run_identity` reads (the run's
    ``run_arguments.json`` and data fingerprint, the tokenizer, the config); weights of two runs have
    the same shapes and would average into a model that fits neither.
    """
    paths = [Path(path) for path in paths]
    first = runs.run_identity(paths[0])
    for path in paths[1:]:
        other = runs.run_identity(path)
        different = sorted(key for key in first.keys() & other.keys() if first[key] != other[key])
        if different:
            raise AveragingError(
                f"{paths[0]} and {path} come from different runs (their {', '.join(different)} differ); "
                "expected checkpoints of one run: average the checkpoints of each run separately."
            )


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict[str, torch.Tensor]:
    """The mean of the ``model.safetensors`` weights in the checkpoint folders ``paths``."""
    if not paths:
        raise AveragingError("no checkpoints given; expected at least one checkpoint folder.")
    return average_state_dicts([_load_weights(Path(path)) for path in paths])


def average_into_model(paths: Sequence[str | os.PathLike]):
    """A model loaded from the newest of ``paths`` whose weights are the mean of all of them.

    The paths are checked first (`check_same_run`, checksums where recorded). The model is built by
    ``from_pretrained`` with the package's classes (no ``trust_remote_code`` prompt; its config,
    generation config and tied weights are the checkpoint's) and the averaged weights are loaded into
    it: tied weights stay tied.
    """
    if not paths:
        raise AveragingError("no checkpoints given; expected at least one checkpoint folder.")
    for path in paths:
        if not Path(path).is_dir():
            raise AveragingError(f"{path}: no such folder; expected a checkpoint folder (checkpoint-<step>).")
        runs.check_run_folder(path, use="average", subject=str(path))
    check_same_run(paths)
    averaged = average_checkpoints(paths)
    model = runs.load_model(paths[-1], subject=str(paths[-1]))
    missing, unexpected = model.load_state_dict(averaged, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [name for name in missing if name not in tied]
    if missing or unexpected:
        raise AveragingError(
            f"the averaged weights do not fit the model of {paths[-1]} (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}); expected checkpoints of one run."
        )
    model.tie_weights()
    model.eval()
    return model


def write_averaged_run(
    checkpoints: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    source_run: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Average ``checkpoints`` and write a run folder that ``miniformer generate/evaluate/push`` use as any other.

    The folder holds the averaged model (weights, config, code files, generation config), the tokenizer
    (from ``source_run`` when given, else from the newest checkpoint), the run's ``run_arguments.json``,
    ``checksums.json`` and ``averaging.json`` naming the checkpoints. It is assembled in
    ``<output_dir>.incomplete`` and published with one rename; an existing folder is replaced only with
    ``overwrite`` and only if it is a run folder.
    """
    import shutil

    paths = [Path(path) for path in checkpoints]
    output_dir = runs.resolve_output_dir(output_dir)
    if any(path.resolve() == output_dir or output_dir in path.resolve().parents for path in paths):
        raise runs.RunError(f"--output-dir {output_dir} holds the checkpoints being averaged; expected a new folder.", 2)
    staging = runs.staging_folder(output_dir)
    # The rules of `miniformer train`: a live run's lock, --overwrite only for run folders, an interrupted run kept.
    runs.check_destination(output_dir, staging, overwrite=overwrite, command="average")
    model = average_into_model(paths)  # AveragingError before anything is written
    runs.check_finite_weights(model, where="the average of " + ", ".join(path.name for path in paths), refusal="not written")
    source_run = Path(source_run) if source_run else None
    tokenizer_source = source_run if source_run and (source_run / runs.TOKENIZER_FILES[0]).is_file() else paths[-1]
    tokenizer = runs.load_tokenizer(tokenizer_source, subject=str(tokenizer_source))
    lock = runs.take_staging(output_dir, staging)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if source_run and (source_run / runs.RUN_ARGUMENTS).is_file():
            shutil.copy2(source_run / runs.RUN_ARGUMENTS, staging / runs.RUN_ARGUMENTS)
        runs.write_weights_checksum(staging)
        runs.write_json(
            staging / runs.AVERAGING_FILE,
            {"checkpoints": [str(path.resolve()) for path in paths], "steps": [_step(path) for path in paths]},
        )
        runs.publish_folder(staging, output_dir)
        (output_dir / runs.LOCK_FILE).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        lock.release()
    return output_dir
