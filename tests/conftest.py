"""Shared test setup: offline, one thread everywhere, tiny model factories, and the run folders that
many tests read, each built once per session (copy one with its `_copy` fixture before changing it)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Inherited by every subprocess; `miniformer train` without --threads honours it (threads.default_threads),
# so no test run measures or fights over threads on a small, busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

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


# ---------------------------------------------------------------------------------------------
# A run folder written by the real `miniformer train` (test_cli, test_faults)
# ---------------------------------------------------------------------------------------------


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
    return write_reverse_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")


@pytest.fixture(scope="session")
def cli_run_process(tmp_path_factory, pairs_file) -> subprocess.CompletedProcess:
    """The finished `python -m miniformer_hf.cli train` process that wrote `cli_run` (its stdout, stderr)."""
    output_dir = tmp_path_factory.mktemp("session-runs") / "reverse"
    command = [sys.executable, "-m", "miniformer_hf.cli", *cli_train_argv(pairs_file, output_dir)]
    completed = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


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

DATE_RUN_STEPS = 400  # about 30 s on one CPU thread; enough for most held-out dates to come out right


@pytest.fixture(scope="session")
def date_run(tmp_path_factory) -> Path:
    """A seed-width Miniformer trained briefly on the date task, saved as a run folder. Read only."""
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, TransformerTrainer
    from miniformer_hf.data import load_task
    from miniformer_hf.tokenization import train_char_tokenizer

    folder = tmp_path_factory.mktemp("miniformer-demo-run")
    data = load_task("dates", num_train=5000, seed=0)
    tokenizer = train_char_tokenizer(data["train"]["source"][:] + data["train"]["target"][:])
    torch.manual_seed(0)
    config = MiniformerConfig(vocab_size=len(tokenizer), d_model=64, n_heads=4, n_layers=2, d_ff=128, dropout=0.0)
    model = MiniformerForConditionalGeneration(config)
    trainer = TransformerTrainer(
        model, tokenizer, learning_rate=3e-3, batch_size=64, schedule="inverse_sqrt", warmup_steps=50,
        output_dir=folder / "checkpoints", save_strategy="no", disable_tqdm=True, logging_steps=1000, report_to=[],
    )  # fmt: skip
    trainer.train(data["train"], max_steps=DATE_RUN_STEPS)
    model.generation_config.max_new_tokens = 16
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "run_arguments.json").write_text(json.dumps({"task": "dates", "seed": 0}), encoding="utf-8")
    return folder
