"""Export of the default model (fast_kernels=True, "sdpa") with dynamic shapes: torch.export, and ONNX run by
onnxruntime, each equal to eager at two batch sizes and two sequence lengths (one with source padding)."""

from __future__ import annotations

import pytest
import torch

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export is tested with the test extra: pip install -e '.[test]'")
pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (the test extra)")


class Seq2SeqLogits(torch.nn.Module):
    """The seq2seq head as an exporter sees it: tensors in, logits out (no cache)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                          use_cache=False).logits


def inputs(batch: int, src_len: int, tgt_len: int, padded: bool, seed: int):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 1000, (batch, src_len), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    if padded:
        attention_mask[0, -3:] = 0
        input_ids[0, -3:] = 0
    decoder_input_ids = torch.randint(3, 1000, (batch, tgt_len), generator=generator)
    return input_ids, attention_mask, decoder_input_ids


CASES = [(2, 9, 5, False), (3, 13, 7, True)]  # (batch, source length, target length, source padding)


def exported_model():
    from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration

    torch.manual_seed(0)
    config = MiniformerConfig()  # the practitioner's defaults: fast kernels and "sdpa"
    assert config.fast_kernels
    model = MiniformerForConditionalGeneration(config).eval()
    assert model.config._attn_implementation == "sdpa"
    return Seq2SeqLogits(model).eval(), None


@pytest.fixture(scope="module")
def exported():
    wrapper, _ = exported_model()
    batch, source, target = torch.export.Dim("batch"), torch.export.Dim("source"), torch.export.Dim("target")
    shapes = {"input_ids": {0: batch, 1: source}, "attention_mask": {0: batch, 1: source},
              "decoder_input_ids": {0: batch, 1: target}}
    program = torch.export.export(wrapper, inputs(2, 9, 5, False, 0), dynamic_shapes=shapes)
    return wrapper, program


@pytest.mark.parametrize("case", CASES)
def test_dynamic_torch_export_equals_eager(exported, case):
    wrapper, program = exported
    example = inputs(*case, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*example), wrapper(*example), atol=1e-4, rtol=0)


def test_onnx_export_run_by_onnxruntime_equals_eager(exported, tmp_path):
    wrapper, program = exported
    path = tmp_path / "miniformer.onnx"
    torch.onnx.export(program, dynamo=True, verbose=False).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]
    assert names == ["input_ids", "attention_mask", "decoder_input_ids"]
    for case in CASES:
        example = inputs(*case, seed=2)
        (logits,) = session.run(None, {name: tensor.numpy() for name, tensor in zip(names, example)})
        with torch.no_grad():
            expected = wrapper(*example)
        assert logits.shape == tuple(expected.shape)
        torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=0)


def test_legacy_onnx_exporter_keeps_the_padding_mask(tmp_path):
    """The TorchScript-tracing exporter (dynamo=False), traced on an unpadded batch, still serves padded ones."""
    import warnings

    wrapper, _ = exported_model()
    path = tmp_path / "legacy.onnx"
    names = ["input_ids", "attention_mask", "decoder_input_ids"]
    axes = {"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"},
            "decoder_input_ids": {0: "batch", 1: "target"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        torch.onnx.export(wrapper, inputs(2, 9, 5, False, 0), str(path), dynamo=False, input_names=names,
                          dynamic_axes=axes)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for case in CASES:
        example = inputs(*case, seed=3)
        (logits,) = session.run(None, {name: tensor.numpy() for name, tensor in zip(names, example)})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(logits), wrapper(*example), atol=1e-4, rtol=0)
