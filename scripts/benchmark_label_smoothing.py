#!/usr/bin/env python
"""The default `miniformer train` job's step time with label smoothing computed by the model (today) and
by transformers' `LabelSmoother` (before the model learned to smooth its own loss).

    python scripts/benchmark_label_smoothing.py              # 2 rounds of 400 steps each way (~4 minutes on 2 cores)
    python scripts/benchmark_label_smoothing.py --rounds 3 --steps 600 --json out.json

Each run is the default job exactly as a user types it (`miniformer train`, label smoothing 0.1, every
default), in its own process, with `--max-steps N` and no evaluation during training (`--eval-steps`
beyond N), so the training clock holds training steps only. The "label_smoother" runs change one thing
in that process: after the trainer is built, the model's own smoothing is set to 0 and the library's
`LabelSmoother(epsilon=0.1)` is put back, as the trainer was before; the trainer then pops the labels,
the model returns logits only and `LabelSmoother` computes a full log-softmax over them. The two ways
alternate (A B A B ...) so that both see the same machine load. Step time is Trainer's `train_runtime`
divided by the steps done (it includes data loading, logging and the optimizer, as the real job does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

WAYS = ("model", "label_smoother")


def worker(way: str, steps: int, output_dir: str) -> None:
    """One default training run in this process; `way` says who smooths the loss."""
    from transformers.trainer_pt_utils import LabelSmoother

    from miniformer_hf import cli, training

    if way == "label_smoother":
        built = training.AtomicCheckpointSeq2SeqTrainer.__init__

        def with_label_smoother(self, *args, **kwargs):
            built(self, *args, **kwargs)
            self.accelerator.unwrap_model(self.model).config.label_smoothing = 0.0
            self.label_smoother = LabelSmoother(epsilon=self.args.label_smoothing_factor)

        training.AtomicCheckpointSeq2SeqTrainer.__init__ = with_label_smoother
    code = cli.main(["train", "--output-dir", output_dir, "--max-steps", str(steps), "--eval-steps", str(10 * steps)])
    raise SystemExit(code)


def run(way: str, steps: int, folder: Path, round_index: int) -> dict:
    import subprocess

    output_dir = folder / f"run-{way}-{round_index}"
    command = [sys.executable, os.path.abspath(__file__), "--worker", way, "--steps", str(steps), "--output-dir",
               str(output_dir)]  # fmt: skip
    result = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark: the {way} run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    if metrics["max_steps"] != steps:
        raise SystemExit(f"benchmark: the {way} run did {metrics['max_steps']} steps, expected {steps}")
    return {
        "ms_per_step": 1e3 * metrics["train_runtime"] / metrics["max_steps"],
        "train_loss": metrics["train_loss"],
        "eval_exact_match": metrics["eval_exact_match"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each way, alternating (default 2)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (default 400)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds and --steps must be at least 1 (got {args.rounds} and {args.steps})")
    if args.worker:
        worker(args.worker, args.steps, args.output_dir)
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="miniformer-ls-bench-") as folder:
        for round_index in range(args.rounds):
            for way in WAYS:
                entry = run(way, args.steps, Path(folder), round_index)
                results[way].append(entry)
                print(f"round {round_index + 1} {way:>14}: {entry['ms_per_step']:.1f} ms/step, "
                      f"train loss {entry['train_loss']:.4f}", flush=True)  # fmt: skip
    summary = {way: statistics.median(entry["ms_per_step"] for entry in runs) for way, runs in results.items()}
    speedup = summary["label_smoother"] / summary["model"]
    print(f"\nmedian ms per step: model smooths {summary['model']:.1f}, LabelSmoother {summary['label_smoother']:.1f} "
          f"({speedup:.2f}x); load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")  # fmt: skip
    if args.json:
        payload = {"steps": args.steps, "rounds": args.rounds, "runs": results, "median_ms_per_step": summary,
                   "speedup": speedup, "load_before": load_before, "load_after": os.getloadavg()}  # fmt: skip
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
