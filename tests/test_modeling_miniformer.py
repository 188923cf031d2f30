"""Tests of the model, section by section in paper order, then the Hugging Face heads and sharing."""

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from conftest import tiny_config
from miniformer_hf import (
    MiniformerConfig,
    MiniformerForCausalLM,
    MiniformerForConditionalGeneration,
    MiniformerForSequenceClassification,
    MiniformerModel,
    Transformer,
)
from miniformer_hf.modeling_miniformer import (
    MiniformerSublayer,
    scaled_dot_product_attention,
    shift_tokens_right,
    sinusoidal_table,
)


def make_model(cls=MiniformerForConditionalGeneration, attn="sdpa", **overrides):
    torch.manual_seed(0)
    config = tiny_config(**overrides)
    config._attn_implementation = attn
    return cls(config).eval()


def source_batch(vocab=50, batch=3, length=7, seed=1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0  # second row padded at the end
    mask[2, -4:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return ids, mask


# --- §3.5 positional encoding --------------------------------------------------------------------


def test_positional_encoding_matches_paper_formula():
    d_model = 16
    table = sinusoidal_table(50, d_model)
    for pos in (0, 1, 7, 49):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_encoding_is_not_saved_and_is_rebuilt(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    assert not any("table" in key for key in load_file(tmp_path / "model.safetensors"))
    loaded = MiniformerForConditionalGeneration.from_pretrained(tmp_path)
    expected = sinusoidal_table(64, 32)
    assert torch.equal(loaded.model.encoder.embeddings.embed_positions.table, expected)


# --- §3.4 embeddings ------------------------------------------------------------------------------


def test_embeddings_are_scaled_by_sqrt_d_model_and_shared():
    model = make_model(MiniformerModel)
    ids = torch.tensor([[5, 6, 7]])
    out = model.encoder.embeddings(ids)
    expected = model.shared.weight[ids] * math.sqrt(32) + sinusoidal_table(3, 32)
    torch.testing.assert_close(out, expected)
    assert model.encoder.embed_tokens is model.shared is model.decoder.embed_tokens


def test_initial_embedding_scale_gives_unit_variance_inputs():
    model = MiniformerForConditionalGeneration(MiniformerConfig(vocab_size=2000, d_model=256, n_heads=4))
    scaled = model.model.shared.weight * math.sqrt(256)
    assert 0.9 < scaled.std().item() < 1.1


# --- §3.2.1 scaled dot-product attention ---------------------------------------------------------


def test_readable_attention_is_equation_one():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    out, weights = scaled_dot_product_attention(q, k, v)
    expected_weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(out, expected_weights @ v)
    torch.testing.assert_close(out, nn.functional.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("cls", [MiniformerModel, MiniformerForConditionalGeneration])
def test_sdpa_fast_path_equals_readable_path(cls):
    ids, mask = source_batch()
    decoder_ids, decoder_mask = source_batch(seed=2, length=5)
    outputs = {}
    for attn in ("eager", "sdpa"):
        model = make_model(cls, attn=attn)
        outputs[attn] = model(
            input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, decoder_attention_mask=decoder_mask
        )[0]
    valid = decoder_mask.bool()
    torch.testing.assert_close(outputs["sdpa"][valid], outputs["eager"][valid], atol=1e-5, rtol=1e-5)


# --- §3.1 residual + LayerNorm --------------------------------------------------------------------


def test_post_ln_sublayer_is_layernorm_of_residual_sum():
    sublayer = MiniformerSublayer(tiny_config())
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 32), torch.randn(2, 3, 32)
    nn.init.normal_(sublayer.layer_norm.weight)
    seen = []

    def sublayer_function(inputs):
        seen.append(inputs)
        return y

    torch.testing.assert_close(sublayer(x, sublayer_function), sublayer.layer_norm(x + y))
    assert seen[0] is x  # post-LN: the sub-layer sees x itself


def test_post_ln_layer_outputs_are_normalised_and_pre_ln_are_not():
    ids, _ = source_batch(batch=4, length=9)
    for placement, normalised in (("post", True), ("pre", False)):
        model = make_model(MiniformerModel, norm_placement=placement)
        with torch.no_grad():
            hidden = model.encoder(ids, output_hidden_states=True).hidden_states
        layer_output = hidden[1]  # output of the first encoder layer (before any final stack norm)
        mean = layer_output.mean(-1)
        std = layer_output.std(-1, unbiased=False)
        is_normalised = bool(torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)) and bool(
            torch.allclose(std, torch.ones_like(std), atol=1e-3)
        )
        assert is_normalised == normalised, placement


# --- §3.2.3 masking -------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_decoder_cannot_see_future_positions(attn):
    model = make_model(attn=attn)
    ids, mask = source_batch()
    decoder_ids = torch.randint(4, 50, (3, 6))
    changed = decoder_ids.clone()
    changed[:, 4:] = 7  # alter only positions 4 and 5
    with torch.no_grad():
        before = model(ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        after = model(ids, attention_mask=mask, decoder_input_ids=changed).logits
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])
    weights = model.get_attention_weights(ids, decoder_input_ids=decoder_ids, attention_mask=mask)
    for layer in weights.decoder_attentions:
        assert torch.all(layer.triu(diagonal=1) == 0)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_no_attention_to_padding(attn):
    model = make_model(attn=attn)
    ids, mask = source_batch()
    other_padding = ids.masked_fill(mask == 0, 9)  # same real tokens, different ids under the mask
    decoder_ids = torch.randint(4, 50, (3, 5))
    with torch.no_grad():
        a = model(ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        b = model(other_padding, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(a, b)
    weights = model.get_attention_weights(ids, decoder_input_ids=decoder_ids, attention_mask=mask)
    padded_keys = (mask == 0)[:, None, None, :]  # (B, 1, 1, S)
    for layer in weights.encoder_attentions + weights.cross_attentions:
        assert torch.all(layer[padded_keys.expand_as(layer)] == 0)
        assert layer[padded_keys.expand_as(layer)].numel() > 0


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_all_padding_row_gives_no_nan(attn):
    model = make_model(attn=attn)
    ids, mask = source_batch()
    mask[0] = 0
    with torch.no_grad():
        out = model(ids, attention_mask=mask, decoder_input_ids=torch.randint(4, 50, (3, 4)), output_attentions=True)
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(a).all() for a in out.encoder_attentions + out.cross_attentions)


# --- The whole architecture: parity with torch.nn.Transformer -------------------------------------


def _copy_attention(ours, theirs: nn.MultiheadAttention):
    with torch.no_grad():
        q, k, v = theirs.in_proj_weight.chunk(3)
        qb, kb, vb = theirs.in_proj_bias.chunk(3)
        for proj, w, b in ((ours.q_proj, q, qb), (ours.k_proj, k, kb), (ours.v_proj, v, vb)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.load_state_dict(theirs.out_proj.state_dict())


def _copy_ffn_and_norms(ours, theirs, norm_pairs):
    ours.ffn.fc1.load_state_dict(theirs.linear1.state_dict())
    ours.ffn.fc2.load_state_dict(theirs.linear2.state_dict())
    for our_sublayer, their_norm in norm_pairs:
        our_sublayer.layer_norm.load_state_dict(their_norm.state_dict())


def test_parity_with_torch_nn_transformer():
    torch.manual_seed(0)
    d_model, heads, layers, d_ff = 32, 4, 2, 64
    layer_kwargs = dict(d_model=d_model, nhead=heads, dim_feedforward=d_ff, dropout=0.0, batch_first=True)
    reference = nn.Transformer(
        d_model=d_model,
        nhead=heads,
        custom_encoder=nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer_kwargs), layers, enable_nested_tensor=False),
        custom_decoder=nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer_kwargs), layers),
        batch_first=True,
    ).eval()
    model = make_model(MiniformerModel, attn="eager")
    for ours, theirs in zip(model.encoder.layers, reference.encoder.layers):
        _copy_attention(ours.self_attn, theirs.self_attn)
        _copy_ffn_and_norms(ours, theirs, [(ours.self_attn_sublayer, theirs.norm1), (ours.ffn_sublayer, theirs.norm2)])
    for ours, theirs in zip(model.decoder.layers, reference.decoder.layers):
        _copy_attention(ours.self_attn, theirs.self_attn)
        _copy_attention(ours.encoder_attn, theirs.multihead_attn)
        _copy_ffn_and_norms(
            ours,
            theirs,
            [(ours.self_attn_sublayer, theirs.norm1), (ours.encoder_attn_sublayer, theirs.norm2), (ours.ffn_sublayer, theirs.norm3)],
        )

    ids, mask = source_batch(length=9)
    decoder_ids = torch.randint(4, 50, (3, 6))
    with torch.no_grad():
        source = model.encoder.embeddings(ids)
        target = model.decoder.embeddings(decoder_ids)
        expected = reference(
            source,
            target,
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(6),
            src_key_padding_mask=mask == 0,
            memory_key_padding_mask=mask == 0,
        )
        for attn in ("eager", "sdpa"):
            model.config._attn_implementation = attn
            ours = model(ids, attention_mask=mask, decoder_input_ids=decoder_ids).last_hidden_state
            torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


