"""Run transformers' own common model and generation test mixins against Miniformer.

The mixins are not in the transformers wheel: `scripts/run_hf_common_tests.sh` unpacks them (the
5.24.0 sdist's tests/ plus the generation/BART files it lacks) into a directory that is put on
sys.path, so `tests.*` below is transformers' test package, not ours.

The testers mirror the way transformers tests BART (encoder-decoder heads in one test class, the
decoder-only causal LM in another), with Miniformer's own config names.
"""

import copy
import tempfile
import unittest
import unittest.mock

import torch

from tests.generation.test_utils import GenerationTesterMixin
from tests.test_configuration_common import ConfigTester
from tests.test_modeling_common import ModelTesterMixin, floats_tensor, ids_tensor
from tests.test_pipeline_mixin import PipelineTesterMixin
from transformers.testing_utils import require_torch, torch_device

from miniformer_hf import (
    MiniformerConfig,
    MiniformerForCausalLM,
    MiniformerForConditionalGeneration,
    MiniformerForSequenceClassification,
    MiniformerModel,
)
from transformers.models.auto import modeling_auto

# The mixins decide what a class is (base model, seq2seq LM, classifier...) from the *_MAPPING_NAMES tables
# of in-library models, e.g. to build labels or to skip training a headless model. `AutoModel.register`
# (done by `import miniformer_hf`) does not touch those tables, so list Miniformer there as an in-library
# model would be listed.
for _table, _class in (
    (modeling_auto.MODEL_MAPPING_NAMES, MiniformerModel),
    (modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES, MiniformerForConditionalGeneration),
    (modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES, MiniformerForSequenceClassification),
    (modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MiniformerForCausalLM),
):
    _table.setdefault(MiniformerConfig.model_type, _class.__name__)


