"""Sharing Miniformer checkpoints on the Hugging Face Hub: model cards, run-folder pushes, ``miniformer push``.

A pushed repository must load for someone who has never installed ``miniformer_hf``::

    AutoModelForSeq2SeqLM.from_pretrained(repo_id, trust_remote_code=True)
    AutoTokenizer.from_pretrained(repo_id, trust_remote_code=True)
    pipeline(model=repo_id, trust_remote_code=True)  # seq2seq checkpoints

so a push carries the weights (safetensors), ``config.json`` with its ``auto_map`` (and ``custom_pipelines``), the code
files (and ``pipeline_miniformer.py``), the tokenizer,
the generation config and a model card rendered from ``model_cards/miniformer.md``.

* :func:`render_model_card` fills the template from a config and a training run's metrics.
* :func:`push_run_folder` checks that a folder is a Miniformer run *before* any network call, then uploads it in a
  single commit, so a failed push leaves nothing half-uploaded.
* :func:`push_model` does the same for a model (and tokenizer) in memory.
* ``miniformer push`` is `miniformer_hf.commands.push`, which calls :func:`push_run_folder`.

Every failure a user can fix raises :class:`SharingError`, whose message is one line saying what was wrong,
what was expected and how to fix it.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import logging
import math
import re
import struct
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, ModelCardData, get_token
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from . import runs
from .errors import MiniformerError

logger = logging.getLogger(__name__)

CARD_TEMPLATE_NAME = "miniformer.md"
CODE_FILES = runs.CODE_FILES
WEIGHT_FILES = (runs.WEIGHTS_FILE, runs.WEIGHTS_INDEX_FILE)
TOKENIZER_FILES = runs.TOKENIZER_FILES
# Training by-products that a stranger does not need (optimizer state, intermediate checkpoints, logs, pickles).
EXCLUDED_FROM_PUSH = (
    "checkpoint-*", "runs", ".git", ".cache", "__pycache__", "*.lock",
    "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "training_args.bin",
)

# Per head: the Auto class a stranger loads it with and the Hub's pipeline tag. transformers 5 has no
# text2text-generation task; a seq2seq checkpoint carries its own pipeline under "text-generation" (pipeline_miniformer).
HEADS = {
    "MiniformerForConditionalGeneration": ("AutoModelForSeq2SeqLM", "text-generation"),
    "MiniformerForSequenceClassification": ("AutoModelForSequenceClassification", "text-classification"),
    "MiniformerForCausalLM": ("AutoModelForCausalLM", "text-generation"),
    "MiniformerModel": ("AutoModel", "feature-extraction"),
}
# How the card names each metric of the schema (runs.metric_names(), from metrics.EVAL_METRIC_NAMES) and its
# metric id for the YAML; a metric without an entry is shown under its own name, so none is ever left out.
METRIC_LABELS = {
    "exact_match": ("Exact match", "exact_match"),
    "cer": ("Character error rate (CER)", "cer"),
    "bleu": ("BLEU", "bleu"),
    "chrf": ("chrF", "chrf"),
    "accuracy": ("Accuracy", "accuracy"),
    "loss": ("Loss (cross-entropy)", None),
}
# How the card names the split of each prefix (runs.METRIC_PREFIXES).
SPLIT_LABELS = {"test": "test", "eval": "evaluation", "validation": "validation"}
TRAINING_FACTS = {
    "task": "Task",
    "dataset": "Dataset",
    "command": "Command",
    "epochs": "Epochs",
    "num_train_epochs": "Epochs",
    "epoch": "Epochs",
    "max_steps": "Optimizer steps",
    "global_step": "Optimizer steps",
    "train_samples": "Training examples",
    "learning_rate": "Peak learning rate",
    "warmup_steps": "Warm-up steps",
    "per_device_train_batch_size": "Batch size",
    "label_smoothing": "Label smoothing",
    "label_smoothing_factor": "Label smoothing",
    "train_loss": "Final training loss",
    "train_runtime": "Training time",
    "training_seconds": "Training time (evaluation excluded)",
    "max_time": "Training time limit",
    "seed": "Seed",
    "averaged_checkpoints": "Averaged checkpoints (§6.1)",
    "bleu_signature": "BLEU signature (sacreBLEU, detokenized output)",
}
EXAMPLE_INPUTS = {"dates": "3 March 1998"}
REPO_ID_PLACEHOLDER = "<namespace>/<repo-name>"  # in cards rendered before the repo id is known; filled in at push


class SharingError(MiniformerError):
    """A push or a model card could not be made; the message says why and how to fix it, in one line."""


# --------------------------------------------------------------------------------------------------------------------
# Model cards
# --------------------------------------------------------------------------------------------------------------------


def card_template_path() -> Path:
    """The model-card template, shipped inside the package or, in a source checkout, at ``model_cards/``."""
    candidates = []
    try:
        candidates.append(Path(str(resources.files("miniformer_hf") / "model_cards" / CARD_TEMPLATE_NAME)))
    except (ModuleNotFoundError, TypeError):
        pass
    candidates.append(Path(__file__).resolve().parent.parent / "model_cards" / CARD_TEMPLATE_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SharingError(
        f"The model-card template {CARD_TEMPLATE_NAME} was not found (looked in: "
        f"{', '.join(str(c) for c in candidates)}); reinstall miniformer-hf, whose package data ships it."
    )


def _format_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _format_parameters(count: int | None) -> str:
    if count is None:
        return "unknown"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count:,} ({count / scale:.1f}{unit})"
    return f"{count:,}"


def _usage_snippet(repo_id: str, auto_class: str, task: str | None) -> str:
    example = EXAMPLE_INPUTS.get(task or "", "your input text")
    loading = (
        f"from transformers import {auto_class}, AutoTokenizer\n\n"
        # Without trust_remote_code, transformers' AutoTokenizer first loads config.json through AutoConfig, which
        # stops at an interactive "run the custom code? [y/N]" prompt for any model whose code ships with it.
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'model = {auto_class}.from_pretrained("{repo_id}", trust_remote_code=True)\n\n'
        f'inputs = tokenizer(["{example}"], return_tensors="pt")\n'
    )
    if auto_class == "AutoModelForSeq2SeqLM":
        return loading + (
            "outputs = model.generate(**inputs, max_new_tokens=32)\n"
            "print(tokenizer.batch_decode(outputs, skip_special_tokens=True))\n\n"
            "# Or in one line, with the pipeline that ships in this repository:\n"
            "from transformers import pipeline\n\n"
            f'generator = pipeline(model="{repo_id}", trust_remote_code=True)\n'
            f'print(generator("{example}", max_new_tokens=32)[0]["generated_text"])'
        )
    if auto_class == "AutoModelForCausalLM":
        return loading + (
            "outputs = model.generate(**inputs, max_new_tokens=32)\n"
            "print(tokenizer.batch_decode(outputs, skip_special_tokens=True))"
        )
    if auto_class == "AutoModelForSequenceClassification":
        return loading + "label_id = model(**inputs).logits.argmax(-1).item()\nprint(model.config.id2label[label_id])"
    return loading + "hidden_states = model(**inputs).last_hidden_state  # (B, S, d_model)"


def _deviations(config: Mapping[str, Any]) -> list[str]:
    """Every config switch that departs from the paper, in words."""
    paper = {
        "norm_placement": ("post", "pre-LayerNorm sub-layers (`norm_placement=\"pre\"`) instead of post-LayerNorm"),
        "activation": ("relu", "`activation=\"{}\"` in the feed-forward network instead of ReLU"),
        "positional_encoding": ("sinusoidal", "learned positional embeddings (`positional_encoding=\"learned\"`)"),
        "scale_embedding": (True, "embeddings not scaled by sqrt(d_model) (`scale_embedding=False`)"),
        "tie_word_embeddings": (True, "separate input and output embeddings (`tie_word_embeddings=False`)"),
    }
    found = []
    for key, (paper_value, description) in paper.items():
        if key in config and config[key] != paper_value:
            found.append(description.format(config[key]))
    for key in ("attention_dropout", "activation_dropout"):
        if config.get(key):
            found.append(f"`{key}={config[key]}` (the paper has none)")
    return found


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, Path)) and Path(config, runs.CONFIG_FILE).is_file():
        return _read_json(Path(config, runs.CONFIG_FILE), "model config")
    raise SharingError(
        f"render_model_card got config={config!r}; expected a MiniformerConfig, the dict of a config.json, or a "
        "folder holding a config.json."
    )


def _flat_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level figures plus those of the nested ``train`` block that ``miniformer train`` writes."""
    flat = dict(metrics)
    for key, value in (metrics.get("train") or {}).items() if isinstance(metrics.get("train"), Mapping) else ():
        flat.setdefault(key, value)
    return flat


