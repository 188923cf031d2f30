"""Where the time goes: one training step, one inference forward and one greedy generate() of Miniformer
beside BART-sdpa, split into kinds of work by the PyTorch profiler.

The systems, shapes, data and optimizer are those of ``scripts/benchmark.py`` (same presets, 1 torch thread
by default). For each workload and system the script profiles a few calls after a warm-up and sorts the
profiler's self CPU time of every operator into kinds:

    matmul           aten::mm / addmm / bmm / baddbmm (the projections, the FFN, Q K^T and A V of the math
                     attention path, the pre-softmax projection and all their gradients)
    attention kernel the fused scaled_dot_product_attention kernels, forward and backward
    softmax & loss   log_softmax, softmax, logsumexp, exp, nll_loss and their backwards
    dropout RNG      random_, bernoulli_, uniform_, native_dropout (the random numbers of dropout masks)
    layer norm       native_layer_norm and its backward
    activation       relu / gelu / silu and their backwards (threshold_backward)
    elementwise      add, mul, sub, div, addcmul, clamp, where, masked_fill, ... (residuals, masks, scales)
    copies & fills   copy_, cat, clone, fill_, zero_, index and embedding look-ups, contiguous re-layouts
    views & dispatch view, transpose, reshape, expand, ... and the self time of thin wrappers such as
                     aten::linear and aten::layer_norm (argument checks and dispatch, no arithmetic)
    optimizer        everything inside Optimizer.step and zero_grad (AdamW)
    other ops        any other aten operator
    overhead         wall time not inside any operator: Python (modules, outputs, checks), the autograd
                     engine's bookkeeping and the profiler's own cost

Times are per call, in milliseconds, under the profiler (which adds a little to every operator, so the
totals run above scripts/benchmark.py's); the last column is Miniformer minus BART.

    python scripts/profile_step.py                   # tiny preset, about 1 minute
    python scripts/profile_step.py --preset base --workloads train,infer
"""

import argparse
import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (the sibling script: systems, presets, data)

KINDS = (
    "matmul", "attention kernel", "softmax & loss", "dropout RNG", "layer norm", "activation", "elementwise",
    "copies & fills", "views & dispatch", "optimizer", "other ops", "overhead",
)  # fmt: skip
MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_mkl_linear"}
SOFTMAX = ("softmax", "logsumexp", "aten::exp", "nll_loss", "cross_entropy")
RNG = {"aten::random_", "aten::bernoulli_", "aten::uniform_", "aten::native_dropout", "aten::normal_"}
ACTIVATION = ("relu", "gelu", "silu", "threshold_backward", "clamp_min")
ELEMENTWISE = (
    "aten::add", "aten::mul", "aten::sub", "aten::div", "aten::addcmul", "aten::clamp", "aten::where",
    "aten::masked_fill", "aten::neg", "aten::rsub", "aten::ne", "aten::eq", "aten::lt", "aten::ge", "aten::all",
    "aten::sum", "aten::mean", "aten::tanh", "aten::scatter_add",
)  # fmt: skip
COPIES = (
    "aten::copy_", "aten::cat", "aten::clone", "aten::fill_", "aten::zero_", "aten::index", "aten::gather",
    "aten::embedding", "aten::contiguous", "aten::_to_copy", "aten::empty", "aten::zeros", "aten::ones",
    "aten::full", "aten::arange", "aten::scatter", "aten::masked_scatter", "aten::_unsafe_view",
    "aten::narrow", "aten::stack",
)  # fmt: skip

VIEWS = (
    "aten::view", "aten::transpose", "aten::t", "aten::reshape", "aten::as_strided", "aten::expand",
    "aten::permute", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::split",
    "aten::unbind", "aten::linear", "aten::matmul", "aten::_reshape_alias", "aten::detach", "aten::alias",
    "aten::empty_strided", "aten::empty_like", "aten::to", "aten::lift_fresh", "aten::item",
    "aten::_local_scalar_dense", "aten::is_nonzero", "aten::resolve_conj", "aten::resolve_neg", "aten::dropout",
    "aten::layer_norm", "aten::scaled_dot_product_attention", "aten::result_type", "aten::numel",
)  # fmt: skip


