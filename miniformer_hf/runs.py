"""Run folders: the state of the folder a training run writes.

This module is the one place that decides what may happen to an ``--output-dir``:

* The options of ``miniformer train`` live in `miniformer_hf.options` (`TrainOptions`, whose old name
  `TrainingRunOptions` and the tables ``DEFAULTS``, ``MODEL_SIZES`` ... stay importable from here).
* A run is assembled in ``<output-dir>.incomplete`` and published with `publish_folder` (also used for
  each checkpoint): the finished folder appears with one ``os.replace``; an old one is moved aside
  first and deleted only afterwards.
* `check_output_folder`: ``--overwrite`` replaces only an empty folder or a recognisable Miniformer
  run folder; a live run holds `RunLock` (an ``flock`` on a file in the staging folder, released by
  the kernel however the process ends), so a second run names its PID and touches nothing.
* `data_fingerprint` (kept in ``run_arguments.json``) lets ``--resume`` refuse changed data;
  `write_weights_checksum` / `verify_weights` record and check a SHA-256 of ``model.safetensors``.

It imports only the standard library, so the command line can use it before parsing is done.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
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
    "CHECKSUMS",
    "CHECKPOINTS",
    "DEFAULTS",
    "INCOMPLETE_SUFFIX",
    "MODEL_SIZES",
    "RUN_ARGUMENTS",
    "SCHEDULES",
    "RunError",
    "RunLock",
    "TrainingRunOptions",
    "check_output_folder",
    "default_threads",
    "data_fingerprint",
    "is_run_folder",
    "load_run_folder",
    "publish_folder",
    "verify_weights",
    "write_json",
    "write_weights_checksum",
]


INCOMPLETE_SUFFIX = ".incomplete"
CHECKPOINTS = "checkpoints"
RUN_ARGUMENTS = "run_arguments.json"
CHECKSUMS = "checksums.json"
LOCK_FILE = ".miniformer-run.lock"
WEIGHTS_FILE = "model.safetensors"
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


def check_output_folder(options: TrainingRunOptions, output_dir: Path, staging: Path) -> None:
    """Refuse (with `RunError`) anything that could lose data or mix two runs, before any work starts."""
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
    if options.resume:
        if not (staging.is_dir() and has_checkpoint(staging)) and not (output_dir / CHECKPOINTS).is_dir():
            raise RunError(
                f"--resume: no checkpoints in {staging} or {output_dir / CHECKPOINTS}; expected the --output-dir of "
                "an earlier run (and the same flags). Drop --resume to start a new run."
            )
        return
    occupied = output_dir.is_dir() and any(output_dir.iterdir())
    if occupied and not options.overwrite:
        raise RunError(
            f"--output-dir {output_dir} already exists and is not empty; pass --overwrite to replace it when the new "
            "run finishes, --resume to continue it, or choose another --output-dir.",
            2,
        )
    if occupied and not is_run_folder(output_dir):
        raise RunError(
            f"--overwrite refused: {output_dir} is not a Miniformer run folder (no {RUN_ARGUMENTS} or Miniformer "
            "config.json) and not empty; --overwrite only replaces run folders. Nothing was touched; choose "
            "another --output-dir.",
        )
    if staging.is_dir() and has_checkpoint(staging) and not options.overwrite:
        raise RunError(
            f"an interrupted run was found in {staging}; pass --resume to continue it, --overwrite to start over, "
            "or choose another --output-dir.",
            2,
        )


def check_resume_options(options: TrainingRunOptions, folder: Path) -> None:
    saved_path = folder / RUN_ARGUMENTS
    if not saved_path.is_file():
        return
    saved = read_json(saved_path)
    current = options.to_dict()
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

    Raises `RunError` naming the file when a recorded file is missing or its bytes changed.
    """
    folder = Path(folder)
    record = folder / CHECKSUMS
    if not record.is_file():
        return False
    try:
        checksums = read_json(record)
    except ValueError as error:
        raise RunError(f"{record} is not valid JSON ({error}); expected the checksums `miniformer train` wrote.")
    for name, expected in checksums.items():
        path = folder / name
        if not path.is_file():
            raise RunError(f"{path} is missing, but {record} lists it; the run folder is incomplete. Copy it again.")
        actual = file_sha256(path)
        if actual != expected:
            raise RunError(
                f"{path} is corrupted: its SHA-256 does not match the one recorded when it was written ({record}); "
                "copy or download the run folder again, or retrain."
            )
    return True


def disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


# ---------------------------------------------------------------------------------------------
# Loading a run folder for generate / evaluate / visualize
# ---------------------------------------------------------------------------------------------

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_model_folder(model_dir: str | os.PathLike) -> Path:
    """The folder ``model_dir`` if it holds a config and intact safetensors weights; `RunError` otherwise."""
    text = os.fspath(model_dir)
    path = Path(text)
    if not path.exists():
        raise RunError(f"--model {text}: no such folder; expected a run folder written by `miniformer train`.")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise RunError(
            f"--model {text}: not a saved model folder (no config.json); expected a run folder written by "
            "`miniformer train` or save_pretrained. Check the path."
        )
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise RunError(
                f"--model {text}: the weights are only in pickle files ({', '.join(pickles)}), which can run code "
                "when loaded and are refused; expected model.safetensors (re-save the model with save_pretrained "
                "where you trust it)."
            )
        raise RunError(f"--model {text}: no model.safetensors; expected the weights of a run folder. Copy it again.")
    verify_weights(path)
    return path


def load_run_folder(model_dir: str | os.PathLike):
    """``(model, tokenizer)`` from a run folder (or any saved seq2seq model with its tokenizer).

    The weights are checked against ``checksums.json`` when the folder has one, unreadable or corrupt
    files give one `RunError` naming the file, and non-finite weights are logged as a loud warning.
    """
    path = check_model_folder(model_dir)
    from safetensors import SafetensorError
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from . import MiniformerConfig  # noqa: F401  (imports the model and registers it with the Auto classes)
    from .support_miniformer import CorruptedCheckpointError

    transformers_logging.disable_progress_bar()  # a weight-loading bar is noise around one command's output
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(path)
    except CorruptedCheckpointError as error:  # checksums.json checked by the model files' from_pretrained
        raise RunError(f"--model {os.fspath(model_dir)}: {error}") from None
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        if isinstance(error, json.JSONDecodeError):
            raise RunError(
                f"--model {os.fspath(model_dir)}: a JSON file of the run folder ({path / 'config.json'} or "
                f"generation_config.json) is not valid JSON ({first_line}); copy the run folder again."
            ) from error
        if isinstance(error, SafetensorError) or "safetensor" in first_line.lower() or "header" in first_line.lower():
            raise RunError(
                f"--model {os.fspath(model_dir)}: cannot load the weights in {path / WEIGHTS_FILE} "
                f"({type(error).__name__}: {first_line}); the file is truncated or corrupted. Copy the run folder "
                "again or retrain."
            ) from error
        raise RunError(
            f"--model {os.fspath(model_dir)}: cannot load a sequence-to-sequence model from {path} "
            f"({type(error).__name__}: {first_line}); expected a run folder from `miniformer train`."
        ) from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise RunError(
            f"--model {os.fspath(model_dir)}: cannot load the tokenizer ({type(error).__name__}: {error}); expected "
            "tokenizer.json and tokenizer_config.json from `miniformer train`."
        ) from error
    model.eval()
    warn_if_not_finite(model, path)
    return model, tokenizer


def warn_if_not_finite(model, path: str | os.PathLike) -> list[str]:
    """Log a loud warning when any weight of ``model`` (loaded from ``path``) is NaN or infinite."""
    import torch

    bad = [name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        logger.warning(
            "WARNING: %d weight tensor(s) in %s are NaN or infinite (first: %s); this model's outputs are "
            "meaningless. Retrain it, or use an earlier checkpoint.",
            len(bad),
            path,
            bad[0],
        )
    return bad
