"""Scaling out: the same training code under `accelerate launch --num_processes 2` and `torchrun`
(CPU, gloo). Each rank writes a digest of its weights after a few steps; they must all be equal,
and training must have moved them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from miniformer_hf.runs import DEFAULTS

TRAIN_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    torch.set_num_threads(1)
    from datasets import Dataset
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, TransformerTrainer

    out_dir = sys.argv[1]
    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(0)  # every rank starts from the same weights, as `miniformer train` does with --seed
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=64, d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.1)
    )
    initial = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "labels": []}
    for _ in range(64):
        ids = torch.randint(4, 64, (6,), generator=generator).tolist()
        rows["input_ids"].append(ids + [2])
        rows["labels"].append(ids[::-1] + [2])
    trainer = TransformerTrainer(
        model, output_dir=os.path.join(out_dir, "checkpoints"), learning_rate=1e-3, batch_size=8, seed=0,
        save_strategy="steps", save_steps=3, disable_tqdm=True,
    )
    trainer.train(Dataset.from_dict(rows), max_steps=6)
    args = trainer.hf_trainer.args
    digest = hashlib.sha256()
    moved = False
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
        moved = moved or not torch.equal(tensor, initial[name])
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
        json.dump({"digest": digest.hexdigest(), "moved": moved, "world_size": args.world_size,
                   "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None}, handle)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # a clean gloo shutdown (without it, exit can abort)
    # Interpreter teardown still aborts now and then ("terminate called without an active exception", a
    # C++ thread destroyed at exit, after the report above is written): leave without running it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
    """
)


