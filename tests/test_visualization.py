"""miniformer_hf.visualization: every view of one example into a folder, the `miniformer visualize`
command, and a light import. The views themselves: test_attention, test_attention_plots, test_attention_html."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from attention_fixtures import model, tokenizer  # noqa: F401 (fixtures)
from miniformer_hf import visualization


def test_importing_the_module_loads_no_plotting_library():
    code = (
        "import sys, miniformer_hf.visualization; "
        "loaded = [m for m in ('matplotlib', 'bertviz', 'mpld3', 'IPython') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- One example into a folder, and the command line ----------------------------------------------


def test_visualize_example_writes_html_and_png(model, tokenizer, tmp_path):
    written = visualization.visualize_example(
        model, tokenizer, "hello world", tmp_path / "out", target_text="salut", max_new_tokens=3
    )
    assert {"generation_html", "alignment_png", "attention_html"} <= set(written)
    assert {"attention_encoder_png", "attention_decoder_png", "attention_cross_png"} <= set(written)
    assert {"generation_encoder_png", "generation_decoder_png", "generation_cross_png"} <= set(written)
    for name, path in written.items():
        assert path.is_file() and path.parent == tmp_path / "out", name
        if path.suffix == ".png":
            assert path.read_bytes()[:4] == b"\x89PNG", name


def test_miniformer_visualize_command(model, tokenizer, tmp_path, caplog):
    run_dir = tmp_path / "run"
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    from miniformer_hf.commands import visualize as visualize_command
    from miniformer_hf.errors import MiniformerError

    parser = argparse.ArgumentParser(prog="miniformer visualize")
    visualize_command.add_arguments(parser)
    arguments = parser.parse_args(
        ["--model", str(run_dir), "hello", "--out", str(tmp_path / "views"), "--max-new-tokens", "2"]
    )
    with caplog.at_level("INFO", logger="miniformer_hf.commands.visualize"):
        assert visualize_command.run(arguments) == 0
    assert (tmp_path / "views" / "generation.html").is_file()
    assert (tmp_path / "views" / "generation_alignment.png").is_file()
    assert not (tmp_path / "views" / "attention.html").exists()  # no --target given
    assert "generation.html" in caplog.text

    missing = parser.parse_args(["--model", str(tmp_path / "nope"), "x", "--out", str(tmp_path / "v")])
    with pytest.raises(MiniformerError, match="no such folder"):  # raised like every command, exit code 1
        visualize_command.run(missing)
    assert not (tmp_path / "v").exists()


def test_teacher_forced_views_equal_to_the_generated_ones_are_written_once(model, tokenizer, tmp_path, monkeypatch):
    # issue 21.9: when the model generates the target exactly, teacher forcing feeds the same decoder inputs.
    generated = visualization.generate_with_attention(model, tokenizer, "hello world", max_new_tokens=3)
    monkeypatch.setattr(visualization, "attention_example", lambda *args, **kwargs: generated)
    written = visualization.visualize_example(
        model, tokenizer, "hello world", tmp_path / "out", target_text="anything", max_new_tokens=3
    )
    assert not any(name.startswith("attention_") for name in written)
    assert not list((tmp_path / "out").glob("attention*"))
    assert "generated the target exactly" in (tmp_path / "out" / "generation.html").read_text(encoding="utf-8")


def test_a_failed_generation_leaves_no_output_folder(model, tokenizer, tmp_path):
    with pytest.raises(Exception):
        visualization.visualize_example(model, tokenizer, "hello", tmp_path / "out", max_new_tokens=3, num_beams=0)
    assert not (tmp_path / "out").exists()
