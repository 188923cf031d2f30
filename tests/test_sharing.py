"""Sharing on the Hub, tested the way a stranger meets it: over real HTTP against the local hub of
``tests/hub_server.py``, then loaded in a fresh Python where ``miniformer_hf`` cannot be imported."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hub_server import HubServer

import miniformer_hf
from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
from miniformer_hf.sharing import (
    CODE_FILES,
    SharingError,
    card_template_path,
    push_model,
    push_run_folder,
    render_model_card,
    validate_run_folder,
)

ALICE_TOKEN = "hf_alice_write_token"
ALICE_READ_TOKEN = "hf_alice_read_token"
BOB_TOKEN = "hf_bob_write_token"
PACKAGE_DIR = Path(miniformer_hf.__path__[0])
SYMBOLS = "0123456789"


# --------------------------------------------------------------------------------------------------------------------
# Fixtures: a local hub, this process's Hub client pointed at it, a tiny trained model and tokenizer
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub():
    tokens = {ALICE_TOKEN: "alice", BOB_TOKEN: "bob"}
    with HubServer(tokens=tokens, read_only_tokens={ALICE_READ_TOKEN: "alice"}) as server:
        yield server
        assert server.unhandled == [], f"the client called routes the local hub does not serve: {server.unhandled}"


def _point_client_at(monkeypatch, endpoint: str, home: Path) -> None:
    """Repoint the already-imported ``huggingface_hub`` and ``transformers`` of this process at ``endpoint``.

    Both read ``HF_ENDPOINT``/``HF_HOME`` once at import (and the conftest made them offline), so setting the
    environment now is too late; the constants they read at call time are patched instead.
    """
    import huggingface_hub.hf_api
    import transformers.utils.hub
    from huggingface_hub import constants

    host = endpoint.split("://", 1)[1].split(":")[0]
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {host})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))  # never a real saved token
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", endpoint)
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)  # rebuilt on first use, with the new endpoint
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub_client(hub, tmp_path, monkeypatch):
    """This process talks to the local hub as alice (her token in HF_TOKEN)."""
    _point_client_at(monkeypatch, hub.url, tmp_path / "hf_home")
    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)
    return hub


def build_tokenizer():
    """A character-level fast tokenizer over digits, with the project's special tokens and an appended </s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{c: i + 4 for i, c in enumerate(SYMBOLS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=32)


def train_steps(model, tokenizer, steps: int, seed: int) -> None:
    """A few optimizer steps on digit reversal, enough to move the weights away from their initialisation."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        sources = ["".join(SYMBOLS[i] for i in torch.randint(0, 10, (6,), generator=generator)) for _ in range(8)]
        batch = tokenizer(sources, text_target=[s[::-1] for s in sources], return_tensors="pt", padding=True)
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def trained_model(tokenizer):
    torch.manual_seed(0)
    config = MiniformerConfig(vocab_size=len(tokenizer), d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0.0,
                              max_position_embeddings=32)
    model = MiniformerForConditionalGeneration(config)
    train_steps(model, tokenizer, steps=15, seed=0)
    return model


PROBE_INPUTS = ["123456", "908172", "5555"]


def reference_outputs(model, tokenizer) -> dict[str, torch.Tensor]:
    """Logits on fixed decoder inputs and greedy generations: what the stranger must reproduce exactly."""
    batch = tokenizer(PROBE_INPUTS, return_tensors="pt", padding=True)
    decoder_input_ids = torch.tensor([[1, 5, 6, 7], [1, 4, 4, 4], [1, 9, 9, 2]])
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=decoder_input_ids).logits
        generations = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=1)
    return {"input_ids": batch["input_ids"], "logits": logits, "generations": generations}


def write_run_folder(folder: Path, model, tokenizer, metrics: dict | None = None) -> Path:
    """What `miniformer train` leaves behind, including by-products that must not be pushed."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps(metrics or {
        "task": "reverse", "eval_exact_match": 0.875, "eval_cer": 0.0412, "eval_loss": 0.3127,
        "train_runtime": 12.5, "epochs": 3,
    }))
    (folder / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    (folder / "attention").mkdir()
    (folder / "attention" / "example_0.html").write_text("<html>attention</html>")
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"intermediate")
    (folder / "optimizer.pt").write_bytes(b"optimizer state")
    return folder