# --- Heads ----------------------------------------------------------------------------------------


def test_seed_api_runs_as_written():
    model = Transformer(vocab_size=1000, d_model=64, n_heads=4, n_layers=3, d_ff=256, dropout=0.1)
    output = model(torch.randint(0, 1000, (2, 10)))
    assert output.logits.shape == (2, 10, 1000)
    assert isinstance(model.config, MiniformerConfig) and model.config.d_ff == 256


def test_labels_give_cross_entropy_ignoring_minus_100():
    model = make_model()
    ids, mask = source_batch()
    labels = torch.randint(4, 50, (3, 5))
    labels[1, -2:] = -100
    out = model(ids, attention_mask=mask, labels=labels)
    decoder_ids = shift_tokens_right(labels, 0, 1)
    assert decoder_ids[1, -1] == 0 and decoder_ids[0, 0] == 1
    logits = model(ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    keep = labels != -100
    assert model.config.label_smoothing == 0.1  # §5.4's default
    expected = nn.functional.cross_entropy(logits[keep], labels[keep], label_smoothing=0.1)
    torch.testing.assert_close(out.loss, expected)


def test_tied_weights_are_one_tensor_through_training_save_load_and_resize(tmp_path):
    model = make_model()
    assert model.lm_head.weight is model.model.shared.weight
    model.train()
    model(torch.randint(4, 50, (2, 5)), labels=torch.randint(4, 50, (2, 4))).loss.backward()
    assert model.model.shared.weight.grad is not None
    model.save_pretrained(tmp_path)
    loaded = MiniformerForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.shared.weight
    assert loaded.model.encoder.embed_tokens.weight is loaded.model.shared.weight
    loaded.resize_token_embeddings(60)
    assert loaded.config.vocab_size == 60
    assert loaded.lm_head.weight is loaded.model.shared.weight
    assert loaded.model.decoder.embed_tokens is loaded.model.shared
    assert loaded(torch.tensor([[55, 3]])).logits.shape[-1] == 60


def test_untied_output_projection():
    model = make_model(tie_word_embeddings=False)
    assert model.lm_head.weight is not model.model.shared.weight
    assert model.model.encoder.embed_tokens is model.model.shared  # source/target sharing stays


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_decoding_equals_recomputation(attn):
    model = make_model(attn=attn)
    ids, mask = source_batch()
    for kwargs in (dict(), dict(num_beams=3), dict(do_sample=True, top_k=5)):
        torch.manual_seed(3)
        cached = model.generate(ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, use_cache=True, **kwargs)
        torch.manual_seed(3)
        full = model.generate(ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, use_cache=False, **kwargs)
        assert torch.equal(cached, full), kwargs
    # Step-by-step logits with the cache equal one full forward pass.
    decoder_ids = torch.randint(4, 50, (3, 6))
    with torch.no_grad():
        full_logits = model(ids, attention_mask=mask, decoder_input_ids=decoder_ids, use_cache=False).logits
        out = model(ids, attention_mask=mask, decoder_input_ids=decoder_ids[:, :2], use_cache=True)
        steps = [out.logits]
        for t in range(2, 6):
            out = model(
                attention_mask=mask,
                encoder_outputs=(out.encoder_last_hidden_state,),
                decoder_input_ids=decoder_ids[:, t : t + 1],
                cache=out.cache,
                use_cache=True,
            )
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full_logits, atol=1e-5, rtol=1e-5)


