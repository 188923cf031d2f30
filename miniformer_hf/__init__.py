"""Miniformer: the encoder-decoder Transformer of "Attention Is All You Need" as a native
Hugging Face ``transformers`` model.

Importing this package registers the configuration and every head with the ``transformers`` Auto
classes, and marks them so that ``save_pretrained`` copies the code files (configuration, modeling, heads and
kernels) beside the weights.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
)

from .configuration_miniformer import MiniformerConfig
from .heads_miniformer import MiniformerForCausalLM, MiniformerForSequenceClassification
from .modeling_miniformer import (
    MiniformerAttentionWeights,
    MiniformerForConditionalGeneration,
    MiniformerModel,
    MiniformerPreTrainedModel,
    Transformer,
)

__version__ = "0.1.0"

AUTO_CLASSES = {
    AutoModel: MiniformerModel,
    AutoModelForSeq2SeqLM: MiniformerForConditionalGeneration,
    AutoModelForSequenceClassification: MiniformerForSequenceClassification,
    AutoModelForCausalLM: MiniformerForCausalLM,
}


def _register() -> None:
    AutoConfig.register(MiniformerConfig.model_type, MiniformerConfig, exist_ok=True)
    MiniformerConfig.register_for_auto_class("AutoConfig")
    for auto_class, model_class in AUTO_CLASSES.items():
        auto_class.register(MiniformerConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


_register()


def __getattr__(name):
    # The trainer pulls in datasets/accelerate machinery; import it only when asked for.
    if name == "TransformerTrainer":
        from .training import TransformerTrainer

        return TransformerTrainer
    raise AttributeError(f"module 'miniformer_hf' has no attribute {name!r}")


__all__ = [
    "MiniformerAttentionWeights",
    "MiniformerConfig",
    "MiniformerForCausalLM",
    "MiniformerForConditionalGeneration",
    "MiniformerForSequenceClassification",
    "MiniformerModel",
    "MiniformerPreTrainedModel",
    "Transformer",
    "TransformerTrainer",
]
