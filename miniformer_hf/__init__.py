"""Miniformer: the encoder-decoder Transformer of "Attention Is All You Need" as a native
Hugging Face ``transformers`` model.

Importing this package registers the configuration and every head with the ``transformers`` Auto
classes, and marks them so that ``save_pretrained`` copies the two code files beside the weights.

One exception keeps the command line quick: when the process was started as the ``miniformer``
command (or ``python -m miniformer_hf.cli``), the model and ``transformers`` are imported (and
registered) only when a command first needs them, so ``miniformer --help`` answers at once. Any
public name (``miniformer_hf.MiniformerConfig`` ...) imports and registers them on first use.
"""

import os
import sys

__version__ = "0.1.0"

# Names provided by the modeling and configuration files; reading any of them imports and registers.
_MODEL_NAMES = (
    "MiniformerAttentionWeights",
    "MiniformerConfig",
    "MiniformerForCausalLM",
    "MiniformerForConditionalGeneration",
    "MiniformerForSequenceClassification",
    "MiniformerModel",
    "MiniformerPreTrainedModel",
    "Transformer",
)


def _register() -> None:
    """Import the model and register it with the Auto classes (idempotent)."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )

    from . import configuration_miniformer, modeling_miniformer

    config_class = configuration_miniformer.MiniformerConfig
    auto_classes = {
        AutoModel: modeling_miniformer.MiniformerModel,
        AutoModelForSeq2SeqLM: modeling_miniformer.MiniformerForConditionalGeneration,
        AutoModelForSequenceClassification: modeling_miniformer.MiniformerForSequenceClassification,
        AutoModelForCausalLM: modeling_miniformer.MiniformerForCausalLM,
    }
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")
    for auto_class, model_class in auto_classes.items():
        auto_class.register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)
    globals()["AUTO_CLASSES"] = auto_classes
    for name in _MODEL_NAMES:
        module = configuration_miniformer if name == "MiniformerConfig" else modeling_miniformer
        globals()[name] = getattr(module, name)


def _started_as_the_command_line() -> bool:
    """True in the ``miniformer`` console script and in ``python -m miniformer_hf.cli``."""
    if os.path.basename(sys.argv[0] if sys.argv else "").removesuffix(".exe") == "miniformer":
        return True
    original = list(getattr(sys, "orig_argv", []))
    return any(a == "-m" and b in ("miniformer_hf.cli", "miniformer.cli") for a, b in zip(original, original[1:]))


if not _started_as_the_command_line():
    _register()


def __getattr__(name):
    if name in _MODEL_NAMES or name == "AUTO_CLASSES":
        _register()
        return globals()[name]
    # The trainer pulls in datasets/accelerate machinery; import it only when asked for.
    if name == "TransformerTrainer":
        from .training import TransformerTrainer

        return TransformerTrainer
    raise AttributeError(f"module 'miniformer_hf' has no attribute {name!r}")


__all__ = [*_MODEL_NAMES, "TransformerTrainer"]