# --------------------------------------------------------------------------------------------------------------------
# The stranger: a fresh Python, outside the repo, where miniformer_hf cannot be imported
# --------------------------------------------------------------------------------------------------------------------

STRANGER_SCRIPT = textwrap.dedent('''
    import json, sys

    class RefuseMiniformerHf:
        """A stranger has never installed miniformer_hf: make sure no path on this machine provides it."""
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
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    request = json.loads(sys.argv[1])
    tokenizer = AutoTokenizer.from_pretrained(request["repo_id"])
    results = {}
    for revision in request["revisions"]:
        model = AutoModelForSeq2SeqLM.from_pretrained(request["repo_id"], revision=revision, trust_remote_code=True)
        model.eval()
        assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
        batch = tokenizer(request["inputs"], return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**batch, decoder_input_ids=torch.tensor(request["decoder_input_ids"])).logits
            generations = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=1)
        results[revision] = {"input_ids": batch["input_ids"], "logits": logits, "generations": generations}
    assert not any(name.startswith("miniformer_hf") for name in sys.modules)
    torch.save(results, request["output"])
''')


def run_stranger(hub: HubServer, tmp_path: Path, repo_id: str, revisions: list[str]) -> dict:
    workdir = tmp_path / "stranger"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_", "PYTHON"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(workdir / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")  # anonymous: a public repo needs no token
    request = {"repo_id": repo_id, "revisions": revisions, "inputs": PROBE_INPUTS,
               "decoder_input_ids": [[1, 5, 6, 7], [1, 4, 4, 4], [1, 9, 9, 2]], "output": str(workdir / "out.pt")}
    # -I: no PYTHONPATH, no user site, no script or working directory on sys.path; cwd is outside the repo.
    completed = subprocess.run([sys.executable, "-I", "-c", STRANGER_SCRIPT, json.dumps(request)], cwd=workdir,
                               env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, f"stranger failed:\n{completed.stdout}\n{completed.stderr[-4000:]}"
    return torch.load(workdir / "out.pt")


def assert_identical(expected: dict, actual: dict) -> None:
    for key in ("input_ids", "logits", "generations"):
        assert torch.equal(expected[key], actual[key]), f"{key} differ between the original and the stranger's copy"


# --------------------------------------------------------------------------------------------------------------------
# The judged workflow
# --------------------------------------------------------------------------------------------------------------------


def test_stranger_loads_pushed_model_identically_at_each_revision(hub_client, tmp_path, trained_model, tokenizer):
    import copy

    from huggingface_hub import hf_hub_download

    repo_id = "alice/miniformer-reverse"
    # Version 1 through the transformers API: model.push_to_hub and tokenizer.push_to_hub.
    model_v1 = copy.deepcopy(trained_model)
    model_v1.push_to_hub(repo_id)
    v1 = tokenizer.push_to_hub(repo_id).oid
    expected_v1 = reference_outputs(model_v1, tokenizer)

    # Version 2, trained further, through miniformer_hf.sharing: one commit with the Miniformer card.
    model_v2 = copy.deepcopy(trained_model)
    train_steps(model_v2, tokenizer, steps=10, seed=1)
    v2 = push_model(model_v2, repo_id, tokenizer=tokenizer, metrics={"task": "reverse", "eval_exact_match": 0.5}).oid
    expected_v2 = reference_outputs(model_v2, tokenizer)
    assert not torch.equal(expected_v1["logits"], expected_v2["logits"]), "the two versions must differ"

    files = hub_client.files_at(repo_id)
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "README.md", *CODE_FILES):
        assert name in files, f"{name} missing from the pushed repo"
    assert json.loads(files["config.json"])["auto_map"]["AutoModelForSeq2SeqLM"] == (
        "modeling_miniformer.MiniformerForConditionalGeneration")
    assert "trust_remote_code=True" in files["README.md"].decode()

    # The code files, downloaded over HTTP, are byte-identical to the package's own.
    for name in CODE_FILES:
        downloaded = Path(hf_hub_download(repo_id, name, revision=v2)).read_bytes()
        assert downloaded == (PACKAGE_DIR / name).read_bytes(), f"{name} on the Hub differs from the package's"

    # Downloading the earlier revision gives the earlier weights.
    weights_v1 = Path(hf_hub_download(repo_id, "model.safetensors", revision=v1)).read_bytes()
    assert weights_v1 == hub_client.files_at(repo_id, v1)["model.safetensors"]
    assert weights_v1 != Path(hf_hub_download(repo_id, "model.safetensors")).read_bytes()

    results = run_stranger(hub_client, tmp_path, repo_id, revisions=["main", v1])
    assert_identical(expected_v2, results["main"])
    assert_identical(expected_v1, results[v1])


