"""Configuration of Miniformer, the encoder-decoder Transformer of "Attention Is All You Need".

This file travels with every saved checkpoint (``trust_remote_code``): it imports only the standard
library, public ``transformers`` API and the ``strict`` dataclass decorator every transformers 5 configuration
uses; importing it has no side effects.
"""

from typing import Literal, get_args

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import PreTrainedConfig

Activation = Literal["relu", "gelu", "gelu_new", "silu", "swish"]
NormPlacement = Literal["post", "pre"]
PositionalEncoding = Literal["sinusoidal", "learned"]
ACTIVATIONS = get_args(Activation)
NORM_PLACEMENTS = get_args(NormPlacement)
POSITIONAL_ENCODINGS = get_args(PositionalEncoding)

# Every head, so that any Miniformer checkpoint loads into any of them with trust_remote_code=True.
AUTO_MAP = {
    "AutoConfig": "configuration_miniformer.MiniformerConfig",
    "AutoModel": "modeling_miniformer.MiniformerModel",
    "AutoModelForSeq2SeqLM": "modeling_miniformer.MiniformerForConditionalGeneration",
    "AutoModelForSequenceClassification": "heads_miniformer.MiniformerForSequenceClassification",
    "AutoModelForCausalLM": "heads_miniformer.MiniformerForCausalLM",
}


# ---- What each field accepts, type and range together, checked on every assignment --------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value) -> bool:
    return _is_int(value) and value > 0


def _layer_count(value) -> bool:
    return value is None or (_is_int(value) and value >= 0)


def _probability(value) -> bool:
    return _is_number(value) and 0.0 <= value < 1.0


def _positive_number(value) -> bool:
    return _is_number(value) and value > 0


def _positive_number_or_none(value) -> bool:
    return value is None or _positive_number(value)


def _flag(value) -> bool:
    return isinstance(value, bool)


def _token_id(value) -> bool:  # its range depends on vocab_size: validate_token_ids checks it
    return value is None or _is_int(value)


def _token_ids(value) -> bool:
    return _token_id(value) or (isinstance(value, (list, tuple)) and all(_is_int(item) for item in value))


def _one_of(allowed: tuple):
    def is_allowed(value) -> bool:
        return isinstance(value, str) and value in allowed

    return is_allowed, f"is unknown: expected one of {allowed}."


# field -> (test of a value, what the error says after "MiniformerConfig.<field>=<value> ")
FIELD_RULES = {
    **dict.fromkeys(
        ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_position_embeddings"),
        (_positive_int, "is invalid: expected a positive integer."),
    ),
    **dict.fromkeys(
        ("encoder_layers", "decoder_layers"),
        (_layer_count, "is invalid: expected a non-negative integer (or None to use n_layers)."),
    ),
    **dict.fromkeys(
        ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout", "label_smoothing"),
        (_probability, "is invalid: expected a probability in [0, 1)."),
    ),
    "activation": _one_of(ACTIVATIONS),
    "norm_placement": _one_of(NORM_PLACEMENTS),
    "positional_encoding": _one_of(POSITIONAL_ENCODINGS),
    "layer_norm_eps": (_positive_number, "is invalid: expected a positive float."),
    "init_std": (_positive_number_or_none, "is invalid: expected a positive float or None."),
    **dict.fromkeys(
        ("scale_embedding", "tie_word_embeddings", "fast_kernels", "use_cache", "is_encoder_decoder"),
        (_flag, "is invalid: expected True or False."),
    ),
    **dict.fromkeys(
        ("pad_token_id", "bos_token_id", "decoder_start_token_id"),
        (_token_id, "is invalid: expected a token id (an integer) or None."),
    ),
    "eos_token_id": (_token_ids, "is invalid: expected a token id (an integer), a list of them, or None."),
}


