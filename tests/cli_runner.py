"""Several `miniformer` commands in ONE Python process, each as `python -m miniformer_hf.cli ...` would run it.

Starting Python and importing torch, transformers and datasets costs about 5 s a process; tests that need only a
command's exit status and what it prints (commands that fail or stop before training, or do little) run them all
in one interpreter instead: ``run_commands({name: (working folder, arguments)}, env=...)``.

In that interpreter (this file run as a script) each command runs the CLI module as ``__main__``, as
``python -m miniformer_hf.cli`` does; its exit status is SystemExit's (0 when it returns), and its stdout and
stderr are what reached file descriptors 1 and 2 while it ran, Python's and any library's alike. The commands run
one after another in the order given, each in its own working folder; a test that needs what is special to a
process of its own (a signal, a lock held by another live process, a fresh process's first imports, the console
script itself) starts one instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_commands(commands: dict, env: dict | None = None, cwd=None, timeout: float = 600) -> dict:
    """Run ``commands`` (name: (working folder, `miniformer` arguments)) in one new Python process.

    Returns name: {"code": exit status, "stdout": ..., "stderr": ...}. ``env`` is the whole environment of that
    process (default: this one's); this checkout is put first on its PYTHONPATH.
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    request = {name: [str(folder), [str(argument) for argument in arguments]]
               for name, (folder, arguments) in commands.items()}  # fmt: skip
    completed = subprocess.run([sys.executable, __file__, json.dumps(request)], env=env, cwd=cwd,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    marker = "CLI-RUNNER-RESULTS "
    assert marker in completed.stdout, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(completed.stdout.rsplit(marker, 1)[1].splitlines()[0])


def _run_one(arguments: list[str]) -> dict:
    import runpy
    import tempfile

    sys.argv = ["miniformer", *arguments]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            runpy.run_module("miniformer_hf.cli", run_name="__main__")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return {"code": code, "stdout": stdout, "stderr": stderr}


def _main(request: str) -> None:
    tests = os.path.realpath(os.path.dirname(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or ".") != tests]  # not on the command's path
    results = {}
    for name, (folder, arguments) in json.loads(request).items():
        os.chdir(folder)
        results[name] = _run_one(arguments)
    print("CLI-RUNNER-RESULTS " + json.dumps(results), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1])