class MiniformerModelTester:
    """Tiny encoder-decoder: source ids never contain pad and end with eos (as BART's tester does)."""

    def __init__(
        self,
        parent,
        batch_size=13,
        seq_length=7,
        is_training=True,
        vocab_size=99,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        dropout=0.1,
        attention_dropout=0.1,
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.max_position_embeddings = max_position_embeddings
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.decoder_start_token_id = decoder_start_token_id

    def get_config(self):
        return MiniformerConfig(
            vocab_size=self.vocab_size,
            d_model=self.hidden_size,
            n_heads=self.num_attention_heads,
            n_layers=self.num_hidden_layers,
            d_ff=self.intermediate_size,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            max_position_embeddings=self.max_position_embeddings,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )

    def get_pipeline_config(self):
        config = self.get_config()
        config.max_position_embeddings = 100
        config.vocab_size = 300
        return config

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        input_ids[:, -1] = self.eos_token_id
        decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        config = self.get_config()
        attention_mask = input_ids.ne(config.pad_token_id)
        inputs_dict = {
            "input_ids": input_ids,
            "decoder_input_ids": decoder_input_ids,
            "attention_mask": attention_mask,
            "decoder_attention_mask": attention_mask,
        }
        return config, inputs_dict

    def prepare_config_and_inputs_for_common(self):
        return self.prepare_config_and_inputs()

    def create_and_check_decoder_model_past_large_inputs(self, config, inputs_dict):
        # As BART's check, but the Miniformer decoder always attends over a memory (BART's can run without).
        decoder = MiniformerModel(config).get_decoder().to(torch_device).eval()
        input_ids = inputs_dict["input_ids"]
        attention_mask = inputs_dict["attention_mask"]
        memory = floats_tensor([self.batch_size, self.seq_length, self.hidden_size])
        outputs = decoder(input_ids, attention_mask=attention_mask, encoder_hidden_states=memory, use_cache=True)
        cache = outputs.cache
        next_tokens = ids_tensor((self.batch_size, 3), config.vocab_size)
        next_attn_mask = ids_tensor((self.batch_size, 3), 2)
        next_input_ids = torch.cat([input_ids, next_tokens], dim=-1)
        next_attention_mask = torch.cat([attention_mask.long(), next_attn_mask], dim=-1)
        full = decoder(next_input_ids, attention_mask=next_attention_mask, encoder_hidden_states=memory)
        full = full.last_hidden_state
        incremental = decoder(
            next_tokens, attention_mask=next_attention_mask, encoder_hidden_states=memory, cache=cache
        ).last_hidden_state
        self.parent.assertEqual(incremental.shape[1], next_tokens.shape[1])
        torch.testing.assert_close(incremental, full[:, -3:], atol=1e-3, rtol=1e-3)


@require_torch
class MiniformerModelTest(ModelTesterMixin, GenerationTesterMixin, PipelineTesterMixin, unittest.TestCase):
    all_model_classes = (MiniformerModel, MiniformerForConditionalGeneration, MiniformerForSequenceClassification)
    pipeline_model_mapping = {
        "feature-extraction": MiniformerModel,
        "text2text-generation": MiniformerForConditionalGeneration,
        "text-classification": MiniformerForSequenceClassification,
        "text-generation": MiniformerForCausalLM,
        "zero-shot": MiniformerForSequenceClassification,
    }
    is_encoder_decoder = True

    def setUp(self):
        self.model_tester = MiniformerModelTester(self)
        self.config_tester = ConfigTester(self, config_class=MiniformerConfig, d_model=16, n_heads=4)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_save_load_strict(self):
        config, _ = self.model_tester.prepare_config_and_inputs()
        for model_class in self.all_model_classes:
            model = model_class(config)
            with tempfile.TemporaryDirectory() as tmpdirname:
                model.save_pretrained(tmpdirname)
                _, info = model_class.from_pretrained(tmpdirname, output_loading_info=True)
            self.assertEqual(info["missing_keys"], set())

    def test_decoder_model_past_with_large_inputs(self):
        self.model_tester.create_and_check_decoder_model_past_large_inputs(
            *self.model_tester.prepare_config_and_inputs()
        )

    def test_input_embeddings_support_forward_hook(self):
        # PEFT's gradient checkpointing hooks the input embeddings; the shared table must run in forward.
        config, inputs_dict = self.model_tester.prepare_config_and_inputs()
        for model_class in self.all_model_classes:
            model = model_class(config).to(torch_device).eval()
            hook = unittest.mock.MagicMock(return_value=None)
            model.get_input_embeddings().register_forward_hook(hook)
            model(**copy.deepcopy(self._prepare_for_class(inputs_dict, model_class)))
            self.assertGreater(hook.call_count, 0, model_class.__name__)

    def test_generate_fp16(self):
        config, input_dict = self.model_tester.prepare_config_and_inputs()
        input_ids = input_dict["input_ids"]
        attention_mask = input_ids.ne(config.pad_token_id).to(torch_device)
        model = MiniformerForConditionalGeneration(config).eval().to(torch_device).half()
        model.generate(input_ids, attention_mask=attention_mask)
        model.generate(num_beams=4, do_sample=True, early_stopping=False, num_return_sequences=3)

    def test_resize_embeddings_persists_embeddings_type(self):
        config, _ = self.model_tester.prepare_config_and_inputs()
        model = MiniformerForConditionalGeneration(config)
        old_type = type(model.model.decoder.embed_tokens)
        model.resize_token_embeddings(new_num_tokens=config.vocab_size)
        self.assertIs(type(model.model.decoder.embed_tokens), old_type)


class MiniformerStandaloneDecoderModelTester:
    """Tiny decoder-only LM with a random (left- and right-) padded attention mask, as BART's."""

    def __init__(
        self,
        parent,
        vocab_size=99,
        batch_size=13,
        d_model=16,
        decoder_seq_length=7,
        is_training=True,
        use_attention_mask=True,
        use_labels=True,
        d_ff=32,
        decoder_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.decoder_seq_length = decoder_seq_length
        self.seq_length = decoder_seq_length
        self.is_training = is_training
        self.use_attention_mask = use_attention_mask
        self.use_labels = use_labels
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.hidden_size = d_model
        self.num_hidden_layers = decoder_layers
        self.decoder_layers = decoder_layers
        self.d_ff = d_ff
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self.is_encoder_decoder = False
        self.decoder_key_length = decoder_seq_length
        self.base_model_out_len = 2
        self.decoder_attention_idx = 1

    def get_config(self):
        return MiniformerConfig(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            n_heads=self.num_attention_heads,
            n_layers=self.decoder_layers,
            d_ff=self.d_ff,
            max_position_embeddings=self.max_position_embeddings,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
            use_cache=False,
            is_encoder_decoder=False,
        )

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.decoder_seq_length], self.vocab_size)
        attention_mask = None
        if self.use_attention_mask:
            attention_mask = ids_tensor([self.batch_size, self.decoder_seq_length], vocab_size=2)
        lm_labels = None
        if self.use_labels:
            lm_labels = ids_tensor([self.batch_size, self.decoder_seq_length], self.vocab_size)
        return self.get_config(), input_ids, attention_mask, lm_labels

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, attention_mask, _ = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "attention_mask": attention_mask}

    def create_and_check_decoder_model_past(self, config, input_ids, attention_mask, lm_labels):
        model = MiniformerForCausalLM(config).to(torch_device).eval()
        cache = model(input_ids, use_cache=True).cache
        next_tokens = ids_tensor((self.batch_size, 1), config.vocab_size)
        next_input_ids = torch.cat([input_ids, next_tokens], dim=-1)
        full = model(next_input_ids).logits[:, -1]
        incremental = model(next_tokens, cache=cache).logits[:, 0]
        torch.testing.assert_close(incremental, full, atol=1e-3, rtol=1e-3)

    def create_and_check_decoder_model_attention_mask_past(self, config, input_ids, attention_mask, lm_labels):
        model = MiniformerForCausalLM(config).to(torch_device).eval()
        attn_mask = torch.ones(input_ids.shape, dtype=torch.long, device=torch_device)
        half = input_ids.shape[-1] // 2
        attn_mask[:, half:] = 0
        cache = model(input_ids, attention_mask=attn_mask, use_cache=True).cache
        next_tokens = ids_tensor((self.batch_size, 1), config.vocab_size)
        # Changing a masked-out token must not change the result.
        changed = ids_tensor((1,), half).item() + 1
        input_ids[:, -changed] = ids_tensor((self.batch_size, 1), config.vocab_size).squeeze(-1)
        next_input_ids = torch.cat([input_ids, next_tokens], dim=-1)
        attn_mask = torch.cat([attn_mask, torch.ones_like(attn_mask[:, :1])], dim=1)
        full = model(next_input_ids, attention_mask=attn_mask).logits[:, -1]
        incremental = model(next_tokens, attention_mask=attn_mask, cache=cache, use_cache=True).logits[:, 0]
        torch.testing.assert_close(incremental, full, atol=1e-3, rtol=1e-3)


@require_torch
class MiniformerStandaloneDecoderModelTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (MiniformerForCausalLM,)
    is_encoder_decoder = False
    test_missing_keys = False

    def setUp(self):
        self.model_tester = MiniformerStandaloneDecoderModelTester(self, is_training=False)
        self.config_tester = ConfigTester(self, config_class=MiniformerConfig, d_model=16, n_heads=4)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_decoder_model_past(self):
        self.model_tester.create_and_check_decoder_model_past(*self.model_tester.prepare_config_and_inputs())

    def test_decoder_model_attn_mask_past(self):
        self.model_tester.create_and_check_decoder_model_attention_mask_past(
            *self.model_tester.prepare_config_and_inputs()
        )

    @unittest.skip(reason="Decoder cannot keep gradients (skipped for BartForCausalLM too)")
    def test_retain_grad_hidden_states_attentions(self):
        return

    @unittest.skip(reason="Decoder cannot keep gradients (skipped for BartForCausalLM too)")
    def test_flex_attention_with_grads(self):
        return