def _errors_as_value_errors(cls):
    """Make every invalid value raise a ValueError that names the field, the value and what is expected.

    ``@strict`` checks each assignment against the field's annotation and runs the ``validate_*`` methods after
    ``__init__`` (and in ``save_pretrained``), but raises its own ``StrictDataclass*Error``s, which are no
    ``ValueError``, and for a wrong type names only the type ("expected int, got float"). So each field's rule in
    ``FIELD_RULES`` runs first, with one message whether the type or the range is wrong (every field this class
    declares has a rule at least as strict as its annotation, so ``@strict``'s type check then passes), and a
    ``validate_*`` method's ``ValueError`` comes out as itself.
    """
    strict_setattr, strict_validate = cls.__setattr__, cls.validate

    def __setattr__(self, name, value):
        name = cls.attribute_map.get(name, name)  # hidden_size -> d_model, so that aliases are checked too
        if name in FIELD_RULES:
            is_valid, complaint = FIELD_RULES[name]
            if not is_valid(value):
                raise ValueError(f"{cls.__name__}.{name}={value!r} {complaint}")
        strict_setattr(self, name, value)

    def validate(self):
        try:
            strict_validate(self)
        except StrictDataclassClassValidationError as error:
            raise error.__cause__ from None  # the ValueError a validate_* method raised, message intact

    cls.__setattr__, cls.validate = __setattr__, validate
    return cls


