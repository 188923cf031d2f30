"""Run folders: everything about the folder a training run writes.

This module is the one place that knows what a run folder is; training, averaging, generate,
evaluate, visualize, the demo and sharing all go through it:

* The options of ``miniformer train`` live in `miniformer_hf.options` (`TrainOptions`, whose old name
  `TrainingRunOptions` and the tables ``DEFAULTS``, ``MODEL_SIZES`` ... stay importable from here).
* its file names (`WEIGHTS_FILE`, `METRICS_FILE`, `RUN_ARGUMENTS`, `CHECKSUMS`, `LOG_HISTORY_FILE`,
  `LOSS_CURVE_FILE`, `ATTENTION_DIR`, `MODEL_CARD_FILE`, `LOCK_FILE`, `CHECKPOINTS` ...);
* the metrics schema of ``metrics.json`` (`metric_key`, `split_metrics`, `evaluation_metrics`), built
  from `miniformer_hf.metrics.EVAL_METRIC_NAMES`;
* where a command may write: `check_destination` (``--overwrite`` replaces only an empty folder or a
  recognisable run folder; a live run holds `RunLock`, an ``flock`` released by the kernel however
  the process ends; an interrupted run's staging folder is never replaced by another command);
* atomic publishing: a folder is assembled in ``<output-dir>.incomplete`` and published with
  `publish_folder` (also used for each checkpoint), one ``os.replace``;
* validation for each use (`check_run_folder(folder, use=...)`) and loading (`load_run_folder`):
  checksums (`write_weights_checksum` / `verify_weights`), the one non-finite check
  (`non_finite_weights`), the package's own classes (no ``trust_remote_code`` prompt);
* `data_fingerprint` (kept in ``run_arguments.json``) lets ``--resume`` refuse changed data, and
  `explain_os_error` turns a full disk into one line that says what is safe.

It imports only the standard library at the top, so the command line can use it before parsing is done.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import MiniformerError
from .options import (  # noqa: F401  (the options moved to options.py; these names stay importable here)
    DEFAULTS,
    MODEL_SIZES,
    RECIPES,
    RESUME_MUST_MATCH,
    SCHEDULES,
    TASK_NAMES,
    TOKENIZER_KINDS,
    TrainingRunOptions,
    TrainOptions,
)
from .threads import MAX_DEFAULT_THREADS, default_threads  # noqa: F401 (moved to threads.py; kept importable here)

logger = logging.getLogger(__name__)

__all__ = [
    "ATTENTION_DIR", "CHECKSUMS", "CHECKPOINTS", "CODE_FILES", "CONFIG_FILE", "DEFAULTS", "INCOMPLETE_SUFFIX",
    "LOCK_FILE", "LOG_HISTORY_FILE", "LOSS_CURVE_FILE", "METRICS_BY_TIME_FILE", "METRICS_FILE", "MODEL_CARD_FILE",
    "MODEL_SIZES", "RUN_ARGUMENTS", "SCHEDULES", "TOKENIZER_FILES", "USES", "WEIGHTS_FILE", "RunError", "RunLock",
    "TrainingRunOptions", "check_destination", "check_finite_weights", "check_resume_options",
    "check_run_folder", "data_fingerprint", "default_threads", "disk_full", "evaluation_metrics",
    "explain_os_error", "is_run_folder", "load_model", "load_run_folder", "load_tokenizer", "metric_key",
    "metric_names", "non_finite_weights", "publish_folder", "run_folder_of", "run_identity", "split_metrics",
    "take_staging", "verify_weights", "write_json", "write_weights_checksum",
]  # fmt: skip


INCOMPLETE_SUFFIX = ".incomplete"
# What a run folder holds: every other module names these files through the constants below.
CHECKPOINTS = "checkpoints"  # checkpoint-<step>/ folders (the last --average-last of them)
RUN_ARGUMENTS = "run_arguments.json"  # the options of the run and its data fingerprint
CHECKSUMS = "checksums.json"  # {weights file name: "sha256:..."}
LOCK_FILE = ".miniformer-run.lock"  # held by a live run in its staging folder (RunLock)
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"  # sharded weights
CONFIG_FILE = "config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
METRICS_FILE = "metrics.json"  # schema: `metric_key` / `evaluation_metrics`
METRICS_BY_TIME_FILE = "metrics_by_time.json"  # held-out exact match at --eval-at-seconds marks
LOG_HISTORY_FILE = "log_history.json"
LOSS_CURVE_FILE = "loss_curve.png"
ATTENTION_DIR = "attention"  # visualization.visualize_example's files
MODEL_CARD_FILE = "README.md"
AVERAGING_FILE = "averaging.json"  # which checkpoints `miniformer average` averaged
# The code files save_pretrained copies beside the weights (trust_remote_code loads them).
CODE_FILES = (
    "configuration_miniformer.py", "modeling_miniformer.py", "heads_miniformer.py", "kernels_miniformer.py",
    "support_miniformer.py",
)  # fmt: skip

class RunError(MiniformerError):
    """A run that cannot start or finish, said in one line; ``exit_code`` 1 (state/data) or 2 (usage)."""


def write_json(path: str | os.PathLike, payload: Any) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Atomic publication (run folders and checkpoints)
# ---------------------------------------------------------------------------------------------


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (best effort: some file systems refuse)."""
    try:
        descriptor = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def publish_folder(staged: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete folder ``staged`` to ``final`` in one rename.

    An existing ``final`` is renamed aside first and deleted only once the new folder is in place, so
    a process killed at any moment leaves the old folder or the new one under ``final`` (and at worst
    the old one under ``<final>.replaced-<pid>``), never a mixture.
    """
    staged, final = Path(staged), Path(final)
    previous = None
    if final.exists():
        previous = final.with_name(f"{final.name}.replaced-{os.getpid()}")
        os.replace(final, previous)
    os.replace(staged, final)
    fsync_directory(final.parent)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# What may be written where
# ---------------------------------------------------------------------------------------------


def is_run_folder(path: str | os.PathLike) -> bool:
    """A folder written by ``miniformer train`` (it holds ``run_arguments.json``) or a saved Miniformer."""
    path = Path(path)
    if (path / RUN_ARGUMENTS).is_file():
        return True
    try:
        return read_json(path / "config.json").get("model_type") == "miniformer"
    except (OSError, ValueError, AttributeError):
        return False


def staging_folder(output_dir: Path) -> Path:
    return output_dir.with_name(output_dir.name + INCOMPLETE_SUFFIX)


def resolve_output_dir(output_dir: str | os.PathLike) -> Path:
    """``output_dir`` as an absolute path with a name; the current folder (or one above it) is refused."""
    text = os.fspath(output_dir)
    if not text.strip():
        raise RunError("--output-dir is empty; expected a folder name such as runs/dates.", 2)
    path = Path(text).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents or path.parent == path:
        raise RunError(
            f"--output-dir {text} is the current folder or one above it; expected a new folder to hold the run, "
            "such as runs/dates.",
            2,
        )
    return path


class RunLock:
    """An exclusive ``flock`` on ``<staging>/.miniformer-run.lock`` holding the owner's PID.

    The kernel releases it when the process ends, even by SIGKILL, so a staging folder whose lock can
    be taken belongs to no live run.
    """

    def __init__(self, staging: Path):
        self.path = staging / LOCK_FILE
        self._handle = None

    def try_acquire(self) -> bool:
        import fcntl

        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def owner(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def live_run_pid(staging: Path) -> str | None:
    """The PID of a live run writing ``staging``, or None if no process holds its lock."""
    if not (staging / LOCK_FILE).is_file():
        return None
    probe = RunLock(staging)
    if probe.try_acquire():
        probe.release()
        return None
    return probe.owner()


def has_checkpoint(staging: Path) -> bool:
    folder = staging / CHECKPOINTS
    return folder.is_dir() and any(
        entry.name.startswith("checkpoint-") and entry.is_dir() for entry in folder.iterdir()
    )


def check_destination(
    output_dir: Path, staging: Path, *, resume: bool = False, overwrite: bool = False, command: str = "train"
) -> None:
    """The rules for every folder a command may write (``train``, ``average``): refuse with `RunError`
    anything that could lose data or mix two runs, before any work starts.

    A live run's lock is respected; ``overwrite`` replaces only an empty folder or a recognisable run
    folder; an interrupted training run (its staging folder holds checkpoints) is only resumed or, by
    ``miniformer train --overwrite``, started over, never replaced by another command.
    """
    pid = live_run_pid(staging) if staging.is_dir() else None
    if pid is not None:
        raise RunError(
            f"a run (PID {pid}) is writing {output_dir} right now (its lock is in {staging}); nothing was touched. "
            "Wait for it to finish, or choose another --output-dir.",
        )
    if staging.exists() and not staging.is_dir():
        raise RunError(f"{staging} is a file, not a run in progress; move it away or choose another --output-dir.")
    if output_dir.exists() and not output_dir.is_dir():
        raise RunError(
            f"--output-dir {output_dir} is a file; expected a folder (a run folder, an empty one or a new name). "
            "Nothing was touched.",
        )
    if resume:
        if not (staging.is_dir() and has_checkpoint(staging)) and not (output_dir / CHECKPOINTS).is_dir():
            raise RunError(
                f"--resume: no checkpoints in {staging} or {output_dir / CHECKPOINTS}; expected the --output-dir of "
                "an earlier run (and the same flags). Drop --resume to start a new run."
            )
        return
    occupied = output_dir.is_dir() and any(output_dir.iterdir())
    if occupied and not overwrite:
        raise RunError(
            f"--output-dir {output_dir} already exists and is not empty; pass --overwrite to replace it"
            + (" when the new run finishes, --resume to continue it," if command == "train" else ",")
            + " or choose another --output-dir.",
            2,
        )
    if occupied and not is_run_folder(output_dir):
        raise RunError(
            f"--overwrite refused: {output_dir} is not a Miniformer run folder (no {RUN_ARGUMENTS} or Miniformer "
            "config.json) and not empty; --overwrite only replaces run folders. Nothing was touched; choose "
            "another --output-dir.",
        )
    if staging.is_dir() and has_checkpoint(staging) and command != "train":
        raise RunError(
            f"an interrupted training run is in {staging} (its checkpoints can still be resumed with `miniformer "
            f"train --resume`); miniformer {command} never replaces it. Nothing was touched; choose another "
            "--output-dir.",
        )
    if staging.is_dir() and has_checkpoint(staging) and not overwrite:
        raise RunError(
            f"an interrupted run was found in {staging}; pass --resume to continue it, --overwrite to start over, "
            "or choose another --output-dir.",
            2,
        )


def take_staging(output_dir: Path, staging: Path) -> RunLock:
    """Create ``staging`` afresh (an abandoned one, whose lock nobody holds, is removed) and lock it.

    For commands that write a run folder in one go (``miniformer average``); `check_destination` has
    refused live runs and interrupted ones before. Returns the held lock; release it after publishing.
    """
    lock = RunLock(staging)
    if staging.is_dir():
        # Take the lock of the folder as it is first, so a run that started since the check is never touched.
        if not lock.try_acquire():
            raise RunError(
                f"a run (PID {lock.owner()}) is writing {output_dir} right now; nothing was touched. Wait for it "
                "to finish, or choose another --output-dir."
            )
        if has_checkpoint(staging):
            lock.release()
            raise RunError(f"an interrupted training run is in {staging}; nothing was touched.")
        for entry in staging.iterdir():  # an abandoned start: nobody holds its lock and it has no checkpoint
            if entry.name != LOCK_FILE:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return lock
    staging.mkdir(parents=True)
    if not lock.try_acquire():
        raise RunError(
            f"a run (PID {lock.owner()}) started writing {output_dir} at the same moment; nothing was touched. "
            "Wait for it to finish, or choose another --output-dir."
        )
    return lock


def check_resume_options(folder: Path, *, current: Mapping[str, Any]) -> None:
    """Refuse a ``--resume`` whose data/model options (`RESUME_MUST_MATCH`) differ from those the run in
    ``folder`` recorded in ``run_arguments.json``; ``current``: this run's option values by name."""
    saved_path = folder / RUN_ARGUMENTS
    if not saved_path.is_file():
        return
    saved = read_json(saved_path)
    different = [name for name in RESUME_MUST_MATCH if name in saved and saved[name] != current.get(name)]
    if different:
        details = ", ".join(
            f"--{name.replace('_', '-')} {saved[name]!r} (now {current.get(name)!r})" for name in different
        )
        raise RunError(
            f"--resume with different data/model flags: the run used {details}; expected the same flags as the "
            "interrupted run.",
            2,
        )


# ---------------------------------------------------------------------------------------------
# Fingerprints and checksums
# ---------------------------------------------------------------------------------------------


def data_fingerprint(splits: Iterable[tuple[str, Iterable[str], Iterable[str]]]) -> str:
    """SHA-256 over every (split, source, target) in order: any change in the data changes it."""
    digest = hashlib.sha256()
    for name, sources, targets in splits:
        digest.update(f"[{name}]".encode())
        for source, target in zip(sources, targets):
            for text in (source, target):
                encoded = text.encode("utf-8")
                digest.update(len(encoded).to_bytes(8, "little"))
                digest.update(encoded)
    return "sha256:" + digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def write_weights_checksum(folder: str | os.PathLike) -> dict[str, str]:
    """Record the SHA-256 of the folder's weight files in ``checksums.json``."""
    folder = Path(folder)
    checksums = {
        path.name: file_sha256(path) for path in sorted(folder.glob("*.safetensors")) if path.is_file()
    }
    write_json(folder / CHECKSUMS, checksums)
    return checksums


def verify_weights(folder: str | os.PathLike) -> bool:
    """Check the weight files against ``checksums.json``; False when the folder records none.

    The check is the model files' own `support_miniformer.verify_weight_checksums` (``from_pretrained``
    and ``pipeline(model=folder)`` run it too), so every way in gives the same verdict: a malformed or
    empty record, a missing listed file or changed bytes is one `RunError` naming the file.
    """
    from .support_miniformer import CorruptedCheckpointError, verify_weight_checksums

    try:
        return verify_weight_checksums(folder)
    except CorruptedCheckpointError as error:
        raise RunError(str(error)) from None


# What tells two runs apart: the options that decide the data and the task (a subset of RESUME_MUST_MATCH).
RUN_IDENTITY_OPTIONS = (
    "task", "train_file", "dataset", "dataset_config", "dataset_revision", "source_lang", "target_lang",
    "source_column", "target_column", "tokenizer", "vocab_size",
)  # fmt: skip
# Config entries that a save or a library version changes, not the model.
_VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path", "torch_dtype", "dtype", "auto_map", "architectures")


def run_folder_of(folder: str | os.PathLike) -> Path:
    """The run folder a checkpoint belongs to (``RUN/checkpoints/checkpoint-N`` -> ``RUN``), else ``folder``."""
    path = Path(folder).resolve()
    return path.parent.parent if path.parent.name == CHECKPOINTS else path


def run_identity(folder: str | os.PathLike) -> dict[str, Any]:
    """What a checkpoint or run folder was trained on and as: the data fingerprint and data options of its
    run (``run_arguments.json``), its tokenizer (SHA-256 of ``tokenizer.json``) and its model config.

    Entries that cannot be read are left out, so two folders are compared on what both record.
    """
    path = Path(folder)
    identity: dict[str, Any] = {}
    for candidate in (path, run_folder_of(path)):
        try:
            arguments = read_json(candidate / RUN_ARGUMENTS)
        except (OSError, ValueError):
            continue
        if isinstance(arguments, dict):
            for name in ("data_fingerprint", *RUN_IDENTITY_OPTIONS):
                if name in arguments:
                    identity[name] = arguments[name]
            break
    if (path / TOKENIZER_FILES[0]).is_file():
        identity["tokenizer.json"] = file_sha256(path / TOKENIZER_FILES[0])
    try:
        config = read_json(path / CONFIG_FILE)
    except (OSError, ValueError):
        config = None
    if isinstance(config, dict):
        identity["config.json"] = {key: value for key, value in config.items() if key not in _VOLATILE_CONFIG_KEYS}
    return identity


# ---------------------------------------------------------------------------------------------
# Disk full and other OS errors
# ---------------------------------------------------------------------------------------------

# torch.save reports a failed write (a full disk among others) as a RuntimeError of its C++ writer.
_TORCH_WRITE_FAILED = ("file write failed", "PytorchStreamWriter failed")


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the disk is full.

    Covers ``OSError`` ENOSPC/EDQUOT, torch.save's ``RuntimeError`` ("PytorchStreamWriter failed writing
    file ...: file write failed", what saving the optimizer state gives on a full disk) and safetensors'
    message.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left" in text or "StorageFull" in text or "Disk quota exceeded" in text:
            return True
        if isinstance(error, RuntimeError) and any(marker in text for marker in _TORCH_WRITE_FAILED):
            return True
        error = error.__cause__ or error.__context__
    return False


def explain_os_error(error: BaseException, *, kept: str | None = None) -> RunError:
    """One line for an error of the file system: a full disk says so, and what is safe.

    ``kept`` says what survived (for training: "the last good checkpoint, checkpoints/checkpoint-4, is
    kept (rerun the same command with --resume)"); without it the line says that nothing already
    written was changed, which holds for every writer of this package (they write in a staging
    folder and publish with one rename).
    """
    safe = kept or "the data already written are safe: nothing is published until it is complete"
    if disk_full(error):
        where = getattr(error, "filename", None)
        return RunError(
            f"disk full (no space left on the device{f' while writing {where}' if where else ''}); {safe}. "
            "Free some space and run the same command again."
        )
    if isinstance(error, OSError):
        target = f" ({error.filename})" if error.filename else ""
        return RunError(f"{type(error).__name__}: {error.strerror or error}{target}; {safe}.")
    return RunError(f"{type(error).__name__}: {' '.join(str(error).split())}")


# ---------------------------------------------------------------------------------------------
# The metrics schema of metrics.json
# ---------------------------------------------------------------------------------------------

# Prefix of a figure in metrics.json -> the split it was measured on. Training writes "eval_<name>" for
# the held-out test split ("eval_split": "test") and "validation_<name>"; an evaluation may write "test_".
METRIC_PREFIXES = {"eval": "test", "validation": "validation", "test": "test"}
# Figures of other heads a card may show (a classifier's accuracy, given to sharing.push_model).
EXTRA_METRIC_NAMES = ("accuracy",)


def metric_names() -> tuple[str, ...]:
    """Every metric a metrics.json may hold per split: `metrics.EVAL_METRIC_NAMES`, then the extras."""
    from .metrics import EVAL_METRIC_NAMES  # here, not at the top: this module imports only the standard library

    return tuple(EVAL_METRIC_NAMES) + EXTRA_METRIC_NAMES


def metric_key(prefix: str, name: str) -> str:
    """The key of metric ``name`` measured with ``prefix`` ("eval", "validation", "test")."""
    if prefix not in METRIC_PREFIXES:
        raise ValueError(f"prefix {prefix!r} is not one of {sorted(METRIC_PREFIXES)}")
    return f"{prefix}_{name}"


def split_metrics(results: Mapping[str, Any], *, prefix: str, source_prefix: str | None = None) -> dict[str, Any]:
    """``{prefix_<name>: value}`` for every metric name that ``results`` holds under ``source_prefix``.

    Training builds metrics.json with it: ``split_metrics(final_test, prefix="eval", source_prefix="test")``.
    """
    source_prefix = source_prefix or prefix
    return {
        metric_key(prefix, name): results[f"{source_prefix}_{name}"]
        for name in metric_names()
        if f"{source_prefix}_{name}" in results
    }


def evaluation_metrics(metrics: Mapping[str, Any]) -> list[tuple[str, str, str, float]]:
    """``(prefix, split, metric name, value)`` for every numeric figure of the schema in ``metrics``.

    The model card, the demo and reports read metrics.json through this, so a metric added to
    `metrics.METRIC_NAMES` shows up everywhere (chrF included).
    """
    found = []
    for prefix, split in METRIC_PREFIXES.items():
        for name in metric_names():
            value = metrics.get(metric_key(prefix, name))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found.append((prefix, split, name, value))
    return found


# ---------------------------------------------------------------------------------------------
# Non-finite weights: the one check
# ---------------------------------------------------------------------------------------------


def _named_tensors(weights: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(weights, (str, os.PathLike)):
        yield from _safetensors_tensors(Path(weights))
        return
    if hasattr(weights, "named_parameters") and hasattr(weights, "state_dict"):
        weights = weights.state_dict()
    yield from (weights.items() if isinstance(weights, Mapping) else weights)


def _safetensors_tensors(path: Path) -> Iterable[tuple[str, Any]]:
    from safetensors import SafetensorError, safe_open

    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    yield name, handle.get_tensor(name)
        except SafetensorError as error:
            raise RunError(
                f"{file} cannot be read ({type(error).__name__}: {' '.join(str(error).split())}); the file is "
                "truncated or corrupted. Copy the run folder again or retrain."
            ) from None


def non_finite_weights(weights: Any) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (empty when all are finite).

    ``weights``: a model (its ``state_dict``), a mapping or iterable of ``(name, tensor)`` (parameters,
    gradients), or a safetensors file or folder (read tensor by tensor). One summed check runs first:
    the common case is that nothing is wrong. Under FSDP, each process checks its own shards.
    """
    import torch

    named = [
        (name, tensor.to_local() if hasattr(tensor, "to_local") else tensor)
        for name, tensor in _named_tensors(weights)
        if tensor is not None and tensor.is_floating_point()
    ]
    if not named:
        return []
    with torch.no_grad():
        tensors = [tensor.detach() for _, tensor in named]
        if hasattr(torch.nn.utils, "get_total_norm"):  # one fused pass (torch >= 2.6)
            total = torch.nn.utils.get_total_norm(tensors)
        else:
            total = torch.stack([tensor.sum(dtype=torch.float64) for tensor in tensors]).sum()
        if bool(torch.isfinite(total)):
            return []
        # A non-finite total (or a finite-valued norm that overflowed): name the tensors that really are.
        return [name for name, tensor in named if not bool(torch.isfinite(tensor).all())]


def check_finite_weights(weights: Any, *, where: str, refusal: str = "refused") -> None:
    """Raise `RunError` when ``weights`` (see `non_finite_weights`) hold NaN or infinite values."""
    bad = non_finite_weights(weights)
    if bad:
        raise RunError(
            f"{where} holds NaN or infinite values ({len(bad)} tensor(s), first: {bad[0]}); a model with "
            f"non-finite weights gives meaningless outputs, so it is {refusal}. Retrain it, or use an earlier "
            "checkpoint."
        )


# ---------------------------------------------------------------------------------------------
# Validating a run folder for each use
# ---------------------------------------------------------------------------------------------

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# What each use needs beyond a config and intact weights.
USES = ("generate", "evaluate", "visualize", "demo", "average", "push")


def read_config(folder: Path, subject: str) -> dict[str, Any]:
    """``config.json`` of ``folder`` as a dict; `RunError` when it is missing or not a JSON object."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise RunError(
            f"{subject}: not a saved model folder (no config.json); expected a run folder written by "
            "`miniformer train` or save_pretrained. Check the path."
        )
    try:
        config = read_json(path)
    except (OSError, ValueError) as error:
        raise RunError(f"{subject}: {path} is not valid JSON ({error}); copy the run folder again.") from None
    if not isinstance(config, dict):
        raise RunError(f"{subject}: {path} holds a {type(config).__name__}; expected a JSON object (a model config).")
    return config


def check_run_folder(folder: str | os.PathLike, *, use: str, subject: str | None = None) -> dict[str, Any]:
    """Check that ``folder`` can serve ``use`` (one of `USES`) before anything is loaded; return its config.

    Every use: a folder with a readable ``config.json`` and safetensors weights (pickle-only weights
    are refused unopened) that match ``checksums.json`` when it records them. ``demo`` and ``push``
    also need a Miniformer config and the tokenizer; ``push`` needs the ``auto_map`` and the code
    files that let a stranger load it with ``trust_remote_code``. Raises `RunError` (one line; the
    message starts with ``subject``, by default ``--model <folder>``).
    """
    if use not in USES:
        raise ValueError(f"use={use!r}; expected one of {USES}")
    text = os.fspath(folder)
    subject = subject or f"--model {text}"
    path = Path(text)
    if not path.exists():
        raise RunError(f"{subject}: no such folder; expected a run folder written by `miniformer train`.")
    if not path.is_dir():
        raise RunError(f"{subject}: a file, not a folder; expected a run folder written by `miniformer train`.")
    config = read_config(path, subject)
    if use in ("demo", "push") and config.get("model_type") != "miniformer":
        raise RunError(
            f"{subject}: config.json has model_type={config.get('model_type')!r}, not 'miniformer': this folder "
            "is not a Miniformer run; expected a folder written by `miniformer train`."
        )
    if use == "push" and not config.get("auto_map"):
        raise RunError(
            f"{subject}: config.json has no auto_map, so trust_remote_code cannot find the model code; re-save "
            "the model with save_pretrained from miniformer_hf (it writes the auto_map)."
        )
    if not any((path / name).is_file() for name in (WEIGHTS_FILE, WEIGHTS_INDEX_FILE)) and not any(
        path.glob("*.safetensors")
    ):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise RunError(
                f"{subject}: the weights are only in pickle files ({', '.join(pickles)}), which can run code when "
                f"loaded and are refused; expected {WEIGHTS_FILE} (re-save the model with save_pretrained where "
                "you trust it)."
            )
        raise RunError(f"{subject}: no {WEIGHTS_FILE}; expected the weights of a run folder. Copy it again.")
    if use == "push":
        missing = [name for name in CODE_FILES if not (path / name).is_file()]
        if missing:
            raise RunError(
                f"{subject}: lacks {', '.join(missing)}, without which nobody can load it with trust_remote_code; "
                "re-save the model with save_pretrained from miniformer_hf."
            )
    if use in ("demo", "push") and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise RunError(
            f"{subject}: no tokenizer (tokenizer.json / tokenizer_config.json); save the tokenizer into the "
            "folder with tokenizer.save_pretrained."
        )
    verify_weights(path)
    return config


# ---------------------------------------------------------------------------------------------
# Loading a run folder (generate, evaluate, visualize, demo, average)
# ---------------------------------------------------------------------------------------------


def load_model(folder: str | os.PathLike, *, subject: str | None = None):
    """The model saved in ``folder``, loaded with this package's classes when it is a Miniformer.

    A folder this package wrote carries its code files and an ``auto_map``; loading it through the Auto
    classes would ask for ``trust_remote_code``. The package's own classes need no prompt and run the
    code installed here. Other seq2seq models load with ``AutoModelForSeq2SeqLM``. `RunError` names the
    file that cannot be loaded.
    """
    path = Path(folder)
    subject = subject or f"--model {os.fspath(folder)}"
    from safetensors import SafetensorError
    from transformers import AutoModelForSeq2SeqLM
    from transformers.utils import logging as transformers_logging

    from . import MiniformerForConditionalGeneration  # also registers Miniformer with the Auto classes
    from .support_miniformer import CorruptedCheckpointError

    transformers_logging.disable_progress_bar()  # a weight-loading bar is noise around one command's output
    config = read_config(path, subject)
    architecture = (config.get("architectures") or ["MiniformerForConditionalGeneration"])[0]
    own = config.get("model_type") == "miniformer" and architecture == "MiniformerForConditionalGeneration"
    loader = MiniformerForConditionalGeneration if own else AutoModelForSeq2SeqLM
    try:
        return loader.from_pretrained(path)
    except CorruptedCheckpointError as error:  # checksums.json, checked by the model files' from_pretrained
        raise RunError(f"{subject}: {error}") from None
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        if isinstance(error, json.JSONDecodeError):
            raise RunError(
                f"{subject}: a JSON file of the run folder ({path / CONFIG_FILE} or {GENERATION_CONFIG_FILE}) is "
                f"not valid JSON ({first_line}); copy the run folder again."
            ) from error
        if isinstance(error, SafetensorError) or "safetensor" in first_line.lower() or "header" in first_line.lower():
            raise RunError(
                f"{subject}: cannot load the weights in {path / WEIGHTS_FILE} ({type(error).__name__}: "
                f"{first_line}); the file is truncated or corrupted. Copy the run folder again or retrain."
            ) from error
        raise RunError(
            f"{subject}: cannot load a sequence-to-sequence model from {path} ({type(error).__name__}: "
            f"{first_line}); expected a run folder from `miniformer train`."
        ) from error


def load_tokenizer(folder: str | os.PathLike, *, subject: str | None = None):
    """The tokenizer saved in ``folder``; `RunError` when it cannot be loaded."""
    from transformers import AutoTokenizer

    from . import MiniformerConfig  # noqa: F401  (registers Miniformer: no trust_remote_code prompt)

    subject = subject or f"--model {os.fspath(folder)}"
    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise RunError(
            f"{subject}: cannot load the tokenizer ({type(error).__name__}: {error}); expected tokenizer.json "
            "and tokenizer_config.json from `miniformer train`."
        ) from error


def load_run_folder(model_dir: str | os.PathLike, *, use: str = "generate", subject: str | None = None):
    """``(model, tokenizer)`` in eval mode from a run folder (or any saved seq2seq model with its tokenizer).

    The folder is checked for ``use`` (`check_run_folder`: config, weights, ``checksums.json``), the
    model loads with the package's classes (no ``trust_remote_code`` prompt), and a model whose weights
    hold NaN or infinities is refused: it never produces output as if it were fine. Every problem is
    one `RunError` naming the file, starting with ``subject`` (by default ``--model <model_dir>``).
    """
    path = Path(model_dir)
    subject = subject or f"--model {os.fspath(model_dir)}"
    check_run_folder(path, use=use, subject=subject)
    model = load_model(path, subject=subject)
    check_finite_weights(model, where=f"{subject}: {path / WEIGHTS_FILE}")
    tokenizer = load_tokenizer(path, subject=subject)
    model.eval()
    return model, tokenizer
