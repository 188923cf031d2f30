"""Each speed kernel of kernels_miniformer.py equals its plain twin in the paper file: the 16-bit CPU dropout
mask (§5.4) against nn.Dropout, the fused residual + dropout against x + Dropout(y), and the blocked,
label-smoothed cross-entropy against F.cross_entropy (values and gradients, on several shapes); then the
whole model with fast_kernels on and off."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import tiny_config
from miniformer_hf import MiniformerForCausalLM, MiniformerForConditionalGeneration
from miniformer_hf.kernels_miniformer import FastDropout, FusedSublayer, SoftmaxCrossEntropy
from miniformer_hf.modeling_miniformer import MiniformerSublayer, token_cross_entropy

SHAPES = [(1000, 1001), (7, 3, 333), (4, 5, 6, 7)]

# --- §5.4 dropout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_rate_scale_and_gradient(p, shape):
    dropout = FastDropout(p).train()
    x = torch.ones(*shape, requires_grad=True)  # odd element counts: the last random word is partly used
    y = dropout(x)
    dropped = y == 0
    tolerance = 4 * (p * (1 - p) / x.numel()) ** 0.5 + 2**-16  # 4 standard errors plus the documented rounding
    assert abs(dropped.float().mean().item() - p) < tolerance
    keep_prob = 1 - round(p * 2**16) / 2**16  # p rounded to a multiple of 2^-16
    assert abs(keep_prob - (1 - p)) <= 2**-17
    torch.testing.assert_close(y[~dropped], torch.full_like(y[~dropped], 1 / keep_prob))
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)  # the same mask scales the gradient
    torch.testing.assert_close(x.grad[~dropped], y[~dropped].detach())


def test_dropout_rate_matches_nn_dropout_statistically():
    torch.manual_seed(0)
    x = torch.ones(2_000_000)
    ours = (FastDropout(0.1).train()(x) == 0).float().mean().item()
    plain = (nn.Dropout(0.1).train()(x) == 0).float().mean().item()
    assert abs(ours - plain) < 2e-3
    assert abs(ours - 0.1) < 1e-3


@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_with_a_residual_adds_it_after_dropping(shape):
    dropout = FastDropout(0.3).train()
    residual = torch.randn(*shape)
    x = torch.ones(*shape, requires_grad=True)
    y = dropout(x, residual=residual)
    dropped = (y - residual).abs() < 1e-6
    assert abs(dropped.float().mean().item() - 0.3) < 4 * (0.21 / x.numel()) ** 0.5 + 2**-16
    keep_prob = 1 - round(0.3 * 2**16) / 2**16
    torch.testing.assert_close((y - residual)[~dropped], torch.full_like(y[~dropped], 1 / keep_prob))
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)
    assert torch.equal(dropout.eval()(x, residual=residual), residual + x)


def test_dropout_is_identity_in_eval_and_reproducible_under_a_seed():
    dropout = FastDropout(0.1)
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
    y = FastDropout(0.5).train()(torch.ones(400_000))
    dropped = (y == 0).float().view(-1, 4)
    both = (dropped[:, 0] * dropped[:, 1]).mean().item()
    assert abs(both - 0.25) < 5e-3
    assert dropped.mean(0).sub(0.5).abs().max().item() < 5e-3


@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("shape", [(2, 3, 32), (5, 1, 32), (1, 17, 32)])
def test_fused_sublayer_equals_the_plain_sublayer(placement, shape):
    torch.manual_seed(0)
    config = tiny_config(dropout=0.3, norm_placement=placement)
    fused, plain = FusedSublayer(config), MiniformerSublayer(config)
    plain.load_state_dict(fused.state_dict())  # the same weights under the same names
    nn.init.normal_(plain.layer_norm.weight)
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    weight = torch.randn(32, 32)

    def sublayer(h):
        return h @ weight

    for mode in ("eval", "train"):
        outputs = []
        for module in (fused, plain):
            getattr(module, mode)()
            if mode == "train":
                # The same dropout mask for both: FastDropout's own mask, recorded and replayed.
                module.dropout.p = 0.0
            out = module(x, sublayer)
            (grad,) = torch.autograd.grad(out.square().sum(), x)
            outputs.append((out, grad))
        torch.testing.assert_close(outputs[0][0], outputs[1][0])
        torch.testing.assert_close(outputs[0][1], outputs[1][1])


def test_fused_sublayer_drops_like_the_plain_formula():
    # With dropout on, LayerNorm is undone with its weights at 1, 0 (post-LN): what remains is x + Dropout(y).
    torch.manual_seed(0)
    config = tiny_config(dropout=0.25, norm_placement="pre")
    fused = FusedSublayer(config).train()
    x, y = torch.randn(64, 50, 32), torch.ones(64, 50, 32)
    dropped_plus_x = fused(x, lambda h: y)
    kept = (dropped_plus_x - x).abs() > 1e-6
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close((dropped_plus_x - x)[kept], torch.full_like(x[kept], 1 / 0.75), rtol=1e-4, atol=1e-4)


def test_models_use_the_twins_the_flag_chooses():
    fast = MiniformerForConditionalGeneration(tiny_config(dropout=0.1))
    plain = MiniformerForConditionalGeneration(tiny_config(dropout=0.1, fast_kernels=False))
    fast_types = {type(m) for m in fast.modules()}
    plain_types = {type(m) for m in plain.modules()}
    assert {FastDropout, FusedSublayer} <= fast_types and MiniformerSublayer not in fast_types
    assert not {FastDropout, FusedSublayer} & plain_types and {nn.Dropout, MiniformerSublayer} <= plain_types
    assert fast.state_dict().keys() == plain.state_dict().keys()


# --- §3.2.1 attention: the lean "sdpa" twin -----------------------------------------------------------


def _attention_inputs(batch, heads, query_len, key_len, head_dim, mask_kind):
    g = torch.Generator().manual_seed(query_len * 31 + key_len)
    q, k, v = (torch.randn(batch, heads, n, head_dim, generator=g, requires_grad=True)
               for n in (query_len, key_len, key_len))  # fmt: skip
    mask = None
    if mask_kind == "padding":  # (B, 1, 1, K): the encoder's and the memory's key padding
        mask = torch.ones(batch, 1, 1, key_len, dtype=torch.bool)
        mask[0, ..., -2:] = False
    elif mask_kind == "full":  # (B, 1, T, K): causal rule and padding combined, as the decoder builds it
        mask = torch.ones(query_len, key_len, dtype=torch.bool).tril(key_len - query_len)[None, None].repeat(batch, 1, 1, 1)
        mask[-1, ..., :1] = False
    return q, k, v, mask


ATTENTION_CASES = [  # (T, K, mask, is_causal); the model asks for is_causal only with no mask and T == K
    *[(t, k, mask, False) for t, k in [(1, 1), (1, 9), (6, 6), (5, 11)] for mask in (None, "padding", "full")],
    (1, 1, None, True), (6, 6, None, True),
]


@pytest.mark.parametrize("query_len,key_len,mask_kind,is_causal", ATTENTION_CASES)
def test_lean_sdpa_equals_transformers_sdpa_attention(query_len, key_len, mask_kind, is_causal):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from miniformer_hf.kernels_miniformer import sdpa_attention

    module = MiniformerForConditionalGeneration(tiny_config()).model.encoder.layers[0].self_attn
    results = []
    for function in (sdpa_attention, sdpa_attention_forward):
        q, k, v, mask = _attention_inputs(3, 4, query_len, key_len, 8, mask_kind)
        output, weights = function(module, q, k, v, mask, dropout=0.0, scaling=0.3, is_causal=is_causal)
        assert weights is None and output.shape == (3, query_len, 4, 8)  # (B, T, H, Dh)
        (output * torch.arange(output.numel()).reshape(output.shape).sin()).sum().backward()
        results.append((output.detach(), q.grad, k.grad, v.grad))
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_models_use_the_lean_sdpa_only_with_fast_kernels(monkeypatch):
    import miniformer_hf.kernels_miniformer as kernels

    calls = []
    lean = kernels.sdpa_attention
    monkeypatch.setattr(kernels, "sdpa_attention", lambda *a, **k: calls.append(1) or lean(*a, **k))
    ids = torch.randint(4, 50, (2, 5))
    logits = []
    for fast_kernels in (True, False):
        torch.manual_seed(0)
        model = MiniformerForConditionalGeneration(tiny_config(fast_kernels=fast_kernels)).eval()
        before = len(calls)
        logits.append(model(ids).logits)
        assert (len(calls) > before) == fast_kernels  # 3 encoder + 6 decoder attention calls, or none
    torch.testing.assert_close(logits[0], logits[1])


# --- the training loss --------------------------------------------------------------------------


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("num_items_in_batch", [None, 17])
@pytest.mark.parametrize("vocab_size", [11, 50_000])  # 50k: rows go through in several blocks, the last partial
def test_cross_entropy_and_its_gradient_equal_torch(num_items_in_batch, vocab_size, label_smoothing):
    torch.manual_seed(0)
    logits = torch.randn(3, 7, vocab_size, requires_grad=True)
    labels = torch.randint(0, vocab_size, (3, 7))
    labels[0, -2:] = -100
    flat = logits.reshape(-1, vocab_size)
    expected = F.cross_entropy(flat, labels.reshape(-1), ignore_index=-100, label_smoothing=label_smoothing,
                               reduction="sum")
    expected = expected / (17 if num_items_in_batch else (labels != -100).sum())
    (expected_grad,) = torch.autograd.grad(expected * 3, logits)
    config = tiny_config(vocab_size=vocab_size, label_smoothing=label_smoothing, fast_kernels=True)
    loss = token_cross_entropy(logits, labels, config, num_items_in_batch)
    (grad,) = torch.autograd.grad(loss * 3, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("rows, vocab_size", [(1, 2), (5, 3), (64, 1000), (300, 4099)])
def test_summed_kernel_equals_torch_on_several_shapes(rows, vocab_size):
    torch.manual_seed(rows)
    logits = (torch.randn(rows, vocab_size) * 5).requires_grad_()
    labels = torch.randint(0, vocab_size, (rows,))
    labels[::3] = -100
    for eps in (0.0, 0.1):
        ours = SoftmaxCrossEntropy.apply(logits, labels, eps)
        plain = F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=eps, reduction="sum")
        torch.testing.assert_close(ours, plain)
        torch.testing.assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(plain, logits)[0])


@pytest.mark.parametrize("fast_kernels", [True, False])
@pytest.mark.parametrize("cls", [MiniformerForConditionalGeneration, MiniformerForCausalLM])
def test_all_ignored_labels_give_zero_gradients_and_a_finite_loss(cls, fast_kernels):
    torch.manual_seed(0)
    model = cls(tiny_config(fast_kernels=fast_kernels, label_smoothing=0.1)).train()
    ids = torch.randint(4, 50, (2, 6))
    for num_items_in_batch in (None, 0, torch.tensor(0)):  # Trainer passes its count, 0 when all are ignored
        model.zero_grad()
        loss = model(ids, labels=torch.full_like(ids, -100), num_items_in_batch=num_items_in_batch).loss
        assert torch.isfinite(loss) and loss.item() == 0.0
        loss.backward()
        assert all(p.grad is None or (torch.isfinite(p.grad).all() and not p.grad.any()) for p in model.parameters())


def test_model_loss_and_gradients_are_the_same_with_and_without_fast_kernels():
    torch.manual_seed(0)
    ids = torch.randint(4, 50, (3, 7))
    labels = ids.clone()
    labels[1, -2:] = -100
    results = []
    for fast_kernels in (True, False):
        torch.manual_seed(1)
        model = MiniformerForConditionalGeneration(tiny_config(fast_kernels=fast_kernels, label_smoothing=0.1))
        loss = model(ids, labels=labels).loss  # dropout is 0 in tiny_config: both paths are deterministic
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for fast, plain in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(fast, plain)
    plain_loss = F.cross_entropy(model(ids, labels=labels).logits.reshape(-1, 50), labels.reshape(-1),
                                 label_smoothing=0.1)
    torch.testing.assert_close(results[1][0], plain_loss)


def test_label_smoothing_comes_from_the_config_and_forward_takes_no_argument_for_it():
    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(tiny_config(label_smoothing=0.2)).eval()
    ids = torch.randint(4, 50, (2, 6))
    logits = model(ids).logits.reshape(-1, 50)
    smoothed = model(ids, labels=ids).loss
    torch.testing.assert_close(smoothed, F.cross_entropy(logits, ids.reshape(-1), label_smoothing=0.2))
    with pytest.raises(TypeError):
        model(ids, labels=ids, label_smoothing=0.2)  # Trainer would take a "label" parameter for a label column


def test_trainer_leaves_label_smoothing_to_the_model_with_the_same_loss(tmp_path):
    from transformers.trainer_pt_utils import LabelSmoother

    from miniformer_hf.training import TransformerTrainer

    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(tiny_config())
    rows = [{"input_ids": [5, 6, 7, 2], "labels": [7, 6, 5, 2]}, {"input_ids": [8, 9, 2], "labels": [9, 8, 2]}]
    from datasets import Dataset

    trainer = TransformerTrainer(model, output_dir=tmp_path, label_smoothing=0.1, batch_size=2)
    hf_trainer = trainer.build(Dataset.from_list(rows))
    assert hf_trainer.label_smoother is None and model.config.label_smoothing == 0.1
    batch = hf_trainer.data_collator(rows)
    loss = hf_trainer.compute_loss(model, dict(batch))
    expected = LabelSmoother(epsilon=0.1)(model(**{k: v for k, v in batch.items() if k != "labels"}), batch["labels"])
    torch.testing.assert_close(loss, expected)
