import pytest

from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
from miniformer_hf.configuration_miniformer import AUTO_MAP


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
    assert MiniformerConfig().fast_kernels is True and MiniformerConfig().label_smoothing == 0.0
    assert MiniformerConfig().use_cache is True