def test_sequence_classification_returns_barts_fields():
    from transformers import BartConfig, BartForSequenceClassification

    config = tiny_config(num_labels=3)
    model = MiniformerForSequenceClassification(config).eval()
    ids, mask = source_batch()
    out = model(ids, attention_mask=mask, labels=torch.tensor([0, 2, 1]))
    bart_config = BartConfig(vocab_size=50, d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32,
                             decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2, num_labels=3)
    bart_ids = ids.clone()
    bart_ids[:, -1] = bart_config.eos_token_id
    for flags in ({}, {"output_attentions": True, "output_hidden_states": True}):
        ours = model(ids, attention_mask=mask, labels=torch.tensor([0, 2, 1]), **flags)
        bart = BartForSequenceClassification(bart_config).eval()(bart_ids, labels=torch.tensor([0, 2, 1]), **flags)
        assert set(ours.keys()) == set(bart.keys())
    assert {"loss", "logits", "encoder_last_hidden_state"} <= set(out.keys())
    assert "cache" in model(ids, attention_mask=mask).keys()  # in eval, as BART's, without labels
    assert out.logits.shape == (3, 3)
    # Padding ids do not matter: the head pools the last real token.
    other = model(ids.masked_fill(mask == 0, 11), attention_mask=mask).logits
    torch.testing.assert_close(out.logits, other)


