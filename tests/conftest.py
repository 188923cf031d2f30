"""Shared test setup: offline, one thread everywhere, tiny model factories, and the run folders that
many tests read, each built once per session (copy one with its `_copy` fixture before changing it).

The suite runs on every core through pytest-xdist (pyproject.toml's ``addopts``; ``-n 0`` runs it in this
process, for a debugger). Each worker is a process of its own with its own session fixtures, so the
expensive ones (`pairs_file`, `cli_run`, `date_run`) are built once for all workers by `built_once`.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Inherited by every subprocess; `miniformer train` without --threads honours it (threads.default_threads),
# so no test run measures or fights over threads on a small, busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# A Hugging Face home of this test process's own (each pytest-xdist worker is one), read before any Hugging
# Face library is imported: nothing is read from or written to the developer's cache, and two workers never
# copy the same remote-code module into one modules folder at the same moment.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="miniformer-tests-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides):
    from miniformer_hf import MiniformerConfig

    sizes = dict(vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0, max_position_embeddings=64)
    sizes.update(overrides)
    return MiniformerConfig(**sizes)


@pytest.fixture
def config():
    return tiny_config()


def pytest_collection_modifyitems(config, items):
    """Test files that hold a test marked ``slow`` run first (in their own order): pytest-xdist hands out
    whole files in collection order, so the long ones start at once instead of finishing alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def built_once(tmp_path_factory, name: str, build) -> dict:
    """``build(folder)`` run once per test session, however many pytest-xdist workers ask for ``name``.

    ``build`` fills the empty ``folder`` and returns a JSON-able record, which every caller gets. Without
    xdist (no ``PYTEST_XDIST_WORKER`` in the environment) it runs in this session's temporary folder. With
    xdist the workers share their session's root temporary folder: the first one builds under a file lock
    and writes ``name.json`` last, the others wait on the lock and read the record. A build that fails
    raises in the worker that ran it and again (it is retried) in each worker that asks after it.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent
    record = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if record.is_file():
            return json.loads(record.read_text(encoding="utf-8"))
        folder = root / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        value = build(folder)
        record.write_text(json.dumps(value), encoding="utf-8")
        return value


# ---------------------------------------------------------------------------------------------
# A run folder written by the real `miniformer train` (test_cli, test_faults)
# ---------------------------------------------------------------------------------------------


SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package); its sibling scripts importable meanwhile."""
    import importlib.util

    sys.path.insert(0, str(SCRIPTS_DIR))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS_DIR))
    return module


def cli_env(**extra) -> dict:
    """The environment of a `miniformer` subprocess: this checkout first, offline, one thread."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def write_reverse_pairs(path, count=120, extra=None) -> Path:
    """JSON Lines pairs of short spaced letter words and their reversal; row 3 replaced by ``extra``."""
    letters = "abcdef"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            word = " ".join(letters[(i * 7 + k * 3) % 6] for k in range(3 + i % 4))
            row = {"source": word, "target": word[::-1]}
            if extra is not None and i == 2:
                row = extra
            handle.write(json.dumps(row) + "\n")
    return Path(path)


CLI_RUN_STEPS = 4


def cli_train_argv(data_file, output_dir, steps=CLI_RUN_STEPS) -> list[str]:
    """`miniformer train` arguments of the session run (`cli_run`): tiny model, a checkpoint every 2
    steps, the last two kept and averaged, a log line every step (that --quiet hides); add ``--resume``
    etc. after them."""
    return [
        "train", "--train-file", str(data_file), "--size", "tiny", "--max-steps", str(steps), "--batch-size", "16",
        "--eval-steps", "2", "--eval-samples", "8", "--logging-steps", "1", "--average-last", "2", "--output-dir", str(output_dir), "--quiet",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    """The session run's training data (120 reverse pairs). Read only."""

    def build(folder):
        return str(write_reverse_pairs(folder / "pairs.jsonl"))

    return Path(built_once(tmp_path_factory, "pairs", build))


@pytest.fixture(scope="session")
def cli_run_process(tmp_path_factory, pairs_file) -> subprocess.CompletedProcess:
    """The finished `python -m miniformer_hf.cli train` process that wrote `cli_run` (its stdout, stderr)."""

    def build(folder):
        command = [sys.executable, "-m", "miniformer_hf.cli", *cli_train_argv(pairs_file, folder / "reverse")]
        completed = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=900)
        assert completed.returncode == 0, completed.stderr[-3000:]
        return dict(args=command, returncode=0, stdout=completed.stdout, stderr=completed.stderr)

    return subprocess.CompletedProcess(**built_once(tmp_path_factory, "session-runs", build))


@pytest.fixture(scope="session")
def cli_run(cli_run_process) -> Path:
    """A run folder as a user makes one: `miniformer train` (`cli_train_argv`) in its own process:
    4 steps, checkpoint-2 and checkpoint-4 kept and averaged, attention views, model card.
    READ ONLY: tests that resume, damage or overwrite it take `cli_run_copy`."""
    command = cli_run_process.args
    return Path(command[command.index("--output-dir") + 1])


@pytest.fixture
def cli_run_copy(cli_run, tmp_path) -> Path:
    """A copy of `cli_run` of this test's own, at ``tmp_path / "run"``."""
    return Path(shutil.copytree(cli_run, tmp_path / "run"))


# ---------------------------------------------------------------------------------------------
# The briefly trained date model (test_demo, test_demo_browser, test_demo_space)
# ---------------------------------------------------------------------------------------------

DATE_RUN_STEPS = 350  # about 20 s on one CPU thread (batch 48, linear decay): about 95% of held-out dates right


@pytest.fixture(scope="session")
def date_run(tmp_path_factory) -> Path:
    """A seed-width Miniformer trained briefly on the date task, saved as a run folder. Read only."""
    return Path(built_once(tmp_path_factory, "miniformer-demo-run", _train_date_run))


def _train_date_run(folder: Path) -> str:
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, TransformerTrainer
    from miniformer_hf.data import load_task
    from miniformer_hf.tokenization import train_char_tokenizer

    data = load_task("dates", num_train=5000, seed=0)
    tokenizer = train_char_tokenizer(data["train"]["source"][:] + data["train"]["target"][:])
    torch.manual_seed(0)
    config = MiniformerConfig(vocab_size=len(tokenizer), d_model=64, n_heads=4, n_layers=2, d_ff=128, dropout=0.0)
    model = MiniformerForConditionalGeneration(config)
    trainer = TransformerTrainer(
        model, tokenizer, learning_rate=5e-3, batch_size=48, schedule="linear", warmup_steps=50,
        output_dir=folder / "checkpoints", save_strategy="no", disable_tqdm=True, logging_steps=1000, report_to=[],
    )  # fmt: skip
    trainer.train(data["train"], max_steps=DATE_RUN_STEPS)
    model.generation_config.max_new_tokens = 16
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "run_arguments.json").write_text(json.dumps({"task": "dates", "seed": 0}), encoding="utf-8")
    return str(folder)
