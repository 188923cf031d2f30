"""Tests for miniformer_hf.metrics: exact match, character error rate, BLEU and chrF of generated text."""

from __future__ import annotations

import pytest

from miniformer_hf.metrics import character_error_rate, compute_text_metrics, edit_distance, exact_match


def test_text_metrics():
    assert (
        edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3 and edit_distance("abc", "abc") == 0
    )
    assert exact_match(["1998-03-03", "x"], ["1998-03-03", "y"]) == 0.5
    assert character_error_rate(["abcd"], ["abce"]) == pytest.approx(0.25)
    metrics = compute_text_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert metrics["exact_match"] == 1.0 and metrics["cer"] == 0.0 and metrics["bleu"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="one prediction per reference"):
        compute_text_metrics(["a"], [])
