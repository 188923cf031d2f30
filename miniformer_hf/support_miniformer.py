"""What the paper file leans on but a reader of the paper need not meet first.

* Input checks: one place that validates each input, with one clear message for each way it can be wrong
  (what was wrong, what was expected, how to fix it), used by every head in both the plain and the fast path.
  Checks that read tensor values are skipped under torch.compile / torch.export, where they would break the
  graph.
* ``select_hidden_states``: transformers' ``output_hidden_states`` as a flag or as the indices of the hidden states
  to return (the others come back as None), as models that record their outputs through hooks accept it.
* ``get_attention_weights`` (for ``plot_attention`` and bertviz) and transformers' position-table API
  (``resize_position_embeddings``, ``get_position_embeddings``), as mixins of the model classes.
* Checkpoints (``CheckpointFilesMixin``): ``from_pretrained`` of a folder refuses weights whose SHA-256 does not
  match its ``checksums.json`` (``verify_weight_checksums``, the one check every way in shares), and
  ``save_pretrained`` writes every code file the saved ``config.json`` names (``auto_map``, ``custom_pipelines``),
  whether the model came from this package or from a checkpoint's remote code.

This file travels with every saved checkpoint beside ``modeling_miniformer.py``, which imports it; it imports
nothing back from the modeling file (standard library, ``torch`` and public ``transformers`` API only).
"""

import copy
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput, logging

logger = logging.get_logger(__name__)


def check_no_label_smoothing_argument(kwargs: dict) -> None:
    """forward() takes no ``label_smoothing`` (transformers' Trainer takes any parameter with "label" in its name for
    a label column): refuse it by name rather than ignore it in ``**kwargs``."""
    if "label_smoothing" in kwargs:
        raise TypeError(
            "forward() takes no label_smoothing argument: the loss reads config.label_smoothing (§5.4, default 0.1); "
            "set model.config.label_smoothing = value (TransformerTrainer(label_smoothing=...) does)."
        )


def check_memory(encoder_hidden_states, has_cross_attention: bool) -> None:
    if has_cross_attention and encoder_hidden_states is None:
        raise ValueError(
            "This decoder attends over the encoder output: pass encoder_hidden_states (B, S, D), or use "
            "MiniformerForCausalLM for a decoder without cross-attention."
        )


def check_decoder_source(input_ids) -> None:
    if input_ids is None:
        raise ValueError(
            "No decoder inputs: pass decoder_input_ids (or labels), or pass input_ids so the decoder "
            "inputs can be derived by shifting them right."
        )


def check_ids_shape(ids: torch.Tensor, name: str = "input_ids") -> None:
    if not torch.compiler.is_compiling() and (ids.dim() != 2 or ids.is_floating_point()):
        raise ValueError(
            f"{name} have shape {tuple(ids.shape)} and dtype {ids.dtype}, but the model expects integer ids of "
            "shape (batch, length); for one sequence, add a batch dimension with ids[None]."
        )


def check_batch(inputs: torch.Tensor, name: str) -> tuple[int, int]:
    """(batch, length) of ids or embeddings, refusing an empty batch or an empty sequence."""
    if inputs.dim() < 2:
        check_ids_shape(inputs, name)
    batch, length = inputs.shape[:2]
    if not torch.compiler.is_compiling() and (batch == 0 or length == 0):
        raise ValueError(
            f"{name} has shape {tuple(inputs.shape)}: an empty batch or an empty sequence cannot be encoded. "
            "Pass at least one sequence of at least one token (batch >= 1, length >= 1)."
        )
    return batch, length


def check_token_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    check_ids_shape(input_ids)
    if torch.compiler.is_compiling() or input_ids.numel() == 0:
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"Token id {low if low < 0 else high} is outside the vocabulary: ids must lie in [0, {vocab_size - 1}] "
            f"(vocab_size={vocab_size}). Check that the tokenizer matches the model, and replace "
            "label-style -100 values with the pad id in model inputs."
        )


def check_mask(mask: torch.Tensor | None, name: str, expected: tuple) -> None:
    if mask is None or torch.compiler.is_compiling() or mask.dim() == 4:  # generate() builds 4D masks itself
        return
    if tuple(mask.shape) != tuple(expected):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, but the inputs need a 2D mask of shape {tuple(expected)} "
            "(batch, sequence length) with 1 for real tokens and 0 for padding."
        )


