"""``miniformer demo``: loading, predictions (greedy and beam), attention views, top-k, the served page under load,
the Space it writes, and the clear errors. The real-browser test of the page is in test_demo_browser.py."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')

from miniformer_hf import demo  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_folder(date_run) -> Path:
    return date_run  # tests/conftest.py: the briefly trained date model, built once per session


@pytest.fixture(scope="module")
def demo_model(run_folder) -> demo.DemoModel:
    return demo.load_demo_model(str(run_folder))


@pytest.fixture(scope="module")
def test_split():
    from miniformer_hf.data import load_task

    return load_task("dates", num_train=0, seed=0)["test"]


def test_examples_are_the_runs_held_out_test_dates(demo_model, test_split):
    assert demo_model.examples == list(test_split["source"][: demo.NUM_EXAMPLES])
    assert len(demo_model.examples) == demo.NUM_EXAMPLES


def test_greedy_prediction_is_the_models_output_with_its_attention_and_top_k(demo_model, test_split):
    source, target = test_split["source"][0], test_split["target"][0]
    prediction = demo.predict(demo_model, source, top_k=3)
    expected = demo_model.model.generate(**demo_model.tokenizer(source, return_tensors="pt"))
    assert prediction.output == demo_model.tokenizer.decode(expected[0], skip_special_tokens=True)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prediction.output), prediction.output
    assert prediction.output == target  # the briefly trained model gets this held-out date right

    generated = prediction.attention.generated_tokens
    assert "".join(generated[:-1]) == prediction.output and generated[-1] == "</s>"
    assert len(prediction.beams) == 1 and prediction.beams[0].text == prediction.output
    assert prediction.beams[0].log_probability < 0  # a log-probability
    assert prediction.greedy is None and "Greedy search" in demo.decoding_note(prediction)
    # Top-k per generated position: probabilities in decreasing order, the greedy choice ranked first.
    assert len(prediction.top_k) == len(generated)
    for chosen, candidates in zip(generated, prediction.top_k):
        assert len(candidates) == 3
        probabilities = [probability for _, probability in candidates]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
        assert candidates[0][0] == chosen
    # The greedy score is the sum of the chosen tokens' log-probabilities; the mean divides it by their number.
    best = prediction.beams[0]
    assert best.log_probability == pytest.approx(sum(torch.tensor(c[0][1]).log().item() for c in prediction.top_k), abs=1e-3)
    assert best.num_tokens == len(generated)
    assert best.mean_log_probability == pytest.approx(best.log_probability / len(generated))
    row = demo.beams_rows(prediction)[0]
    assert row == [1, prediction.output, round(best.log_probability, 4), round(best.mean_log_probability, 4), len(generated)]
    assert len(demo.BEAM_HEADERS) == len(row) and "sum" in demo.BEAM_HEADERS[2] and "mean" in demo.BEAM_HEADERS[3]


def test_beam_search_returns_every_beam_ranked_by_score(demo_model, test_split):
    prediction = demo.predict(demo_model, test_split["source"][1], num_beams=4)
    assert len(prediction.beams) == 4
    # Beam search ranks by sum / length ** length_penalty (1: the per-token mean), the column the page names so.
    assert prediction.length_penalty == 1.0
    scores = [beam.mean_log_probability for beam in prediction.beams]
    assert scores == sorted(scores, reverse=True)
    for beam in prediction.beams:
        assert beam.mean_log_probability == pytest.approx(beam.log_probability / beam.num_tokens)
    assert prediction.output == prediction.beams[0].text
    assert prediction.greedy is not None and prediction.greedy.text == demo.predict(demo_model, test_split["source"][1]).output
    # The same sequence gets the same scores whichever search found it.
    greedy_alone = demo.predict(demo_model, test_split["source"][1]).beams[0]
    assert prediction.greedy.log_probability == pytest.approx(greedy_alone.log_probability, abs=1e-4)
    assert "".join(prediction.attention.generated_tokens).replace("</s>", "") == prediction.output


def test_attention_views_have_the_right_axes_and_respond_to_layer_and_head(demo_model, test_split):
    prediction = demo.predict(demo_model, test_split["source"][2])
    example = prediction.attention
    for kind, queries, keys in (
        ("cross", example.generated_tokens, example.source_tokens),
        ("encoder", example.source_tokens, example.source_tokens),
        ("decoder", example.target_tokens, example.target_tokens),
    ):
        matrix, query_tokens, key_tokens = demo.attention_matrix(prediction, kind, layer=0, head=1)
        assert (query_tokens, key_tokens) == (queries, keys)
        assert matrix.shape == (len(queries), len(keys))
        assert torch.allclose(matrix.sum(dim=-1), torch.ones(len(queries)), atol=1e-4)
    decoder, _, _ = demo.attention_matrix(prediction, "decoder", layer=1, head=0)
    assert torch.equal(decoder.triu(diagonal=1), torch.zeros_like(decoder))  # causal: nothing above the diagonal
    mean, _, _ = demo.attention_matrix(prediction, "cross", layer=1, head="mean")
    heads = torch.stack([demo.attention_matrix(prediction, "cross", layer=1, head=h)[0] for h in range(demo_model.num_heads)])
    assert torch.allclose(mean, heads.mean(dim=0))
    assert not torch.allclose(heads[0], heads[1])

    html_head0 = demo.attention_view_html(prediction, "cross", 1, "0")
    html_head1 = demo.attention_view_html(prediction, "cross", 1, "1")
    assert html_head0 != html_head1
    assert html_head0.count('class="mf-query"') == len(example.generated_tokens)
    assert html_head0.count('class="mf-key"') == len(example.source_tokens)
    with pytest.raises(demo.DemoError, match="head=9 is out of range"):
        demo.attention_matrix(prediction, "cross", layer=0, head=9)
    with pytest.raises(demo.DemoError, match="kind='sideways'"):
        demo.attention_matrix(prediction, "sideways")


def test_empty_or_overlong_source_is_a_clear_error(demo_model):
    with pytest.raises(demo.DemoError, match="source text is empty"):
        demo.predict(demo_model, "   ")
    with pytest.raises(demo.DemoError, match="this model reads at most"):
        demo.predict(demo_model, "1" * (demo_model.model.config.max_position_embeddings + 1))


def _beam(text: str, total: float, count: int) -> "demo.Beam":
    return demo.Beam(text, total, total / count, count)


def test_decoding_note_explains_when_beam_search_and_greedy_disagree(demo_model, test_split):
    prediction = demo.predict(demo_model, test_split["source"][3], num_beams=3)
    if prediction.greedy.text == prediction.output:
        assert "agrees with greedy" in demo.decoding_note(prediction)
    # The demo's 1991/1919 kind: beam search finds an output the model finds more likely as a whole.
    prediction.greedy = _beam("1991-07-02", -1.2, 11)
    prediction.beams = [_beam("1919-07-02", -0.9, 11), _beam("1991-07-02", -1.2, 11)]
    note = demo.decoding_note(prediction)
    assert "disagree" in note and "1991-07-02" in note and "1919-07-02" in note
    assert "more likely as a whole" in note and "sum -0.9000" in note and "sum -1.2000" in note
    # A lower sum but a different length: the length penalty decided.
    prediction.beams = [_beam("1919-07-02 ", -1.3, 13)]  # mean -0.100 over greedy's -0.109
    assert "length penalty decided" in demo.decoding_note(prediction)
    prediction.beams = [_beam("1919-07-02", -1.5, 11)]
    assert "not guaranteed" in demo.decoding_note(prediction)


def test_label_smoothing_sentence_beside_the_top_k(demo_model, test_split):
    prediction = demo.predict(demo_model, test_split["source"][0])
    prediction.label_smoothing, prediction.vocab_size = 0.1, 50
    page = demo.top_k_html(prediction)
    assert "label smoothing ε = 0.1 (§5.4)" in page and "0.902" in page and page.index("mf-note") < page.index("<table")
    prediction.label_smoothing = 0.0
    assert "without label smoothing" in demo.top_k_html(prediction)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--host", "999.999.1.1"], "host 999.999.1.1 is not a valid IP address"),
        (["--host", ""], "host is empty"),
        (["--port", "-1"], "port -1 is out of range; expected 1 to 65535"),
        (["--port", "70000"], "port 70000 is out of range; expected 1 to 65535"),
        (["--port", "http"], "port 'http' is not a number"),
        (["--write-space", ""], "Space folder is empty"),
        (["--write-space", "space", "--space-repo", "not a repo"], "is not a Hub repo id"),
    ],
)
def test_cli_demo_refuses_a_bad_address_or_space_before_loading_anything(tmp_path, arguments, message):
    result = subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", "alice/miniformer-dates", *arguments],
        capture_output=True, text=True, cwd=tmp_path,
        env=_without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)}),
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    assert list(tmp_path.iterdir()) == [] or not (tmp_path / "space").exists()


def test_cli_demo_host_that_does_not_resolve_is_named_not_the_port(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", str(tmp_path), "--host", "no-such-host.invalid"],
        capture_output=True, text=True, env=_without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)}),
    )
    assert result.returncode == 1
    assert "host no-such-host.invalid cannot be resolved" in result.stderr and "port" not in result.stderr.split("(")[0]
    assert "Traceback" not in result.stderr


def test_a_folder_that_is_not_a_miniformer_run_is_refused_clearly(tmp_path):
    with pytest.raises(demo.DemoError, match="not a saved model folder \\(no config.json\\)"):
        demo.load_demo_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bart"}))
    with pytest.raises(demo.DemoError, match="model_type='bart', not 'miniformer'"):
        demo.load_demo_model(str(tmp_path))
    with pytest.raises(demo.DemoError, match="a file, not a folder"):
        demo.load_demo_model(str(tmp_path / "config.json"))
    with pytest.raises(demo.DemoError, match="neither an existing folder nor a valid Hub repo id|could not be downloaded"):
        demo.load_demo_model(str(tmp_path / "no" / "such" / "run"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call_predict(url: str, text: str, decoding: str = "greedy") -> tuple[str, float]:
    """Call the page's predict endpoint over HTTP (Gradio's queue API) and return (output, seconds)."""
    started = time.perf_counter()
    payload = json.dumps({"data": [text, decoding, 4, "cross", "1", "mean"]}).encode()
    request = urllib.request.Request(url + "gradio_api/call/predict", data=payload, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/predict/{event_id}", timeout=60) as response:
        stream = response.read().decode()
    seconds = time.perf_counter() - started
    match = re.search(r"event: complete\ndata: (.*)", stream)
    assert match, f"no result in the event stream: {stream[:500]}"
    return json.loads(match.group(1))[0], seconds


@pytest.fixture(scope="module")
def served(demo_model):
    app, url = demo.launch(demo_model, port=_free_port(), block=False)
    yield url
    app.close()


def test_page_binds_to_loopback_and_answers_each_request_with_the_prediction(served, demo_model, test_split):
    assert served.startswith("http://127.0.0.1:")
    call_predict(served, demo_model.examples[0])  # warm-up
    latencies = []
    for source, target in zip(test_split["source"][:5], test_split["target"][:5]):
        output, seconds = call_predict(served, source)
        assert output == demo.predict(demo_model, source).output
        latencies.append(seconds)
    # Latency is reported, not asserted (speed belongs to benchmark scripts): 0.05-0.15 s seen on 2 cores.
    print(f"request latency (s): {[round(s, 3) for s in latencies]}")


def test_ten_concurrent_requests_all_answer(served, demo_model, test_split):
    sources = list(test_split["source"][:10])
    results: dict[int, object] = {}

    def ask(index: int) -> None:
        try:
            results[index] = call_predict(served, sources[index], "beam search" if index % 2 else "greedy")
        except Exception as error:  # recorded, asserted below
            results[index] = error

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(10)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    print(f"10 concurrent requests answered in {time.perf_counter() - started:.2f} s")
    errors = {index: result for index, result in results.items() if isinstance(result, Exception)}
    assert not errors and len(results) == 10, errors
    for index, (output, _) in results.items():  # each request got its own answer, not a neighbour's
        assert output == demo.predict(demo_model, sources[index], num_beams=4 if index % 2 else 1).output, index
    call_predict(served, sources[0])  # and the page still answers afterwards


def _without_package_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HOME=str(tmp_path / "hf_home"))
    env.update(extra or {})
    return env


def test_cli_demo_serves_the_page_and_prints_its_url(run_folder, tmp_path):
    port = _free_port()
    env = _without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)})
    process = subprocess.Popen(
        [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", str(run_folder), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    try:
        url = _wait_for_url(process, port)
        assert url == f"http://127.0.0.1:{port}/"
        output, _ = call_predict(url, "7 marzo 2056")
        assert output == demo.predict(demo.load_demo_model(str(run_folder)), "7 marzo 2056").output
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_url(process: subprocess.Popen, port: int, seconds: float = 90) -> str:
    deadline = time.monotonic() + seconds
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        match = re.search(r"open (http://\S+) in a browser", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no URL printed (exit code {process.poll()}); output:\n{''.join(lines)}")


def test_cli_demo_on_a_folder_that_is_not_a_run_is_one_clear_line(tmp_path):
    from miniformer_hf.cli import main

    result = subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", str(tmp_path)],
        capture_output=True, text=True, env=_without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)}),
    )
    assert result.returncode == 1
    assert f"miniformer demo: error: --model {tmp_path}: not a saved model folder (no config.json)" in result.stderr
    assert "Traceback" not in result.stderr
    assert main(["demo", "--help"]) == 0


def test_demo_help_imports_neither_gradio_nor_torch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "miniformer_hf.cli", "demo", "--help"],
        capture_output=True, text=True, env=_without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)}),
    )
    assert result.returncode == 0 and "--write-space" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"gradio", "torch", "transformers"}, sorted(imported & {"gradio", "torch", "transformers"})


def test_cli_demo_without_gradio_says_how_to_install_it(tmp_path, run_folder):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "gradio.py").write_text("raise ImportError('No module named gradio (blocked by the test)')\n")
    env = _without_package_env(tmp_path, {"PYTHONPATH": f"{blocker}{os.pathsep}{REPO_ROOT}"})
    result = subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", str(run_folder)],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 1
    assert 'pip install "miniformer-hf[demo]"' in result.stderr
    assert "Traceback" not in result.stderr
