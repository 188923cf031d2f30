"""Side-by-side speed benchmark: Miniformer against the models a user would pick instead.

Systems, all at the same shape (vocabulary, d_model, heads, layers, d_ff), ReLU feed-forward,
dropout 0.1 on sub-layer outputs and embeddings, no attention or activation dropout, tied embeddings:

    miniformer  MiniformerForConditionalGeneration (sdpa)
    bart        BartForConditionalGeneration, attn_implementation="sdpa" (the reference for every ratio)
    marian      MarianMTModel, attn_implementation="sdpa"
    torch       torch.nn.Transformer (batch_first) with a shared embedding, sinusoidal positions and a
                tied output projection, Xavier-initialised; greedy decoding re-runs the decoder over the
                whole prefix at each step (nn.Transformer has no KV cache)

Presets: ``tiny`` is the seed default (V 1000, D 64, H 4, 3+3 layers, F 256), batch 32, lengths 32/32;
``base`` is the paper's base shape (V 32000, D 512, H 8, 6+6 layers, F 2048), batch 8, lengths 128/128.

What is measured, per system (random token ids, no padding, attention masks of ones as a tokenizer returns):

- training: tokens/s (source + target) of forward, the model's own cross-entropy, backward and one
  ``torch.optim.AdamW(fused=True)`` step (the same optimizer for every system; ``--optimizer foreach``
  for the other implementation; fused is the faster one for every system here), in train mode;
- inference: the same forward (with the loss) in eval mode under ``torch.no_grad()``, ``use_cache=False``;
- generate: greedy ``generate()`` with the KV cache (nn.Transformer: its own greedy loop), batch 8,
  source length 32, exactly N new tokens (no EOS); throughput at N=64 and milliseconds per new token at
  N = 16, 64 and 256 (total time / N, encoder included; nn.Transformer only at the tiny size, where its
  uncached 256-token run takes seconds rather than minutes);
- compiled generate: the same greedy ``generate()`` (N=64) through transformers' own compiled path, a static
  cache and a ``CompileConfig()`` (transformers' defaults) marked to compile on CPU too
  (``cache_implementation="static", compile_config=...``); compilation happens in the warm-up round. Its
  ratio against compiled BART, and each system's gain over its own eager ``generate()`` (eager time /
  compiled time, medians of the same rounds), are reported beside the eager figures (HF systems only);
- MFU: model matmul FLOPs / time / the fp32 matmul peak measured here (``torch.mm`` at 1024^3 and
  2048x2048x512 with the same thread count; best of several runs). The FLOPs are counted exactly per matmul:
  encoder layer 8BSD^2 (Q, K, V, O) + 4BS^2D (QK^T, AV) + 4BSDF (FFN); decoder layer 8BTD^2 + 4BT^2D
  (self-attention, the full T x T product) + 4BTD^2 + 4BSD^2 + 4BTSD (cross-attention) + 4BTDF; the
  pre-softmax projection 2BTDV. Training counts 3x the forward (backward = input and weight gradients).
  6 * params * tokens would overstate an encoder-decoder about twofold (each stack sees only its own tokens,
  and the shared embedding is a matmul only in the output projection);
- peak memory: each system runs in its own fresh subprocess that imports, builds the model, optimizer and
  batch, resets the kernel's RSS high-water mark (``/proc/self/clear_refs``, so the transient peaks of
  importing and building are forgotten) and reads the high-water mark (``VmHWM`` of ``/proc/self/status``;
  ``ru_maxrss`` where that is missing, though on Linux it also remembers the parent's RSS at fork); it then
  does only training steps and reads the high-water mark again. The figure is peak - baseline:
  activations, gradients, optimizer state and allocator overhead of training (tracemalloc does not see
  torch's allocator, so the OS high-water mark is used);
- parameters: unique parameters (tied tensors counted once).

Method: one process holds every system; each measurement interleaves them (A B C D A B C D ...) after a
warm-up, and every ratio is the median of per-round ratios against BART measured back to back, so load
from other processes on a shared machine hits both sides of a ratio alike. 1 torch thread by default
(``--threads all`` for every core); ``uptime`` is recorded with the results. Beside wall-clock time the
process CPU time of every round is kept: on a loaded machine the wall clock includes waiting for a core,
so CPU-time ratios (printed in brackets) are the steadier estimate of what an idle core would show.

    python scripts/benchmark.py --preset tiny                 # ~2 minutes on one core
    python scripts/benchmark.py --preset base                 # ~12 minutes on one core
    python scripts/benchmark.py --preset base --systems miniformer,bart --reps 2 --skip curve,memory
    python scripts/benchmark.py --skip train,infer,curve,memory --reps 3   # eager and compiled generate only
"""

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F
from transformers import CompileConfig

