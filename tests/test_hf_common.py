"""The checks of transformers' common model and generation tests that matter to users, in our own words.

transformers' `ModelTesterMixin` / `GenerationTesterMixin` are not installed with the library, so the full
suite runs from `scripts/run_hf_common_tests.sh` (which downloads them). This file keeps the essentials
in the normal test run: every head saves and reloads, keeps one shared embedding, reports attentions and
hidden states in the usual layout, accepts `inputs_embeds`, checkpoints gradients, matches sdpa with
eager, generates the same with and without a cache, compiles, exports and runs in half precision.
"""

import copy
import warnings

import pytest
import torch

from conftest import tiny_config
from miniformer_hf import (
    MiniformerForCausalLM,
    MiniformerForConditionalGeneration,
    MiniformerForSequenceClassification,
    MiniformerModel,
)

SEQ2SEQ_HEADS = (MiniformerModel, MiniformerForConditionalGeneration, MiniformerForSequenceClassification)
ALL_HEADS = SEQ2SEQ_HEADS + (MiniformerForCausalLM,)
LAYERS, HEADS, BATCH, SRC, TGT = 2, 4, 3, 7, 5


def build(cls, attn="sdpa", **overrides):
    torch.manual_seed(0)
    config = tiny_config(n_layers=LAYERS, n_heads=HEADS, **overrides)
    return cls._from_config(config, attn_implementation=attn).eval()