def test_push_command_uploads_a_run_folder_in_one_commit(hub_client, tmp_path, trained_model, tokenizer):
    from huggingface_hub import HfApi, ModelCard

    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    from miniformer_hf.commands import push as push_command

    parser = argparse.ArgumentParser(prog="miniformer push")
    push_command.add_arguments(parser)
    args = parser.parse_args(["--model", str(run), "--repo-id", "alice/reverse-run", "--private"])
    assert push_command.run(args) == 0

    repo = hub_client.repo("alice/reverse-run")
    assert repo.private and len(repo.commits) == 2, "expected the initial commit plus exactly one upload commit"
    files = hub_client.files_at("alice/reverse-run")
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "metrics.json",
            "loss_curve.png", "attention/example_0.html", "README.md", *CODE_FILES} <= set(files)
    assert not {"optimizer.pt", "checkpoint-10/model.safetensors"} & set(files), "training by-products were pushed"
    for name in CODE_FILES:
        assert files[name] == (PACKAGE_DIR / name).read_bytes()

    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert "miniformer" in card.data.tags and card.data.license == "mit"
    assert card.data.metrics == ["exact_match", "cer"]
    assert "0.875" in card.text and "0.0412" in card.text and "trust_remote_code=True" in card.text
    info = HfApi().model_info("alice/reverse-run")
    assert "miniformer" in info.tags and info.private

    # --revision pushes to a branch, created from main, and leaves main alone.
    main_before = repo.branches["main"]
    (run / "metrics.json").write_text(json.dumps({"task": "reverse", "eval_exact_match": 0.9}))
    render_model_card(trained_model.config, run_dir=run).save(run / "README.md")  # as `miniformer train` does
    args = parser.parse_args(["--model", str(run), "--repo-id", "alice/reverse-run", "--revision", "experiment",
                              "--commit-message", "Try a branch"])
    push_command.run(args)
    assert repo.branches["main"] == main_before and repo.branches["experiment"] != main_before
    branch_files = hub_client.files_at("alice/reverse-run", "experiment")
    assert b"0.9" in branch_files["metrics.json"]
    assert b'from_pretrained("alice/reverse-run", trust_remote_code=True)' in branch_files["README.md"]


def test_model_card_describes_the_checkpoint(trained_model):
    metrics = {"task": "dates", "eval_exact_match": 0.9731, "eval_cer": 0.0051, "eval_bleu": 97.12,
               "eval_loss": 0.0423, "train_runtime": 301.25, "epochs": 20}
    card = render_model_card(trained_model.config, metrics=metrics, repo_id="alice/dates",
                             num_parameters=trained_model.num_parameters(), datasets=["alice/dates-corpus"])
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-generation"
    assert data.license == "mit" and data.datasets == ["alice/dates-corpus"]
    assert {"miniformer", "dates"} <= set(data.tags)
    assert data.metrics == ["exact_match", "cer", "bleu"]
    text = card.text
    for expected in ("# dates", "2 encoder layers, 2 decoder layers", "| Model width `d_model` | 32 |",
                     f"{trained_model.num_parameters():,}", "| Epochs | 20 |", "301.2 s",
                     "| Exact match, evaluation split | 0.9731 |", "| BLEU, evaluation split | 97.12 |", 'AutoModelForSeq2SeqLM.from_pretrained("alice/dates", trust_remote_code=True)',
                     '"3 March 1998"', "## Limitations", "synthetic `dates` task"):
        assert expected in text, f"{expected!r} missing from the card:\n{text}"
    # A card without metrics still renders, and says so instead of showing empty tables.
    bare = render_model_card(trained_model.config)
    assert "No evaluation figures" in bare.text and bare.data.metrics is None
    # Departures from the paper are listed.
    pre_ln = MiniformerConfig(vocab_size=20, d_model=16, n_heads=2, n_layers=1, d_ff=32, norm_placement="pre")
    assert "pre-LayerNorm" in render_model_card(pre_ln).text