PRESETS = {
    "tiny": dict(vocab=1000, d_model=64, heads=4, layers=3, d_ff=256, batch=32, src_len=32, tgt_len=32),
    "base": dict(vocab=32000, d_model=512, heads=8, layers=6, d_ff=2048, batch=8, src_len=128, tgt_len=128),
}
SYSTEMS = ("miniformer", "bart", "marian", "torch")
REFERENCE = "bart"
PAD, BOS, EOS, START = 0, 1, 2, 1
GEN_BATCH, GEN_SRC_LEN, GEN_TOKENS = 8, 32, 64
GEN_CURVE = (16, 64, 256)
DROPOUT = 0.1
OPTIMIZER = "fused"  # AdamW implementation, the same for every system: "fused" or "foreach"


# ------------------------------------------------------------------------------------------------
# Systems
# ------------------------------------------------------------------------------------------------


def build_miniformer(p):
    from miniformer_hf.modeling_miniformer import MiniformerConfig, MiniformerForConditionalGeneration

    config = MiniformerConfig(
        vocab_size=p["vocab"], d_model=p["d_model"], n_heads=p["heads"], n_layers=p["layers"], d_ff=p["d_ff"],
        dropout=DROPOUT, max_position_embeddings=512, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
        decoder_start_token_id=START, attn_implementation="sdpa",
        label_smoothing=0.0,  # the same plain cross-entropy as every other system here (the config's default is 0.1)
    )  # fmt: skip
    return MiniformerForConditionalGeneration(config)


def _bart_like_config(config_class, p):
    return config_class(
        vocab_size=p["vocab"], d_model=p["d_model"], encoder_layers=p["layers"], decoder_layers=p["layers"],
        encoder_attention_heads=p["heads"], decoder_attention_heads=p["heads"], encoder_ffn_dim=p["d_ff"],
        decoder_ffn_dim=p["d_ff"], dropout=DROPOUT, attention_dropout=0.0, activation_dropout=0.0,
        activation_function="relu", max_position_embeddings=512, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=START, forced_eos_token_id=None, attn_implementation="sdpa",
    )  # fmt: skip


def build_bart(p):
    from transformers import BartConfig, BartForConditionalGeneration

    return BartForConditionalGeneration(_bart_like_config(BartConfig, p))


def build_marian(p):
    from transformers import MarianConfig, MarianMTModel

    config = _bart_like_config(MarianConfig, p)
    config.decoder_vocab_size = p["vocab"]
    return MarianMTModel(config)


