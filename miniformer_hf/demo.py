"""A live attention page (``miniformer demo``): type a source text, watch the model answer, see where it looked.

The work is in plain functions a notebook can call; Gradio only draws them:

    load_demo_model(run_or_repo)      a run folder or Hub repo id -> DemoModel (model, tokenizer, examples)
    held_out_examples(folder)         source texts from the run's held-out (test) data
    predict(demo_model, text, ...)    generate (greedy or beam) and keep beams, scores, attention, top-k
    attention_matrix(prediction, ...) one (query, key) matrix: a kind, a layer, a head or the mean
    sequence_scores(...)              each output's summed and per-token mean log-probability (one definition)
    attention_table_html / top_k_html / beams_rows / decoding_note / label_smoothing_note   what the page shows
    build_app(demo_model)             the gradio.Blocks page
    launch(demo_model, host, port)    serve it (127.0.0.1 by default, never shared unless asked)
    check_host / check_port           the serving address, checked before anything loads

A Hugging Face Space that serves this page is written by :mod:`miniformer_hf.demo_space`.

The command line (``miniformer demo``) is ``miniformer_hf/commands/demo.py``; this module never imports it.

The attention during generation is stitched by :func:`miniformer_hf.visualization.generate_with_attention`'s
helper ``attention_from_generation``, the same code behind ``miniformer visualize``.

Nothing on the page reaches the network: Gradio's analytics are switched off before it is imported, the theme
uses fonts that Gradio serves itself, and the heatmaps are HTML tables drawn here (no plotting library, no CDN).
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # torch and the attention code are imported when first used, so `miniformer --help` stays fast
    import torch

    from .visualization import AttentionExample

from . import runs  # the standard library only at import: `miniformer demo --help` stays fast
from .errors import MiniformerError

logger = logging.getLogger(__name__)

DEMO_INSTALL_HINT = 'pip install "miniformer-hf[demo]"'
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
NUM_EXAMPLES = 8
MEAN_OF_HEADS = "mean"
KIND_LABELS = {
    "cross": "cross-attention (generated token over source)",
    "encoder": "encoder self-attention (source over source)",
    "decoder": "decoder self-attention (decoder input over decoder input)",
}
# Environment Gradio reads at import: no usage analytics, no version check against the network.
OFFLINE_GRADIO_ENV = {"GRADIO_ANALYTICS_ENABLED": "False"}


class DemoError(MiniformerError):
    """A model or request the demo cannot use; the message says what was wrong and what was expected."""


# ---------------------------------------------------------------------------------------------
# Loading a run folder or a Hub repository
# ---------------------------------------------------------------------------------------------


@dataclass
class DemoModel:
    """A loaded model with its tokenizer, the name it was loaded from and example source texts."""

    model: Any
    tokenizer: Any
    name: str
    examples: list[str] = field(default_factory=list)
    # generate() is not re-entrant on one model; Gradio's workers take turns here.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.n_layers)

    @property
    def num_heads(self) -> int:
        return int(self.model.config.n_heads)


def resolve_model_folder(run_or_repo: str, *, revision: str | None = None) -> Path:
    """A local folder holding the model: ``run_or_repo`` itself, or a download of that Hub repository.

    Nothing is checked here; :func:`load_demo_model` checks and loads the folder through the one run-folder
    module (``runs.load_run_folder(..., use="demo")``: a Miniformer config, weights, checksums, tokenizer).
    """
    path = Path(run_or_repo).expanduser()
    if path.exists():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        folder = snapshot_download(run_or_repo, revision=revision)
    except HFValidationError as error:
        raise DemoError(
            f"{run_or_repo} is neither an existing folder nor a valid Hub repo id; expected a run folder "
            "(check the path) or a repo id such as user/miniformer-dates."
        ) from error
    except Exception as error:  # offline, missing repository, no access: all one line for the user
        raise DemoError(
            f"{run_or_repo} is not a local folder and could not be downloaded from the Hub ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:300]}); check the path or the repo id, and the network (HF_HUB_OFFLINE)."
        ) from error
    return Path(folder)


def load_demo_model(run_or_repo: str, *, revision: str | None = None, num_examples: int = NUM_EXAMPLES) -> DemoModel:
    """Load a Miniformer run folder or Hub repo id for the demo (eval mode), with held-out examples.

    The demo draws a Miniformer's layers and heads: another model type, missing weights or tokenizer, damaged or
    non-finite weights are one `DemoError` (the run-folder module's message) before anything is served.
    """
    folder = resolve_model_folder(run_or_repo, revision=revision)
    try:
        model, tokenizer = runs.load_run_folder(folder, use="demo", subject=f"--model {run_or_repo}")  # eval mode
    except runs.RunError as error:
        raise DemoError(str(error)) from None
    generation = model.generation_config
    if generation.max_length is not None and generation.max_new_tokens is None:
        # A run saved with a length limit as max_length (decoder start + new tokens): keep it as max_new_tokens,
        # which predict() passes, so generate() never sees two clashing limits (and never warns about them).
        generation.max_new_tokens, generation.max_length = max(int(generation.max_length) - 1, 1), None
    return DemoModel(model, tokenizer, str(run_or_repo), held_out_examples(folder, num_examples))


def _read_json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def held_out_examples(folder: str | Path, limit: int = NUM_EXAMPLES) -> list[str]:
    """Source texts from the run's held-out test data (never seen in training), at most ``limit``.

    Read from ``run_arguments.json`` (the built-in task and seed, or ``--test-file``), else from the task named
    in ``metrics.json``; a folder with neither gives no examples.
    """
    folder = Path(folder)
    arguments = _read_json_object(folder / runs.RUN_ARGUMENTS)
    task = arguments.get("task") or _read_json_object(folder / runs.METRICS_FILE).get("task")
    try:
        from .data import BUILTIN_TASKS, load_task, load_text_pairs

        if arguments.get("test_file") and Path(arguments["test_file"]).is_file():
            source_column = arguments.get("source_column") or "source"
            target_column = arguments.get("target_column") or "target"
            split = load_text_pairs({"test": arguments["test_file"]}, source_column, target_column)["test"]
        elif task in BUILTIN_TASKS:
            # The held-out splits are drawn before the training ones, so they do not depend on num_train.
            split = load_task(task, seed=int(arguments.get("seed") or 0), num_train=0)["test"]
        else:
            return []
    except (ImportError, ValueError, OSError) as error:
        logger.warning("No examples for the demo (%s).", error)
        return []
    return list(split["source"][:limit])


# ---------------------------------------------------------------------------------------------
# One prediction: output, beams, attention, top-k
# ---------------------------------------------------------------------------------------------


@dataclass
class Beam:
    """One output sequence and its scores: the summed and the per-token mean log-probability."""

    text: str
    log_probability: float
    mean_log_probability: float
    num_tokens: int


@dataclass
class Prediction:
    """What the model did with one source text.

    ``beams`` are :class:`Beam` rows, best first, each with two scores of its own named kind: ``log_probability``
    (the sum over its tokens of log p(token | source, earlier tokens), end token included) and
    ``mean_log_probability`` (that sum over the number of tokens). Greedy search picks each next token by
    probability; beam search ranks finished sequences by ``sum / length ** length_penalty`` (the per-token mean
    when ``length_penalty`` is 1). ``greedy`` is the greedy output when beam search ran (None for greedy), so a
    page can explain when the two disagree. ``attention`` is the stitched attention of the best sequence.
    ``top_k[i]`` lists (token, probability) of the k most likely next tokens at generated position ``i``,
    whose chosen token is ``attention.generated_tokens[i]``. ``label_smoothing`` is the ε the model was
    trained with (§5.4), read from its config.
    """

    source: str
    output: str
    beams: list[Beam]
    attention: AttentionExample
    top_k: list[list[tuple[str, float]]]
    num_beams: int
    greedy: Beam | None = None
    length_penalty: float = 1.0
    label_smoothing: float = 0.0
    vocab_size: int = 0


def _check_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DemoError("The source text is empty; type a text (or pick an example) first.")
    return text


def sequence_scores(model: Any, encoded: Any, sequences: torch.Tensor, texts: Sequence[str]) -> list[Beam]:
    """Score whole output sequences by teacher forcing: one forward pass, then log p of each generated token.

    ``sequences`` start with the decoder start token (as ``generate`` returns them); tokens after the first end
    token are padding and do not count. The scores are the same definition for greedy and beam outputs.
    """
    import torch

    batch = sequences.shape[0]
    source_ids = encoded["input_ids"].expand(batch, -1)
    source_mask = encoded.get("attention_mask")
    if source_mask is not None:
        source_mask = source_mask.expand(batch, -1)
    with torch.no_grad():
        logits = model(input_ids=source_ids, attention_mask=source_mask, decoder_input_ids=sequences[:, :-1]).logits
    targets = sequences[:, 1:]  # (B, T): the token each position predicted
    token_log_probabilities = logits.float().log_softmax(dim=-1).gather(-1, targets[..., None])[..., 0]  # (B, T)
    eos = model.generation_config.eos_token_id
    eos_ids = torch.tensor(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    is_end = torch.isin(targets, eos_ids)
    # Count each token up to and including the first end token.
    counted = (is_end.cumsum(dim=-1) - is_end.long()) == 0  # (B, T)
    beams = []
    for text, log_probabilities, mask in zip(texts, token_log_probabilities, counted):
        total, count = float(log_probabilities[mask].sum()), int(mask.sum())
        beams.append(Beam(text, total, total / max(count, 1), count))
    return beams


def predict(
    demo_model: DemoModel,
    text: str,
    *,
    num_beams: int = 1,
    top_k: int = 5,
    max_new_tokens: int | None = None,
) -> Prediction:
    """Generate from ``text`` (greedy when ``num_beams`` is 1, else beam search) and keep what the page shows."""
    import torch

    from .visualization import attention_from_generation

    text = _check_text(text)
    if not isinstance(num_beams, int) or isinstance(num_beams, bool) or num_beams < 1:
        raise DemoError(f"num_beams={num_beams!r}; expected a positive integer (1 is greedy).")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise DemoError(f"top_k={top_k!r}; expected a positive integer.")
    model, tokenizer = demo_model.model, demo_model.tokenizer
    encoded = tokenizer(text, return_tensors="pt")
    longest = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if longest and encoded["input_ids"].shape[1] > longest:
        raise DemoError(
            f"The source text is {encoded['input_ids'].shape[1]} tokens long; this model reads at most {longest}. "
            "Shorten it."
        )
    if max_new_tokens is None:
        max_new_tokens = getattr(model.generation_config, "max_new_tokens", None) or 64
    length_penalty = float(getattr(model.generation_config, "length_penalty", 1.0) or 1.0)
    beam_kwargs = {"num_beams": num_beams, "num_return_sequences": num_beams, "early_stopping": True,
                   "length_penalty": length_penalty}
    with demo_model.lock, torch.no_grad():
        output = model.generate(
            input_ids=encoded["input_ids"],
            attention_mask=encoded.get("attention_mask"),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            output_attentions=True,
            output_logits=True,
            output_scores=True,
            return_dict_in_generate=True,
            **(beam_kwargs if num_beams > 1 else {"num_beams": 1}),
        )
        texts = tokenizer.batch_decode(output.sequences, skip_special_tokens=True)
        beams = sequence_scores(model, encoded, output.sequences, texts)
        greedy = None
        if num_beams > 1:
            greedy_sequences = model.generate(
                input_ids=encoded["input_ids"], attention_mask=encoded.get("attention_mask"),
                max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
            )
            greedy_texts = tokenizer.batch_decode(greedy_sequences, skip_special_tokens=True)
            greedy = sequence_scores(model, encoded, greedy_sequences, greedy_texts)[0]
    attention = attention_from_generation(
        output, tokenizer, input_ids=encoded["input_ids"], attention_mask=encoded.get("attention_mask"), index=0
    )

    # Top-k from the raw next-token distribution at each step, on the beam the chosen token came from.
    rows = _beam_rows(output, len(attention.generated_tokens))
    k = min(top_k, int(output.logits[0].shape[-1]))
    steps = []
    for step, row in enumerate(rows):
        probabilities = output.logits[step][row].float().softmax(dim=-1)
        values, indices = probabilities.topk(k)
        tokens = tokenizer.convert_ids_to_tokens(indices.tolist())
        steps.append([(token, float(value)) for token, value in zip(tokens, values)])
    label_smoothing = float(getattr(model.config, "label_smoothing", 0.0) or 0.0)
    return Prediction(text, texts[0], beams, attention, steps, num_beams, greedy, length_penalty, label_smoothing,
                      int(output.logits[0].shape[-1]))


def _beam_rows(output: Any, num_generated: int) -> list[int]:
    beam_indices = getattr(output, "beam_indices", None)
    if beam_indices is None:
        return [0] * num_generated
    return [int(beam_indices[0, step]) for step in range(num_generated)]


def _check_choice(name: str, value: int, count: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
        raise DemoError(f"{name}={value!r} is out of range; expected 0 to {count - 1}.")
    return value


def attention_matrix(
    prediction: Prediction, kind: str = "cross", layer: int = -1, head: int | str | None = None
) -> tuple[torch.Tensor, list[str], list[str]]:
    """One (query, key) attention matrix of a prediction, with the query and key token labels.

    ``kind``: "cross" (each generated token over the source), "encoder" or "decoder". ``layer`` -1 is the last.
    ``head`` an index, or None / "mean" for the mean of the heads.
    """
    from .visualization import ATTENTION_KINDS

    if kind not in ATTENTION_KINDS:
        raise DemoError(f"kind={kind!r}; expected one of {sorted(ATTENTION_KINDS)}.")
    example = prediction.attention
    layers = getattr(example, ATTENTION_KINDS[kind][0])
    if not layers:
        raise DemoError(f"This prediction holds no {kind} attention.")
    layer = _check_choice("layer", len(layers) + layer if layer < 0 else layer, len(layers))
    weights = layers[layer][0]  # (H, q, k)
    if head is None or head == MEAN_OF_HEADS:
        matrix = weights.mean(dim=0)  # (q, k)
    else:
        matrix = weights[_check_choice("head", int(head), weights.shape[0])]  # (q, k)
    source, decoder_inputs = example.source_tokens, example.target_tokens
    queries = {"cross": example.generated_tokens, "encoder": source, "decoder": decoder_inputs}[kind]
    keys = {"cross": source, "encoder": source, "decoder": decoder_inputs}[kind]
    return matrix, list(queries), list(keys)


# ---------------------------------------------------------------------------------------------
# What the page shows
# ---------------------------------------------------------------------------------------------


def _shown(token: str) -> str:
    return "\u2423" if token == " " else token


def _cell_colour(weight: float) -> str:
    # White (0) to deep blue (1); text turns white on dark cells.
    shade = int(round(255 * (1.0 - weight)))
    return f"background:rgb({shade},{shade + (255 - shade) // 3},255);color:{'#fff' if weight > 0.55 else '#111'}"


def attention_table_html(matrix: torch.Tensor, query_tokens: Sequence[str], key_tokens: Sequence[str], title: str) -> str:
    """An attention matrix as an HTML heatmap: one row per query token, one column per key token.

    Each cell carries its weight in ``data-weight`` (and in its tooltip), so the page (and its tests) can read it.
    """
    header = "".join(f'<th class="mf-key">{html.escape(_shown(token))}</th>' for token in key_tokens)
    rows = []
    for query, weights in zip(query_tokens, matrix.tolist()):
        cells = "".join(
            f'<td class="mf-cell" data-weight="{weight:.4f}" title="{weight:.3f}" style="{_cell_colour(weight)}">'
            f"{weight:.2f}</td>"
            for weight in weights
        )
        rows.append(f'<tr><th class="mf-query">{html.escape(_shown(query))}</th>{cells}</tr>')
    return (
        f'<div class="mf-attention"><p class="mf-title">{html.escape(title)}</p>'
        f'<table class="mf-table"><thead><tr><th></th>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def attention_view_html(prediction: Prediction | None, kind: str = "cross", layer: int = -1, head: int | str | None = None) -> str:
    if prediction is None:
        return '<p class="mf-empty">Generate an output to see its attention.</p>'
    from .visualization import ATTENTION_KINDS

    matrix, queries, keys = attention_matrix(prediction, kind, layer, head)
    num_layers = len(getattr(prediction.attention, ATTENTION_KINDS[kind][0]))
    shown_layer = num_layers + layer if layer < 0 else layer
    which = "mean of heads" if head is None or head == MEAN_OF_HEADS else f"head {head}"
    axes = {"cross": "rows: generated tokens; columns: source tokens",
            "encoder": "rows and columns: source tokens",
            "decoder": "rows and columns: decoder inputs (a row sees only itself and earlier columns)"}[kind]
    return attention_table_html(matrix, queries, keys, f"{KIND_LABELS[kind]}, layer {shown_layer}, {which} ({axes})")


def label_smoothing_note(prediction: Prediction | None) -> str:
    """Why a correct, confident answer's top-1 probability stops short of 1: the §5.4 training target."""
    if prediction is None:
        return ""
    epsilon = prediction.label_smoothing
    if epsilon <= 0:
        return ("This model was trained without label smoothing (ε = 0), so its training target for each token was "
                "the right token with probability 1; a confident answer's top-1 probability can come close to 1.")
    vocabulary = prediction.vocab_size
    target = 1 - epsilon + epsilon / vocabulary if vocabulary else 1 - epsilon
    return (
        f"Why the top-1 probabilities stop near {target:.2f}: this model was trained with label smoothing ε = "
        f"{epsilon:g} (§5.4). Its training target for each token is not the right token with probability 1 but "
        f"1 − ε + ε/V = {target:.3f} on the right token and ε/V on every other one of the V = {vocabulary} tokens, "
        "so a well-trained model keeps a little probability spread over the vocabulary even when it is right "
        "(a slightly higher top-1 is a model that has not matched that target exactly)."
    )


def top_k_html(prediction: Prediction | None) -> str:
    """Per generated position: the chosen token, then the k most likely next tokens with their probabilities,
    after a sentence on label smoothing (which sets how high a correct top-1 probability goes)."""
    if prediction is None:
        return ""
    rows = []
    for position, (chosen, candidates) in enumerate(zip(prediction.attention.generated_tokens, prediction.top_k)):
        cells = "".join(
            f'<td class="{"mf-chosen" if token == chosen else "mf-other"}">{html.escape(_shown(token))} '
            f"<small>{probability:.3f}</small></td>"
            for token, probability in candidates
        )
        rows.append(f'<tr><th>{position}</th><th class="mf-generated">{html.escape(_shown(chosen))}</th>{cells}</tr>')
    k = len(prediction.top_k[0]) if prediction.top_k else 0
    header = "".join(f"<th>#{rank + 1}</th>" for rank in range(k))
    return (
        f'<p class="mf-note" id="mf-label-smoothing">{html.escape(label_smoothing_note(prediction))}</p>'
        '<table class="mf-topk"><thead><tr><th>position</th><th>generated</th>'
        f'{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


BEAM_HEADERS = ["rank", "output", "log-probability (sum over its tokens)", "per-token mean log-probability", "tokens"]


def beams_rows(prediction: Prediction | None) -> list[list[Any]]:
    """Rows of the beams table; each score column has one definition (see BEAM_HEADERS) for greedy and beams."""
    if prediction is None:
        return []
    return [
        [rank + 1, beam.text, round(beam.log_probability, 4), round(beam.mean_log_probability, 4), beam.num_tokens]
        for rank, beam in enumerate(prediction.beams)
    ]


def decoding_note(prediction: Prediction | None) -> str:
    """How the outputs were chosen; when beam search and greedy disagree, why (in the two scores shown)."""
    if prediction is None:
        return ""
    if prediction.greedy is None:
        return ("Greedy search: at each step the single most likely next token (the top-1 column below). "
                "Scores are log-probabilities under the model: the sum over the output's tokens (end token "
                "included) and that sum divided by the number of tokens.")
    best, greedy, alpha = prediction.beams[0], prediction.greedy, prediction.length_penalty
    ranking = f"sum / length^{alpha:g}" + (" (the per-token mean)" if alpha == 1 else "")
    intro = (f"Beam search with {prediction.num_beams} beams keeps the {prediction.num_beams} most likely partial "
             f"outputs at every step and ranks the finished ones by {ranking} (length_penalty = {alpha:g}).")
    if greedy.text == best.text:
        return intro + " Here it agrees with greedy search."
    scores = (f"greedy wrote “{greedy.text}” (sum {greedy.log_probability:.4f}, mean "
              f"{greedy.mean_log_probability:.4f}); beam search chose “{best.text}” (sum "
              f"{best.log_probability:.4f}, mean {best.mean_log_probability:.4f}).")
    if best.log_probability > greedy.log_probability:
        why = ("Beam search found an output the model finds more likely as a whole: greedy committed to the most "
               "likely token at each step, while a token that looked less likely at first led beam search to far "
               "more confident later tokens. More likely under the model is not the same as right: a model that "
               "is confidently wrong on a few tokens misleads beam search more than greedy search.")
    elif best.num_tokens != greedy.num_tokens:
        why = ("Its summed log-probability is lower than greedy's, but it has a different number of tokens and "
               "beam search ranks by the length-normalised score, so the length penalty decided.")
    else:
        why = ("Greedy's output scores higher but fell out of the beams before it finished (beam search stops "
               "once it has enough finished outputs), so beam search is not guaranteed to find it.")
    return f"{intro} Greedy and beam search disagree: {scores} {why}"


# ---------------------------------------------------------------------------------------------
# The Gradio page
# ---------------------------------------------------------------------------------------------

PAGE_CSS = """
.mf-table, .mf-topk { border-collapse: collapse; font-size: 13px; }
.mf-table th, .mf-table td, .mf-topk th, .mf-topk td { border: 1px solid #ddd; padding: 2px 5px; text-align: center; }
.mf-table td.mf-cell { min-width: 2.6em; }
.mf-topk td.mf-chosen { font-weight: 700; background: #e8f0ff; }
.mf-title { font-weight: 600; margin: 0.3em 0; }
.mf-note { max-width: 60em; margin: 0.3em 0 0.6em; }
"""


def import_gradio() -> Any:
    """Import Gradio with its network features off, or explain how to install it."""
    for name, value in OFFLINE_GRADIO_ENV.items():
        os.environ.setdefault(name, value)
    try:
        import gradio
    except ImportError as error:
        raise ImportError(
            f"miniformer demo needs Gradio, which is not installed ({error}). Install the demo extra: {DEMO_INSTALL_HINT}"
        ) from error
    return gradio


def build_app(demo_model: DemoModel, *, top_k: int = 5) -> Any:
    """The Gradio page for ``demo_model``; ``app.launch(...)`` or :func:`launch` serves it."""
    gr = import_gradio()
    layer_choices = [str(layer) for layer in range(demo_model.num_layers)]
    head_choices = [MEAN_OF_HEADS] + [str(head) for head in range(demo_model.num_heads)]
    kind_choices = [(label, kind) for kind, label in KIND_LABELS.items()]

    def run(text: str, decoding: str, beams: float, kind: str, layer: str, head: str):
        try:
            prediction = predict(demo_model, text, num_beams=int(beams) if decoding == "beam search" else 1, top_k=top_k)
        except DemoError as error:
            raise gr.Error(str(error)) from error
        view = attention_view_html(prediction, kind, int(layer), head)
        return (prediction.output, beams_rows(prediction), decoding_note(prediction), view, top_k_html(prediction),
                prediction)

    def redraw(prediction: Prediction | None, kind: str, layer: str, head: str) -> str:
        return attention_view_html(prediction, kind, int(layer), head)

    with gr.Blocks(title=f"Miniformer: {demo_model.name}", analytics_enabled=False) as app:
        gr.Markdown(
            f"## Miniformer attention: `{demo_model.name}`\n"
            "Type a source text and generate. The tables show where each generated token looked in the source "
            "(cross-attention, §3.2.3), how the encoder and decoder attend to themselves, and the model's top "
            f"{top_k} next tokens at every step."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                source = gr.Textbox(label="Source text", elem_id="mf-source", lines=1,
                                    value=demo_model.examples[0] if demo_model.examples else "")
                if demo_model.examples:
                    gr.Examples(examples=[[example] for example in demo_model.examples], inputs=[source],
                                label="Held-out examples (never seen in training)")
            with gr.Column(scale=2):
                decoding = gr.Radio(["greedy", "beam search"], value="greedy", label="Decoding", elem_id="mf-decoding")
                beams = gr.Slider(2, 8, value=4, step=1, label="Beams (beam search)", elem_id="mf-beams")
                submit = gr.Button("Generate", variant="primary", elem_id="mf-generate")
        output = gr.Textbox(label="Output (best sequence)", elem_id="mf-output", interactive=False)
        beam_table = gr.Dataframe(headers=BEAM_HEADERS, label="Outputs and their scores (log-probabilities under the model)",
                                  elem_id="mf-beams-table", interactive=False)
        note = gr.Markdown("", elem_id="mf-decoding-note")
        with gr.Row():
            kind = gr.Radio(kind_choices, value="cross", label="Attention", elem_id="mf-kind")
            layer = gr.Radio(layer_choices, value=layer_choices[-1], label="Layer", elem_id="mf-layer")
            head = gr.Radio(head_choices, value=MEAN_OF_HEADS, label="Head", elem_id="mf-head")
        attention_view = gr.HTML(attention_view_html(None), elem_id="mf-attention")
        gr.Markdown("### Step by step: the most likely next tokens at each generated position")
        top_k_view = gr.HTML("", elem_id="mf-topk")

        inputs = [source, decoding, beams, kind, layer, head]
        outputs = [output, beam_table, note, attention_view, top_k_view, state]
        submit.click(run, inputs, outputs, api_name="predict")
        source.submit(run, inputs, outputs, api_name=False)
        for picker in (kind, layer, head):
            picker.change(redraw, [state, kind, layer, head], [attention_view], api_name=False)
    return app


def launch(
    demo_model: DemoModel,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = DEFAULT_PORT,
    share: bool = False,
    block: bool = True,
    quiet: bool = True,
) -> tuple[Any, str]:
    """Serve the page; returns (app, local URL). ``block=False`` returns at once (``app.close()`` stops it)."""
    gr = import_gradio()
    app = build_app(demo_model)
    app.queue(default_concurrency_limit=1, max_size=64)
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        quiet=quiet,
        show_error=True,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        theme=gr.themes.Default(),  # its fonts are served by Gradio itself, not a font CDN
        css=PAGE_CSS,
    )
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return app, local_url


# ---------------------------------------------------------------------------------------------
# Checks of the serving address (the command line's `--host` and `--port` call these)
# ---------------------------------------------------------------------------------------------


def check_port(port: Any) -> int:
    """A TCP port number 0-65535 (0: the first free port from the default); anything else is a `DemoError`."""
    try:
        number = int(str(port).strip())
    except ValueError:
        raise DemoError(f"port {port!r} is not a number; expected an integer from 1 to 65535 (0: the first free port).") from None
    if not 0 <= number <= 65535:
        raise DemoError(f"port {number} is out of range; expected 1 to 65535 (0: the first free port).")
    return number


def check_host(host: Any) -> str:
    """An address to listen on: an IP address or a host name; a malformed IPv4 address is a `DemoError`.

    Only the form is checked here (no name lookup, so it is quick and offline); :func:`check_host_resolves`
    asks the system resolver just before serving."""
    import ipaddress

    text = str(host).strip() if host is not None else ""
    if not text:
        raise DemoError("The host is empty; expected an address such as 127.0.0.1 (this machine only) or 0.0.0.0 (all).")
    if all(part.isdigit() for part in text.split(".")):  # looks like IPv4: it must be one
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise DemoError(
                f"host {text} is not a valid IP address (four numbers 0-255, such as 127.0.0.1); check --host."
            ) from None
    elif ":" in text:
        try:
            ipaddress.IPv6Address(text.strip("[]"))
        except ValueError:
            raise DemoError(f"host {text} is not a valid IPv6 address (such as ::1); check --host.") from None
    return text


def check_host_resolves(host: str, port: int | None) -> None:
    """Refuse a host name this machine cannot resolve, before Gradio blames the port for it."""
    import socket

    try:
        socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise DemoError(
            f"host {host} cannot be resolved on this machine ({error}); expected an IP address such as 127.0.0.1 "
            "or a host name this machine knows."
        ) from None


__all__ = [
    "DemoError",
    "DemoModel",
    "Prediction",
    "Beam",
    "BEAM_HEADERS",
    "check_host",
    "check_host_resolves",
    "check_port",
    "decoding_note",
    "label_smoothing_note",
    "sequence_scores",
    "attention_matrix",
    "attention_table_html",
    "attention_view_html",
    "beams_rows",
    "build_app",
    "held_out_examples",
    "import_gradio",
    "launch",
    "load_demo_model",
    "predict",
    "resolve_model_folder",
    "top_k_html",
]
