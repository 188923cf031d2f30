"""The seed README's code, verbatim, under the seed's own import name ``miniformer``."""

import subprocess
import sys
import textwrap

# What the seed README leaves to the reader: a tokenized training set and some input ids.
PRELUDE = textwrap.dedent(
    """
    import torch
    from datasets import Dataset

    generator = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "labels": []}
    for _ in range(64):
        ids = torch.randint(4, 1000, (int(torch.randint(3, 9, (1,), generator=generator)),), generator=generator).tolist()
        rows["input_ids"].append(ids + [2])
        rows["labels"].append(ids[::-1] + [2])
    train_dataset = Dataset.from_dict(rows)
    input_ids = torch.randint(4, 1000, (1, 7), generator=generator)
    """
)

# The seed README's lines, exactly as written there.
SEED = textwrap.dedent(
    """
    from miniformer import Transformer, TransformerTrainer
    model = Transformer(vocab_size=1000, d_model=64, n_heads=4, n_layers=3, d_ff=256, dropout=0.1)
    output = model(torch.randint(0, 1000, (2, 10)))
    trainer = TransformerTrainer(model=model, learning_rate=5e-5, batch_size=32)
    trainer.train(train_dataset, epochs=10)
    from miniformer.visualization import plot_attention
    attention_weights = model.get_attention_weights(input_ids)
    plot_attention(attention_weights, layer=0, head=0)
    """
)

CHECKS = textwrap.dedent(
    """
    import miniformer, miniformer_hf, miniformer.visualization, miniformer_hf.visualization
    assert miniformer.visualization is miniformer_hf.visualization
    assert Transformer is miniformer_hf.MiniformerForConditionalGeneration
    assert TransformerTrainer is miniformer_hf.TransformerTrainer
    assert output.logits.shape == (2, 10, 1000)
    assert trainer.hf_trainer.state.global_step == 20  # 64 examples / 32 per batch * 10 epochs
    figure = plot_attention(attention_weights, layer=0, head=0)
    assert len(figure.axes[0].images) == 1 and figure.axes[0].images[0].get_array().shape == (7, 7)
    print("seed ok")
    """
)


def test_seed_readme_runs_verbatim_with_the_seed_import_name(tmp_path):
    script = tmp_path / "seed.py"
    script.write_text(PRELUDE + SEED + CHECKS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seed ok" in result.stdout


def test_every_alias_submodule_is_the_package_module():
    import importlib

    import miniformer
    import miniformer_hf

    assert miniformer.MiniformerConfig is miniformer_hf.MiniformerConfig
    for name in ("configuration_miniformer", "modeling_miniformer", "training", "data", "tokenization", "sharing"):
        assert importlib.import_module(f"miniformer.{name}") is importlib.import_module(f"miniformer_hf.{name}"), name
