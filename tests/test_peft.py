"""LoRA with peft (the optional `peft` extra): the README recipe runs as written, the adapter reloads with
AutoPeftModelForSeq2SeqLM (here and in a fresh process without miniformer_hf), and merging changes no output."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from test_readme import readme_code

peft = pytest.importorskip("peft", reason="LoRA needs the optional extra: pip install -e '.[peft]'")

INPUTS = ["a b c d", "e f"]


@pytest.fixture
def quickstart_namespace():
    """What the README quick start leaves behind (`model`, `tokenizer`, `train_dataset`), at a tiny size."""
    from conftest import tiny_config

    from miniformer_hf import MiniformerForConditionalGeneration
    from miniformer_hf.data import make_toy_dataset
    from miniformer_hf.tokenization import tokenize_pairs, train_char_tokenizer

    torch.manual_seed(0)
    data = make_toy_dataset("reverse", num_train=200, num_validation=10, num_test=10)
    tokenizer = train_char_tokenizer(list(data["train"]["source"]) + list(data["train"]["target"]))
    model = MiniformerForConditionalGeneration(tiny_config(vocab_size=len(tokenizer)))
    return {"__name__": "__readme__", "model": model, "tokenizer": tokenizer,
            "train_dataset": tokenize_pairs(data["train"], tokenizer)}


def test_readme_lora_recipe_trains_saves_reloads_and_merges(quickstart_namespace, tmp_path, monkeypatch):
    from miniformer_hf import MiniformerForConditionalGeneration

    monkeypatch.chdir(tmp_path)
    namespace = quickstart_namespace
    exec(compile(readme_code("lora"), "README.md LoRA", "exec"), namespace)
    tokenizer, lora_model, merged = namespace["tokenizer"], namespace["lora_model"].eval(), namespace["merged"].eval()

    # The adapter is all that was saved, and it names its base model.
    adapter = tmp_path / "reverse-lora"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {path.name for path in adapter.iterdir()}
    assert not (adapter / "model.safetensors").exists()
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert adapter_config["task_type"] == "SEQ_2_SEQ_LM" and adapter_config["base_model_name_or_path"] == "reverse-model"
    assert set(adapter_config["target_modules"]) == {"q_proj", "v_proj"}
    assert type(merged) is MiniformerForConditionalGeneration, "merge_and_unload gives back a plain Miniformer"

    inputs = tokenizer(INPUTS, return_tensors="pt", padding=True)
    base = MiniformerForConditionalGeneration.from_pretrained(tmp_path / "reverse-model").eval()
    with torch.no_grad():
        trained = lora_model.generate(**inputs, max_new_tokens=8)
        decoder_input_ids = trained
        lora_logits = lora_model(**inputs, decoder_input_ids=decoder_input_ids).logits
        merged_logits = merged(**inputs, decoder_input_ids=decoder_input_ids).logits
        base_logits = base(**inputs, decoder_input_ids=decoder_input_ids).logits
        assert torch.equal(merged.generate(**inputs, max_new_tokens=8), trained)
    assert not torch.allclose(lora_logits, base_logits, atol=1e-3), "the LoRA steps changed nothing"
    # W x + B A x versus (W + B A) x: equal up to float rounding.
    torch.testing.assert_close(merged_logits, lora_logits, atol=1e-5, rtol=1e-5)
    torch.save({"inputs": dict(inputs), "generations": trained, "logits": lora_logits}, tmp_path / "expected.pt")

    # A fresh process without miniformer_hf: the adapter, its base model's code (trust_remote_code), the same outputs.
    stranger = textwrap.dedent('''
        import sys
        class RefuseMiniformerHf:
            def find_spec(self, name, path=None, target=None):
                if name == "miniformer_hf" or name.startswith("miniformer_hf."):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, RefuseMiniformerHf())
        import torch
        torch.set_num_threads(1)
        from peft import AutoPeftModelForSeq2SeqLM
        expected = torch.load("expected.pt")
        model = AutoPeftModelForSeq2SeqLM.from_pretrained("reverse-lora", trust_remote_code=True).eval()
        with torch.no_grad():
            generations = model.generate(**expected["inputs"], max_new_tokens=8)
            logits = model(**expected["inputs"], decoder_input_ids=expected["generations"]).logits
        assert torch.equal(generations, expected["generations"]), (generations, expected["generations"])
        torch.testing.assert_close(logits, expected["logits"], atol=1e-6, rtol=1e-6)
        assert not any(name.startswith("miniformer_hf") for name in sys.modules)
        print("STRANGER OK")
    ''')
    completed = subprocess.run([sys.executable, "-I", "-c", stranger], cwd=tmp_path, capture_output=True, text=True,
                               timeout=240, stdin=subprocess.DEVNULL, env={"HF_HUB_OFFLINE": "1", "PATH": "",
                                                                           "HF_HOME": str(tmp_path / "hf_home")})
    assert "STRANGER OK" in completed.stdout, completed.stderr[-3000:]