def test_sequence_classification_with_trainer_predict(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = MiniformerForSequenceClassification(tiny_config(num_labels=2))
    rows = [{"input_ids": [5, 6, 7, 2], "labels": 0}, {"input_ids": [8, 9, 2], "labels": 1}] * 4
    dataset = Dataset.from_list(rows)
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1}, "<unk>")), pad_token="<pad>")
    args = TrainingArguments(tmp_path, per_device_eval_batch_size=4, report_to=[], use_cpu=True)
    trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer))
    prediction = trainer.predict(dataset)
    assert prediction.predictions.shape == (8, 2)  # logits alone, not a tuple
    assert "test_loss" in prediction.metrics


def test_causal_lm_has_no_cross_attention_and_every_parameter_learns():
    model = make_model(MiniformerForCausalLM)
    assert all(layer.encoder_attn is None for layer in model.model.decoder.layers)
    model.train()
    ids = torch.randint(4, 50, (2, 8))
    out = model(ids, labels=ids)
    out.loss.backward()
    without_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without_grad == []
    # Labels are shifted inside: position t is scored on token t+1.
    expected = nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 50), ids[:, 1:].reshape(-1),
                                           label_smoothing=model.config.label_smoothing)
    torch.testing.assert_close(out.loss, expected)


def test_causal_lm_generation_with_and_without_cache():
    model = make_model(MiniformerForCausalLM)
    prompt = torch.randint(4, 50, (2, 4))
    cached = model.generate(prompt, max_new_tokens=6, min_new_tokens=6, use_cache=True)
    full = model.generate(prompt, max_new_tokens=6, min_new_tokens=6, use_cache=False)
    assert torch.equal(cached, full)
    assert cached.shape == (2, 10)