def check_labels(labels: torch.Tensor, vocab_size: int, batch: int | None = None) -> None:
    """Integer token ids (B, T), -100 where the loss ignores a position; `batch`: the inputs' batch size."""
    if not torch.compiler.is_compiling() and (labels.dim() != 2 or labels.is_floating_point() or labels.is_complex()):
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} and dtype {labels.dtype}, but the model expects integer "
            "token ids of shape (batch, length), with -100 where the loss ignores a position; convert them with "
            "labels.long()."
        )
    check_batch(labels, "labels")
    if torch.compiler.is_compiling():
        return
    if batch is not None and labels.shape[0] != batch:
        raise ValueError(
            f"labels have batch size {labels.shape[0]} (shape {tuple(labels.shape)}), but the inputs have batch size "
            f"{batch}: give one row of labels per input sequence."
        )
    bad = labels[(labels != -100) & ((labels < 0) | (labels >= vocab_size))]
    if bad.numel():
        raise ValueError(
            f"Label {int(bad[0])} is outside the vocabulary: labels must lie in [0, {vocab_size - 1}] "
            f"(vocab_size={vocab_size}), or be -100 for positions the loss ignores. Check that the "
            "tokenizer matches the model."
        )


def select_hidden_states(all_hidden: list, output_hidden_states) -> tuple | None:
    """transformers' `output_hidden_states`: a flag (every hidden state or none), or an index or a list of indices
    (negative ones count from the end) choosing which to keep; the others are None, so each keeps its position."""
    if output_hidden_states is None or isinstance(output_hidden_states, bool):
        return tuple(all_hidden) if output_hidden_states else None
    count = len(all_hidden)
    indices = [output_hidden_states] if isinstance(output_hidden_states, int) else output_hidden_states
    keep = {index % count for index in indices if -count <= index < count}
    return tuple(hidden if position in keep else None for position, hidden in enumerate(all_hidden))


@dataclass
class MiniformerAttentionWeights(ModelOutput):
    """Attention weights per layer, each (B, H, query, key): what `plot_attention` and bertviz take."""

    encoder_attentions: tuple[torch.Tensor, ...] | None = None
    decoder_attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


class AttentionWeightsMixin:
    """``get_attention_weights`` for the encoder-decoder model classes."""

    @torch.no_grad()
    def get_attention_weights(self, input_ids, decoder_input_ids=None, attention_mask=None, labels=None):
        """Encoder, decoder and cross attention per layer, each (B, H, query, key), whatever
        `attn_implementation` is set (the readable path computes them). Runs in eval mode.

        The target: `labels` (target token ids, shifted right here as in training: teacher forcing) or
        `decoder_input_ids` (already shifted). With neither, the decoder reads the *source* shifted right (the seed
        API's behaviour, logged once), so "cross-attention" is then the source attending to itself."""
        check_ids_shape(input_ids)
        check_batch(input_ids, "input_ids")
        if labels is not None:
            if decoder_input_ids is not None:
                raise ValueError("Pass the target once: labels (shifted here) or decoder_input_ids, not both.")
            check_labels(labels, self.config.vocab_size, input_ids.shape[0])
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        was_training = self.training
        try:
            outputs = self.eval().model(input_ids, attention_mask, decoder_input_ids, use_cache=False,
                                        output_attentions=True, return_dict=True)
        finally:
            self.train(was_training)
        return MiniformerAttentionWeights(outputs.encoder_attentions, outputs.decoder_attentions, outputs.cross_attentions)


