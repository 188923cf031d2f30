"""Tests that the model's CPU fast paths compute what the plain code they replace computes: the 16-bit
dropout mask (§5.4) and the one-pass cross-entropy gradient."""

import pytest
import torch
from torch import nn

from miniformer_hf.modeling_miniformer import MiniformerDropout, token_cross_entropy

# --- §5.4 dropout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_rate_scale_and_gradient(p):
    dropout = MiniformerDropout(p).train()
    x = torch.ones(1000, 1001, requires_grad=True)  # an odd element count: the last word is partly used
    y = dropout(x)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 3e-3
    keep_prob = 1 - round(p * 2**16) / 2**16  # p rounded to a multiple of 2^-16
    torch.testing.assert_close(y[~dropped], torch.full_like(y[~dropped], 1 / keep_prob))
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)  # the same mask scales the gradient
    torch.testing.assert_close(x.grad[~dropped], y[~dropped].detach())


def test_dropout_with_a_residual_adds_it_after_dropping():
    dropout = MiniformerDropout(0.3).train()
    residual = torch.randn(500, 301)
    x = torch.ones(500, 301, requires_grad=True)
    y = dropout(x, residual=residual)
    dropped = (y - residual).abs() < 1e-6
    assert abs(dropped.float().mean().item() - 0.3) < 5e-3
    keep_prob = 1 - round(0.3 * 2**16) / 2**16
    torch.testing.assert_close((y - residual)[~dropped], torch.full_like(y[~dropped], 1 / keep_prob))
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)
    assert torch.equal(dropout.eval()(x, residual=residual), residual + x)


def test_dropout_is_identity_in_eval_and_reproducible_under_a_seed():
    dropout = MiniformerDropout(0.1)
    x = torch.randn(4, 5, 6)
    assert dropout.eval()(x) is x
    dropout.train()
    torch.manual_seed(0)
    first = dropout(x)
    torch.manual_seed(0)
    assert torch.equal(dropout(x), first)
    assert isinstance(dropout, nn.Dropout)  # tools that look for nn.Dropout still find it
    assert dropout(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_dropout_masks_are_independent_of_position():
    # Four elements share each 64-bit word: neighbours must still be dropped independently.
    torch.manual_seed(0)
    y = MiniformerDropout(0.5).train()(torch.ones(400_000))
    dropped = (y == 0).float().view(-1, 4)
    both = (dropped[:, 0] * dropped[:, 1]).mean().item()
    assert abs(both - 0.25) < 5e-3
    assert dropped.mean(0).sub(0.5).abs().max().item() < 5e-3


# --- the training loss --------------------------------------------------------------------------


@pytest.mark.parametrize("num_items_in_batch", [None, 17])
@pytest.mark.parametrize("vocab_size", [11, 50_000])  # 50k: rows go through in several blocks, the last partial
def test_cross_entropy_and_its_gradient_equal_torch(num_items_in_batch, vocab_size):
    torch.manual_seed(0)
    logits = torch.randn(3, 7, vocab_size, requires_grad=True)
    labels = torch.randint(0, vocab_size, (3, 7))
    labels[0, -2:] = -100
    flat = logits.reshape(-1, vocab_size)
    if num_items_in_batch is None:
        expected = nn.functional.cross_entropy(flat, labels.reshape(-1), ignore_index=-100)
    else:
        expected = nn.functional.cross_entropy(flat, labels.reshape(-1), ignore_index=-100, reduction="sum") / 17
    (expected_grad,) = torch.autograd.grad(expected * 3, logits)
    loss = token_cross_entropy(logits, labels, num_items_in_batch)
    (grad,) = torch.autograd.grad(loss * 3, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