def test_causal_lm_loads_decoder_of_a_seq2seq_checkpoint(tmp_path):
    seq2seq = make_model()
    seq2seq.save_pretrained(tmp_path)
    causal = MiniformerForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(causal.model.shared.weight, seq2seq.model.shared.weight)
    assert torch.equal(causal.model.decoder.layers[1].ffn.fc1.weight, seq2seq.model.decoder.layers[1].ffn.fc1.weight)
    assert causal.lm_head.weight is causal.model.shared.weight


# --- get_attention_weights ----------------------------------------------------------------------


def test_get_attention_weights_shapes_and_implementation_independence():
    ids, mask = source_batch(length=7)
    decoder_ids = torch.randint(4, 50, (3, 5))
    results = {}
    for attn in ("eager", "sdpa"):
        model = make_model(attn=attn, encoder_layers=3, decoder_layers=2)
        results[attn] = model.get_attention_weights(ids, decoder_input_ids=decoder_ids, attention_mask=mask)
    weights = results["sdpa"]
    assert [w.shape for w in weights.encoder_attentions] == [(3, 4, 7, 7)] * 3
    assert [w.shape for w in weights.decoder_attentions] == [(3, 4, 5, 5)] * 2
    assert [w.shape for w in weights.cross_attentions] == [(3, 4, 5, 7)] * 2
    for kind in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        for a, b in zip(results["eager"][kind], results["sdpa"][kind]):
            torch.testing.assert_close(a, b)
    rows = weights.cross_attentions[0].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))


def test_get_attention_weights_keeps_training_mode():
    model = make_model().train()
    model.get_attention_weights(torch.randint(4, 50, (1, 5)))
    assert model.training


# --- Bad input ------------------------------------------------------------------------------------


def test_token_id_outside_vocabulary_is_named():
    model = make_model()
    with pytest.raises(ValueError, match=r"Token id 50 is outside the vocabulary.*\[0, 49\]"):
        model(torch.tensor([[3, 50]]))
    with pytest.raises(ValueError, match="Token id -100"):
        model(torch.tensor([[3, 4]]), decoder_input_ids=torch.tensor([[1, -100]]))


def test_sequence_longer_than_positional_table_is_refused():
    model = make_model()
    with pytest.raises(ValueError, match="position 65.*max_position_embeddings is 64"):
        model(torch.randint(4, 50, (1, 65)))


def test_mask_shape_mismatch_is_named():
    model = make_model()
    ids = torch.randint(4, 50, (2, 6))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\).*\(2, 6\)"):
        model(ids, attention_mask=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"decoder_attention_mask has shape \(2, 3\).*\(2, 4\)"):
        model(ids, decoder_input_ids=torch.ones(2, 4, dtype=torch.long), decoder_attention_mask=torch.ones(2, 3))


# --- Options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [dict(norm_placement="pre"), dict(positional_encoding="learned"), dict(activation="gelu", scale_embedding=False)],
)
def test_options_build_train_and_round_trip(tmp_path, overrides):
    model = make_model(**overrides)
    model.train()
    ids = torch.randint(4, 50, (2, 6))
    model(ids, labels=ids).loss.backward()
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = MiniformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    for key, value in overrides.items():
        assert getattr(loaded.config, key) == value
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


# --- Sharing --------------------------------------------------------------------------------------


def test_save_writes_safetensors_code_files_and_full_auto_map(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    from miniformer_hf.sharing import CODE_FILES

    assert {"model.safetensors", "config.json", *CODE_FILES} <= files
    assert set(CODE_FILES) >= {"configuration_miniformer.py", "modeling_miniformer.py", "heads_miniformer.py",
                               "kernels_miniformer.py", "support_miniformer.py"}
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    import miniformer_hf

    package_dir = __import__("pathlib").Path(miniformer_hf.__file__).parent
    for name in CODE_FILES:
        assert (tmp_path / name).read_bytes() == (package_dir / name).read_bytes()
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForSeq2SeqLM",
        "AutoModelForSequenceClassification",
        "AutoModelForCausalLM",
    }


