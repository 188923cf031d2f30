#!/usr/bin/env python
"""Benchmark the default thread count of `miniformer train` against ``--threads 1``, on a quiet machine and
beside busy processes (issue 22 item 5: the default must never be more than a little slower than
``--threads 1`` on a loaded machine, and keep its gain on a quiet one).

    python scripts/benchmark_threads.py                        # quiet and one busy process, 3 repeats, 150 steps
    python scripts/benchmark_threads.py --conditions quiet busy1 busy4 --repeats 5 --steps 300
    python scripts/benchmark_threads.py --pin-busy             # busy processes pinned to one CPU each
    python scripts/benchmark_threads.py --threads default 1 2  # thread settings to compare
    python scripts/benchmark_threads.py --dry-run              # print the plan and the machine, run nothing
    python scripts/benchmark_threads.py -- --task numbers      # extra flags for miniformer train

Every run is the command a user types, as a subprocess: ``python -m miniformer_hf.cli train`` with
``--max-steps STEPS``, ``--eval-steps`` past the last step (no evaluation or checkpoint during
training), ``--no-visualize -q`` and, for a thread setting other than ``default``, ``--threads N``.
Nothing else about threads is set: OMP_NUM_THREADS and MKL_NUM_THREADS are removed from the runs'
environment (``--keep-thread-env`` keeps them), so ``default`` is what a newcomer gets, whatever
policy the package follows.

Conditions: ``quiet`` (nothing started beside the run) and ``busyN``: N processes spinning
(``while True: pass``) from a second before the run until it ends, each pinned to one allowed CPU
in turn with ``--pin-busy``. Configurations are interleaved: each repeat runs every condition and,
within a condition, every thread setting (in an order that rotates between repeats), so slow
drifts of the machine spread over all of them.

Speed is training steps per second: the run's steps divided by the time `Trainer.train` took
(``train_runtime`` in the run's ``log_history.json``) less the evaluations logged during it
(``eval_runtime``), so data generation, tokenizer training, model set-up, evaluation and writing
the run folder do not count, while anything the package does to choose its threads during
training (measuring its first steps, say) does; when the log has no
``train_runtime``, ``training_wall_seconds`` from ``metrics.json`` is used instead (it includes the
set-up) and the source says so. Each configuration's median over the repeats is compared with
the best median of its condition: the goal is a default within 1.2x of the better setting in
every condition.

The table is printed and, with the machine (CPU model, CPU count, CPUs this process may use, load
average before the benchmark and before each run, torch version), written to
``benchmarks/threads_<machine>.json`` (``--machine`` names it; ``--json`` chooses another path).
Run it on an otherwise quiet machine: other work running during the benchmark is measured too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
GOAL_SLOWDOWN = 1.2  # the default may be at most this much slower than the better setting
THREAD_ENVIRONMENT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
BUSY_LOOP = "while True: pass"


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(usable_cpus()),
        "load_average_before": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "thread_environment": {name: os.environ[name] for name in THREAD_ENVIRONMENT if name in os.environ},
    }


def machine_slug(info: dict) -> str:
    """A file-name-safe label such as ``amd-epyc-7b13-2cpu``."""
    model = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|\d+-core|@.*$", " ", info["cpu_model"].lower())
    words = re.sub(r"[^a-z0-9]+", "-", model).strip("-")
    return f"{words or 'cpu'}-{info['usable_cpus']}cpu"


# ---------------------------------------------------------------------------------------------
# Busy processes beside the run
# ---------------------------------------------------------------------------------------------


def busy_count(condition: str) -> int:
    """``quiet`` -> 0, ``busy`` -> 1, ``busy3`` -> 3."""
    if condition == "quiet":
        return 0
    match = re.fullmatch(r"busy(\d*)", condition)
    if not match:
        raise argparse.ArgumentTypeError(f"condition {condition!r}: expected 'quiet' or 'busyN' (busy1, busy4, ...)")
    return int(match.group(1) or 1)


def start_busy(count: int, pin: bool) -> list[subprocess.Popen]:
    """``count`` processes spinning on a CPU each; pinned round-robin to the allowed CPUs with ``pin``."""
    cpus = usable_cpus()
    processes = []
    for index in range(count):
        code = BUSY_LOOP
        if pin and hasattr(os, "sched_setaffinity"):
            code = f"import os\nos.sched_setaffinity(0, {{{cpus[index % len(cpus)]}}})\n{BUSY_LOOP}"
        processes.append(subprocess.Popen([sys.executable, "-c", code]))
    if processes:
        time.sleep(1.0)  # let them reach full speed (and the load average start to show them)
    return processes


def stop_busy(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------------
# One run of miniformer train, and its speed
# ---------------------------------------------------------------------------------------------


def train_command(output_dir: Path, steps: int, threads: str, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "miniformer_hf.cli", "train", "--output-dir", str(output_dir),
               "--max-steps", str(steps), "--eval-steps", str(steps + 1), "--no-visualize", "-q"]  # fmt: skip
    if threads != "default":
        command += ["--threads", threads]
    return command + extra


def run_environment(keep_thread_env: bool) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    if not keep_thread_env:
        for name in THREAD_ENVIRONMENT:
            env.pop(name, None)
    # The checkout this script belongs to comes first, as `pip install -e .` would make it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    return env


def training_speed(run_folder: Path) -> dict:
    """Steps, training seconds and steps per second of a finished run folder."""
    metrics = json.loads((run_folder / "metrics.json").read_text(encoding="utf-8"))
    history_path = run_folder / "log_history.json"
    history = json.loads(history_path.read_text(encoding="utf-8")) if history_path.is_file() else []
    steps = max((entry.get("step", 0) for entry in history), default=0) or metrics.get("max_steps")
    ends = [index for index, entry in enumerate(history) if "train_runtime" in entry]
    if ends:
        # Evaluations during training (the pipeline evaluates at the last step) are logged before the
        # summary, each with its runtime: they are not training steps.
        evaluating = sum(entry["eval_runtime"] for entry in history[: ends[-1]] if "eval_runtime" in entry)
        seconds = float(history[ends[-1]]["train_runtime"]) - evaluating
        source = "log_history.json train_runtime - eval_runtime"
    else:
        evaluating = None
        seconds, source = float(metrics["training_wall_seconds"]), "metrics.json training_wall_seconds (with set-up)"
    return {
        "steps": steps,
        "train_seconds": round(seconds, 3),
        "evaluation_seconds_in_training": evaluating,
        "steps_per_second": round(steps / seconds, 4) if seconds > 0 else None,
        "source": source,
        "threads_recorded": metrics.get("threads"),
        "wall_seconds": metrics.get("wall_seconds"),
    }


def run_once(steps: int, threads: str, extra: list[str], env: dict, timeout: float, keep: Path | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="threads-benchmark-"))
    output_dir = folder / "run"
    command = train_command(output_dir, steps, threads, extra)
    load_before = load_average()
    started = time.perf_counter()
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise SystemExit(f"benchmark_threads: `{' '.join(command)}` failed ({result.returncode}): {tail}")
        speed = training_speed(output_dir)
        if keep is not None:
            shutil.copytree(output_dir, keep / f"run-{len(list(keep.iterdir())):03d}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {**speed, "command_seconds": round(time.perf_counter() - started, 2), "load_average_before": load_before}


# ---------------------------------------------------------------------------------------------
# The plan, the table and the verdict
# ---------------------------------------------------------------------------------------------


def plan(conditions: list[str], settings: list[str], repeats: int) -> list[tuple[int, str, str]]:
    """(repeat, condition, threads) in run order: every condition each repeat, the settings rotated."""
    order = []
    for repeat in range(repeats):
        for condition in conditions:
            shift = repeat % len(settings)
            for threads in settings[shift:] + settings[:shift]:
                order.append((repeat, condition, threads))
    return order


def summarize(runs: list[dict], conditions: list[str], settings: list[str]) -> list[dict]:
    rows = []
    for condition in conditions:
        medians = {}
        for threads in settings:
            speeds = [run["steps_per_second"] for run in runs if (run["condition"], run["threads"]) == (condition, threads)]
            speeds = [speed for speed in speeds if speed]
            if speeds:
                medians[threads] = statistics.median(speeds)
                rows.append({"condition": condition, "threads": threads, "runs": len(speeds),
                             "median_steps_per_second": round(medians[threads], 4),
                             "min": min(speeds), "max": max(speeds)})  # fmt: skip
        best = max(medians.values(), default=None)
        for row in rows:
            if row["condition"] == condition and best:
                row["slowdown_vs_best"] = round(best / row["median_steps_per_second"], 3)
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row["threads"] != "default" or "slowdown_vs_best" not in row:
            continue
        slowdown = row["slowdown_vs_best"]
        status = "meets" if slowdown <= GOAL_SLOWDOWN else "MISSES"
        lines.append(f"{row['condition']}: the default is {slowdown:.2f}x slower than the best setting "
                     f"({status} the goal of at most {GOAL_SLOWDOWN}x)")  # fmt: skip
    return lines


def table(rows: list[dict]) -> str:
    header = f"{'condition':<10} {'threads':<8} {'runs':>4} {'steps/s (median)':>17} {'min':>8} {'max':>8} {'vs best':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['condition']:<10} {row['threads']:<8} {row['runs']:>4} {row['median_steps_per_second']:>17.3f} "
                     f"{row['min']:>8.3f} {row['max']:>8.3f} {row.get('slowdown_vs_best', float('nan')):>7.2f}x")  # fmt: skip
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="training steps per run (default 150)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default 3)")
    parser.add_argument("--conditions", nargs="+", default=["quiet", "busy1"],
                        help="quiet and/or busyN, N busy processes beside the run (default: quiet busy1)")
    parser.add_argument("--threads", nargs="+", default=["default", "1"], dest="settings",
                        help="thread settings: 'default' (no --threads flag) and/or numbers (default: default 1)")
    parser.add_argument("--pin-busy", action="store_true", help="pin each busy process to one allowed CPU")
    parser.add_argument("--keep-thread-env", action="store_true",
                        help="keep OMP_NUM_THREADS/MKL_NUM_THREADS in the runs' environment (removed by default)")
    parser.add_argument("--machine", default=None, help="label of this machine in the JSON file name")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results "
                        "(default benchmarks/threads_<machine>.json)")  # fmt: skip
    parser.add_argument("--keep-runs", type=Path, default=None, help="copy every run folder here")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one run (default 1800)")
    parser.add_argument("--dry-run", action="store_true", help="print the machine and the runs, run nothing")
    parser.add_argument("extra", nargs="*", help="after --: extra flags for miniformer train")
    args = parser.parse_args(argv)
    for condition in args.conditions:
        try:
            busy_count(condition)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    for threads in args.settings:
        if threads != "default" and not (threads.isdigit() and int(threads) > 0):
            parser.error(f"--threads {threads!r}: expected 'default' or a positive number")
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    info = machine_info()
    machine = args.machine or machine_slug(info)
    output = args.json or REPOSITORY / "benchmarks" / f"threads_{machine}.json"
    order = plan(args.conditions, args.settings, args.repeats)
    env = run_environment(args.keep_thread_env)
    print(f"Machine: {info['cpu_model']}, {info['usable_cpus']} of {info['cpu_count']} CPUs usable, "
          f"load average {info['load_average_before']}")  # fmt: skip
    if args.dry_run:
        for repeat, condition, threads in order:
            command = train_command(Path("<temporary>/run"), args.steps, threads, args.extra)
            print(f"repeat {repeat + 1}  {condition:<8} threads {threads:<8} {' '.join(command[1:])}")
        print(f"{len(order)} runs; results would go to {output}")
        return 0

    if args.keep_runs is not None:
        args.keep_runs.mkdir(parents=True, exist_ok=True)
    runs = []
    for index, (repeat, condition, threads) in enumerate(order, start=1):
        busy = start_busy(busy_count(condition), args.pin_busy)
        try:
            run = run_once(args.steps, threads, args.extra, env, args.timeout, args.keep_runs)
        finally:
            stop_busy(busy)
        runs.append({"repeat": repeat + 1, "condition": condition, "threads": threads, **run})
        print(f"[{index}/{len(order)}] {condition:<8} threads {threads:<8} {run['steps_per_second']:.3f} steps/s "
              f"({run['steps']} steps in {run['train_seconds']:.1f} s; load before {run['load_average_before']})",
              flush=True)  # fmt: skip

    rows = summarize(runs, args.conditions, args.settings)
    print()
    print(table(rows))
    for line in verdicts(rows):
        print(line)
    result = {
        "benchmark": "threads",
        "machine": {"label": machine, **info, "load_average_after": load_average()},
        "settings": {"steps": args.steps, "repeats": args.repeats, "conditions": args.conditions,
                     "threads": args.settings, "pin_busy": args.pin_busy, "extra": args.extra,
                     "goal_slowdown": GOAL_SLOWDOWN},  # fmt: skip
        "summary": rows,
        "verdicts": verdicts(rows),
        "runs": runs,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"Results written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
