"""Scores of generated text: exact match, character error rate, BLEU and chrF.

`METRIC_NAMES` is the one list of what an evaluation reports. Training writes each as
``eval_<name>`` / ``validation_<name>`` into ``metrics.json``, ``miniformer evaluate`` prints them, and
the model card shows them; ``loss`` (`EVAL_METRIC_NAMES`) comes from the trainer, not from the text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sacrebleu

# Scores of generated text, as `compute_text_metrics` returns them (exact_match and cer as fractions,
# bleu and chrf on sacrebleu's 0-100 scale).
METRIC_NAMES = ("exact_match", "cer", "bleu", "chrf")
# What a trainer's evaluation reports: the text scores and the (label-smoothed) cross-entropy.
EVAL_METRIC_NAMES = METRIC_NAMES + ("loss",)

__all__ = [
    "EVAL_METRIC_NAMES",
    "METRIC_NAMES",
    "Seq2SeqMetrics",
    "bleu_signature",
    "character_error_rate",
    "compute_text_metrics",
    "edit_distance",
    "exact_match",
]


def edit_distance(hypothesis: str, reference: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions of characters)."""
    if len(hypothesis) < len(reference):
        hypothesis, reference = reference, hypothesis
    previous = list(range(len(reference) + 1))
    for i, hyp_char in enumerate(hypothesis, start=1):
        current = [i]
        for j, ref_char in enumerate(reference, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (hyp_char != ref_char)))
        previous = current
    return previous[-1]


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions equal to their reference after stripping surrounding whitespace."""
    _check_lengths(predictions, references)
    if not references:
        return 0.0
    return sum(p.strip() == r.strip() for p, r in zip(predictions, references)) / len(references)


def character_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Character error rate: total edit distance over total reference characters (0 is perfect)."""
    _check_lengths(predictions, references)
    total = sum(len(r) for r in references)
    errors = sum(edit_distance(p, r) for p, r in zip(predictions, references))
    return errors / max(total, 1)


def compute_text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``exact_match`` and ``cer`` as fractions, ``bleu`` and ``chrf`` on sacrebleu's 0-100 scale."""
    predictions, references = list(predictions), list(references)
    _check_lengths(predictions, references)
    return {
        "exact_match": exact_match(predictions, references),
        "cer": character_error_rate(predictions, references),
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "chrf": sacrebleu.corpus_chrf(predictions, [references]).score,
    }


def _check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(references)} references; expected one prediction per reference."
        )


class Seq2SeqMetrics:
    """``compute_metrics`` for `Seq2SeqTrainer` with ``predict_with_generate=True``: decodes the
    generated ids with ``tokenizer`` and scores them with `compute_text_metrics`.

    The references are the raw target texts when ``references`` holds them (the trainer of this
    module sets it to the ``target`` column of the dataset being evaluated), so a target the
    tokenizer cannot encode (characters it never saw) counts as wrong, exactly as in
    ``miniformer evaluate``; otherwise they are the decoded labels.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.references: list[str] | None = None

    def decode(self, ids: np.ndarray) -> list[str]:
        ids = np.where(np.asarray(ids) < 0, self.tokenizer.pad_token_id, ids)  # -100 marks padding in labels
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def __call__(self, eval_prediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        if predictions.ndim == 3:
            raise ValueError(
                "compute_metrics got logits, not generated ids; expected predict_with_generate=True in the "
                "training arguments (TransformerTrainer sets it)."
            )
        decoded = self.decode(predictions)
        if self.references is not None and len(self.references) == len(decoded):
            return compute_text_metrics(decoded, self.references)
        return compute_text_metrics(decoded, self.decode(eval_prediction.label_ids))


def bleu_signature() -> str:
    """sacreBLEU's signature of the BLEU that `compute_text_metrics` reports (one reference, its defaults:
    13a tokenization of the detokenized text, mixed case, exponential smoothing), for reporting with scores."""
    bleu = sacrebleu.BLEU()
    bleu.corpus_score(["a"], [["a"]])  # the signature names the number of references, known after scoring
    return str(bleu.get_signature())