def test_fresh_process_loads_every_head_with_trust_remote_code(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    model = make_model()
    model.save_pretrained(checkpoint)
    ids, mask = source_batch()
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
    torch.save({"ids": ids, "mask": mask, "logits": expected}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["miniformer_hf"] = None  # the package must not be needed
        try:
            import miniformer_hf
        except ImportError:
            pass
        else:
            raise SystemExit("miniformer_hf was importable")
        import torch
        from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                                  AutoModelForSequenceClassification)
        path = {str(checkpoint)!r}
        data = torch.load({str(tmp_path / "expected.pt")!r})
        model = AutoModelForSeq2SeqLM.from_pretrained(path, trust_remote_code=True).eval()
        with torch.no_grad():
            logits = model(data["ids"], attention_mask=data["mask"]).logits
        assert torch.equal(logits, data["logits"]), (logits - data["logits"]).abs().max()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert AutoConfig.from_pretrained(path, trust_remote_code=True).model_type == "miniformer"
        for auto in (AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification):
            auto.from_pretrained(path, trust_remote_code=True)
        print("ok")
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.parametrize("positional_encoding", ["sinusoidal", "learned"])
def test_resize_position_embeddings_extends_the_table_and_keeps_outputs(tmp_path, positional_encoding):
    model = make_model(positional_encoding=positional_encoding)
    ids = torch.randint(4, 50, (2, 10))
    with torch.no_grad():
        before = model(ids).logits
    model.resize_position_embeddings(100)
    assert model.config.max_position_embeddings == 100
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, before)
        assert model(torch.randint(4, 50, (1, 90))).logits.shape == (1, 90, 50)
    if positional_encoding == "sinusoidal":
        torch.testing.assert_close(model.model.encoder.embeddings.embed_positions.table, sinusoidal_table(100, 32))
    model.save_pretrained(tmp_path)
    loaded = MiniformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, before)


def test_labels_outside_vocabulary_are_named_not_clamped():
    model = make_model()
    ids = torch.randint(4, 50, (2, 5))
    for bad in (-5, 50):
        labels = torch.randint(4, 50, (2, 4))
        labels[1, 2] = bad
        with pytest.raises(ValueError, match=rf"Label {bad} is outside the vocabulary.*\[0, 49\]"):
            model(ids, labels=labels)
    labels[1, 2] = -100  # the ignore index stays allowed
    assert torch.isfinite(model(ids, labels=labels).loss)


def test_one_dimensional_or_float_ids_are_refused_with_the_expected_shape():
    model = make_model()
    with pytest.raises(ValueError, match=r"shape \(5,\).*\(batch, length\).*ids\[None\]"):
        model(torch.tensor([5, 6, 7, 8, 9]))
    with pytest.raises(ValueError, match="integer ids"):
        model(torch.rand(1, 4))


def test_causal_lm_labels_outside_vocabulary_are_named():
    model = make_model(MiniformerForCausalLM)
    ids = torch.randint(4, 50, (2, 6))
    labels = ids.clone()
    labels[0, 3] = -7
    with pytest.raises(ValueError, match=r"Label -7 is outside the vocabulary"):
        model(ids, labels=labels)


@pytest.mark.parametrize("shape", [(0, 5), (2, 0)])
def test_empty_batch_or_empty_sequence_gives_one_clear_message(shape):
    model = make_model()
    empty = torch.zeros(shape, dtype=torch.long)
    ids = torch.randint(4, 50, (2, 5))
    fragment = "empty batch or an empty sequence"
    with pytest.raises(ValueError, match=fragment):
        model(empty)
    with pytest.raises(ValueError, match=fragment):
        model(empty, labels=empty)
    with pytest.raises(ValueError, match=fragment):
        model.get_attention_weights(empty)
    if shape[0]:
        with pytest.raises(ValueError, match=fragment):
            model(ids[: shape[0]], decoder_input_ids=empty)
        with pytest.raises(ValueError, match=fragment):
            model(ids[: shape[0]], labels=empty)
    for cls in (MiniformerForCausalLM, MiniformerForSequenceClassification):
        with pytest.raises(ValueError, match=fragment):
            make_model(cls)(empty)


