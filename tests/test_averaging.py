"""Tests for miniformer_hf.averaging: checkpoint averaging (§6.1)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
from miniformer_hf.averaging import (
    AveragingError,
    average_checkpoints,
    average_into_model,
    average_state_dicts,
    checkpoint_paths,
)


def tiny_model(seed: int) -> MiniformerForConditionalGeneration:
    """A tiny model whose every weight (biases and LayerNorms included) depends on ``seed``."""
    torch.manual_seed(seed)
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=40, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    return model


def save_checkpoint(model, folder):
    model.save_pretrained(folder)
    return folder


def test_copies_of_one_checkpoint_average_back_exactly(tmp_path):
    model = tiny_model(0)
    paths = [save_checkpoint(model, tmp_path / f"checkpoint-{step}") for step in (1, 2, 3)]
    saved = load_file(paths[0] / "model.safetensors")
    averaged = average_checkpoints(paths)
    assert averaged.keys() == saved.keys()
    for name, tensor in saved.items():
        assert averaged[name].dtype == tensor.dtype
        assert torch.equal(averaged[name], tensor), name


def test_two_checkpoints_average_to_their_mean(tmp_path):
    first, second = tiny_model(0), tiny_model(1)
    paths = [save_checkpoint(first, tmp_path / "checkpoint-1"), save_checkpoint(second, tmp_path / "checkpoint-2")]
    averaged = average_checkpoints(paths)
    a, b = first.state_dict(), second.state_dict()
    different = 0
    for name, tensor in averaged.items():
        expected = ((a[name].double() + b[name].double()) / 2).float()
        assert torch.equal(tensor, expected), name
        different += not torch.equal(tensor, a[name])
    assert different == len(averaged)  # the two models really differed, so the mean is a new point


def test_tied_weights_stay_tied_after_averaging(tmp_path):
    first, second = tiny_model(0), tiny_model(1)
    paths = [save_checkpoint(first, tmp_path / "checkpoint-1"), save_checkpoint(second, tmp_path / "checkpoint-2")]
    model = average_into_model(paths)
    assert model.lm_head.weight.data_ptr() == model.model.shared.weight.data_ptr()
    expected = (first.model.shared.weight.double() + second.model.shared.weight.double()) / 2
    assert torch.equal(model.lm_head.weight, expected.float())
    # ... and a save/load round trip keeps one tensor (no separate lm_head.weight is written).
    model.save_pretrained(tmp_path / "averaged")
    assert "lm_head.weight" not in load_file(tmp_path / "averaged" / "model.safetensors")


def test_integer_buffers_must_agree():
    with pytest.raises(AveragingError, match="differs between checkpoints"):
        average_state_dicts([{"steps": torch.tensor([1])}, {"steps": torch.tensor([2])}])
    with pytest.raises(AveragingError, match="shapes"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(AveragingError, match="different weights"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])


def test_checkpoint_paths_are_the_last_n_in_step_order(tmp_path):
    model = tiny_model(0)
    for step in (9, 10, 100, 11):
        save_checkpoint(model, tmp_path / "checkpoints" / f"checkpoint-{step}")
    (tmp_path / "checkpoints" / "checkpoint-200").mkdir()  # no weights: an unfinished folder is ignored
    assert [path.name for path in checkpoint_paths(tmp_path, 3)] == ["checkpoint-10", "checkpoint-11", "checkpoint-100"]
    with pytest.raises(AveragingError, match="4 checkpoint.*5 requested"):
        checkpoint_paths(tmp_path, 5)
    with pytest.raises(AveragingError, match="no such folder"):
        checkpoint_paths(tmp_path / "missing", 1)


def test_a_toy_task_scores_no_worse_after_averaging(tmp_path):
    """Reverse a short symbol string: the average of the last checkpoints is at least as good as the last one."""
    from miniformer_hf.data import make_toy_dataset
    from miniformer_hf.tokenization import train_char_tokenizer
    from miniformer_hf.training import TransformerTrainer, compute_text_metrics, generate_texts

    data = make_toy_dataset("reverse", num_train=3000, num_validation=100, num_test=100, max_len=6, vocab="abcdef")
    tokenizer = train_char_tokenizer(list(data["train"]["source"]) + list(data["train"]["target"]))
    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=len(tokenizer), d_model=32, n_heads=2, n_layers=2, d_ff=64, dropout=0.1)
    )
    trainer = TransformerTrainer(
        model, tokenizer, learning_rate=3e-3, batch_size=64, schedule="inverse_sqrt", warmup_steps=30,
        label_smoothing=0.1, output_dir=tmp_path / "checkpoints", save_strategy="steps", save_steps=20,
        save_total_limit=4, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer.train(data["train"], max_steps=240)
    paths = checkpoint_paths(tmp_path, 4)
    assert [path.name for path in paths] == [f"checkpoint-{step}" for step in (180, 200, 220, 240)]

    test = data["test"]
    last = compute_text_metrics(generate_texts(model, tokenizer, test["source"]), test["target"])
    averaged_model = average_into_model(paths)
    averaged = compute_text_metrics(generate_texts(averaged_model, tokenizer, test["source"]), test["target"])
    assert last["exact_match"] > 0.5, last  # the task was learnt, so the comparison means something
    assert averaged["exact_match"] >= last["exact_match"], (averaged, last)
    assert not all(
        torch.equal(p, q) for p, q in zip(averaged_model.parameters(), model.parameters())
    )  # and it is a different model


def test_train_average_last_and_the_average_command(tmp_path, capsys, monkeypatch):
    """`miniformer train --average-last 3` keeps three checkpoints and saves their mean; `miniformer average`
    writes the mean of any last N as a run folder that `miniformer generate` uses."""
    from miniformer_hf import cli

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "copy"
    code = cli.main(["train", "--task", "copy", "--size", "tiny", "--num-train", "400", "--max-steps", "12",
                     "--eval-steps", "4", "--eval-samples", "8", "--batch-size", "16", "--average-last", "3",
                     "--no-visualize", "-q", "--output-dir", str(run)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["averaged_checkpoints"] == ["checkpoint-4", "checkpoint-8", "checkpoint-12"]
    checkpoints = [run / "checkpoints" / name for name in metrics["averaged_checkpoints"]]
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == sorted(metrics["averaged_checkpoints"])
    expected = average_checkpoints(checkpoints)
    saved = load_file(run / "model.safetensors")
    assert all(torch.equal(saved[name], expected[name]) for name in expected)
    assert not torch.equal(saved["model.shared.weight"], load_file(checkpoints[-1] / "model.safetensors")["model.shared.weight"])

    capsys.readouterr()
    code = cli.main(["average", "--model", str(run), "--last", "2", "--output-dir", str(tmp_path / "avg2")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "checkpoint-8, checkpoint-12" in out
    expected = average_checkpoints(checkpoints[1:])
    saved = load_file(tmp_path / "avg2" / "model.safetensors")
    assert all(torch.equal(saved[name], expected[name]) for name in expected)
    assert json.loads((tmp_path / "avg2" / "averaging.json").read_text())["steps"] == [8, 12]
    assert (tmp_path / "avg2" / "run_arguments.json").is_file() and (tmp_path / "avg2" / "checksums.json").is_file()
    assert cli.main(["generate", "--model", str(tmp_path / "avg2"), "a b c"]) == 0  # checksums accepted
    assert capsys.readouterr().out.count("\n") == 1  # one output line (12 steps may only have learnt spaces)

    # Too many requested, or an existing folder: one error line, nothing written.
    assert cli.main(["average", "--model", str(run), "--last", "4", "--output-dir", str(tmp_path / "avg4")]) == 1
    assert "3 checkpoint(s)" in capsys.readouterr().err and not (tmp_path / "avg4").exists()
    assert cli.main(["average", "--model", str(run), "--last", "2", "--output-dir", str(tmp_path / "avg2")]) == 2
    assert "--overwrite" in capsys.readouterr().err