class PositionTablesMixin:
    """transformers' position-table API: every positional encoding module (sinusoidal or learned) of the model."""

    def position_modules(self):
        return [module for module in self.modules() if hasattr(module, "max_positions") and hasattr(module, "learned")]

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        """Make every positional table cover `new_num_position_embeddings` positions (used e.g. by the example
        run_summarization.py): the sinusoid table is recomputed; a learned table keeps its rows and draws new
        ones from N(0, init_std)."""
        std = self.config.init_std or self.config.d_model**-0.5
        for module in self.position_modules():
            module.resize(new_num_position_embeddings, std)
        self.config.max_position_embeddings = new_num_position_embeddings

    def get_position_embeddings(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        tables = tuple(module.weight if module.learned else module.table for module in self.position_modules())
        return tables[0] if len(tables) == 1 else tables


# ------------------------------------------------------------------------------------------------
# Checkpoints: the weights a folder's checksums.json vouches for, and the code files a save writes
# ------------------------------------------------------------------------------------------------

CHECKSUMS_FILE = "checksums.json"  # written by `miniformer train` (runs.write_weights_checksum): {file: "sha256:..."}
# What a seq2seq checkpoint's config.json says under `custom_pipelines`, so that pipeline(model=...) finds the
# pipeline class of pipeline_miniformer.py (which defines the same dictionary; a test keeps the two equal).
CUSTOM_PIPELINES = {
    "text-generation": {
        "impl": "pipeline_miniformer.MiniformerSeq2SeqPipeline",
        "pt": ["AutoModelForSeq2SeqLM"],
        "type": "text",
    }
}
SEQ2SEQ_HEAD = "MiniformerForConditionalGeneration"


class CorruptedCheckpointError(Exception):
    """A checkpoint folder's weights do not match its checksums.json, or that record is unreadable.

    Not a ValueError or OSError on purpose: ``pipeline()`` catches those while it tries one model class after
    another and would bury this one-line message in a page of tracebacks."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def verify_weight_checksums(folder: str | os.PathLike) -> bool:
    """Check the files a folder's ``checksums.json`` lists against their recorded SHA-256.

    Returns False when the folder has no ``checksums.json`` (nothing to check), True when every listed file
    matches. Raises ``CorruptedCheckpointError`` with one line naming the file when a listed file is missing or
    its bytes changed, or when ``checksums.json`` is not a non-empty JSON object of ``{file name: "sha256:..."}``.
    Standard library only, so that every way in (``from_pretrained``, ``pipeline``, the command line) shares it.
    """
    folder = os.fspath(folder)
    record = os.path.join(folder, CHECKSUMS_FILE)
    if not os.path.isfile(record):
        return False
    expected_form = 'expected a JSON object {"model.safetensors": "sha256:<64 hex digits>"} as `miniformer train` writes'
    try:
        with open(record, encoding="utf-8") as handle:
            checksums = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CorruptedCheckpointError(f"{record} is not readable JSON ({error}); {expected_form}.") from None
    if (not isinstance(checksums, dict) or not checksums
            or not all(isinstance(name, str) and isinstance(value, str) for name, value in checksums.items())):
        raise CorruptedCheckpointError(
            f"{record} holds {type(checksums).__name__} {json.dumps(checksums)[:60]}; {expected_form}. Copy the run "
            "folder again, or delete checksums.json if you trust the weights."
        )
    for name, expected in checksums.items():
        path = os.path.join(folder, name)
        if os.path.basename(name) != name or not os.path.isfile(path):
            raise CorruptedCheckpointError(
                f"{path} is missing, but {record} lists it; the folder is incomplete. Copy it again."
            )
        if _sha256(path) != expected:
            raise CorruptedCheckpointError(
                f"{path} is corrupted: its SHA-256 does not match the one recorded in {record} when it was written; "
                "copy or download the folder again, or retrain."
            )
    return True


def non_finite_weights(model: nn.Module) -> list[str]:
    """Names of the floating-point weights and buffers of `model` that hold a NaN or an infinity."""
    return [name for name, tensor in model.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def code_files_named_in(config) -> list[str]:
    """The code files a config names: each module of ``auto_map`` and of ``custom_pipelines``' implementations
    (a Hub prefix ``owner/repo--`` dropped), as file names such as ``heads_miniformer.py``."""
    references = list((getattr(config, "auto_map", None) or {}).values())
    references += [task.get("impl") for task in (getattr(config, "custom_pipelines", None) or {}).values()
                   if isinstance(task, dict)]
    names = []
    for reference in references:
        for item in reference if isinstance(reference, (list, tuple)) else [reference]:
            if isinstance(item, str) and "." in item:
                name = item.split("--")[-1].rsplit(".", 1)[0] + ".py"
                if name not in names:
                    names.append(name)
    return names


class CheckpointFilesMixin:
    """``from_pretrained`` checks a folder's checksums; ``save_pretrained`` writes every code file its config names."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' ``from_pretrained``; a local folder with a ``checksums.json`` (a run folder of
        ``miniformer train``) is first checked against it (``verify_weight_checksums``), so a damaged run folder is
        refused here, in ``pipeline(model=folder)`` and on the command line alike. Non-finite weights are logged."""
        if isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
            folder = os.fspath(pretrained_model_name_or_path)
            subfolder = kwargs.get("subfolder") or ""
            if os.path.isdir(os.path.join(folder, subfolder)):
                verify_weight_checksums(os.path.join(folder, subfolder))
        result = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = result[0] if isinstance(result, tuple) else result  # (model, loading_info) when asked for
        bad = non_finite_weights(model)
        if bad:
            logger.warning(
                f"{len(bad)} weight tensor(s) loaded from {pretrained_model_name_or_path} are NaN or infinite (first: "
                f"{bad[0]}); this model's outputs are meaningless. Retrain it, or load an earlier checkpoint."
            )
        return result

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' ``save_pretrained``, writing every code file the saved ``config.json`` names.

        transformers copies a remote-code model's own module and its relative imports; the heads file and the
        pipeline file are named in ``config.json`` (``auto_map``, ``custom_pipelines``) but imported by neither,
        so they are copied here from the folder this model's code was loaded from (the package, or the module
        cache of a checkpoint loaded with ``trust_remote_code``), or fetched from where the model was loaded when
        that cache never held them. A file that cannot be found is not named in the saved config (with a
        warning), so every saved folder loads. The seq2seq head also names its pipeline (``custom_pipelines``).
        Files are written before the weights, so ``push_to_hub=True`` uploads them too.
        """
        if os.path.isfile(save_directory):
            return super().save_pretrained(save_directory, *args, **kwargs)  # transformers' own error
        config = self.config
        saved = {key: copy.deepcopy(getattr(config, key, None)) for key in ("auto_map", "custom_pipelines")}
        had = {key: hasattr(config, key) for key in saved}
        try:
            if SEQ2SEQ_HEAD in {klass.__name__ for klass in type(self).__mro__}:
                config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
            if kwargs.get("is_main_process", True):
                os.makedirs(save_directory, exist_ok=True)
                missing = write_code_files(self, save_directory)
                drop_references(config, missing)
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:  # the config may be shared with another head, whose checkpoint must not claim its pipeline
            for key, value in saved.items():
                if had[key]:
                    setattr(config, key, value)
                elif hasattr(config, key):
                    delattr(config, key)


def write_code_files(model, save_directory: str) -> list[str]:
    """Copy each code file ``model.config`` names into ``save_directory``; returns the names it could not find."""
    here = os.path.dirname(os.path.abspath(sys.modules[type(model).__module__].__file__))
    missing = []
    for name in code_files_named_in(model.config):
        target = os.path.join(save_directory, name)
        source = os.path.join(here, name)
        if not os.path.isfile(source):
            source = fetch_code_file(model, name)
        if source is None:
            missing.append(name)
        elif os.path.abspath(source) != os.path.abspath(target):
            shutil.copyfile(source, target)
    return missing


def fetch_code_file(model, name: str) -> str | None:
    """The path of code file `name` from where `model` was loaded (its folder or Hub repo), or None."""
    origin = getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")
    if not origin:
        return None
    if os.path.isfile(os.path.join(origin, name)):
        return os.path.join(origin, name)
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(origin, name, revision=getattr(model.config, "_commit_hash", None))
    except Exception:  # noqa: BLE001 - offline, no such repo or file: the caller drops the reference
        return None


def drop_references(config, missing: list[str]) -> None:
    """Remove from ``config``'s ``auto_map`` and ``custom_pipelines`` the entries whose code file is missing."""
    if not missing:
        return
    modules = {name[: -len(".py")] for name in missing}

    def module_of(reference) -> str:
        return str(reference).split("--")[-1].rsplit(".", 1)[0]

    auto_map = dict(getattr(config, "auto_map", None) or {})
    config.auto_map = {key: value for key, value in auto_map.items() if module_of(value) not in modules}
    pipelines = dict(getattr(config, "custom_pipelines", None) or {})
    kept = {task: spec for task, spec in pipelines.items()
            if not (isinstance(spec, dict) and module_of(spec.get("impl")) in modules)}
    if kept or hasattr(config, "custom_pipelines"):
        config.custom_pipelines = kept
    logger.warning(
        f"Saving without {', '.join(missing)}: the file(s) could not be found beside the model's code nor where "
        "the model was loaded from, so the saved config.json does not name them."
    )


__all__ = ["CHECKSUMS_FILE", "CUSTOM_PIPELINES", "AttentionWeightsMixin", "CheckpointFilesMixin",
           "CorruptedCheckpointError", "MiniformerAttentionWeights", "PositionTablesMixin", "check_batch",
           "check_decoder_source", "check_ids_shape", "check_labels", "check_no_label_smoothing_argument", "check_mask",
           "check_memory", "check_token_ids",
           "code_files_named_in", "non_finite_weights", "select_hidden_states", "verify_weight_checksums"]
