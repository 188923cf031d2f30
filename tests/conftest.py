"""Shared test setup: offline, single-threaded torch, and tiny model factories."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def tiny_config(**overrides):
    from miniformer_hf import MiniformerConfig

    sizes = dict(vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0, max_position_embeddings=64)
    sizes.update(overrides)
    return MiniformerConfig(**sizes)


@pytest.fixture
def config():
    return tiny_config()