@_errors_as_value_errors
@strict
class MiniformerConfig(PreTrainedConfig):
    r"""
    Sizes and switches of a Miniformer model. Each departure from the paper is a named field here.

    Defaults that are not the paper's, and why (everything else, every switch included, is the paper's choice):
        - the sizes (``vocab_size=1000, d_model=64, n_heads=4, n_layers=3, d_ff=256``) are the seed's tiny model,
          which trains in minutes on a laptop; ``paper_base()`` gives Table 3's base model.
        - ``max_position_embeddings=1024``: the paper's sinusoids have no length limit; the table is computed up to
          this length (and not saved).
        - ``fast_kernels=True``: CPU dropout draws 16 random bits per element, so P_drop 0.1 becomes 0.100006 (the
          only numeric difference); the other twins compute the same as the plain code. The learner's path (the
          seed API ``Transformer(vocab_size=..., ...)``) builds with ``fast_kernels=False`` and
          ``attn_implementation="eager"``, so it runs the paper file's own code.
        - ``init_std`` / Xavier initialisation and the linear layers' biases: the paper is silent on both.
        - ``attn_implementation`` (not a field; transformers' own argument) defaults to ``"sdpa"``, a fused
          kernel computing the same Eq. 1 as the paper file's function (tested equal).

    Args:
        vocab_size: number of tokens shared by source and target (the paper shares one BPE vocabulary).
        d_model: width of every sub-layer output and embedding (paper: ``d_model``).
        n_heads: attention heads per multi-head attention (paper: ``h``).
        n_layers: layers per stack (paper: ``N``); ``encoder_layers``/``decoder_layers`` override it.
        d_ff: inner width of the position-wise feed-forward network (paper: ``d_ff``).
        dropout: ``P_drop``, applied to each sub-layer output and to the embedding sums (§5.4).
        max_position_embeddings: longest source or target sequence the positional table covers.
        encoder_layers / decoder_layers: per-stack layer counts; ``None`` means ``n_layers``.
        activation: non-linearity of the feed-forward network; ``"relu"`` as in Eq. 2.
        norm_placement: ``"post"`` (paper, LayerNorm(x + Sublayer(x))) or ``"pre"``
            (x + Sublayer(LayerNorm(x)), with a final LayerNorm on each stack).
        positional_encoding: ``"sinusoidal"`` (paper §3.5) or ``"learned"`` (the paper's Table 3 row E).
        scale_embedding: multiply embeddings by sqrt(d_model) (§3.4).
        tie_word_embeddings: share source embedding, target embedding and pre-softmax projection (§3.4).
        attention_dropout: dropout on attention probabilities; 0 because the paper does not apply it.
        activation_dropout: dropout after the feed-forward activation; 0 because the paper does not apply it.
        layer_norm_eps: epsilon of every LayerNorm.
        init_std: standard deviation of the (shared) embedding initialisation; ``None`` means
            ``d_model ** -0.5``, so that embeddings scaled by sqrt(d_model) start with unit variance.
        classifier_dropout: dropout in the sequence-classification head.
        label_smoothing: ``epsilon_ls`` of §5.4 for the loss the model computes from ``labels``: 0.1, as the
            paper; 0 is plain cross-entropy. ``TransformerTrainer`` sets it from ``label_smoothing_factor``. The
            reported loss (``eval_loss`` too) is the smoothed one, so it cannot reach 0.
        fast_kernels: use the speed kernels of ``kernels_miniformer.py`` (CPU dropout masks from 16 random bits,
            residual + dropout in one pass, a blocked cross-entropy, a lean "sdpa" call, Eq. 1 as written in
            compiled decoding steps); ``False`` runs the paper file's plain ``nn.Dropout``, ``F.cross_entropy``
            and transformers' "sdpa" function. Both compute the same, up to the dropout's 2^-16 rounding.

    transformers' standard names work as arguments and attributes (``hidden_size``, ``num_attention_heads``,
    ``num_hidden_layers``, ``intermediate_size``, BART's ``encoder_ffn_dim`` ...; see ``attribute_map``). Every
    invalid value raises a ``ValueError`` that names the field, the value and what is expected: a field's own rule
    (``FIELD_RULES``) on every assignment, the rules that join fields (the ``validate_*`` methods) after ``__init__``
    and again before ``save_pretrained``.
    """

    model_type = "miniformer"
    # Trainer.predict returns the logits alone (the classifier also returns these, as BART's does).
    keys_to_ignore_at_inference = ["cache", "past_key_values", "encoder_last_hidden_state"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "intermediate_size": "d_ff",
        "encoder_attention_heads": "n_heads",
        "decoder_attention_heads": "n_heads",
        "encoder_ffn_dim": "d_ff",
        "decoder_ffn_dim": "d_ff",
    }

    vocab_size: int = 1000
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 3
    d_ff: int = 256
    dropout: float | int = 0.1
    max_position_embeddings: int = 1024
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    activation: Activation = "relu"
    norm_placement: NormPlacement = "post"
    positional_encoding: PositionalEncoding = "sinusoidal"
    scale_embedding: bool = True
    tie_word_embeddings: bool = True
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    layer_norm_eps: float | int = 1e-5
    init_std: float | int | None = None
    classifier_dropout: float | int = 0.0
    label_smoothing: float | int = 0.1
    fast_kernels: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | tuple[int, ...] | None = 2
    decoder_start_token_id: int | None = 1
    use_cache: bool = True
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        # transformers' standard names arrive as extra keywords; apply them before deriving the per-stack counts,
        # so that num_hidden_layers=5 gives both stacks 5 layers.
        for alias in [key for key in kwargs if key in self.attribute_map]:
            setattr(self, alias, kwargs.pop(alias))
        if self.encoder_layers is None:
            self.encoder_layers = self.n_layers
        if self.decoder_layers is None:
            self.decoder_layers = self.n_layers
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__post_init__(**kwargs)

    def validate_heads_divide_d_model(self):
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"MiniformerConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}: "
                "each head gets d_model / n_heads dimensions, so choose d_model as a multiple of n_heads."
            )

    def validate_token_ids(self):
        # Ids that would only fail later (an embedding's padding index, the first decoder input) fail here.
        # (PreTrainedConfig's method of this name only warns.)
        named = {
            "pad_token_id": self.pad_token_id,
            "bos_token_id": self.bos_token_id,
            "decoder_start_token_id": self.decoder_start_token_id,
        }
        eos_token_id = self.eos_token_id
        if isinstance(eos_token_id, (list, tuple)):
            named.update({f"eos_token_id[{i}]": value for i, value in enumerate(eos_token_id)})
        else:
            named["eos_token_id"] = eos_token_id
        for name, value in named.items():
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"MiniformerConfig.{name}={value!r} is invalid: expected a token id in [0, {self.vocab_size - 1}] "
                    f"(vocab_size={self.vocab_size}), or None. Check that the config matches the tokenizer."
                )

    @classmethod
    def paper_base(cls, **overrides) -> "MiniformerConfig":
        """The paper's base model (Table 3): N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1.

        With a 37000-token shared vocabulary (the paper's English-German BPE) it has
        63.1M parameters (paper: 65M); the default here uses vocab_size=37000 for that reason.
        """
        base = dict(
            vocab_size=37000,
            d_model=512,
            n_heads=8,
            n_layers=6,
            d_ff=2048,
            dropout=0.1,
            max_position_embeddings=1024,
        )
        base.update(overrides)
        return cls(**base)


__all__ = ["MiniformerConfig"]