def _launch(command: list[str], tmp_path, timeout: int = 600) -> list[dict]:
    script = tmp_path / "train_two_ranks.py"
    script.write_text(TRAIN_SCRIPT)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MASTER_ADDR": "127.0.0.1",
    }
    result = subprocess.run(
        [*command, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    assert checkpoints == ["checkpoint-3", "checkpoint-6"], checkpoints  # atomic saves across ranks
    return reports


def _check(reports: list[dict]) -> None:
    assert all(report["world_size"] == 2 and report["backend"] == "gloo" for report in reports), reports
    assert all(report["moved"] for report in reports), "training did not change the weights"
    assert reports[0]["digest"] == reports[1]["digest"], "the two ranks hold different weights"


def _free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


# The launchers: torchrun runs the trainer script above; `accelerate launch --multi_gpu` (accelerate's torchrun-based
# launcher: without GPUs the processes use gloo on the CPU) runs `miniformer train` below, the same trainer.
def test_torchrun_two_processes_keep_identical_weights(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", _free_port()]
    _check(_launch(command, tmp_path))


# The `miniformer train` runs launched below: small (the run folder is what is checked, not what it learnt), an
# evaluation and a checkpoint after step 2 and after the last step, no attention views.
SMALL_RUN_STEPS, SMALL_RUN_EXAMPLES = 4, 384  # an epoch: 2 steps of 2 x 96 examples under two processes
SMALL_RUN = ["--task", "copy", "--size", "tiny", "--num-train", str(SMALL_RUN_EXAMPLES),
             "--max-steps", str(SMALL_RUN_STEPS), "--eval-steps", "2", "--eval-samples", "4", "--no-visualize", "--quiet"]


@pytest.mark.slow
def test_miniformer_train_runs_unchanged_under_accelerate_launch(tmp_path):
    accelerate = shutil.which("accelerate") or pytest.skip("the accelerate launcher is not on PATH")
    output_dir = tmp_path / "run"
    command = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", _free_port(), "-m", "miniformer_hf.cli", "train", *SMALL_RUN,
        "--output-dir", str(output_dir),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["max_steps"] == SMALL_RUN_STEPS
    # Two processes saw twice the examples per step: 2 epochs, where one process would have seen 1.
    assert metrics["epochs"] > SMALL_RUN_STEPS * DEFAULTS["batch_size"] / SMALL_RUN_EXAMPLES * 1.5
    assert (output_dir / "model.safetensors").is_file() and not (tmp_path / "run.incomplete").exists()


# ---------------------------------------------------------------------------------------------
# FSDP2 on the CPU: configs/accelerate_fsdp2_cpu.yaml, as documented in the README
# ---------------------------------------------------------------------------------------------

FSDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    torch.set_num_threads(1)
    from datasets import Dataset
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, TransformerTrainer

    out_dir = sys.argv[1]
    rank = int(os.environ["RANK"])

    # First the whole command line, as the first thing these processes do (as under `accelerate launch -m
    # miniformer_hf.cli train`); then, in the same two processes (starting them is most of a launch's time), the
    # trainer on a model of its own.
    from miniformer_hf.cli import main
    code = main(["train", *json.loads(sys.argv[2]), "--output-dir", os.path.join(out_dir, "run")])
    if code:
        sys.exit(code)

    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=64, d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.1)
    )
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "labels": []}
    for _ in range(64):
        ids = torch.randint(4, 64, (6,), generator=generator).tolist()
        rows["input_ids"].append(ids + [2])
        rows["labels"].append(ids[::-1] + [2])
    trainer = TransformerTrainer(
        model, output_dir=os.path.join(out_dir, "checkpoints"), learning_rate=1e-3, batch_size=8, seed=0,
        save_strategy="steps", save_steps=3, disable_tqdm=True,
    )
    trainer.train(Dataset.from_dict(rows), max_steps=6)
    trainer.save_model(os.path.join(out_dir, "final"))  # every rank: the full weights are gathered from all
    held, local, full = {}, 0, 0
    for name, parameter in model.named_parameters():
        sharded = isinstance(parameter, DTensor)
        tensor = parameter.full_tensor() if sharded else parameter  # a collective: every rank gathers
        held[name] = tensor.detach().clone()
        local += parameter.to_local().numel() if sharded else parameter.numel()
        full += tensor.numel()
    torch.save(held, os.path.join(out_dir, f"held{rank}.pt"))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
        json.dump({"fsdp": isinstance(model, FSDPModule), "local": local, "full": full,
                   "moved": any(not torch.equal(held[n], initial[n]) for n in held),
                   "backend": torch.distributed.get_backend(), "world_size": trainer.hf_trainer.args.world_size},
                  handle)
    """
)


@pytest.fixture(scope="module")
def fsdp_launch(tmp_path_factory):
    """One `accelerate launch` with configs/accelerate_fsdp2_cpu.yaml (as documented in the README) of FSDP_SCRIPT:
    `miniformer train` (SMALL_RUN) into "run", then TransformerTrainer on a model of its own. Returns its folder."""
    accelerate = shutil.which("accelerate") or pytest.skip("the accelerate launcher is not on PATH")
    folder = tmp_path_factory.mktemp("fsdp")
    config_file = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "accelerate_fsdp2_cpu.yaml")
    script = folder / "train_fsdp.py"
    script.write_text(FSDP_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [accelerate, "launch", "--config_file", config_file, "--main_process_port", _free_port(),
               str(script), str(folder), json.dumps(SMALL_RUN)]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


def test_accelerate_launch_fsdp2_on_cpu_shards_trains_and_saves_the_full_model(fsdp_launch):
    import torch

    from miniformer_hf import MiniformerForConditionalGeneration

    tmp_path = fsdp_launch
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert all(r["fsdp"] and r["world_size"] == 2 and r["backend"] == "gloo" for r in reports), reports
    assert all(r["moved"] for r in reports), "training did not change the weights"
    # Sharded: each process keeps about half of the parameters, not a full replica as under DDP.
    assert all(r["local"] < 0.6 * r["full"] for r in reports), reports
    held = [torch.load(tmp_path / f"held{rank}.pt") for rank in range(2)]
    assert held[0].keys() == held[1].keys()
    assert all(torch.equal(held[0][name], held[1][name]) for name in held[0])

    for folder in (tmp_path / "final", tmp_path / "checkpoints" / "checkpoint-6"):
        files = set(os.listdir(folder))
        assert {"model.safetensors", "config.json", "modeling_miniformer.py"} <= files, files
        assert not any(name.startswith("_fsdp") for name in files), files  # torch's sources are not the model's
    saved = MiniformerForConditionalGeneration.from_pretrained(tmp_path / "final")
    state = saved.state_dict()
    for name, tensor in held[0].items():
        assert torch.equal(state[name], tensor), name
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint-3", "checkpoint-6"]
    at_six = MiniformerForConditionalGeneration.from_pretrained(tmp_path / "checkpoints" / "checkpoint-6")
    assert all(torch.equal(at_six.state_dict()[name], tensor) for name, tensor in held[0].items())


def test_miniformer_train_under_accelerate_launch_with_fsdp2(fsdp_launch):
    """The whole `miniformer train` command under the FSDP2 config (the launch's first job): trains sharded,
    evaluates, and the main process writes a normal run folder from the gathered weights."""
    tmp_path, output_dir = fsdp_launch, fsdp_launch / "run"
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["max_steps"] == SMALL_RUN_STEPS
    files = set(os.listdir(output_dir))
    assert {"model.safetensors", "modeling_miniformer.py", "tokenizer.json", "README.md"} <= files, files
    assert not any(name.startswith("_fsdp") for name in files), files
    assert not (tmp_path / "run.incomplete").exists()

    import torch

    from miniformer_hf import MiniformerForConditionalGeneration

    model = MiniformerForConditionalGeneration.from_pretrained(output_dir)
    last_checkpoint = output_dir / "checkpoints" / f"checkpoint-{SMALL_RUN_STEPS}"
    last = MiniformerForConditionalGeneration.from_pretrained(last_checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), last.state_dict().values()))


# ---------------------------------------------------------------------------------------------
# miniformer_hf.distributed in one process: the plain-model rebuild that saving and the end of a run share
# ---------------------------------------------------------------------------------------------


def test_one_process_is_not_distributed(monkeypatch):
    from miniformer_hf.distributed import distributed_state, launched_on_cpu_only

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed_state() is None and not launched_on_cpu_only()


def test_the_plain_model_of_an_fsdp_model_is_its_own_class_with_the_full_weights():
    import torch
    from torch.distributed.fsdp import FSDPModule

    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
    from miniformer_hf.distributed import plain_model, unsharded_class

    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(MiniformerConfig(vocab_size=30, d_model=16, n_heads=2, n_layers=1, d_ff=32))
    model.generation_config.max_new_tokens = 9
    assert unsharded_class(model) is None  # not sharded: nothing to rebuild
    # fully_shard swaps in a subclass named FSDP<Name>; the same swap, without a process group.
    sharded_class = type("FSDPMiniformerForConditionalGeneration", (FSDPModule, MiniformerForConditionalGeneration), {})
    state = {name: tensor.clone() for name, tensor in model.state_dict().items() if name != "lm_head.weight"}
    model.__class__ = sharded_class
    assert unsharded_class(model) is MiniformerForConditionalGeneration
    plain = plain_model(model, state)  # lm_head.weight absent, as in a gathered state dict: it follows the embedding
    assert type(plain) is MiniformerForConditionalGeneration
    assert all(torch.equal(plain.state_dict()[name], tensor) for name, tensor in state.items())
    assert plain.lm_head.weight.data_ptr() == plain.get_input_embeddings().weight.data_ptr()
    assert plain.generation_config.max_new_tokens == 9 and plain.generation_config is not model.generation_config
