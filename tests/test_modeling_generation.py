"""Generation works wherever BART's does: on a dynamically int8-quantized model, on a PEFT LoRA-wrapped
model, with a static cache, and through transformers' compiled generation path (a static cache and a
CompileConfig, allowed on CPU), giving the tokens of plain greedy search."""

import warnings

import pytest
import torch
from torch import nn

from conftest import tiny_config
from miniformer_hf import MiniformerForCausalLM, MiniformerForConditionalGeneration

GREEDY = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, num_beams=1)


def model_and_batch(cls=MiniformerForConditionalGeneration):
    torch.manual_seed(0)
    model = cls(tiny_config()).eval()
    ids = torch.randint(4, 50, (3, 7))
    mask = torch.ones_like(ids)
    if cls is MiniformerForConditionalGeneration:
        mask[1, -2:] = 0  # right padding in the source
    return model, {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("cls", [MiniformerForConditionalGeneration, MiniformerForCausalLM])
def test_dynamically_quantized_model_generates(cls):
    model, batch = model_and_batch(cls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    assert not isinstance(quantized.lm_head.weight, torch.Tensor)  # replaced by a method: what used to crash
    out = quantized.generate(**batch, **GREEDY)
    assert out.dtype == torch.long and out.shape[0] == 3
    assert out.shape[1] == (13 if cls is MiniformerForCausalLM else 7)  # int8 weights may change the tokens


def test_peft_lora_model_generates_like_the_base_model_at_initialisation():
    peft = pytest.importorskip("peft")
    model, batch = model_and_batch()
    reference = model.generate(**batch, **GREEDY)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    wrapped.eval()
    assert torch.equal(wrapped.generate(**batch, **GREEDY), reference)  # LoRA's B starts at zero


@pytest.mark.parametrize("cls", [MiniformerForConditionalGeneration, MiniformerForCausalLM])
def test_static_cache_generates_the_dynamic_caches_tokens(cls):
    model, batch = model_and_batch(cls)
    reference = model.generate(**batch, **GREEDY)
    assert torch.equal(model.generate(**batch, **GREEDY, cache_implementation="static"), reference)


def test_compiled_generation_path_gives_the_same_tokens_without_graph_breaks():
    from transformers import CompileConfig

    model, batch = model_and_batch()
    reference = model.generate(**batch, **GREEDY)
    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend="eager")  # graph capture is what can break
    compile_config._compile_all_devices = True  # transformers compiles only on accelerators unless told
    torch._dynamo.reset()
    scores = dict(output_logits=True, return_dict_in_generate=True)
    compiled = model.generate(**batch, **GREEDY, **scores, cache_implementation="static", compile_config=compile_config)
    assert torch.equal(compiled.sequences, reference)
    assert hasattr(model, "_compiled_call") and model._compiled_call is not None  # the path really compiled
    # The compiled steps run Eq. 1 as written ("eager") where the uncompiled ones run SDPA: the same logits.
    eager_logits = model.generate(**batch, **GREEDY, **scores).logits
    for step, (ours, plain) in enumerate(zip(compiled.logits, eager_logits)):
        torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5, msg=f"step {step}")


def test_compiled_decoding_steps_choose_the_plain_attention_formula(monkeypatch):
    from miniformer_hf.kernels_miniformer import fast_sdpa_for, sdpa_attention
    from miniformer_hf.modeling_miniformer import eager_attention

    one_query, three_queries = torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 3, 8)  # (B, H, T, Dh)
    assert fast_sdpa_for(one_query, eager_attention) is sdpa_attention  # not compiling: SDPA
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert fast_sdpa_for(one_query, eager_attention) is eager_attention
    assert fast_sdpa_for(three_queries, eager_attention) is sdpa_attention  # prefill and training keep SDPA


@pytest.mark.parametrize("query_len", [1, 3])
def test_static_cache_step_mask_equals_transformers_mask(query_len):
    from transformers import StaticCache
    from transformers.cache_utils import EncoderDecoderCache
    from transformers.masking_utils import create_masks_for_generate

    from miniformer_hf.kernels_miniformer import static_cache_step_mask

    model, _ = model_and_batch()
    config = model.config
    head_dim = config.d_model // config.n_heads
    cache = EncoderDecoderCache(StaticCache(config, max_cache_len=12), StaticCache(config, max_cache_len=7))
    for past in (2, 5):
        filled = torch.zeros(3, config.n_heads, past - cache.get_seq_length(), head_dim)
        for layer in range(config.decoder_layers):
            cache.self_attention_cache.update(filled, filled, layer)
        step_ids = torch.ones(3, query_len, dtype=torch.long)
        ours = static_cache_step_mask(model, step_ids, None, cache)
        theirs = create_masks_for_generate(config=config, inputs_embeds=torch.empty(3, query_len, 0),
                                           attention_mask=None, cache=cache)
        assert ours.shape == (3, 1, query_len, 12) and ours.is_contiguous()
        assert torch.equal(ours, theirs), (past, query_len)


def test_torch_compiled_model_generates():
    model, batch = model_and_batch()
    reference = model.generate(**batch, **GREEDY)
    torch._dynamo.reset()
    model.forward = torch.compile(model.forward, backend="eager", dynamic=True)
    assert torch.equal(model.generate(**batch, **GREEDY), reference)


def test_decoding_step_inputs_equal_generation_mixins_at_every_step(monkeypatch):
    from transformers import GenerationMixin

    from miniformer_hf.kernels_miniformer import DecodingStepInputsMixin

    model, batch = model_and_batch()
    ours = DecodingStepInputsMixin.prepare_inputs_for_generation
    compared = []

    def both(self, *args, **kwargs):
        mine = ours(self, *args, **dict(kwargs))
        generic = GenerationMixin.prepare_inputs_for_generation(self, *args, **dict(kwargs))
        assert mine.keys() == generic.keys()
        for key, value in mine.items():
            if torch.is_tensor(value):
                assert torch.equal(value, generic[key]), key
            else:
                assert value is generic[key] or value == generic[key], key
        compared.append(kwargs.get("is_first_iteration", False))
        return mine

    monkeypatch.setattr(MiniformerForConditionalGeneration, "prepare_inputs_for_generation", both)
    model.generate(**batch, **GREEDY)
    model.generate(**batch, **{**GREEDY, "num_beams": 2})
    model.generate(**batch, **GREEDY, cache_implementation="static")
    model.generate(**batch, **GREEDY, decoder_attention_mask=torch.ones(3, 1, dtype=torch.long))
    assert compared.count(False) >= 20  # the direct path ran on the later steps of every search


def test_decoding_step_shortcut_is_switched_by_fast_kernels(monkeypatch):
    from transformers import GenerationMixin

    model, batch = model_and_batch()
    calls = []
    generic = GenerationMixin.prepare_inputs_for_generation

    def counting(self, *args, **kwargs):
        calls.append(1)
        return generic(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "prepare_inputs_for_generation", counting)
    fast = model.generate(**batch, **GREEDY)
    fast_calls = len(calls)
    model.config.fast_kernels = False
    plain = model.generate(**batch, **GREEDY)
    assert torch.equal(fast, plain)
    assert fast_calls == 1 and len(calls) - fast_calls == GREEDY["max_new_tokens"]
