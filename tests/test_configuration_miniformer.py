import dataclasses
import json

import pytest
from transformers import PreTrainedConfig

from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
from miniformer_hf.configuration_miniformer import AUTO_MAP, FIELD_RULES

# config.json as the configuration before the transformers 5 dataclass form wrote it (custom __init__).
CONFIG_JSON_WRITTEN_BY_THE_INIT_FORM = """{
  "activation": "relu", "activation_dropout": 0.0, "attention_dropout": 0.0,
  "auto_map": {
    "AutoConfig": "configuration_miniformer.MiniformerConfig",
    "AutoModel": "modeling_miniformer.MiniformerModel",
    "AutoModelForCausalLM": "heads_miniformer.MiniformerForCausalLM",
    "AutoModelForSeq2SeqLM": "modeling_miniformer.MiniformerForConditionalGeneration",
    "AutoModelForSequenceClassification": "heads_miniformer.MiniformerForSequenceClassification"
  },
  "bos_token_id": 1, "classifier_dropout": 0.0, "d_ff": 256, "d_model": 32, "decoder_layers": 3,
  "decoder_start_token_id": 1, "dropout": 0.2, "encoder_layers": 2, "eos_token_id": [2, 3], "fast_kernels": false,
  "id2label": {"0": "neg", "1": "neu", "2": "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2},
  "init_std": null, "is_encoder_decoder": true, "label_smoothing": 0.1, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 1024, "model_type": "miniformer", "n_heads": 2, "n_layers": 3, "norm_placement": "pre",
  "pad_token_id": 0, "positional_encoding": "learned", "scale_embedding": true, "tie_word_embeddings": true,
  "transformers_version": "5.24.0", "use_cache": true, "vocab_size": 1000
}"""


def test_seed_defaults():
    config = MiniformerConfig()
    assert (config.vocab_size, config.d_model, config.n_heads, config.n_layers, config.d_ff, config.dropout) == (
        1000,
        64,
        4,
        3,
        256,
        0.1,
    )
    assert config.encoder_layers == config.decoder_layers == 3
    # Paper defaults for every switch.
    assert config.activation == "relu"
    assert config.norm_placement == "post"
    assert config.positional_encoding == "sinusoidal"
    assert config.scale_embedding and config.tie_word_embeddings
    assert config.attention_dropout == 0.0
    assert config.is_encoder_decoder and config.use_cache


def test_standard_attribute_names_resolve():
    config = MiniformerConfig(d_model=48, n_heads=6, n_layers=5, d_ff=100)
    assert config.hidden_size == 48
    assert config.num_attention_heads == 6
    assert config.num_hidden_layers == 5
    assert config.intermediate_size == 100
    config.hidden_size = 96
    assert config.d_model == 96


def test_separate_layer_counts_default_to_n_layers():
    config = MiniformerConfig(n_layers=4, decoder_layers=1)
    assert config.encoder_layers == 4 and config.decoder_layers == 1


def test_save_and_load_round_trip(tmp_path):
    config = MiniformerConfig(d_model=32, n_heads=2, norm_placement="pre", positional_encoding="learned", dropout=0.2)
    config.save_pretrained(tmp_path)
    loaded = MiniformerConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.auto_map == AUTO_MAP


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("d_model", 65, "not divisible by n_heads=4"),
        ("d_model", 0, "positive integer"),
        ("n_heads", -1, "positive integer"),
        ("d_ff", 0, "positive integer"),
        ("vocab_size", 2.5, "positive integer"),
        ("dropout", 1.0, "[0, 1)"),
        ("dropout", -0.1, "[0, 1)"),
        ("attention_dropout", 1.5, "[0, 1)"),
        ("activation", "tanh", "expected one of"),
        ("norm_placement", "sandwich", "expected one of"),
        ("positional_encoding", "rotary", "expected one of"),
        ("layer_norm_eps", 0.0, "positive float"),
    ],
)
def test_invalid_values_name_field_value_and_allowed(field, value, fragment):
    with pytest.raises(ValueError) as error:
        MiniformerConfig(**{field: value})
    message = str(error.value)
    assert field in message and repr(value) in message or str(value) in message
    assert fragment in message


def test_paper_base_preset_size():
    config = MiniformerConfig.paper_base()
    assert (config.n_layers, config.d_model, config.d_ff, config.n_heads) == (6, 512, 2048, 8)
    model = MiniformerForConditionalGeneration(config)
    n_params = model.num_parameters()
    # The paper reports 65M for its base model (Table 3); shared 37k vocabulary, biases included.
    assert 60e6 < n_params < 66e6, n_params


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"pad_token_id": 1000}, "pad_token_id=1000 is invalid: expected a token id in [0, 999]"),
        ({"vocab_size": 10, "pad_token_id": 12}, "pad_token_id=12"),
        ({"decoder_start_token_id": -1}, "decoder_start_token_id=-1 is invalid"),
        ({"bos_token_id": 5000}, "bos_token_id=5000"),
        ({"eos_token_id": [2, 7000]}, "eos_token_id[1]=7000"),
        ({"label_smoothing": 1.0}, "label_smoothing=1.0 is invalid"),
    ],
)
def test_token_ids_that_would_fail_later_fail_at_construction(overrides, fragment):
    with pytest.raises(ValueError) as error:
        MiniformerConfig(**overrides)
    assert fragment in str(error.value)


