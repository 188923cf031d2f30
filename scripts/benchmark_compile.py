"""torch.compile and Miniformer: compile time and steady-state speed on this machine, against eager.

For each compile mode ("default", "reduce-overhead", "max-autotune-no-cudagraphs") and scope ("model":
``torch.compile`` of the whole ``MiniformerForConditionalGeneration`` forward, loss included; "layers":
each encoder and decoder layer compiled in place, the rest eager), a fresh Miniformer is built and
compiled, and the script records

- compile time: the first training step (forward, loss, backward, AdamW) and the first eval forward,
  minus the eager time of the same call, with a cold Inductor cache (a fresh cache directory, so C++
  kernels are generated and compiled; ``--warm-cache`` keeps the usual one, where a second run of the
  same graphs compiles in a fraction of the time);
- steady state: training and inference tokens/s after compilation, measured interleaved with eager
  Miniformer and eager BART-sdpa (the reference of ``scripts/benchmark.py``), as medians of rounds, with
  the median per-round ratio against BART (wall clock; CPU time in brackets).

Shapes and systems come from ``scripts/benchmark.py`` (same presets, data, optimizer and thread setting).
Greedy ``generate()`` is not compiled here: with the dynamic KV cache every step has a new key length.

    python scripts/benchmark_compile.py --preset tiny                      # ~10 minutes on one core
    python scripts/benchmark_compile.py --modes default --scopes layers    # one variant
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (the sibling script: systems, presets, timing)

MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
SCOPES = ("model", "layers")


def compile_system(system, mode, scope):
    # Every layer of every variant compiles the same Python function (transformers' checkpointing-layer
    # __call__), train and eval separately: more cache entries than dynamo's default limit of 8.
    torch._dynamo.config.recompile_limit = 256
    model = system.model
    if scope == "model":
        model.forward = torch.compile(model.forward, mode=mode, dynamic=False)
    else:
        for layer in (*model.model.encoder.layers, *model.model.decoder.layers):
            layer.compile(mode=mode, dynamic=False)
    system.name = f"miniformer[{scope},{mode}]"


def first_call_seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(benchmark.PRESETS), default="tiny")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--scopes", default=",".join(SCOPES))
    parser.add_argument("--threads", default="1")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", default=None, help="default runs/benchmark_compile_<preset>.json")
    parser.add_argument("--warm-cache", action="store_true", help="use Inductor's usual on-disk cache")
    args = parser.parse_args(argv)
    if args.warm_cache:
        return run(args)
    with tempfile.TemporaryDirectory(prefix="inductor-cold-") as cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        return run(args)


def run(args):
    benchmark.set_threads(args.threads)
    torch.manual_seed(0)
    p = benchmark.PRESETS[args.preset]
    batch = benchmark.make_batch(p, p["batch"], p["src_len"], p["tgt_len"])
    tokens = p["batch"] * (p["src_len"] + p["tgt_len"])

    reference = [benchmark.System("bart", p), benchmark.System("miniformer", p)]
    eager_train = statistics.median(first_call_seconds(lambda: reference[1].train_step(batch)) for _ in range(3))
    eager_infer = statistics.median(first_call_seconds(lambda: reference[1].infer(batch)) for _ in range(3))
    compiled, compile_seconds = [], {}
    for mode in filter(None, args.modes.split(",")):
        for scope in filter(None, args.scopes.split(",")):
            system = benchmark.System("miniformer", p)
            compile_system(system, mode, scope)
            benchmark.log(f"compiling {system.name} ...")
            try:
                train = first_call_seconds(lambda: system.train_step(batch)) - eager_train
                infer = first_call_seconds(lambda: system.infer(batch)) - eager_infer
            except Exception as error:  # report and go on: one failing mode should not hide the others
                benchmark.log(f"{system.name} failed: {type(error).__name__}: {error}")
                compile_seconds[system.name] = {"error": f"{type(error).__name__}: {error}"[:500]}
                continue
            compile_seconds[system.name] = {"train_s": train, "infer_s": infer}
            compiled.append(system)

    systems = reference + compiled
    benchmark.log("steady state ...")
    results = {
        "preset": args.preset, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "uptime_start": os.popen("uptime").read().strip(), "compile": compile_seconds,
        "inductor_cache": "warm" if args.warm_cache else "cold",
        "train": benchmark.summarise(
            benchmark.interleaved(systems, lambda s: lambda: s.train_step(batch), args.steps, args.reps), tokens
        ),
        "infer": benchmark.summarise(
            benchmark.interleaved(systems, lambda s: lambda: s.infer(batch), args.steps * 2, args.reps), tokens
        ),
        "uptime_end": os.popen("uptime").read().strip(),
    }  # fmt: skip
    print(format_table(results))
    path = args.json or os.path.join("runs", f"benchmark_compile_{args.preset}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(results, handle, indent=2)
    benchmark.log(f"wrote {path}")


def format_table(r):
    lines = [
        f"preset {r['preset']}, torch threads {r['threads']}, torch {r['torch']}, "
        f"{r.get('inductor_cache', 'warm')} Inductor cache; uptime: {r['uptime_start'].split('load')[-1]}",
        "ratios: median of per-round ratios against eager BART, wall clock (CPU time in brackets)",
        "",
        "| system | compile s (train / infer) | train tok/s | x BART | infer tok/s | x BART |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, train in r["train"].items():
        infer = r["infer"][name]
        seconds = r["compile"].get(name)
        cells = [name, f"{seconds['train_s']:.0f} / {seconds['infer_s']:.0f}" if seconds else "eager"]
        for entry in (train, infer):
            cells += [f"{entry['per_s']:,.0f}", f"{entry['ratio']:.2f}x ({entry['cpu_ratio']:.2f}x)"]
        lines.append("| " + " | ".join(cells) + " |")
    for name, seconds in r["compile"].items():
        if "error" in seconds:
            lines.append(f"| {name} | failed: {seconds['error'][:120]} | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
