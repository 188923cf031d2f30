"""Tests for miniformer_hf.run_report: what a finished run writes besides its weights (here: the loss
curve; the model card and metrics.json are checked on real run folders in test_cli and test_sharing)."""

from __future__ import annotations


def test_loss_curve_has_a_learning_rate_panel():
    from miniformer_hf.run_report import loss_curve_figure

    log = [{"step": 10, "loss": 3.0, "learning_rate": 1e-3}, {"step": 20, "loss": 2.0, "learning_rate": 5e-4},
           {"step": 20, "eval_loss": 2.1, "eval_exact_match": 0.4}]  # fmt: skip
    figure = loss_curve_figure(log)
    rate_axes = [axes for axes in figure.axes if axes.get_ylabel() == "learning rate"]
    assert len(rate_axes) == 1
    assert [list(line.get_ydata()) for line in rate_axes[0].get_lines()] == [[1e-3, 5e-4]]
    assert {axes.get_ylabel() for axes in figure.axes} >= {"cross-entropy", "exact match", "learning rate"}
