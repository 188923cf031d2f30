"""How fast the ``miniformer`` command answers help and usage errors (issue: under 2 seconds).

Runs each command line a few times in a fresh process and prints the median and worst wall time::

    python scripts/benchmark_cli.py            # the installed `miniformer` (or python -m miniformer_hf.cli)
    python scripts/benchmark_cli.py --repeat 5

Nothing here trains: every command line only parses (``--help``) or fails parsing (exit code 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

COMMAND_LINES = (
    ["--help"],
    ["train", "--help"],
    ["generate", "--help"],
    ["evaluate", "--help"],
    ["visualize", "--help"],
    ["push", "--help"],
    ["train", "--batch-size", "-3"],
    ["train", "--no-such-flag"],
    ["generate", "--model", "somewhere"],
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command line (default 3)")
    parser.add_argument("--limit", type=float, default=2.0, help="seconds allowed (default 2.0)")
    args = parser.parse_args()
    executable = shutil.which("miniformer")
    command = [executable] if executable else [sys.executable, "-m", "miniformer_hf.cli"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"command: {' '.join(command)}; {os.cpu_count()} CPUs; load average {load:.2f}")
    slowest = 0.0
    for argv in COMMAND_LINES:
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = subprocess.run([*command, *argv], capture_output=True, text=True)
            seconds.append(time.perf_counter() - started)
        slowest = max(slowest, max(seconds))
        print(
            f"{' '.join(argv):40s} exit {result.returncode}  median {statistics.median(seconds):5.2f} s  "
            f"worst {max(seconds):5.2f} s"
        )
    verdict = "within" if slowest < args.limit else "OVER"
    print(f"slowest {slowest:.2f} s: {verdict} the {args.limit:.1f} s limit")
    return 0 if slowest < args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
