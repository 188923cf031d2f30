"""Miniformer: the encoder-decoder Transformer of "Attention Is All You Need" as a native
Hugging Face ``transformers`` model.

Importing this package registers the configuration and every head with the ``transformers`` Auto
classes, and the seq2seq pipeline (``pipeline_miniformer.py``) with transformers' ``PIPELINE_REGISTRY``.
``save_pretrained`` itself (in the model files, so it works the same for a checkpoint loaded with
``trust_remote_code``) writes every code file the saved ``config.json`` names: configuration, modeling, heads,
kernels, support, and for ``MiniformerForConditionalGeneration`` the pipeline, named under ``custom_pipelines``, so
``pipeline(model=folder_or_repo, trust_remote_code=True)`` works without this package.

One exception keeps the command line quick: when the process was started as the ``miniformer``
command (or ``python -m miniformer_hf.cli``), the model and ``transformers`` are imported (and
registered) only when a command first needs them, so ``miniformer --help`` answers at once. Any
public name (``miniformer_hf.MiniformerConfig`` ...) imports and registers them on first use.
"""

import os
import sys

__version__ = "0.1.0"

# Names provided by the configuration, modeling, heads and pipeline files; reading any of them imports and registers.
_MODEL_NAMES = (
    "MiniformerAttentionWeights",
    "MiniformerConfig",
    "MiniformerForCausalLM",
    "MiniformerForConditionalGeneration",
    "MiniformerForSequenceClassification",
    "MiniformerModel",
    "MiniformerPreTrainedModel",
    "MiniformerSeq2SeqPipeline",
    "Transformer",
)

# In this process, `pipeline(PIPELINE_TASK, model=model, tokenizer=tokenizer)` runs the pipeline on objects in memory.
# The name is our own: registering "text-generation" would replace transformers' pipeline for every other model.
PIPELINE_TASK = "miniformer-text2text"


def _register() -> None:
    """Import the model and register it with the Auto classes and the pipeline registry (idempotent)."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )
    from transformers.pipelines import PIPELINE_REGISTRY

    from . import configuration_miniformer, heads_miniformer, modeling_miniformer, pipeline_miniformer

    config_class = configuration_miniformer.MiniformerConfig
    auto_classes = {
        AutoModel: modeling_miniformer.MiniformerModel,
        AutoModelForSeq2SeqLM: modeling_miniformer.MiniformerForConditionalGeneration,
        AutoModelForSequenceClassification: heads_miniformer.MiniformerForSequenceClassification,
        AutoModelForCausalLM: heads_miniformer.MiniformerForCausalLM,
    }
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")
    for auto_class, model_class in auto_classes.items():
        auto_class.register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK,
        pipeline_class=pipeline_miniformer.MiniformerSeq2SeqPipeline,
        pt_model=AutoModelForSeq2SeqLM,
        type="text",
    )
    globals()["AUTO_CLASSES"] = auto_classes
    for name in _MODEL_NAMES:
        for module in (configuration_miniformer, modeling_miniformer, heads_miniformer, pipeline_miniformer):
            if hasattr(module, name):
                globals()[name] = getattr(module, name)
                break


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
