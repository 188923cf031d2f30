"""Configuration of Miniformer, the encoder-decoder Transformer of "Attention Is All You Need".

This file travels with every saved checkpoint (``trust_remote_code``): it imports only the standard
library and public ``transformers`` API, and importing it has no side effects.
"""

from transformers import PretrainedConfig

ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu", "swish")
NORM_PLACEMENTS = ("post", "pre")
POSITIONAL_ENCODINGS = ("sinusoidal", "learned")

# Every head, so that any Miniformer checkpoint loads into any of them with trust_remote_code=True.
AUTO_MAP = {
    "AutoConfig": "configuration_miniformer.MiniformerConfig",
    "AutoModel": "modeling_miniformer.MiniformerModel",
    "AutoModelForSeq2SeqLM": "modeling_miniformer.MiniformerForConditionalGeneration",
    "AutoModelForSequenceClassification": "heads_miniformer.MiniformerForSequenceClassification",
    "AutoModelForCausalLM": "heads_miniformer.MiniformerForCausalLM",
}


class MiniformerConfig(PretrainedConfig):
    r"""
    Sizes and switches of a Miniformer model. The defaults are the seed's tiny model; every switch
    defaults to the paper's choice, and each departure from the paper is a named field here.

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
        label_smoothing: ``epsilon_ls`` of §5.4 for the loss the model computes from ``labels`` (the paper uses
            0.1; 0 is plain cross-entropy). ``TransformerTrainer`` sets it from ``label_smoothing_factor``.
        fast_kernels: use the speed kernels of ``kernels_miniformer.py`` (CPU dropout masks from 16 random bits,
            residual + dropout in one pass, a blocked cross-entropy); ``False`` runs the paper file's plain
            ``nn.Dropout`` and ``F.cross_entropy``. Both compute the same, up to the dropout's 2^-16 rounding.
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

    def __init__(
        self,
        vocab_size: int = 1000,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 3,
        d_ff: int = 256,
        dropout: float = 0.1,
        max_position_embeddings: int = 1024,
        encoder_layers: int | None = None,
        decoder_layers: int | None = None,
        activation: str = "relu",
        norm_placement: str = "post",
        positional_encoding: str = "sinusoidal",
        scale_embedding: bool = True,
        tie_word_embeddings: bool = True,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        init_std: float | None = None,
        classifier_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        fast_kernels: bool = True,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        decoder_start_token_id: int = 1,
        use_cache: bool = True,
        is_encoder_decoder: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.d_ff = d_ff
        self.dropout = dropout
        self.max_position_embeddings = max_position_embeddings
        self.encoder_layers = n_layers if encoder_layers is None else encoder_layers
        self.decoder_layers = n_layers if decoder_layers is None else decoder_layers
        self.activation = activation
        self.norm_placement = norm_placement
        self.positional_encoding = positional_encoding
        self.scale_embedding = scale_embedding
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.layer_norm_eps = layer_norm_eps
        self.init_std = init_std
        self.classifier_dropout = classifier_dropout
        self.label_smoothing = label_smoothing
        self.fast_kernels = fast_kernels
        self.use_cache = use_cache
        self._validate_fields()
        self._validate_token_ids(pad_token_id, bos_token_id, eos_token_id, decoder_start_token_id)
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            is_encoder_decoder=is_encoder_decoder,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def _validate_fields(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_position_embeddings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MiniformerConfig.{name}={value!r} is invalid: expected a positive integer.")
        for name in ("encoder_layers", "decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"MiniformerConfig.{name}={value!r} is invalid: expected a non-negative integer "
                    "(or None to use n_layers)."
                )
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"MiniformerConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}: "
                "each head gets d_model / n_heads dimensions, so choose d_model as a multiple of n_heads."
            )
        for name in ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout", "label_smoothing"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"MiniformerConfig.{name}={value!r} is invalid: expected a probability in [0, 1).")
        choices = {
            "activation": ACTIVATIONS,
            "norm_placement": NORM_PLACEMENTS,
            "positional_encoding": POSITIONAL_ENCODINGS,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"MiniformerConfig.{name}={value!r} is unknown: expected one of {allowed}.")
        if not self.layer_norm_eps > 0:
            raise ValueError(
                f"MiniformerConfig.layer_norm_eps={self.layer_norm_eps!r} is invalid: expected a positive float."
            )
        if self.init_std is not None and not self.init_std > 0:
            raise ValueError(
                f"MiniformerConfig.init_std={self.init_std!r} is invalid: expected a positive float or None."
            )

    def _validate_token_ids(self, pad_token_id, bos_token_id, eos_token_id, decoder_start_token_id) -> None:
        # Ids that would only fail later (an embedding's padding index, the first decoder input) fail here.
        named = {
            "pad_token_id": pad_token_id,
            "bos_token_id": bos_token_id,
            "decoder_start_token_id": decoder_start_token_id,
        }
        named.update({"eos_token_id": eos_token_id} if not isinstance(eos_token_id, (list, tuple)) else
                     {f"eos_token_id[{i}]": value for i, value in enumerate(eos_token_id)})
        for name, value in named.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.vocab_size:
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