def _evaluation(metrics: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Table rows (name, value) and YAML metric ids of every figure of the metrics schema in ``metrics``."""
    rows, metric_ids = [], []
    for prefix, _, name, value in runs.evaluation_metrics(metrics):
        label, metric_id = METRIC_LABELS.get(name, (name, name))
        rows.append((f"{label}, {SPLIT_LABELS.get(prefix, prefix)} split", _format_number(value)))
        if metric_id and metric_id not in metric_ids:
            metric_ids.append(metric_id)
    return rows, metric_ids


def render_model_card(
    config: Any = None,
    *,
    metrics: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    num_parameters: int | None = None,
    license: str = "mit",
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    task: str | None = None,
    command: str | None = None,
    run_dir: str | Path | None = None,
    template_path: str | Path | None = None,
) -> ModelCard:
    """Render the Miniformer model card for a checkpoint.

    Args:
        config: the model's ``MiniformerConfig``, the dict of its ``config.json``, or a folder holding one;
            default: ``run_dir``.
        metrics: the run's figures: ``<split>_<metric>`` for splits ``test``/``eval``/``validation`` and metrics
            ``exact_match``/``cer``/``bleu``/``accuracy``/``loss``; ``task``; ``train_runtime``, ``epochs``,
            ``max_steps`` ... (also inside a nested ``train`` block). They take precedence over ``run_dir``'s.
        task: the training task (default: ``metrics["task"]``).
        command: the command line that trained the model, shown under Training.
        run_dir: a run folder; its ``metrics.json`` and safetensors fill what the other arguments leave out.
        repo_id: the Hub repository the card describes; used in the title and the usage snippet.
        num_parameters: parameter count shown in the architecture table.
        license: SPDX-style license id for the YAML metadata.
        datasets: Hub dataset ids the model was trained on (also read from ``metrics["dataset"]`` when it is one).
        tags: extra tags besides ``miniformer``.
        template_path: another Jinja template to render instead of ``model_cards/miniformer.md``.

    Returns:
        A ``huggingface_hub.ModelCard``; ``card.save(path)`` writes the README, ``card.push_to_hub(repo_id)`` uploads.
    """
    if config is None and run_dir is None:
        raise SharingError("render_model_card needs a config or a run_dir; pass the model's config (model.config).")
    config = _config_dict(config if config is not None else run_dir)
    metrics = dict(metrics or {})
    if run_dir is not None and Path(run_dir, runs.METRICS_FILE).is_file():
        metrics = {**_read_json(Path(run_dir, runs.METRICS_FILE), "training metrics"), **metrics}
    metrics = _flat_metrics(metrics)
    if task is not None:
        metrics["task"] = task
    if command is not None:
        metrics["command"] = command
    if num_parameters is None and isinstance(metrics.get("num_parameters"), int):
        num_parameters = metrics["num_parameters"]
    if num_parameters is None and run_dir is not None and any(Path(run_dir, n).is_file() for n in WEIGHT_FILES):
        num_parameters = count_safetensors_parameters(run_dir)
    if config.get("model_type") != "miniformer":
        raise SharingError(
            f"render_model_card got a config with model_type={config.get('model_type')!r}; expected 'miniformer' "
            "(the card describes Miniformer checkpoints only)."
        )
    architecture = (config.get("architectures") or ["MiniformerForConditionalGeneration"])[0]
    auto_class, pipeline_tag = HEADS.get(architecture, HEADS["MiniformerForConditionalGeneration"])
    task = metrics.get("task")
    model_name = repo_id.split("/")[-1] if repo_id else f"Miniformer{f' for {task}' if task else ''}"

    datasets = list(datasets or [])
    if isinstance(metrics.get("dataset"), str) and "/" in metrics["dataset"] and metrics["dataset"] not in datasets:
        datasets.append(metrics["dataset"])
    eval_rows, metric_ids = _evaluation(metrics)
    card_tags = ["miniformer", "custom_code"]
    card_tags.append("encoder-decoder" if config.get("is_encoder_decoder", True) else "decoder-only")
    card_tags += [tag for tag in [task, *(tags or [])] if tag and tag not in card_tags]
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=card_tags,
        datasets=datasets or None,
        metrics=metric_ids or None,
    )

    encoder_layers = config.get("encoder_layers", config.get("n_layers"))
    decoder_layers = config.get("decoder_layers", config.get("n_layers"))
    if architecture == "MiniformerForCausalLM":
        stacks = f"decoder only, {decoder_layers} layers"
    else:
        stacks = f"{encoder_layers} encoder layers, {decoder_layers} decoder layers (paper's N)"
    training_rows = []
    for key, label in TRAINING_FACTS.items():
        if key in metrics and label not in {row[0] for row in training_rows}:
            value = metrics[key]
            if key in ("train_runtime", "training_seconds", "max_time") and isinstance(value, (int, float)):
                value = f"{value:.1f} s"
            if isinstance(value, list):
                value = ", ".join(map(str, value))
            if key == "bleu_signature":
                value = str(value).replace("|", "\\|")  # a table cell: GitHub's Markdown reads \| as a literal bar
            training_rows.append((label, f"`{value}`" if key in ("task", "dataset", "command", "bleu_signature")
                                  else _format_number(value)))
    if training_rows and "dropout" in config:
        training_rows.append(("Dropout `P_drop`", _format_number(config["dropout"])))
    summary = (
        f"A {_format_parameters(num_parameters).split(' (')[0]}-parameter Miniformer"
        if num_parameters is not None
        else "A Miniformer"
    )
    summary += f" trained for the `{task}` task." if task else " checkpoint."

    template = Path(template_path) if template_path is not None else card_template_path()
    card = ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_name=model_name,
        summary=summary,
        architecture=architecture,
        auto_class=auto_class,
        stacks=stacks,
        d_model=config.get("d_model"),
        n_heads=config.get("n_heads"),
        head_dim=config["d_model"] // config["n_heads"] if config.get("d_model") and config.get("n_heads") else "?",
        d_ff=config.get("d_ff"),
        activation=config.get("activation", "relu"),
        vocab_size=config.get("vocab_size"),
        tie_word_embeddings=config.get("tie_word_embeddings", True),
        positional_encoding=config.get("positional_encoding", "sinusoidal"),
        max_position_embeddings=config.get("max_position_embeddings"),
        num_parameters=_format_parameters(num_parameters),
        deviations=_deviations(config),
        training_rows=training_rows,
        eval_rows=eval_rows,
        eval_note="Figures measured on held-out splits at the end of training." if eval_rows else "",
        usage=_usage_snippet(repo_id or REPO_ID_PLACEHOLDER, auto_class, task),
        task=task,
    )
    # Optional template sections leave runs of blank lines behind; Markdown needs one.
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)))


# --------------------------------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------------------------------


def count_safetensors_parameters(model_dir: str | Path) -> int:
    """Sum of the tensor sizes stored in a folder's safetensors file(s), read from their headers only."""
    model_dir = Path(model_dir)
    index = model_dir / runs.WEIGHTS_INDEX_FILE
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [runs.WEIGHTS_FILE]
    total = 0
    for shard in shards:
        with open(model_dir / shard, "rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))  # safetensors: u64 LE header size, then JSON
            header = json.loads(handle.read(header_length))
        for name, tensor in header.items():
            if name != "__metadata__":
                total += math.prod(tensor["shape"])
    return total


def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SharingError(f"{path} could not be read as JSON ({error}); expected the {what} written by "
                           "`miniformer train` or save_pretrained.") from error
    if not isinstance(value, dict):
        raise SharingError(f"{path} holds a {type(value).__name__}; expected a JSON object ({what}).")
    return value


def validate_run_folder(model_dir: str | Path) -> dict[str, Any]:
    """Check that ``model_dir`` is a complete Miniformer run (no network); return its config as a dict.

    `miniformer_hf.runs.check_run_folder` with ``use="push"``: ``config.json`` with ``model_type: miniformer``
    and an ``auto_map``, safetensors weights matching ``checksums.json`` and all finite, the code files, and the
    tokenizer files. ``metrics.json``, ``generation_config.json`` and ``README.md`` are optional.
    """
    model_dir = Path(model_dir)
    try:
        config = runs.check_run_folder(model_dir, use="push", subject=str(model_dir))
        runs.check_finite_weights(model_dir, where=str(model_dir), refusal="not pushed")
    except runs.RunError as error:
        raise SharingError(str(error)) from None
    return config


def _files_to_push(model_dir: Path) -> list[Path]:
    """Every file under ``model_dir`` except training by-products (:data:`EXCLUDED_FROM_PUSH`)."""
    chosen = []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if path.is_file() and not any(fnmatch.fnmatch(part, pattern) for part in relative.parts
                                      for pattern in EXCLUDED_FROM_PUSH):
            chosen.append(path)
    return chosen


# --------------------------------------------------------------------------------------------------------------------
# Pushing
# --------------------------------------------------------------------------------------------------------------------




def _network_errors() -> tuple[type[Exception], ...]:
    """A Hub that cannot be reached at all: refused or reset connections, DNS failures, timeouts, proxies, and offline
    mode (OfflineModeIsEnabled is a ConnectionError). huggingface_hub 1.x talks through httpx, 2.x through httpx2."""
    errors: list[type[Exception]] = [ConnectionError]
    for client in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(client).TransportError)
        except ImportError:
            continue
    return tuple(errors)


NETWORK_ERRORS = _network_errors()


def _unreachable(endpoint: str, error: Exception, *, leftover: str = "") -> SharingError:
    """One line for a Hub that could not be reached: the endpoint, the cause, what to check."""
    if isinstance(error, OfflineModeIsEnabled):
        return SharingError(f"Cannot push to {endpoint}: HF_HUB_OFFLINE is set, so no network call is allowed; "
                            f"unset HF_HUB_OFFLINE (or set it to 0) and push again.{leftover}")
    cause = " ".join(str(error).split()) or type(error).__name__
    return SharingError(f"Cannot reach the Hub at {endpoint} ({type(error).__name__}: {cause}); check your network "
                        "connection, any proxy (HTTPS_PROXY) and HF_ENDPOINT, then push again: nothing was uploaded."
                        f"{leftover}")


def _http_error_line(error: HfHubHTTPError) -> str:
    server_message = error.server_message or ""
    status = error.response.status_code if error.response is not None else "?"
    return f"HTTP {status}{': ' + server_message.splitlines()[0] if server_message else ''}"


def push_run_folder(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Upload a Miniformer run folder to the Hub in one commit, creating the repository if needed.

    The folder is checked before any network call (:func:`validate_run_folder`). If it has no ``README.md``, a card
    is rendered from its config and ``metrics.json``; a card rendered earlier without a repo id gets it filled in.
    Training by-products (:data:`EXCLUDED_FROM_PUSH`) stay behind. Everything goes up in a single commit, so a
    failure leaves the repository as it was; a repository this call created is deleted again if that commit fails.

    Args:
        model_dir: the run folder.
        repo_id: ``namespace/name`` (or just ``name`` for the token owner's namespace).
        private: create the repository as private (ignored if it exists already).
        revision: branch to commit to; created from ``main`` if missing. Default: ``main``.
        token: Hub access token; default: ``HF_TOKEN`` or the token saved by ``hf auth login``.
        commit_message: default "Upload Miniformer from <folder name>".

    Returns:
        The ``CommitInfo`` of the commit (``.commit_url``, ``.oid``, ``.repo_url``).
    """
    model_dir = Path(model_dir)
    config = validate_run_folder(model_dir)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise SharingError(f"{repo_id!r} is not a valid repo id ({str(error).splitlines()[0]}); expected "
                           "'namespace/name' made of letters, digits, '-', '_' and '.'.") from error
    token = token or get_token()
    if not token:
        raise SharingError("No Hugging Face token found: pass --token (token=...), set HF_TOKEN, or run "
                           "`hf auth login` with a token that has write access.")

    api = HfApi(token=token)
    try:
        identity = api.whoami()
    except NETWORK_ERRORS as error:
        raise _unreachable(api.endpoint, error) from error
    except (HfHubHTTPError, LocalTokenNotFoundError) as error:
        raise SharingError(f"The Hub at {api.endpoint} rejected the token ({error.__class__.__name__}); create a "
                           "token with write access and pass it with --token or HF_TOKEN.") from error
    user = identity["name"]
    if identity.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise SharingError(f"The token of user {user!r} is read-only, so it cannot push; create a token with write "
                           "access and pass it with --token or HF_TOKEN.")
    if "/" not in repo_id:
        repo_id = f"{user}/{repo_id}"

    operations = [
        CommitOperationAdd(path_in_repo=path.relative_to(model_dir).as_posix(), path_or_fileobj=str(path))
        for path in _files_to_push(model_dir)
        if path != model_dir / runs.MODEL_CARD_FILE
    ]
    readme = model_dir / runs.MODEL_CARD_FILE
    if readme.is_file():
        # A card rendered before the repo id was known has a placeholder in its usage snippet: fill it in.
        card_text = readme.read_text(encoding="utf-8").replace(REPO_ID_PLACEHOLDER, repo_id)
    else:
        card_text = str(render_model_card(config, run_dir=model_dir, repo_id=repo_id))
    operations.append(CommitOperationAdd(path_in_repo=runs.MODEL_CARD_FILE, path_or_fileobj=card_text.encode("utf-8")))

    created_here = False
    try:
        existed = api.repo_exists(repo_id)
        api.create_repo(repo_id, private=private, exist_ok=True)
        created_here = not existed
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload Miniformer from {model_dir.resolve().name}",
            revision=revision,
        )
    except NETWORK_ERRORS as error:
        # The commit is atomic on the Hub: it either landed whole or not at all. Only a repository created just now
        # can be left behind, empty.
        leftover = ""
        if created_here and not _delete_quietly(api, repo_id):
            leftover = (f" The repository {repo_id} was created before the connection failed and is empty; "
                        "delete it or push again.")
        raise _unreachable(api.endpoint, error, leftover=leftover) from error
    except (RepositoryNotFoundError, HfHubHTTPError) as error:
        if created_here:
            _delete_quietly(api, repo_id)
        status = error.response.status_code if error.response is not None else None
        if isinstance(error, RevisionNotFoundError):
            problem = f"revision {revision!r} does not exist and could not be created"
        elif isinstance(error, RepositoryNotFoundError) or status == 404:
            problem = "the repository does not exist and could not be created"
        elif status in (401, 403):
            problem = f"the token of user {user!r} has no write access to it"
        else:
            problem = "the Hub refused the upload"
        raise SharingError(f"Cannot push to {repo_id!r} on {api.endpoint}: {problem} ({_http_error_line(error)}); "
                           f"check the repo id and that '{repo_id.split('/')[0]}' is your user name or one of "
                           "your organisations.") from error
    logger.info("Pushed %s to %s (%d files)", model_dir, commit.commit_url, len(operations))
    return commit


def _delete_quietly(api: HfApi, repo_id: str) -> bool:
    """Delete the empty repository a failed push created; False if that failed too."""
    try:
        api.delete_repo(repo_id, missing_ok=True)
    except (HfHubHTTPError, *NETWORK_ERRORS):
        logger.warning("Could not delete the empty repository %s created by the failed push", repo_id)
        return False
    return True


def push_model(
    model: Any,
    repo_id: str,
    *,
    tokenizer: Any = None,
    metrics: Mapping[str, Any] | None = None,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Push a Miniformer model (with its tokenizer, metrics and a rendered model card) in one commit.

    ``model.push_to_hub`` and ``tokenizer.push_to_hub`` also work, in two commits and with the generic card of
    ``transformers``; this puts everything, including the Miniformer card, in a single commit.
    """
    with tempfile.TemporaryDirectory(prefix="miniformer-push-") as folder:
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        if metrics:
            runs.write_json(Path(folder, runs.METRICS_FILE), dict(metrics))
        card = render_model_card(model.config, metrics=metrics, repo_id=repo_id,
                                 num_parameters=model.num_parameters())
        card.save(str(Path(folder, runs.MODEL_CARD_FILE)))
        return push_run_folder(folder, repo_id, private=private, revision=revision, token=token,
                               commit_message=commit_message or "Upload Miniformer model")


__all__ = [
    "SharingError",
    "card_template_path",
    "count_safetensors_parameters",
    "push_model",
    "push_run_folder",
    "render_model_card",
    "validate_run_folder",
]