# --- the learner's path runs this file's own code (issue 21) -------------------------------------


def _functions_entered(run) -> set:
    """The (file, function name) of every Python function entered while `run()` runs (sys.setprofile)."""
    entered = set()

    def profile(frame, event, arg):
        if event == "call":
            entered.add((frame.f_code.co_filename, frame.f_code.co_qualname))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return entered


def _names_in(entered, module) -> set:
    return {name for filename, name in entered if filename == module.__file__}


PAPER_FUNCTIONS_IN_TRAINING = {
    "scaled_dot_product_attention",  # Eq. 1
    "eager_attention",
    "causal_mask",  # §3.2.3
    "padding_mask",
    "decoder_self_mask",
    "MiniformerSublayer.forward",  # §3.1, post-LN
    "MiniformerAttention.forward",
    "MiniformerFeedForward.forward",  # Eq. 2
    "MiniformerEmbeddings.forward",  # §3.4
    "MiniformerPositionalEncoding.forward",  # §3.5
    "shift_tokens_right",  # teacher forcing
    "token_cross_entropy",  # §5.4
}


def test_seed_api_builds_the_learners_path():
    model = Transformer(vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64)
    assert model.config.fast_kernels is False and model.config._attn_implementation == "eager"
    assert model.config.label_smoothing == 0.1
    assert model.lm_head.weight is model.model.shared.weight  # §3.4: one tensor
    # What the learner passes wins; the practitioner's defaults stay fast.
    fast = Transformer(vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64, fast_kernels=True,
                       attn_implementation="sdpa")
    assert fast.config.fast_kernels is True and fast.config._attn_implementation == "sdpa"
    practitioner = MiniformerForConditionalGeneration(MiniformerConfig(vocab_size=50))
    assert practitioner.config.fast_kernels is True and practitioner.config._attn_implementation == "sdpa"


def test_a_traced_training_step_on_the_learners_path_enters_the_paper_files_code():
    import torch.nn.functional as F
    from torch.nn.modules import dropout as dropout_module

    from miniformer_hf import kernels_miniformer, modeling_miniformer

    torch.manual_seed(0)
    model = Transformer(vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64).train()
    ids, mask = source_batch()
    labels = torch.randint(4, 50, (3, 5))

    def step():
        model(ids, attention_mask=mask, labels=labels).loss.backward()

    entered = _functions_entered(step)
    ours = _names_in(entered, modeling_miniformer)
    assert PAPER_FUNCTIONS_IN_TRAINING <= ours, PAPER_FUNCTIONS_IN_TRAINING - ours
    assert (dropout_module.__file__, "Dropout.forward") in entered  # nn.Dropout (§5.4)
    assert (F.__file__, "cross_entropy") in entered  # the loss, label-smoothed by F.cross_entropy
    assert not _names_in(entered, kernels_miniformer), "no twin from kernels_miniformer.py on the learner's path"


def test_a_traced_generate_step_on_the_learners_path_enters_the_paper_files_attention_and_masks():
    from miniformer_hf import kernels_miniformer, modeling_miniformer

    torch.manual_seed(0)
    model = Transformer(vocab_size=50, d_model=32, n_heads=4, n_layers=2, d_ff=64).eval()
    ids, mask = source_batch()
    entered = _functions_entered(lambda: model.generate(ids, attention_mask=mask, max_new_tokens=1, do_sample=False))
    ours = _names_in(entered, modeling_miniformer)
    expected = {"scaled_dot_product_attention", "eager_attention", "causal_mask", "padding_mask", "decoder_self_mask",
                "MiniformerSublayer.forward", "MiniformerAttention.forward"}
    assert expected <= ours, expected - ours
    # The generation mixin's method is entered and hands straight to GenerationMixin's when fast_kernels is off.
    assert _names_in(entered, kernels_miniformer) <= {"DecodingStepInputsMixin.prepare_inputs_for_generation"}