class TorchTransformer(nn.Module):
    """torch.nn.Transformer with a shared, sqrt(D)-scaled embedding, sinusoidal positions and a tied output
    projection; Xavier-uniform initialisation of every matrix (as the PyTorch tutorials do)."""

    def __init__(self, p):
        super().__init__()
        d_model = p["d_model"]
        self.embed = nn.Embedding(p["vocab"], d_model)
        position = torch.arange(512).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(512, d_model)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div)
        self.register_buffer("positions", table, persistent=False)
        self.transformer = nn.Transformer(
            d_model, p["heads"], p["layers"], p["layers"], p["d_ff"], DROPOUT, batch_first=True
        )
        self.dropout = nn.Dropout(DROPOUT)
        self.lm_head = nn.Linear(d_model, p["vocab"], bias=False)
        for weight in self.parameters():
            if weight.dim() > 1:
                nn.init.xavier_uniform_(weight)
        self.lm_head.weight = self.embed.weight
        self.scale = math.sqrt(d_model)

    def embed_tokens(self, ids):
        return self.dropout(self.embed(ids) * self.scale + self.positions[: ids.shape[1]])  # (B, L, D)

    def encode(self, src):
        return self.transformer.encoder(self.embed_tokens(src))  # (B, S, D)

    def decode(self, tgt, memory):
        length = tgt.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tgt.device)
        return self.transformer.decoder(self.embed_tokens(tgt), memory, tgt_mask=causal, tgt_is_causal=True)

    def forward(self, src, tgt_in, labels):
        hidden = self.decode(tgt_in, self.encode(src))  # (B, T, D)
        logits = self.lm_head(hidden)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

    @torch.no_grad()
    def greedy(self, src, new_tokens):
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), START, dtype=torch.long)
        for _ in range(new_tokens):
            logits = self.lm_head(self.decode(out, memory)[:, -1])  # (B, V): the last position only
            out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
        return out