def test_model_card_from_a_train_run_folder(tmp_path, trained_model, tokenizer):
    """The shape `miniformer train` calls it with: test_/validation_ figures, a nested train block, the command."""
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer, metrics={
        "task": "reverse", "test_exact_match": 0.8125, "test_cer": 0.031, "validation_exact_match": 0.84,
        "train": {"train_runtime": 42.0, "train_loss": 0.61, "epoch": 3.0}, "global_step": 120,
    })
    card = render_model_card(config=trained_model.config, task="reverse", command="miniformer train --task reverse",
                             metrics={"test_exact_match": 0.8125, "test_cer": 0.031}, run_dir=run)
    assert card.data.metrics == ["exact_match", "cer"]
    for expected in ("| Exact match, test split | 0.8125 |", "| Exact match, validation split | 0.84 |",
                     "| Training time | 42.0 s |", "| Final training loss | 0.61 |", "| Optimizer steps | 120 |",
                     "`miniformer train --task reverse`", f"{trained_model.num_parameters():,}"):
        assert expected in card.text, f"{expected!r} missing from the card:\n{card.text}"


def test_card_template_is_found():
    assert card_template_path().name == "miniformer.md" and "{{ card_data }}" in card_template_path().read_text()


# --------------------------------------------------------------------------------------------------------------------
# Errors: one clear line, and nothing half-uploaded
# --------------------------------------------------------------------------------------------------------------------


def test_folder_that_is_not_a_miniformer_run_is_refused_before_any_network_call(hub_client, tmp_path, trained_model,
                                                                                  tokenizer):
    requests_before = len(hub_client.request_log)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    no_code = write_run_folder(tmp_path / "no_code", trained_model, tokenizer)
    (no_code / "modeling_miniformer.py").unlink()
    no_tokenizer = tmp_path / "no_tokenizer"
    trained_model.save_pretrained(no_tokenizer)
    cases = {
        tmp_path / "missing": "no such folder",
        bert: "not 'miniformer'",
        tmp_path: "no config.json",
        no_code: "lacks modeling_miniformer.py",
        no_tokenizer: "no tokenizer",
    }
    for folder, reason in cases.items():
        with pytest.raises(SharingError, match=reason) as raised:
            push_run_folder(folder, "alice/not-a-run")
        assert "\n" not in str(raised.value)
    assert len(hub_client.request_log) == requests_before, "a refused folder must not reach the Hub"
    assert hub_client.repo("alice/not-a-run") is None


def test_miniformer_push_command_reports_one_line_and_exits_nonzero(hub_client, tmp_path, capsys):
    from miniformer_hf import cli
    requests_before = len(hub_client.request_log)
    exit_code = cli.main(["push", "--model", str(tmp_path / "no-such-run"), "--repo-id", "alice/cli-push"])
    error_output = capsys.readouterr().err.strip()
    assert exit_code != 0 and "no such folder" in error_output
    assert len(error_output.splitlines()) == 1 and "Traceback" not in error_output
    assert len(hub_client.request_log) == requests_before