def test_unset_special_tokens_stay_allowed():
    config = MiniformerConfig(pad_token_id=None, bos_token_id=None, eos_token_id=None)
    assert config.pad_token_id is None


def test_speed_and_smoothing_fields_round_trip(tmp_path):
    config = MiniformerConfig(fast_kernels=False, label_smoothing=0.1)
    config.save_pretrained(tmp_path)
    loaded = MiniformerConfig.from_pretrained(tmp_path)
    assert loaded.fast_kernels is False and loaded.label_smoothing == 0.1
    assert MiniformerConfig().fast_kernels is True and MiniformerConfig().label_smoothing == 0.1  # §5.4
    assert MiniformerConfig().use_cache is True


def test_written_the_transformers_5_way():
    # BartConfig's form: a @strict dataclass with annotated defaults, no __init__ of its own, checks as validate_*.
    declared = {field.name: field.default for field in dataclasses.fields(MiniformerConfig)}
    assert declared["d_model"] == 64 and declared["n_heads"] == 4 and declared["n_layers"] == 3
    assert declared["d_ff"] == 256 and declared["dropout"] == 0.1 and declared["fast_kernels"] is True
    assert {"validate_heads_divide_d_model", "validate_token_ids"} <= {
        validator.__name__ for validator in MiniformerConfig.__class_validators__
    }
    with pytest.raises(ValueError, match="keyword arguments"):
        MiniformerConfig(1000)


def test_every_declared_field_has_a_rule():
    # A field without a rule would meet @strict's type check first, which raises no ValueError.
    inherited = {field.name for field in dataclasses.fields(PreTrainedConfig)}
    own = {field.name for field in dataclasses.fields(MiniformerConfig)} - inherited
    assert own <= FIELD_RULES.keys(), own - FIELD_RULES.keys()


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("n_heads", "4", "expected a positive integer"),
        ("d_model", True, "expected a positive integer"),
        ("dropout", "0.1", "expected a probability in [0, 1)"),
        ("layer_norm_eps", "1e-5", "expected a positive float"),
        ("activation", None, "expected one of ('relu'"),
        ("fast_kernels", "yes", "expected True or False"),
        ("use_cache", 1, "expected True or False"),
        ("pad_token_id", 1.0, "expected a token id"),
        ("eos_token_id", [2, "3"], "expected a token id"),
        ("encoder_layers", 2.0, "non-negative integer"),
    ],
)
def test_wrong_types_raise_one_clear_value_error(field, value, fragment):
    with pytest.raises(ValueError) as error:
        MiniformerConfig(**{field: value})
    assert f"MiniformerConfig.{field}={value!r} is " in str(error.value)
    assert fragment in str(error.value)
    assert error.value.__context__ is None  # not wrapped in, nor chained to, huggingface_hub's strict errors


def test_assignments_are_checked_aliases_included():
    config = MiniformerConfig()
    with pytest.raises(ValueError, match=r"MiniformerConfig.dropout=1.5 is invalid: expected a probability"):
        config.dropout = 1.5
    with pytest.raises(ValueError, match=r"MiniformerConfig.d_model=2.5 is invalid: expected a positive integer"):
        config.hidden_size = 2.5
    assert config.dropout == 0.1 and config.d_model == 64


def test_rules_joining_fields_run_again_before_saving(tmp_path):
    config = MiniformerConfig()
    config.d_model = 65  # each field alone is valid
    with pytest.raises(ValueError, match="d_model=65 is not divisible by n_heads=4"):
        config.save_pretrained(tmp_path)


def test_standard_names_as_arguments():
    config = MiniformerConfig(hidden_size=48, num_attention_heads=6, num_hidden_layers=5, intermediate_size=100)
    assert (config.d_model, config.n_heads, config.d_ff) == (48, 6, 100)
    assert config.n_layers == config.encoder_layers == config.decoder_layers == 5
    assert MiniformerConfig(encoder_ffn_dim=128, encoder_attention_heads=8).to_dict()["d_ff"] == 128
    with pytest.raises(ValueError, match="d_model=65 is not divisible by n_heads=4"):
        MiniformerConfig(hidden_size=65)


def test_config_json_written_before_loads_identically(tmp_path):
    (tmp_path / "config.json").write_text(CONFIG_JSON_WRITTEN_BY_THE_INIT_FORM)
    loaded = MiniformerConfig.from_pretrained(tmp_path)
    expected = MiniformerConfig(
        d_model=32, n_heads=2, norm_placement="pre", positional_encoding="learned", dropout=0.2, encoder_layers=2,
        fast_kernels=False, label_smoothing=0.1, eos_token_id=[2, 3], id2label={0: "neg", 1: "neu", 2: "pos"},
        label2id={"neg": 0, "neu": 1, "pos": 2},
    )
    assert loaded.to_dict() == expected.to_dict()
    assert (loaded.encoder_layers, loaded.decoder_layers, loaded.num_labels) == (2, 3, 3)
    # and what this form writes is the same file
    expected.save_pretrained(tmp_path / "again")
    written = json.loads((tmp_path / "again" / "config.json").read_text())
    before = json.loads(CONFIG_JSON_WRITTEN_BY_THE_INIT_FORM)
    assert written.pop("transformers_version") and before.pop("transformers_version")
    assert written == before