class System:
    """One model with its optimizer and the three workloads."""

    def __init__(self, name, p):
        self.name = name
        builders = {"miniformer": build_miniformer, "bart": build_bart, "marian": build_marian}
        self.model = TorchTransformer(p) if name == "torch" else builders[name](p)
        self.hf = name != "torch"
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, **{OPTIMIZER: True})
        self.params = sum(t.numel() for t in {id(t): t for t in self.model.parameters()}.values())
        if self.hf:
            from transformers import GenerationConfig

            self.generation_config = GenerationConfig(
                max_new_tokens=GEN_TOKENS, do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=PAD,
                bos_token_id=BOS, decoder_start_token_id=START, use_cache=True,
            )  # fmt: skip
            self.compile_config = CompileConfig()
            self.compile_config._compile_all_devices = True  # transformers compiles on accelerators only unless told

    def train_step(self, batch):
        self.model.train()
        src, mask, labels, tgt_in = batch
        if self.hf:
            loss = self.model(input_ids=src, attention_mask=mask, labels=labels).loss
        else:
            loss = self.model(src, tgt_in, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def infer(self, batch):
        self.model.eval()
        src, mask, labels, tgt_in = batch
        with torch.no_grad():
            if self.hf:
                self.model(input_ids=src, attention_mask=mask, labels=labels, use_cache=False)
            else:
                self.model(src, tgt_in, labels)

    def generate(self, src, mask, new_tokens, compiled=False):
        self.model.eval()
        if not self.hf:
            out = self.model.greedy(src, new_tokens)
        else:
            self.generation_config.max_new_tokens = new_tokens
            extra = dict(cache_implementation="static", compile_config=self.compile_config) if compiled else {}
            out = self.model.generate(
                input_ids=src, attention_mask=mask, generation_config=self.generation_config, **extra
            )
        if out.shape[1] != new_tokens + 1:
            raise RuntimeError(f"{self.name} generated {out.shape[1] - 1} tokens, expected {new_tokens}")


def make_batch(p, batch, src_len, tgt_len, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, p["vocab"], (batch, src_len), generator=g)
    labels = torch.randint(3, p["vocab"], (batch, tgt_len), generator=g)
    tgt_in = torch.cat([torch.full((batch, 1), START), labels[:, :-1]], dim=1)
    return src, torch.ones_like(src), labels, tgt_in


# ------------------------------------------------------------------------------------------------
# FLOPs and the matmul peak
# ------------------------------------------------------------------------------------------------


def forward_matmul_flops(p, batch, src_len, tgt_len):
    """Exact matmul FLOPs of one forward pass (2 per multiply-add), as listed in the module docstring."""
    b, s, t, d, f, v, n = batch, src_len, tgt_len, p["d_model"], p["d_ff"], p["vocab"], p["layers"]
    encoder_layer = 8 * b * s * d * d + 4 * b * s * s * d + 4 * b * s * d * f
    self_attention = 8 * b * t * d * d + 4 * b * t * t * d
    cross_attention = 4 * b * t * d * d + 4 * b * s * d * d + 4 * b * t * s * d
    decoder_layer = self_attention + cross_attention + 4 * b * t * d * f
    return n * encoder_layer + n * decoder_layer + 2 * b * t * d * v


def matmul_peak_gflops(repeats=5):
    best = 0.0
    for m, k, n in ((1024, 1024, 1024), (2048, 512, 2048), (512, 2048, 512)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(3):
                torch.mm(a, b)
            best = max(best, 3 * 2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


# ------------------------------------------------------------------------------------------------
# Timing, interleaved
# ------------------------------------------------------------------------------------------------


def timed(fn, calls):
    """(wall seconds, process CPU seconds) per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def interleaved(systems, make_call, calls, reps, warmup=1):
    """(wall, cpu) seconds per call, per system and round: rounds of A B C D, after `warmup` untimed calls."""
    for system in systems:
        for _ in range(warmup):
            make_call(system)()
    times = {system.name: [] for system in systems}
    for _ in range(reps):
        for system in systems:
            times[system.name].append(timed(make_call(system), calls))
    return times


def summarise(times, work):
    """Median throughput (work / s) per system, and the median of per-round ratios against the reference,
    from wall-clock and from CPU time."""
    out = {}
    for name, rounds in times.items():
        wall, cpu = [r[0] for r in rounds], [r[1] for r in rounds]
        entry = {"median_s": statistics.median(wall), "per_s": work / statistics.median(wall),
                 "cpu_median_s": statistics.median(cpu), "cpu_per_s": work / statistics.median(cpu),
                 "rounds_s": wall, "rounds_cpu_s": cpu}  # fmt: skip
        if REFERENCE in times:
            reference = times[REFERENCE]
            entry["ratio"] = statistics.median(ref[0] / own[0] for own, ref in zip(rounds, reference))
            entry["cpu_ratio"] = statistics.median(ref[1] / own[1] for own, ref in zip(rounds, reference))
        out[name] = entry
    return out


# ------------------------------------------------------------------------------------------------
# Peak memory, one fresh subprocess per system
# ------------------------------------------------------------------------------------------------


def peak_rss_kib():
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def memory_worker(name, preset, threads, steps):
    set_threads(threads)
    p = PRESETS[preset]
    system = System(name, p)
    batch = make_batch(p, p["batch"], p["src_len"], p["tgt_len"])
    gc.collect()
    try:  # Linux: reset the high-water mark to the current RSS, forgetting the peaks of import and build
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # then the baseline is the peak of import and build, and small models may read 0
    baseline = peak_rss_kib()
    for _ in range(steps):
        system.train_step(batch)
    peak = peak_rss_kib()
    print(json.dumps({"baseline_mib": baseline / 1024, "peak_mib": peak / 1024, "train_mib": (peak - baseline) / 1024}))


def measure_memory(name, preset, threads, steps=3):
    command = [sys.executable, os.path.abspath(__file__), "--memory-worker", name, "--preset", preset]
    command += ["--threads", str(threads), "--steps", str(steps), "--optimizer", OPTIMIZER]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def set_threads(threads):
    if threads != "all":
        torch.set_num_threads(int(threads))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    parser.add_argument("--threads", default="1", help='torch threads: a number, or "all" (default 1)')
    parser.add_argument("--optimizer", choices=("fused", "foreach"), default="fused", help="AdamW implementation")
    parser.add_argument("--reps", type=int, default=None, help="interleaved rounds per measurement")
    parser.add_argument("--steps", type=int, default=None, help="training steps / forwards per round")
    parser.add_argument("--gen-reps", type=int, default=None, help="rounds for each generate() length")
    parser.add_argument(
        "--skip", default="", help="comma-separated: train,infer,generate,compiled,curve,memory"
    )
    parser.add_argument("--json", default=None, help="results file (default runs/benchmark_<preset>.json)")
    parser.add_argument("--table", default=None, metavar="JSON", help="print the table of a saved run and exit")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    global OPTIMIZER
    OPTIMIZER = args.optimizer
    if args.table:
        with open(args.table) as handle:
            results = json.load(handle)
        add_mfu(results)
        return print(format_table(results))
    if args.memory_worker:
        return memory_worker(args.memory_worker, args.preset, args.threads, args.steps or 3)
    set_threads(args.threads)
    torch.manual_seed(0)
    p = PRESETS[args.preset]
    tiny = args.preset == "tiny"
    reps = args.reps or (7 if tiny else 5)
    steps = args.steps or (10 if tiny else 1)
    gen_reps = args.gen_reps or (5 if tiny else 2)
    skip = set(filter(None, args.skip.split(",")))
    names = [n for n in args.systems.split(",") if n]
    systems = [System(name, p) for name in names]
    batch = make_batch(p, p["batch"], p["src_len"], p["tgt_len"])
    gen_src, gen_mask, _, _ = make_batch(p, GEN_BATCH, GEN_SRC_LEN, 1, seed=1)
    tokens = p["batch"] * (p["src_len"] + p["tgt_len"])
    forward_flops = forward_matmul_flops(p, p["batch"], p["src_len"], p["tgt_len"])
    results = {
        "preset": args.preset, "shape": p, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "uptime_start": os.popen("uptime").read().strip(),
        "forward_matmul_gflop": forward_flops / 1e9, "optimizer": OPTIMIZER,
        "params": {s.name: s.params for s in systems},
    }  # fmt: skip
    peak = matmul_peak_gflops()
    log(f"matmul peak {peak:.1f} GFLOP/s")

    if "train" not in skip:
        log("training ...")
        # Two warm-up steps: the first allocates AdamW's state, the second still grows the heap.
        times = interleaved(systems, lambda s: lambda: s.train_step(batch), steps, reps, warmup=2)
        results["train"] = summarise(times, tokens)
    if "infer" not in skip:
        log("inference ...")
        times = interleaved(systems, lambda s: lambda: s.infer(batch), steps * 2, reps)
        results["infer"] = summarise(times, tokens)
    if "generate" not in skip:
        log("generate ...")
        times = interleaved(systems, lambda s: lambda: s.generate(gen_src, gen_mask, GEN_TOKENS), 1, reps)
        results["generate"] = summarise(times, GEN_BATCH * GEN_TOKENS)
    if "compiled" not in skip:
        log("compiled generate (the warm-up round compiles) ...")
        hf_systems = [s for s in systems if s.hf]
        # Eager and compiled rounds interleaved, so each system's gain is measured under the same load.
        calls = {}
        for s in hf_systems:
            calls[s.name] = (lambda s=s: s.generate(gen_src, gen_mask, GEN_TOKENS))
            calls[s.name + "+compiled"] = (lambda s=s: s.generate(gen_src, gen_mask, GEN_TOKENS, compiled=True))
        pseudo = [_Named(name) for name in calls]
        times = interleaved(pseudo, lambda s: calls[s.name], 1, reps)
        compiled = summarise({n[: -len("+compiled")]: t for n, t in times.items() if n.endswith("+compiled")},
                             GEN_BATCH * GEN_TOKENS)
        for name, entry in compiled.items():
            eager = [r[0] for r in times[name]]
            fast = [r[0] for r in times[name + "+compiled"]]
            entry["gain_over_eager"] = statistics.median(e / c for e, c in zip(eager, fast))
            entry["cpu_gain_over_eager"] = statistics.median(
                e[1] / c[1] for e, c in zip(times[name], times[name + "+compiled"])
            )
        results["generate_compiled"] = compiled
    if "curve" not in skip:
        results["ms_per_token"] = {}
        # Without a KV cache nn.Transformer's 256-token run takes minutes at the base size: tiny only.
        curve_systems = [s for s in systems if tiny or s.name != "torch"]
        for new_tokens in GEN_CURVE:
            log(f"generate {new_tokens} ...")
            times = interleaved(curve_systems, lambda s: lambda: s.generate(gen_src, gen_mask, new_tokens), 1, gen_reps)
            for name, rounds in times.items():
                seconds = statistics.median(r[0] for r in rounds)
                results["ms_per_token"].setdefault(name, {})[new_tokens] = 1e3 * seconds / new_tokens
    if "memory" not in skip:
        log("peak memory ...")
        results["memory"] = {name: measure_memory(name, args.preset, args.threads) for name in names}
    results["matmul_peak_gflops"] = max(peak, matmul_peak_gflops())  # the best of the start and the end
    add_mfu(results)
    results["uptime_end"] = os.popen("uptime").read().strip()
    print(format_table(results))
    path = args.json or os.path.join("runs", f"benchmark_{args.preset}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(results, handle, indent=2)
    log(f"wrote {path}")


class _Named:
    """A name for `interleaved`, which only needs `.name`."""

    def __init__(self, name):
        self.name = name


def add_mfu(r):
    """Model-FLOPs utilisation of training (3x the forward's matmul FLOPs) and inference, from the
    wall-clock and the CPU-time medians, against the measured matmul peak."""
    for key, passes in (("train", 3), ("infer", 1)):
        for entry in r.get(key, {}).values():
            for suffix, seconds in (("", entry["median_s"]), ("_cpu", entry["cpu_median_s"])):
                entry["mfu" + suffix] = passes * r["forward_matmul_gflop"] / seconds / r["matmul_peak_gflops"]


def format_table(r):
    names = list(r["params"])
    lines = [
        f"preset {r['preset']} {r['shape']}, torch threads {r['threads']}, torch {r['torch']}, AdamW {r['optimizer']}",
        "ratios: median of per-round ratios against BART, wall clock (CPU time in brackets); MFU likewise",
        f"forward matmul FLOPs per batch {r['forward_matmul_gflop']:.2f} G (training counts 3x)",
        f"fp32 matmul peak {r['matmul_peak_gflops']:.0f} GFLOP/s; uptime: {r['uptime_start'].split('load')[-1]}",
        "",
        "| system | params | train tok/s | x BART | train MFU | infer tok/s | x BART | gen new tok/s | x BART "
        "| ms/token @16 / 64 / 256 | 256/16 | train peak MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name in names:
        cells = [name, f"{r['params'][name] / 1e6:.2f}M"]
        for key in ("train", "infer", "generate"):
            if key in r:
                entry = r[key][name]
                ratios = f"{entry['ratio']:.2f}x ({entry['cpu_ratio']:.2f}x)" if "ratio" in entry else "-"
                cells += [f"{entry['per_s']:,.0f}", ratios]
                if key == "train":
                    cells.append(f"{100 * entry['mfu']:.0f}% ({100 * entry.get('mfu_cpu', float('nan')):.0f}%)")
            else:
                cells += ["-", "-"] + (["-"] if key == "train" else [])
        curve = r.get("ms_per_token", {}).get(name)
        if curve:
            values = [curve.get(n, curve.get(str(n))) for n in GEN_CURVE]  # str keys once read from JSON
            cells += [" / ".join(f"{v:.2f}" for v in values), f"{values[-1] / values[0]:.2f}x"]
        else:
            cells += ["-", "-"]
        memory = r.get("memory", {}).get(name)
        cells.append(f"{memory['train_mib']:.0f}" if memory else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if "generate_compiled" in r:
        lines += [
            "",
            "transformers' compiled generation path (static cache, CompileConfig allowed on CPU), greedy N=64:",
            "",
            "| system | compiled gen new tok/s | x compiled BART | gain over its own eager generate() |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, entry in r["generate_compiled"].items():
            ratio = f"{entry['ratio']:.2f}x ({entry['cpu_ratio']:.2f}x)" if "ratio" in entry else "-"
            gain = f"{entry['gain_over_eager']:.2f}x ({entry['cpu_gain_over_eager']:.2f}x)"
            lines.append(f"| {name} | {entry['per_s']:,.0f} | {ratio} | {gain} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