def test_missing_or_invalid_token_is_one_clear_error(hub_client, tmp_path, trained_model, tokenizer, monkeypatch):
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    monkeypatch.delenv("HF_TOKEN")
    requests_before = len(hub_client.request_log)
    with pytest.raises(SharingError, match="No Hugging Face token found"):
        push_run_folder(run, "alice/needs-token")
    assert len(hub_client.request_log) == requests_before
    with pytest.raises(SharingError, match="rejected the token"):
        push_run_folder(run, "alice/needs-token", token="hf_not_a_real_token")
    with pytest.raises(SharingError, match="read-only"):
        push_run_folder(run, "alice/needs-token", token=ALICE_READ_TOKEN)
    assert hub_client.repo("alice/needs-token") is None


def test_repo_outside_your_namespaces_or_malformed_is_one_clear_error(hub_client, tmp_path, trained_model, tokenizer):
    from huggingface_hub.errors import RepositoryNotFoundError
    from transformers import AutoConfig

    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    with pytest.raises(SharingError, match="Cannot push to 'bob/someone-elses'.*'bob' is your user name"):
        push_run_folder(run, "bob/someone-elses")
    assert hub_client.repo("bob/someone-elses") is None
    with pytest.raises(SharingError, match="not a valid repo id"):
        push_run_folder(run, "alice/two/slashes")

    # Loading a repo id that does not exist fails with one error naming it.
    with pytest.raises(OSError, match="alice/does-not-exist"):
        AutoConfig.from_pretrained("alice/does-not-exist")
    with pytest.raises(RepositoryNotFoundError):
        from huggingface_hub import hf_hub_download

        hf_hub_download("alice/does-not-exist", "config.json")


def test_rejected_commit_leaves_no_trace(hub_client, tmp_path, trained_model, tokenizer, monkeypatch):
    """If the upload commit fails, the repository this push created is removed again."""
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)

    def refuse(*args, **kwargs):
        response = httpx2.Response(507, request=httpx2.Request("POST", f"{hub_client.url}/api/models/alice/doomed"))
        raise HfHubHTTPError("Insufficient storage", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", refuse)
    with pytest.raises(SharingError, match="the Hub refused the upload"):
        push_run_folder(run, "alice/doomed")
    assert hub_client.repo("alice/doomed") is None


# --------------------------------------------------------------------------------------------------------------------
# The local hub itself: what the client expects, status codes and headers included
# --------------------------------------------------------------------------------------------------------------------


def test_local_hub_answers_like_the_hub(hub_client, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = HfApi()
    assert api.whoami()["name"] == "alice"
    repo_id = api.create_repo("protocol").repo_id
    first = api.upload_file(path_or_fileobj=b"one", path_in_repo="data/a.txt", repo_id=repo_id).oid
    second = api.upload_file(path_or_fileobj=b"two", path_in_repo="data/a.txt", repo_id=repo_id).oid
    assert len(first) == len(second) == 40 and first != second
    api.create_tag(repo_id, tag="v1", revision=first)
    assert Path(hf_hub_download(repo_id, "data/a.txt", revision="v1")).read_bytes() == b"one"
    assert Path(hf_hub_download(repo_id, "data/a.txt")).read_bytes() == b"two"
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "data/a.txt"]
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][:2] == [second, first]
    snapshot = snapshot_download(repo_id, revision=first, cache_dir=tmp_path / "snap")
    assert Path(snapshot, "data", "a.txt").read_bytes() == b"one"

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/nope", "a.txt")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "data/a.txt", revision="no-such-branch")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_text("bee")
    (folder / "c.bin").write_bytes(bytes(range(256)))
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="folder")  # the Trainer's upload path
    assert Path(hf_hub_download(repo_id, "c.bin")).read_bytes() == bytes(range(256))
    second = api.list_repo_commits(repo_id)[0].commit_id

    refusals = ((HfApi(token=False), 401), (HfApi(token="hf_wrong"), 401), (HfApi(token=BOB_TOKEN), 403),
                (HfApi(token=ALICE_READ_TOKEN), 403))
    for client, status in refusals:
        with pytest.raises(HfHubHTTPError) as raised:
            client.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
        assert raised.value.response.status_code == status
    assert api.list_repo_commits(repo_id)[0].commit_id == second, "refused writes must not create commits"

    # A private repo is invisible to others, with RepoNotFound (401 anonymous, 404 authenticated).
    api.create_repo("secret", private=True)
    for client, status in ((HfApi(token=False), 401), (HfApi(token=BOB_TOKEN), 404)):
        with pytest.raises(RepositoryNotFoundError) as raised:
            client.model_info("alice/secret")
        assert raised.value.response.status_code == status


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # raised inside the client's LFS PUT
def test_local_hub_lfs_uploads_and_cdn_redirects(hub_client, tmp_path, monkeypatch, trained_model, tokenizer):
    """With LFS upload modes (and Xet off in the client), weights go through the LFS batch API and download
    through a signed redirect to another host, as on the real Hub."""
    from huggingface_hub import constants, hf_hub_download

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hub_client.state, "lfs", True)
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    push_run_folder(run, "alice/lfs-run")
    assert {"model.safetensors", "loss_curve.png"} <= hub_client.lfs_paths_at("alice/lfs-run")
    downloaded = Path(hf_hub_download("alice/lfs-run", "model.safetensors")).read_bytes()
    assert downloaded == (run / "model.safetensors").read_bytes()
    paths = [path for _, path, _ in hub_client.request_log]
    assert any("/info/lfs/objects/batch" in p for p in paths) and any(p.startswith("/__cdn/") for p in paths)