def batch_for(cls, seed=0):
    """Right-padded source with its mask, and decoder inputs, as keyword arguments for `cls`."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 50, (BATCH, SRC), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    if cls in (MiniformerForCausalLM, MiniformerForSequenceClassification):
        return {"input_ids": ids, "attention_mask": mask}  # the classifier's decoder reads the shifted source
    decoder_ids = torch.randint(4, 50, (BATCH, TGT), generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids}


def first_output(out):
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


# --- save / load and the shared embedding ---------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_save_load_round_trip_has_no_missing_keys(cls, tmp_path):
    model = build(cls)
    inputs = batch_for(cls)
    model.save_pretrained(tmp_path)
    loaded, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        torch.testing.assert_close(first_output(loaded.eval()(**inputs)), first_output(model(**inputs)))


@pytest.mark.parametrize("cls", (MiniformerForConditionalGeneration, MiniformerForCausalLM))
def test_one_embedding_tensor_after_load_and_resize(cls, tmp_path):
    build(cls).save_pretrained(tmp_path)
    model = cls.from_pretrained(tmp_path)
    model.resize_token_embeddings(57)
    shared = model.get_input_embeddings()
    assert shared.weight.shape == (57, 32)
    assert model.get_output_embeddings().weight is shared.weight
    for stack in (model.model.decoder, getattr(model.model, "encoder", None)):
        assert stack is None or stack.embed_tokens is shared
    state = model.state_dict()
    assert {name for name in state if name.endswith("embed_tokens.weight")} == set()  # one name per weight


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_checkpoint_without_embeddings_initialises_them(cls, tmp_path):
    """A checkpoint that lacks the shared table reports it missing and initialises it (never left on meta)."""
    from safetensors.torch import save_file

    build(cls).save_pretrained(tmp_path)
    save_file({"unrelated": torch.zeros(2)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    shared_name = next(name for name, p in loaded.named_parameters() if p is loaded.get_input_embeddings().weight)
    assert shared_name in info["missing_keys"]
    assert not any(p.is_meta for p in loaded.parameters())
    assert torch.isfinite(loaded.get_input_embeddings().weight).all()


# --- output conventions ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_attentions_and_hidden_states_layout(cls):
    model = build(cls, attn="eager")
    with torch.no_grad():
        out = model(**batch_for(cls), output_attentions=True, output_hidden_states=True)
    if cls is MiniformerForCausalLM:
        assert len(out.attentions) == LAYERS and len(out.hidden_states) == LAYERS + 1
        assert out.attentions[0].shape == (BATCH, HEADS, SRC, SRC)
        return
    assert len(out.encoder_attentions) == len(out.decoder_attentions) == len(out.cross_attentions) == LAYERS
    assert out.encoder_attentions[0].shape == (BATCH, HEADS, SRC, SRC)
    tgt = SRC if cls is MiniformerForSequenceClassification else TGT  # the classifier decodes the source
    assert out.decoder_attentions[0].shape == (BATCH, HEADS, tgt, tgt)
    assert out.cross_attentions[0].shape == (BATCH, HEADS, tgt, SRC)
    assert len(out.encoder_hidden_states) == len(out.decoder_hidden_states) == LAYERS + 1
    assert out.decoder_hidden_states[-1].shape == (BATCH, tgt, 32)


@pytest.mark.parametrize("cls", ALL_HEADS)
@pytest.mark.parametrize("selection", ([0, 2], [-1], 1))
def test_output_hidden_states_can_select_layers(cls, selection):
    """transformers 5 accepts indices for `output_hidden_states` (BART does, through its output hooks): the chosen
    hidden states come back in their places, the others as None."""
    model = build(cls)
    inputs = batch_for(cls)
    with torch.no_grad():
        every = model(**inputs, output_hidden_states=True)
        chosen = model(**inputs, output_hidden_states=selection)
    kept = {index % (LAYERS + 1) for index in (selection if isinstance(selection, list) else [selection])}
    stacks = ("hidden_states",) if cls is MiniformerForCausalLM else ("encoder_hidden_states", "decoder_hidden_states")
    for name in stacks:
        assert len(getattr(chosen, name)) == LAYERS + 1
        for position, (full, picked) in enumerate(zip(getattr(every, name), getattr(chosen, name))):
            if position in kept:
                torch.testing.assert_close(picked, full)
            else:
                assert picked is None


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_output_flags_from_config(cls):
    model = build(cls, attn="eager", output_attentions=True, output_hidden_states=True)
    with torch.no_grad():
        out = model(**batch_for(cls))
    attentions = out.attentions if cls is MiniformerForCausalLM else out.encoder_attentions
    assert len(attentions) == LAYERS


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_return_dict_false_gives_the_same_tuple(cls):
    model = build(cls)
    inputs = batch_for(cls)
    with torch.no_grad():
        as_dict = model(**inputs, output_hidden_states=True, use_cache=False)
        as_tuple = model(**inputs, output_hidden_states=True, use_cache=False, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    torch.testing.assert_close(as_tuple[0], as_dict.to_tuple()[0])


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_inputs_embeds_equal_input_ids(cls):
    """`inputs_embeds = model.get_input_embeddings()(ids)` is the transformers contract (scaling included)."""
    model = build(cls)
    inputs = batch_for(cls)
    embed = model.get_input_embeddings()
    with torch.no_grad():
        expected = first_output(model(**inputs))
        by_embeds = dict(inputs, inputs_embeds=embed(inputs.pop("input_ids")))
        if "decoder_input_ids" in by_embeds:
            by_embeds["decoder_inputs_embeds"] = embed(by_embeds.pop("decoder_input_ids"))
        torch.testing.assert_close(first_output(model(**by_embeds)), expected)


def test_causal_lm_generates_the_same_from_inputs_embeds():
    model = build(MiniformerForCausalLM)
    ids = torch.randint(4, 50, (2, 4), generator=torch.Generator().manual_seed(3))
    from_ids = model.generate(ids, max_new_tokens=5, do_sample=False)
    from_embeds = model.generate(inputs_embeds=model.get_input_embeddings()(ids), max_new_tokens=5, do_sample=False)
    assert torch.equal(from_ids[:, ids.shape[1] :], from_embeds)


def test_past_key_values_is_a_deprecated_name_for_cache():
    model = build(MiniformerForConditionalGeneration)
    inputs = batch_for(MiniformerForConditionalGeneration)
    with torch.no_grad():
        cache = model(**inputs, use_cache=True).cache
        step = {"attention_mask": inputs["attention_mask"], "decoder_input_ids": inputs["decoder_input_ids"][:, :1]}
        encoder_outputs = model.get_encoder()(inputs["input_ids"], attention_mask=inputs["attention_mask"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = model(**step, encoder_outputs=encoder_outputs, past_key_values=copy.deepcopy(cache)).logits
        new = model(**step, encoder_outputs=encoder_outputs, cache=copy.deepcopy(cache)).logits
    assert any("`past_key_values` is deprecated" in str(w.message) for w in caught)
    torch.testing.assert_close(old, new)


# --- training machinery ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", (MiniformerForConditionalGeneration, MiniformerForCausalLM))
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(cls):
    inputs = batch_for(cls)
    inputs["labels"] = inputs.get("decoder_input_ids", inputs["input_ids"])
    results = []
    for checkpointing in (False, True):
        model = build(cls).train()  # dropout is 0 in tiny_config, so both runs are deterministic
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            layers = [m for m in model.modules() if hasattr(m, "_gradient_checkpointing_func")]
            assert layers and all(layer.gradient_checkpointing for layer in layers)
        loss = model(**inputs).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    assert len(grads_a) == len(grads_b) > 0
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_sdpa_equals_eager_with_padding(cls):
    inputs = batch_for(cls)
    with torch.no_grad():
        eager = first_output(build(cls, attn="eager")(**inputs))
        sdpa = first_output(build(cls, attn="sdpa")(**inputs))
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_attention_implementation_can_be_switched_on_a_built_model():
    model = build(MiniformerForConditionalGeneration, attn="sdpa")
    inputs = batch_for(MiniformerForConditionalGeneration)
    with torch.no_grad():
        sdpa = model(**inputs).logits
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        torch.testing.assert_close(model(**inputs).logits, sdpa, atol=1e-5, rtol=1e-5)


# --- generation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", (MiniformerForConditionalGeneration, MiniformerForCausalLM))
@pytest.mark.parametrize("mode", ("greedy", "beam", "sample"))
def test_generate_is_the_same_with_and_without_cache(cls, mode):
    model = build(cls)
    inputs = batch_for(cls)
    inputs.pop("decoder_input_ids", None)
    kwargs = {"greedy": {}, "beam": {"num_beams": 3}, "sample": {"do_sample": True, "top_k": 10}}[mode]
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(0)
        outputs.append(model.generate(**inputs, **kwargs, max_new_tokens=6, min_new_tokens=6, use_cache=use_cache))
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("cls", (MiniformerForConditionalGeneration, MiniformerForCausalLM))
def test_static_cache_generates_like_the_dynamic_cache(cls):
    model = build(cls)
    inputs = batch_for(cls)
    inputs.pop("decoder_input_ids", None)
    dynamic = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    static = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False, cache_implementation="static")
    assert torch.equal(dynamic, static)


# --- compilation, export, precision ---------------------------------------------------------------


def test_torch_compile_fullgraph_forward_matches_eager():
    model = build(MiniformerForConditionalGeneration)
    inputs = batch_for(MiniformerForConditionalGeneration)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # graph capture is what can break
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs, use_cache=False).logits, model(**inputs, use_cache=False).logits)


def test_torch_export_forward_matches_eager():
    model = build(MiniformerForConditionalGeneration)
    inputs = batch_for(MiniformerForConditionalGeneration)
    inputs["use_cache"] = False
    with torch.no_grad():
        program = torch.export.export(model, args=(), kwargs=inputs, strict=False)
        torch.testing.assert_close(program.module()(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
@pytest.mark.parametrize("cls", ALL_HEADS)
def test_half_precision_forward_runs_on_cpu(cls, dtype):
    model = build(cls).to(dtype)
    with torch.no_grad():
        out = first_output(model(**batch_for(cls)))
    assert out.dtype == dtype and torch.isfinite(out).all()
