"""The seq2seq pipeline (miniformer_hf/pipeline_miniformer.py): in this process, and for a stranger who loads a pushed
checkpoint with ``pipeline(model=repo_id, trust_remote_code=True)`` over the local hub, without ``miniformer_hf``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import pipeline

import miniformer_hf
from miniformer_hf import MiniformerForCausalLM, MiniformerForConditionalGeneration, MiniformerSeq2SeqPipeline
from miniformer_hf.pipeline_miniformer import CUSTOM_PIPELINES, MiniformerPipelineError
from test_sharing import (  # noqa: F401 - fixtures: the local hub, this process pointed at it, a trained model
    build_tokenizer,
    hub,
    hub_client,
    tokenizer,
    trained_model,
)

PACKAGE_DIR = Path(miniformer_hf.__path__[0])
INPUTS = ["123456", "908172", "5555"]


def expected_generations(model, tokenizer, texts, **generate_kwargs) -> list[str]:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        output = model.generate(**batch, **generate_kwargs)
    return tokenizer.batch_decode(output, skip_special_tokens=True)


# --------------------------------------------------------------------------------------------------------------------
# In this process
# --------------------------------------------------------------------------------------------------------------------


def test_pipeline_matches_generate_single_batched_and_with_beams(trained_model, tokenizer):
    generator = pipeline(miniformer_hf.PIPELINE_TASK, model=trained_model, tokenizer=tokenizer, device="cpu")
    assert isinstance(generator, MiniformerSeq2SeqPipeline)
    greedy = expected_generations(trained_model, tokenizer, INPUTS, max_new_tokens=8)
    assert any(greedy), "the trained model should generate something, or the comparison proves little"
    assert generator(INPUTS[0], max_new_tokens=8) == [{"generated_text": greedy[0]}]
    for batch_size in (1, 2):
        outputs = generator(INPUTS, max_new_tokens=8, batch_size=batch_size)
        assert outputs == [[{"generated_text": text}] for text in greedy]
    beams = expected_generations(trained_model, tokenizer, INPUTS, max_new_tokens=8, num_beams=3,
                                 num_return_sequences=2)
    outputs = generator(INPUTS, max_new_tokens=8, num_beams=3, num_return_sequences=2, batch_size=2)
    assert [record["generated_text"] for records in outputs for record in records] == beams


def test_generation_parameters_at_construction_and_per_call(trained_model, tokenizer):
    generator = MiniformerSeq2SeqPipeline(model=trained_model, tokenizer=tokenizer, max_new_tokens=2)
    short = generator(INPUTS[0])[0]["generated_text"]
    assert len(short) <= 2
    assert generator(INPUTS[0], max_new_tokens=8)[0]["generated_text"] == expected_generations(
        trained_model, tokenizer, INPUTS[:1], max_new_tokens=8)[0]
    torch.manual_seed(0)
    sampled = generator(INPUTS, do_sample=True, top_k=3, max_new_tokens=6, num_return_sequences=3)
    assert [len(records) for records in sampled] == [3, 3, 3]


def test_return_tensors_and_return_text(trained_model, tokenizer):
    generator = MiniformerSeq2SeqPipeline(model=trained_model, tokenizer=tokenizer)
    [record] = generator(INPUTS[0], max_new_tokens=8, return_tensors=True, return_text=False)
    assert set(record) == {"generated_token_ids"}
    assert tokenizer.decode(record["generated_token_ids"], skip_special_tokens=True) == expected_generations(
        trained_model, tokenizer, INPUTS[:1], max_new_tokens=8)[0]
    [record] = generator(INPUTS[0], max_new_tokens=8, return_tensors=True)
    assert set(record) == {"generated_token_ids", "generated_text"}


def test_num_workers_and_generators(trained_model, tokenizer):
    generator = MiniformerSeq2SeqPipeline(model=trained_model, tokenizer=tokenizer, max_new_tokens=8)
    expected = [[{"generated_text": text}] for text in expected_generations(trained_model, tokenizer, INPUTS,
                                                                             max_new_tokens=8)]
    assert generator(INPUTS, num_workers=2, batch_size=2) == expected
    assert list(generator(text for text in INPUTS)) == expected


def test_wrong_head_or_model_is_one_clear_error(trained_model, tokenizer):
    from transformers import BartConfig, BartForConditionalGeneration

    with pytest.raises(MiniformerPipelineError, match="needs the encoder-decoder head MiniformerForConditionalGen"):
        MiniformerSeq2SeqPipeline(model=MiniformerForCausalLM(trained_model.config), tokenizer=tokenizer)
    bart = BartForConditionalGeneration(BartConfig(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1,
                                                   encoder_attention_heads=2, decoder_attention_heads=2,
                                                   encoder_ffn_dim=8, decoder_ffn_dim=8))
    with pytest.raises(MiniformerPipelineError, match="runs Miniformer encoder-decoder models; got a Bart"):
        MiniformerSeq2SeqPipeline(model=bart, tokenizer=tokenizer)
    with pytest.raises(MiniformerPipelineError, match="needs the checkpoint's tokenizer"):
        MiniformerSeq2SeqPipeline(model=trained_model)


def test_bad_inputs_are_clear_errors(trained_model, tokenizer):
    generator = MiniformerSeq2SeqPipeline(model=trained_model, tokenizer=tokenizer, max_new_tokens=4)
    with pytest.raises(MiniformerPipelineError, match="takes text"):
        generator(123)
    with pytest.raises(MiniformerPipelineError, match="empty string"):
        generator("")
    too_long = "1" * (trained_model.config.max_position_embeddings + 5)
    with pytest.raises(MiniformerPipelineError, match="pass truncation=True"):
        generator(too_long)
    assert generator(too_long, truncation=True)[0]["generated_text"] is not None
    with pytest.raises(MiniformerPipelineError, match="return_full_text"):
        generator("12", return_full_text=True)
    with pytest.raises(MiniformerPipelineError, match="only whitespace"):
        generator(" \t\n")
    for name, value in [("num_beams", 0), ("num_beams", -1), ("num_return_sequences", 0), ("max_new_tokens", 0),
                        ("num_beams", 2.0), ("num_beams", True)]:
        with pytest.raises(MiniformerPipelineError, match=f"{name}={value!r} is invalid: expected a positive integer"):
            generator("12", **{name: value})
    with pytest.raises(MiniformerPipelineError, match="num_beams=0"):
        MiniformerSeq2SeqPipeline(model=trained_model, tokenizer=tokenizer, num_beams=0)


def test_saved_checkpoint_carries_the_pipeline(tmp_path, trained_model, tokenizer):
    trained_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["custom_pipelines"] == CUSTOM_PIPELINES
    assert (tmp_path / "pipeline_miniformer.py").read_bytes() == (PACKAGE_DIR / "pipeline_miniformer.py").read_bytes()
    # Another head saves no seq2seq pipeline.
    assert not hasattr(trained_model.config, "custom_pipelines"), "the save must not change the model's config"
    MiniformerForCausalLM(trained_model.config).save_pretrained(tmp_path / "lm")
    assert not (tmp_path / "lm" / "pipeline_miniformer.py").exists()
    assert not json.loads((tmp_path / "lm" / "config.json").read_text()).get("custom_pipelines")


def test_pipeline_file_imports_only_stdlib_torch_and_transformers():
    tree = ast.parse((PACKAGE_DIR / "pipeline_miniformer.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 if node.level == 0}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported <= {"__future__", "typing", "torch", "transformers"}, imported


# --------------------------------------------------------------------------------------------------------------------
# The stranger: a fresh Python without miniformer_hf, the checkpoint on the (local) Hub
# --------------------------------------------------------------------------------------------------------------------

# The start of every script run in a process where miniformer_hf cannot be imported.
WITHOUT_PACKAGE = textwrap.dedent('''
    import json, sys

    class RefuseMiniformerHf:
        def find_spec(self, name, path=None, target=None):
            if name == "miniformer_hf" or name.startswith("miniformer_hf."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, RefuseMiniformerHf())
    try:
        import miniformer_hf
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("miniformer_hf is importable in the stranger's process; the test proves nothing")

    import torch
    torch.set_num_threads(1)
''')

STRANGER_PIPELINE = WITHOUT_PACKAGE + textwrap.dedent('''
    from transformers import pipeline

    request = json.loads(sys.argv[1])
    repo_id, inputs = request["repo_id"], request["inputs"]
    results = {}
    generator = pipeline(model=repo_id, trust_remote_code=True, device="cpu")
    results["class"] = type(generator).__name__
    results["single"] = generator(inputs[0], max_new_tokens=8)
    results["batched"] = generator(inputs, max_new_tokens=8, batch_size=2, num_workers=2)
    results["beams"] = generator(inputs, max_new_tokens=8, num_beams=3, num_return_sequences=2)
    results["tensors"] = generator(inputs[0], max_new_tokens=8, return_tensors=True, return_text=False)
    torch.manual_seed(0)
    results["sampled"] = generator(inputs, do_sample=True, top_k=3, max_new_tokens=6)
    results["spanish"] = generator("3 de marzo de 1998", max_new_tokens=4)
    # The task users type for text in, text out on transformers 5 runs the encoder-decoder, not a decoder alone.
    results["text_generation_class"] = type(pipeline("text-generation", model=repo_id, trust_remote_code=True)).__name__
    print("UNTRUSTED", flush=True)  # without trust_remote_code, transformers itself asks (stdin closed: refuses)
    try:
        pipeline("text-generation", model=repo_id)
    except ValueError as error:
        results["untrusted"] = str(error)
    assert not any(name.startswith("miniformer_hf") for name in sys.modules)
    print("RESULTS " + json.dumps(results))
''')


def test_stranger_runs_the_pipeline_from_the_hub(hub_client, tmp_path, trained_model, tokenizer):
    from test_sharing import write_run_folder

    from miniformer_hf.sharing import push_run_folder

    repo_id = "alice/miniformer-dates"
    push_run_folder(write_run_folder(tmp_path / "run", trained_model, tokenizer), repo_id)
    files = hub_client.files_at(repo_id)
    assert files["pipeline_miniformer.py"] == (PACKAGE_DIR / "pipeline_miniformer.py").read_bytes()

    workdir = tmp_path / "stranger"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_", "PYTHON"))}
    env.update(HF_ENDPOINT=hub_client.url, HF_HOME=str(workdir / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    request = {"repo_id": repo_id, "inputs": INPUTS}
    completed = subprocess.run([sys.executable, "-I", "-c", STRANGER_PIPELINE, json.dumps(request)], cwd=workdir,
                               env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, f"stranger failed:\n{completed.stdout}\n{completed.stderr[-4000:]}"
    results = json.loads(completed.stdout.split("RESULTS ", 1)[1])

    greedy = expected_generations(trained_model, tokenizer, INPUTS, max_new_tokens=8)
    beams = expected_generations(trained_model, tokenizer, INPUTS, max_new_tokens=8, num_beams=3,
                                 num_return_sequences=2)
    assert results["class"] == results["text_generation_class"] == "MiniformerSeq2SeqPipeline"
    assert results["single"] == [{"generated_text": greedy[0]}]
    assert results["batched"] == [[{"generated_text": text}] for text in greedy]
    assert [record["generated_text"] for records in results["beams"] for record in records] == beams
    assert tokenizer.decode(results["tensors"][0]["generated_token_ids"], skip_special_tokens=True) == greedy[0]
    assert [len(records) for records in results["sampled"]] == [1, 1, 1]
    assert isinstance(results["spanish"][0]["generated_text"], str)
    assert "trust_remote_code=True" in results["untrusted"]
    assert "Do you wish to run the custom code" not in completed.stdout.split("UNTRUSTED")[0]


def test_readme_pipeline_snippet_runs(tmp_path, monkeypatch, trained_model, tokenizer):
    from test_readme import readme_code

    monkeypatch.chdir(tmp_path)
    trained_model.save_pretrained(tmp_path / "runs" / "dates")  # stands in for `miniformer train`'s run folder
    tokenizer.save_pretrained(tmp_path / "runs" / "dates")
    namespace = {"__name__": "__readme__"}
    exec(compile(readme_code("pipeline"), "README.md pipeline", "exec"), namespace)
    assert type(namespace["generator"]).__name__ == "MiniformerSeq2SeqPipeline"
    assert [len(records) for records in namespace["outputs"]] == [1, 1]


# --------------------------------------------------------------------------------------------------------------------
# A plain transformers user: Seq2SeqTrainer on remote code, re-saving, and the pipeline on what it saved (issue 22)
# --------------------------------------------------------------------------------------------------------------------

# In a stranger's script below: the seq2seq pipeline run on a folder the script wrote (its code files only).
PIPELINE_ON_FOLDER = textwrap.dedent('''
    def pipeline_on(folder):
        from transformers import pipeline

        generator = pipeline(model=folder, trust_remote_code=True, device="cpu")
        return {"class": type(generator).__name__, "outputs": generator(["123456", "5555"], max_new_tokens=6)}
''')

PLAIN_SEQ2SEQ_TRAINER = WITHOUT_PACKAGE + PIPELINE_ON_FOLDER + textwrap.dedent('''
    import shutil

    from datasets import Dataset
    from transformers import (AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer,
                              Seq2SeqTrainingArguments)

    start, output_dir = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(start, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(start, trust_remote_code=True)
    pairs = [("%06d" % (i * 7919 % 1000000), "%06d" % (i * 7919 % 1000000))[::1] for i in range(64)]
    def encode(rows):
        encoded = tokenizer(rows["source"])
        encoded["labels"] = tokenizer(rows["target"])["input_ids"]
        return encoded
    data = Dataset.from_dict({"source": [s for s, _ in pairs], "target": [t[::-1] for _, t in pairs]})
    data = data.map(encode, batched=True, remove_columns=["source", "target"])
    arguments = Seq2SeqTrainingArguments(
        output_dir=output_dir, eval_strategy="steps", eval_steps=4, save_steps=4, max_steps=8, logging_steps=4,
        per_device_train_batch_size=16, per_device_eval_batch_size=16, learning_rate=3e-3,
        metric_for_best_model="eval_loss", load_best_model_at_end=True, report_to=[], use_cpu=True,
        dataloader_num_workers=0, save_total_limit=3,
    )
    trainer = Seq2SeqTrainer(model=model, args=arguments, train_dataset=data, eval_dataset=data.select(range(16)),
                             data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer)
    trainer.train()
    metrics = trainer.evaluate()
    best = trainer.state.best_model_checkpoint
    shutil.rmtree(start)  # the best checkpoint stands on its own
    pipeline_run = pipeline_on(best)
    assert not any(name.startswith("miniformer_hf") for name in sys.modules)
    print("RESULTS " + json.dumps({"metrics": metrics, "best": best, "pipeline": pipeline_run,
                                   "history": [row for row in trainer.state.log_history if "eval_loss" in row]}))
''')

RESAVE_BY_HAND = WITHOUT_PACKAGE + PIPELINE_ON_FOLDER + textwrap.dedent('''
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    source, first, second = sys.argv[1:4]
    model = AutoModelForSeq2SeqLM.from_pretrained(source, trust_remote_code=True)
    model.save_pretrained(first)
    AutoTokenizer.from_pretrained(source, trust_remote_code=True).save_pretrained(first)
    again = AutoModelForSeq2SeqLM.from_pretrained(first, trust_remote_code=True)
    again.save_pretrained(second)
    AutoTokenizer.from_pretrained(first, trust_remote_code=True).save_pretrained(second)
    lm = AutoModelForCausalLM.from_pretrained(second, trust_remote_code=True)  # the heads file travelled
    pipeline_run = pipeline_on(second)
    assert not any(name.startswith("miniformer_hf") for name in sys.modules)
    print("RESULTS " + json.dumps({"lm": type(lm).__name__, "pipeline": pipeline_run}))
''')


def run_without_package(script: str, *arguments, cwd) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *map(str, arguments)], capture_output=True, text=True,
                            cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "RESULTS " in result.stdout, (result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(result.stdout.split("RESULTS ")[-1].splitlines()[0])


def code_files(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*_miniformer.py")}


@pytest.mark.slow
def test_plain_seq2seq_trainer_on_remote_code_reports_eval_loss_and_its_best_checkpoint_runs_the_pipeline(
        tmp_path, trained_model, tokenizer):
    start = tmp_path / "start"
    trained_model.save_pretrained(start)
    tokenizer.save_pretrained(start)
    results = run_without_package(PLAIN_SEQ2SEQ_TRAINER, start, tmp_path / "out", cwd=tmp_path)
    assert "eval_loss" in results["metrics"] and results["metrics"]["eval_loss"] > 0
    assert len(results["history"]) >= 2  # evaluated at steps 4 and 8, each with its loss
    best = Path(results["best"])
    assert best.name in ("checkpoint-4", "checkpoint-8")
    config = json.loads((best / "config.json").read_text())
    named = {value.split("--")[-1].split(".")[0] + ".py" for value in config["auto_map"].values()}
    named |= {task["impl"].split(".")[0] + ".py" for task in config["custom_pipelines"].values()}
    assert named <= code_files(best), named - code_files(best)  # every file config.json names was written
    assert {"heads_miniformer.py", "pipeline_miniformer.py", "kernels_miniformer.py",
            "support_miniformer.py"} <= code_files(best)
    assert not start.exists()  # the script deleted it before running the pipeline on its best checkpoint
    assert results["pipeline"]["class"] == "MiniformerSeq2SeqPipeline"
    assert [len(output) for output in results["pipeline"]["outputs"]] == [1, 1]


def test_resaving_remote_code_by_hand_keeps_every_code_file(tmp_path, trained_model, tokenizer):
    source = tmp_path / "source"
    trained_model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    expected = code_files(source)
    assert {"configuration_miniformer.py", "modeling_miniformer.py", "heads_miniformer.py", "kernels_miniformer.py",
            "support_miniformer.py", "pipeline_miniformer.py"} <= expected
    results = run_without_package(RESAVE_BY_HAND, source, tmp_path / "first", tmp_path / "second", cwd=tmp_path)
    assert results["lm"] == "MiniformerForCausalLM"
    for folder in ("first", "second"):
        assert code_files(tmp_path / folder) == expected, folder
        for name in expected:
            assert (tmp_path / folder / name).read_bytes() == (source / name).read_bytes()
    assert results["pipeline"]["class"] == "MiniformerSeq2SeqPipeline"  # the script's pipeline on "second"


def test_support_and_pipeline_name_the_same_custom_pipelines():
    from miniformer_hf.support_miniformer import CUSTOM_PIPELINES as SUPPORT_PIPELINES

    assert SUPPORT_PIPELINES == CUSTOM_PIPELINES