def test_validate_run_folder_returns_the_config(tmp_path, trained_model, tokenizer):
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    assert validate_run_folder(run)["model_type"] == "miniformer"


# --------------------------------------------------------------------------------------------------------------------
# No reachable Hub: one line naming the endpoint, exit code 1, nothing uploaded
# --------------------------------------------------------------------------------------------------------------------


def _closed_port_endpoint() -> str:
    import socket

    with socket.socket() as probe:  # a port that was just free: nothing listens on it once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_push_to_an_unreachable_hub_is_one_line_naming_the_endpoint(tmp_path, trained_model, tokenizer, monkeypatch):
    endpoint = _closed_port_endpoint()
    _point_client_at(monkeypatch, endpoint, tmp_path / "hf_home")
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    with pytest.raises(SharingError) as caught:
        push_run_folder(run, "alice/unreachable", token=ALICE_TOKEN)
    message = str(caught.value)
    assert "\n" not in message and f"Cannot reach the Hub at {endpoint}" in message
    assert "check your network connection" in message and "HF_ENDPOINT" in message


def test_push_in_offline_mode_says_so(tmp_path, trained_model, tokenizer, monkeypatch):
    from huggingface_hub import constants

    _point_client_at(monkeypatch, _closed_port_endpoint(), tmp_path / "hf_home")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    with pytest.raises(SharingError, match="HF_HUB_OFFLINE is set"):
        push_run_folder(run, "alice/offline", token=ALICE_TOKEN)


def test_connection_lost_mid_push_deletes_the_repository_it_created(hub_client, tmp_path, trained_model, tokenizer,
                                                                      monkeypatch):
    from huggingface_hub import HfApi

    def drop_the_connection(*args, **kwargs):
        raise ConnectionResetError("Connection reset by peer")

    monkeypatch.setattr(HfApi, "create_commit", drop_the_connection)
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    with pytest.raises(SharingError, match=f"Cannot reach the Hub at {hub_client.url}.*nothing was uploaded"):
        push_run_folder(run, "alice/dropped")
    assert not HfApi().repo_exists("alice/dropped"), "the empty repository created by the failed push remains"