def kind_of(name: str) -> str:
    if name in VIEWS:  # thin wrappers (aten::linear, aten::layer_norm, ...): their self time is dispatch
        return "views & dispatch"
    if name in MATMUL:
        return "matmul"
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention kernel"
    if any(part in name for part in SOFTMAX):
        return "softmax & loss"
    if name in RNG:
        return "dropout RNG"
    if "layer_norm" in name:
        return "layer norm"
    if any(part in name for part in ACTIVATION):
        return "activation"
    if name.startswith(ELEMENTWISE):
        return "elementwise"
    if name.startswith(COPIES):
        return "copies & fills"
    return "other ops"


def inside_optimizer(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return True
        parent = parent.cpu_parent
    return False


def profile_calls(call, calls: int, detail: int = 0) -> dict:
    """Milliseconds per call of each kind of work (and, with `detail`, the largest operators of "other ops")."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        wall_us = (time.perf_counter() - start) * 1e6
    kinds = dict.fromkeys(KINDS, 0.0)
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        kind = "optimizer" if inside_optimizer(event) else kind_of(event.name)
        kinds[kind] += event.self_cpu_time_total
    kinds["overhead"] = max(0.0, wall_us - sum(kinds.values()))
    if detail:
        others = {}
        for event in prof.key_averages():
            if event.key.startswith("aten::") and kind_of(event.key) == "other ops":
                others[event.key] = event.self_cpu_time_total / calls / 1e3
        largest = sorted(others.items(), key=lambda item: -item[1])[:detail]
        print("  other ops:", ", ".join(f"{name} {ms:.2f}" for name, ms in largest))
    return {kind: us / calls / 1e3 for kind, us in kinds.items()}


def print_table(title, results, systems):
    print(f"\n{title} (ms per call)")
    header = "| kind | " + " | ".join(systems) + " | difference |"
    print(header)
    print("| --- |" + " ---: |" * (len(systems) + 1))
    for kind in (*KINDS, "total"):
        values = [sum(results[s].values()) if kind == "total" else results[s][kind] for s in systems]
        difference = values[0] - values[-1]
        print(f"| {kind} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {difference:+.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(benchmark.PRESETS), default="tiny")
    parser.add_argument("--systems", default="miniformer,bart", help="comma-separated, Miniformer first")
    parser.add_argument("--workloads", default="train,infer,generate")
    parser.add_argument("--threads", default="1", help='torch threads: a number, or "all" (default 1)')
    parser.add_argument("--calls", type=int, default=None, help="profiled calls per workload")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--detail", type=int, default=0, help='list the N largest "other ops" per system')
    args = parser.parse_args(argv)

    benchmark.set_threads(args.threads)
    p = benchmark.PRESETS[args.preset]
    names = args.systems.split(",")
    systems = [benchmark.System(name, p) for name in names]
    batch = benchmark.make_batch(p, p["batch"], p["src_len"], p["tgt_len"])
    gen_src, gen_mask = benchmark.make_batch(p, benchmark.GEN_BATCH, benchmark.GEN_SRC_LEN, 1, seed=1)[:2]
    tiny = args.preset == "tiny"
    workloads = {
        "train": (lambda s: (lambda: s.train_step(batch)), 10 if tiny else 2),
        "infer": (lambda s: (lambda: s.infer(batch)), 20 if tiny else 3),
        "generate": (lambda s: (lambda: s.generate(gen_src, gen_mask, benchmark.GEN_TOKENS)), 3 if tiny else 1),
    }
    report = {"preset": args.preset, "threads": args.threads, "torch": torch.__version__}
    for workload in args.workloads.split(","):
        make_call, calls = workloads[workload]
        calls = args.calls or calls
        results = {}
        for system in systems:
            call = make_call(system)
            for _ in range(2):
                call()  # warm-up
            results[system.name] = profile_calls(call, calls, args.detail)
        report[workload] = results
        print_table(f"{workload}, preset {args.preset}", results, names)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