def test_the_paper_file_names_each_twin_where_it_replaces_the_plain_code():
    from miniformer_hf import modeling_miniformer

    source = open(modeling_miniformer.__file__).read()
    for twin in ("FastDropout", "FusedSublayer", "sdpa_attention", "SoftmaxCrossEntropy", "DecodingStepInputsMixin"):
        lines = [line for line in source.splitlines() if "TWIN" in line and twin in line]
        assert lines, f"no TWIN line names {twin}"
    assert source.count("math.sqrt(d_k)") == 1 and "self.scaling" not in source and "**-0.5" not in source.split(
        "# 3. Scaled")[1].split("# 5. Position")[0]  # 1/sqrt(d_k) is written once


def test_loss_is_label_smoothed_as_the_formula_beside_it_says():
    torch.manual_seed(0)
    model = make_model(label_smoothing=0.1, fast_kernels=False)
    ids, mask = source_batch()
    labels = torch.randint(4, 50, (3, 5))
    out = model(ids, attention_mask=mask, labels=labels)
    log_p = out.logits.log_softmax(-1)  # (B, T, V)
    by_formula = (0.9 * -log_p.gather(-1, labels[..., None]).squeeze(-1) + 0.1 * -log_p.mean(-1)).mean()
    torch.testing.assert_close(out.loss, by_formula)


def test_model_without_decoder_inputs_says_it_feeds_the_source_once(caplog):
    from transformers.utils import logging as hf_logging

    model = make_model()
    ids, _ = source_batch()
    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            model(ids)
            model(ids)
    finally:
        hf_logging.disable_propagation()
    said = [record.getMessage() for record in caplog.records if "shifted right" in record.getMessage()]
    assert len(said) <= 1  # once per process (another test may have said it already)


def test_get_attention_weights_takes_a_target():
    model = make_model()
    ids, mask = source_batch()
    target = torch.randint(4, 50, (3, 4))
    weights = model.get_attention_weights(ids, attention_mask=mask, labels=target)
    assert weights.cross_attentions[0].shape == (3, 4, 4, 7)  # (B, H, target, source)
    by_hand = model.get_attention_weights(ids, attention_mask=mask, decoder_input_ids=shift_tokens_right(target, 0, 1))
    torch.testing.assert_close(weights.cross_attentions[0], by_hand.cross_attentions[0])
    with pytest.raises(ValueError, match="not both"):
        model.get_attention_weights(ids, decoder_input_ids=target, labels=target)


def test_no_forward_has_a_label_parameter_other_than_labels():
    import inspect

    for cls in (MiniformerForConditionalGeneration, MiniformerForCausalLM, MiniformerForSequenceClassification,
                MiniformerModel):
        names = [name for name in inspect.signature(cls.forward).parameters if "label" in name]
        assert names in ([], ["labels"]), (cls.__name__, names)


def test_float_labels_and_labels_of_another_batch_are_named():
    model = make_model()
    ids, mask = source_batch()
    with pytest.raises(ValueError, match=r"labels have shape \(3, 5\) and dtype torch.float32"):
        model(ids, attention_mask=mask, labels=torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"labels have batch size 2 .* inputs have batch size 3"):
        model(ids, attention_mask=mask, labels=torch.ones(2, 5, dtype=torch.long))
    lm = make_model(MiniformerForCausalLM)
    with pytest.raises(ValueError, match="labels have batch size 2"):
        lm(ids, labels=torch.ones(2, 7, dtype=torch.long))


@pytest.mark.parametrize("argument", [{"head": 1.0}, {"batch_index": True}, {"layer": "0"}])
def test_attention_views_say_an_index_must_be_an_integer(argument):
    pytest.importorskip("matplotlib")
    from miniformer_hf.visualization import plot_attention

    model = make_model()
    ids, mask = source_batch()
    weights = model.get_attention_weights(ids, attention_mask=mask, labels=torch.randint(4, 50, (3, 4)))
    name, value = next(iter(argument.items()))
    with pytest.raises(ValueError, match=rf"{name}={value!r} must be an integer"):
        plot_attention(weights, kind="cross", **argument)
