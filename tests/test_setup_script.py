"""scripts/setup.sh, the README's two commands: a second run reuses what the first installed (no pip, no apt-get),
and each job then runs the real command. The first run (pip and apt-get from nothing) is what .ci/run does."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup.sh"


def installed_venv(tmp_path: Path, extras: str) -> tuple[Path, dict]:
    """A venv as a first run leaves it (this interpreter's, with its stamp), and a PATH where pip, apt-get and sudo
    fail loudly if the script calls them."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / f".miniformer-setup-{extras}").write_text(f"torch==2.13.0 {digest}\n")
    trap = tmp_path / "trap"
    trap.mkdir()
    for name in ("apt-get", "sudo", "pip"):
        (trap / name).write_text(f"#!/bin/sh\necho 'setup called {name} on a second run' >&2\nexit 99\n")
        (trap / name).chmod(0o755)
    env = {**os.environ, "VENV": str(venv), "PATH": f"{trap}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    return venv, env


def test_setup_without_a_job_prints_its_usage():
    completed = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "usage: scripts/setup.sh train|test" in completed.stderr


def test_second_train_run_reuses_the_venv_and_runs_miniformer_train(tmp_path):
    _, env = installed_venv(tmp_path, "viz")
    completed = subprocess.run(["bash", str(SETUP), "train", "--help"], capture_output=True, text=True,
                               timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "already has torch 2.13.0 and miniformer-hf[viz]" in completed.stdout
    assert "miniformer train" in completed.stdout and "setup called" not in completed.stderr


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="a second run finds the chromium the first installed; none is installed here")
def test_second_test_run_reuses_everything_and_runs_pytest(tmp_path):
    _, env = installed_venv(tmp_path, "test")
    completed = subprocess.run(["bash", str(SETUP), "test", "--version"], capture_output=True, text=True,
                               timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "already has torch 2.13.0 and miniformer-hf[test]" in completed.stdout
    assert "pytest" in completed.stdout + completed.stderr and "setup called" not in completed.stderr
