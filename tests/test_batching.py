"""Tests for miniformer_hf.batching: batches by token count of similar-length examples (§5.1)."""

from __future__ import annotations

import random

import pytest
import torch
from datasets import Dataset

from miniformer_hf.batching import LengthPoolSampler, TokenBatchSampler, token_batches


def random_lengths(count: int = 500, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 60) for _ in range(count)]


def test_every_example_once_and_no_batch_over_the_token_budget():
    lengths = random_lengths()
    batches = token_batches(lengths, tokens_per_batch=200, seed=0)
    assert sorted(index for batch in batches for index in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 200
    # Similar lengths together: short examples come many to a batch, long ones few.
    spreads = [max(lengths[i] for i in batch) - min(lengths[i] for i in batch) for batch in batches]
    assert sum(spreads) / len(spreads) <= 2
    sizes = {max(lengths[i] for i in batch): len(batch) for batch in batches}
    assert sizes[min(sizes)] > 10 * sizes[max(sizes)]


def test_an_example_longer_than_the_budget_gets_its_own_batch():
    assert sorted(map(sorted, token_batches([5, 50, 5], tokens_per_batch=20))) == [[0, 2], [1]]
    with pytest.raises(ValueError, match="positive number of tokens"):
        token_batches([1], 0)


def test_sampler_reshuffles_each_epoch_with_a_fixed_number_of_batches():
    sampler = TokenBatchSampler(random_lengths(), tokens_per_batch=300, seed=3)
    first = list(sampler)
    assert list(sampler) == first  # the same epoch gives the same batches
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and len(second) == len(first) == len(sampler)
    assert sorted(map(len, second)) == sorted(map(len, first))


def test_trainer_batches_by_tokens_and_trains(tmp_path):
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, TransformerTrainer

    generator = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "labels": []}
    for _ in range(200):
        length = int(torch.randint(2, 30, (1,), generator=generator))
        ids = torch.randint(4, 60, (length,), generator=generator).tolist()
        rows["input_ids"].append(ids + [2])
        rows["labels"].append(ids[::-1] + [2])
    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=60, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    )
    trainer = TransformerTrainer(model, learning_rate=1e-3, batch_size=4, tokens_per_batch=120, disable_tqdm=True,
                                 output_dir=tmp_path)  # fmt: skip
    hf_trainer = trainer.build(Dataset.from_dict(rows))
    shapes = [tuple(batch["input_ids"].shape) for batch in hf_trainer.get_train_dataloader()]
    assert all(rows_ * width <= 120 for rows_, width in shapes), shapes
    assert max(rows_ for rows_, _ in shapes) > 4  # short examples: more than --batch-size in one batch
    assert sum(rows_ for rows_, _ in shapes) == 200
    before = model.model.shared.weight.detach().clone()
    trainer.train(Dataset.from_dict(rows), max_steps=3)
    assert trainer.hf_trainer.state.global_step == 3
    assert not torch.equal(before, model.model.shared.weight)


# ---------------------------------------------------------------------------------------------
# Length pools: the default run's mild sorting for a fixed batch size
# ---------------------------------------------------------------------------------------------


def padded_width_sum(order: list[int], lengths: list[int], batch_size: int) -> int:
    return sum(max(lengths[i] for i in order[start : start + batch_size]) for start in range(0, len(order), batch_size))


def test_length_pools_cut_padding_but_keep_batches_mixed():
    lengths = random_lengths(count=1280, seed=1)
    batch_size, pool = 32, 4
    order = list(LengthPoolSampler(lengths, batch_size, pool_batches=pool, seed=0))
    assert sorted(order) == list(range(len(lengths)))  # every example once
    shuffled = list(range(len(lengths)))
    random.Random(0).shuffle(shuffled)
    # Less padding than random batches ...
    assert padded_width_sum(order, lengths, batch_size) < 0.85 * padded_width_sum(shuffled, lengths, batch_size)
    # ... but not the whole epoch sorted: each pool of 4 batches covers lengths from all over the data.
    pool_size = batch_size * pool
    for start in range(0, len(order), pool_size):
        members = [lengths[i] for i in order[start : start + pool_size]]
        assert min(members) <= 10 and max(members) >= 50, (start, min(members), max(members))
    everything_sorted = sorted(range(len(lengths)), key=lengths.__getitem__)
    assert padded_width_sum(order, lengths, batch_size) > padded_width_sum(everything_sorted, lengths, batch_size)


def test_length_pools_are_reproducible_and_new_each_epoch():
    lengths = random_lengths()
    first = LengthPoolSampler(lengths, 16, seed=5)
    again = LengthPoolSampler(lengths, 16, seed=5)
    assert list(first) == list(again) and len(first) == len(lengths)
    first.set_epoch(1)
    again.set_epoch(1)
    epoch_one = list(first)
    assert epoch_one == list(again) and epoch_one != list(LengthPoolSampler(lengths, 16, seed=5))
    with pytest.raises(ValueError, match="positive integers"):
        LengthPoolSampler(lengths, 0)


def test_trainer_uses_length_pools(tmp_path):
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, TransformerTrainer

    generator = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "labels": []}
    for _ in range(256):
        length = int(torch.randint(2, 40, (1,), generator=generator))
        rows["input_ids"].append(torch.randint(4, 60, (length,), generator=generator).tolist() + [2])
        rows["labels"].append([5, 6, 2])
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=60, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    )

    def widths(length_pool):
        trainer = TransformerTrainer(model, learning_rate=1e-3, batch_size=16, length_pool=length_pool,
                                     disable_tqdm=True, output_dir=tmp_path)  # fmt: skip
        loader = trainer.build(Dataset.from_dict(rows)).get_train_dataloader()
        return [batch["input_ids"].shape[1] for batch in loader]

    pooled, plain = widths(4), widths(None)
    assert len(pooled) == len(plain) == 16
    assert sum(pooled) < 0.9 * sum(plain)
    with pytest.raises(ValueError, match="length_pool"):
        TransformerTrainer(model, length_pool=0, output_dir=tmp_path)
