"""`miniformer train --recipe paper`: the paper's recipe (§5, §6.1) switched on by one flag, each part
checked where it lands: tokenizer, batches, schedule, averaging, decoding, BLEU signature, model card."""

from __future__ import annotations

import argparse
import json

import pytest

from miniformer_hf import cli, options


def test_recipe_fills_only_options_not_given():
    plan = options.resolve(options.TrainOptions(recipe="paper", vocab_size=500, num_beams=2))
    assert (plan.tokenizer, plan.schedule, plan.tokens_per_batch, plan.average_last) == ("bpe", "paper", 25000, 5)
    assert (plan.length_penalty, plan.max_new_tokens_over_input, plan.label_smoothing) == (0.6, 50, 0.1)
    assert (plan.vocab_size, plan.num_beams) == (500, 2)  # set by the user: kept
    assert options.resolve() == options.resolve(options.TrainOptions())
    with pytest.raises(options.OptionError, match="recipe='fairseq' is unknown"):
        options.resolve(recipe="fairseq")


def test_flags_equal_to_the_default_still_win_over_the_recipe(tmp_path):
    """Issue 23, case 2: the recipe knew only values that differ from the defaults, so these four were lost."""
    from miniformer_hf.commands import train

    parser = train.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--recipe", "paper", "--schedule", "linear", "--tokenizer", "char", "--num-beams", "1",
                              "--average-last", "1"])  # fmt: skip
    plan = options.resolve(options.TrainOptions.from_namespace(args))
    assert (plan.schedule, plan.tokenizer, plan.num_beams, plan.average_last) == ("linear", "char", 1, 1)
    assert plan.tokens_per_batch == 25000 and plan.vocab_size == 37000  # what was not given comes from the recipe
    args = parser.parse_args(["--recipe", "paper", "--learning-rate", "1e-3"])  # accepted: the paper's shape
    plan = options.resolve(options.TrainOptions.from_namespace(args))
    assert (plan.schedule, plan.learning_rate, plan.warmup_steps) == ("inverse_sqrt", 1e-3, 4000)


def test_train_with_the_paper_recipe(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "copy"
    code = cli.main(["train", "--task", "copy", "--recipe", "paper", "--size", "tiny", "--vocab-size", "300",
                     "--tokens-per-batch", "300", "--num-train", "300", "--max-steps", "6", "--eval-steps", "3",
                     "--eval-samples", "6", "--no-visualize", "-q", "--output-dir", str(run)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["recipe"] == "paper" and metrics["tokens_per_batch"] == 300
    assert metrics["decoding"] == {"num_beams": 4, "length_penalty": 0.6, "max_new_tokens_over_input": 50}
    assert metrics["averaged_checkpoints"] == ["checkpoint-3", "checkpoint-6"]  # at most 5; two were written
    assert metrics["warmup_steps"] == 4000 and metrics["label_smoothing"] == 0.1
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    tokenizer = json.loads((run / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "BPE" and tokenizer["pre_tokenizer"]["type"] == "ByteLevel"
    generation = json.loads((run / "generation_config.json").read_text())
    assert (generation["num_beams"], generation["length_penalty"], generation["max_new_tokens_over_input"]) == (
        4, 0.6, 50)  # fmt: skip
    card = (run / "README.md").read_text()
    assert metrics["bleu_signature"].replace("|", "\\|") in card
    # `miniformer generate` decodes with the saved recipe: input length + 50 tokens at most.
    capsys.readouterr()
    assert cli.main(["generate", "--model", str(run), "a b c"]) == 0
    assert len(capsys.readouterr().out.strip()) > 0


def test_outputs_run_to_input_length_plus_n():
    """§6.1's "maximum output length ... input length + 50", with N = 3: a model that never ends its output
    stops after (longest input in the batch) + 3 new tokens, in generate_texts and in the trainer's evaluation."""
    import torch

    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
    from miniformer_hf.tokenization import train_char_tokenizer
    from miniformer_hf.generation import _length_over_input, generate_texts_with_cuts

    tokenizer = train_char_tokenizer(["abcdef"])
    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=len(tokenizer), d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    )
    model.generation_config.max_new_tokens = 40
    model.generation_config.max_new_tokens_over_input = 3
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = -100.0  # never ends on its own (tied: also the embedding)
    ids = tokenizer(["abcdef"], return_tensors="pt")["input_ids"]  # 6 characters + </s>
    assert _length_over_input(model, ids, {}) == {"max_new_tokens": 7 + 3}
    assert _length_over_input(model, ids, {"max_new_tokens": 5}) == {"max_new_tokens": 5}  # explicit wins
    texts, cut = generate_texts_with_cuts(model, tokenizer, ["abcdef", "ab"])
    assert cut == [0, 1] and all(len(text.replace(" ", "")) <= 10 for text in texts)
    generated = model.generate(input_ids=ids, **_length_over_input(model, ids, {}))
    assert generated.shape[1] == 1 + 7 + 3  # decoder start + input length + 3
