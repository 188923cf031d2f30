"""support_miniformer.py: the checks of a checkpoint folder every way in shares (checksums.json, non-finite
weights), and the code files a save writes."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_config
from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
from miniformer_hf.support_miniformer import (CorruptedCheckpointError, code_files_named_in, verify_weight_checksums)


def sha256(path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_folder(tmp_path):
    """A saved model with the checksums.json `miniformer train` writes."""
    torch.manual_seed(0)
    folder = tmp_path / "run"
    MiniformerForConditionalGeneration(tiny_config()).save_pretrained(folder)
    (folder / "checksums.json").write_text(json.dumps({"model.safetensors": sha256(folder / "model.safetensors")}))
    return folder


def corrupt(path, offset=200):
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def test_intact_folder_loads_and_a_folder_without_checksums_is_not_checked(run_folder, tmp_path):
    assert verify_weight_checksums(run_folder) is True
    MiniformerForConditionalGeneration.from_pretrained(run_folder)
    assert verify_weight_checksums(tmp_path) is False


def test_corrupted_weights_are_refused_by_from_pretrained_and_the_pipeline(run_folder):
    from transformers import AutoModelForSeq2SeqLM, pipeline

    corrupt(run_folder / "model.safetensors", offset=-100)
    for load in (lambda: MiniformerForConditionalGeneration.from_pretrained(run_folder),
                 lambda: AutoModelForSeq2SeqLM.from_pretrained(run_folder),
                 lambda: pipeline(model=str(run_folder), trust_remote_code=True)):
        with pytest.raises(CorruptedCheckpointError, match=r"model.safetensors is corrupted.*checksums.json"):
            load()


@pytest.mark.parametrize("content", ["[1, 2]", "{}", "garbage{", '{"model.safetensors": 5}', '"text"'])
def test_a_malformed_checksums_record_is_one_clear_line(run_folder, content):
    (run_folder / "checksums.json").write_text(content)
    with pytest.raises(CorruptedCheckpointError, match="checksums.json") as caught:
        MiniformerForConditionalGeneration.from_pretrained(run_folder)
    assert "\n" not in str(caught.value)


def test_a_file_listed_but_missing_is_named(run_folder):
    (run_folder / "checksums.json").write_text(json.dumps({"model.safetensors": "sha256:0", "extra.safetensors": "x"}))
    with pytest.raises(CorruptedCheckpointError, match="is corrupted|is missing"):
        verify_weight_checksums(run_folder)
    (run_folder / "checksums.json").write_text(json.dumps({"../model.safetensors": "sha256:0"}))
    with pytest.raises(CorruptedCheckpointError, match="is missing"):
        verify_weight_checksums(run_folder)


def test_non_finite_weights_are_logged_on_load_and_refused_by_the_pipeline(tmp_path, caplog):
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from test_sharing import build_tokenizer

    tokenizer = build_tokenizer()
    model = MiniformerForConditionalGeneration(tiny_config(vocab_size=len(tokenizer)))
    with torch.no_grad():
        model.model.encoder.layers[0].ffn.fc1.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    tokenizer.save_pretrained(tmp_path / "nan")
    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            MiniformerForConditionalGeneration.from_pretrained(tmp_path / "nan")
    finally:
        hf_logging.disable_propagation()
    assert any("NaN or infinite" in record.getMessage() for record in caplog.records)
    with pytest.raises(ValueError, match="NaN or infinity"):
        pipeline(model=str(tmp_path / "nan"), trust_remote_code=True)


def test_code_files_named_in_reads_auto_map_and_custom_pipelines():
    config = MiniformerConfig()
    config.custom_pipelines = {"text-generation": {"impl": "pipeline_miniformer.MiniformerSeq2SeqPipeline"}}
    config.auto_map = {**config.auto_map, "AutoModel": "owner/repo--modeling_miniformer.MiniformerModel"}
    assert set(code_files_named_in(config)) == {"configuration_miniformer.py", "modeling_miniformer.py",
                                                "heads_miniformer.py", "pipeline_miniformer.py"}


def test_paper_file_and_its_satellites_import_nothing_back():
    import ast
    from pathlib import Path

    import miniformer_hf

    folder = Path(miniformer_hf.__path__[0])
    for name in ("configuration_miniformer", "kernels_miniformer", "support_miniformer", "modeling_miniformer"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
        assert not relative & {"modeling_miniformer", "heads_miniformer", "pipeline_miniformer"}, (name, relative)
    modeling = (folder / "modeling_miniformer.py").read_text()
    assert "def __getattr__" not in modeling