def test_miniformer_push_command_without_a_reachable_hub(tmp_path, trained_model, tokenizer):
    """The real command, in its own process: one line on stderr, exit code 1, no traceback."""
    run = write_run_folder(tmp_path / "run", trained_model, tokenizer)
    endpoint = _closed_port_endpoint()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_TOKEN=ALICE_TOKEN,
               PYTHONPATH=str(PACKAGE_DIR.parent))
    command = [sys.executable, "-c", "import sys; from miniformer_hf.cli import main; sys.exit(main())",
               "push", "--model", str(run), "--repo-id", "alice/unreachable"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert completed.returncode == 1, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert lines[0].startswith("miniformer push: error:") and f"Cannot reach the Hub at {endpoint}" in lines[0]


# --------------------------------------------------------------------------------------------------------------------
# A stranger's tokenizer: no interactive prompt, no warning, in a terminal or with stdin closed
# --------------------------------------------------------------------------------------------------------------------

TOKENIZER_PROBE = textwrap.dedent('''
    import sys
    class RefuseMiniformerHf:
        def find_spec(self, name, path=None, target=None):
            if name == "miniformer_hf" or name.startswith("miniformer_hf."):
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, RefuseMiniformerHf())
    from transformers import AutoTokenizer
    kwargs = {"trust_remote_code": True} if sys.argv[2] == "trusted" else {}
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], **kwargs)
    print("LOADED", type(tokenizer).__name__, tokenizer.is_fast, tokenizer("123")["input_ids"], flush=True)
''')


def _run_in_a_terminal(command: list[str], env: dict, cwd: Path, timeout: float = 120) -> str:
    """Run ``command`` with a pseudo-terminal as stdin, stdout and stderr, as in a shell; return what it printed.

    Stops early (killing it) when transformers' interactive prompt appears, which would otherwise wait 15 s."""
    import pty
    import select
    import time

    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd,
                               close_fds=True)
    os.close(follower)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if b"[y/N]" in output:
                    break
            elif process.poll() is not None:
                break
    finally:
        process.kill()
        process.wait()
        os.close(leader)
    return output.decode(errors="replace")


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, trained_model, tokenizer):
    folder = tmp_path_factory.mktemp("tokenizer_run")
    trained_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _stranger_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_", "PYTHON"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(home), TOKENIZERS_PARALLELISM="false")
    return env


@pytest.mark.parametrize("stdin", ["closed", "terminal"])
def test_stranger_loads_the_tokenizer_as_the_card_shows_without_prompt_or_warning(saved_run, tmp_path, tokenizer,
                                                                                   stdin):
    command = [sys.executable, "-I", "-c", TOKENIZER_PROBE, str(saved_run), "trusted"]
    if stdin == "closed":
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                                   env=_stranger_env(tmp_path / "hf_home"), cwd=tmp_path)
        output = completed.stdout + completed.stderr
    else:
        output = _run_in_a_terminal(command, _stranger_env(tmp_path / "hf_home"), tmp_path)
    assert "Do you wish to run the custom code" not in output
    assert "You are using a model of type" not in output
    assert f"LOADED TokenizersBackend True {tokenizer('123')['input_ids']}" in output, output[-3000:]


def test_card_and_readme_load_the_tokenizer_with_trust_remote_code(trained_model):
    readme = (Path(__file__).resolve().parent.parent / "docs" / "sharing.md").read_text()
    readme = readme.split("## Sharing a checkpoint", 1)[1].split("\n## ", 1)[0]
    card = str(render_model_card(trained_model.config, repo_id="alice/x"))
    for text in (readme, card):
        assert "AutoTokenizer.from_pretrained(" in text
        assert all("trust_remote_code=True" in line for line in text.splitlines()
                   if "AutoTokenizer.from_pretrained(" in line)


@pytest.mark.xfail(strict=True, reason=(
    "transformers 5.24's AutoTokenizer.from_pretrained first loads config.json with AutoConfig.from_pretrained("
    "trust_remote_code=None) (models/auto/tokenization_auto.py), which prompts for any config.json whose auto_map "
    "names an AutoConfig of an unregistered model_type, before it reads tokenizer_config.json: no saved file can "
    "avoid it while the model itself needs trust_remote_code. The card and README pass trust_remote_code=True."))
def test_stranger_tokenizer_without_trust_remote_code_in_a_terminal(saved_run, tmp_path):
    command = [sys.executable, "-I", "-c", TOKENIZER_PROBE, str(saved_run), "untrusted"]
    output = _run_in_a_terminal(command, _stranger_env(tmp_path / "hf_home"), tmp_path)
    assert "Do you wish to run the custom code" not in output and "LOADED" in output, output[-2000:]
