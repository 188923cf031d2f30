"""The demo page in a real headless Chromium with every non-local request blocked and recorded.

Reuses the DevTools-over-a-pipe client of test_visualization_browser.py (standard library only, Debian's
Chromium). The page is served by ``miniformer_hf.demo.launch`` on 127.0.0.1; every request to anything other
than that origin (or data:/blob:/about:) is failed and recorded, and the test requires there be none. A learner's
session is replayed: type a date, generate, read the ISO date on the page, check the alignment table is drawn for
the generated tokens, and that picking another head and layer changes it.
"""

from __future__ import annotations

import re
import socket
import tempfile
import time

import pytest

pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')

import test_visualization_browser as browser_test  # noqa: E402
from test_visualization_browser import DevToolsPipe, OpenedPage  # noqa: E402

from miniformer_hf import demo  # noqa: E402

LOCAL_SCHEMES = ("data:", "blob:", "about:")
# The offline-HTML test's flags resolve no host at all; this page lives on 127.0.0.1, which alone stays reachable.
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"

# JavaScript read from the page.
OUTPUT = "(document.querySelector('#mf-output textarea, #mf-output input') || {}).value || ''"
ROW_TOKENS = "Array.from(document.querySelectorAll('#mf-attention .mf-query')).map(n => n.textContent)"
COLUMN_TOKENS = "Array.from(document.querySelectorAll('#mf-attention .mf-key')).map(n => n.textContent)"
WEIGHTS = "Array.from(document.querySelectorAll('#mf-attention td.mf-cell')).map(n => n.dataset.weight).join(',')"
TITLE = "(document.querySelector('#mf-attention .mf-title') || {}).textContent || ''"
TOP_K_ROWS = "document.querySelectorAll('#mf-topk tbody tr').length"


def open_url(browser: DevToolsPipe, url: str, allowed_origin: str) -> OpenedPage:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    page = OpenedPage(browser, session)
    local = (allowed_origin, allowed_origin.replace("http://", "ws://"), *LOCAL_SCHEMES)

    def on_event(message: dict) -> None:
        if message.get("sessionId") != session:
            return
        params = message.get("params", {})
        method = message.get("method")
        if method == "Network.requestWillBeSent":
            page.all_requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            page.all_requests.append(params["url"])
            if not params["url"].startswith(local):
                page.outside_requests.append(params["url"])
        elif method == "Fetch.requestPaused":
            request_url = params["request"]["url"]
            if request_url.startswith(local):
                browser.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session)
            else:
                page.outside_requests.append(request_url)
                browser.send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"}, session)

    browser.on_event = on_event
    browser.send("Network.enable", session=session)
    browser.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
    browser.send("Page.enable", session=session)
    browser.send("Runtime.enable", session=session)
    browser.send("Page.navigate", {"url": url}, session)
    page.wait_for("document.readyState === 'complete'", seconds=30)
    return page


def click(page: OpenedPage, selector: str) -> None:
    found = page.evaluate(f"(() => {{ const n = document.querySelector({selector!r}); if (n) n.click(); return !!n; }})()")
    assert found, f"nothing on the page matches {selector}"


def type_text(page: OpenedPage, selector: str, text: str) -> None:
    found = page.evaluate(
        f"""(() => {{
            const box = document.querySelector({selector!r});
            if (!box) return false;
            box.focus();
            box.value = {text!r};
            box.dispatchEvent(new Event('input', {{bubbles: true}}));
            return true;
        }})()"""
    )
    assert found, f"nothing on the page matches {selector}"


def wait_for_change(page: OpenedPage, expression: str, before, seconds: float = 15):
    deadline = time.monotonic() + seconds
    value = page.evaluate(expression)
    while value == before and time.monotonic() < deadline:
        page.browser.pump(0.1)
        value = page.evaluate(expression)
    return value


@pytest.fixture(scope="module")
def browser():
    executable = browser_test._chromium_path()
    flags = [LOOPBACK_ONLY if flag.startswith("--host-resolver-rules") else flag for flag in browser_test.LAUNCH_FLAGS]
    with tempfile.TemporaryDirectory(prefix="miniformer-chromium-") as user_data_dir:
        original, browser_test.LAUNCH_FLAGS = browser_test.LAUNCH_FLAGS, flags
        try:
            pipe = DevToolsPipe(executable, user_data_dir)
        finally:
            browser_test.LAUNCH_FLAGS = original
        try:
            pipe.send("Browser.getVersion", timeout=60)
        except (RuntimeError, TimeoutError) as error:
            pipe.close()
            pytest.fail(f"Chromium at {executable} did not start or answer over the DevTools pipe: {error}")
        yield pipe
        pipe.close()


@pytest.fixture(scope="module")
def served(date_run):
    demo_model = demo.load_demo_model(str(date_run))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app, url = demo.launch(demo_model, port=port, block=False)
    yield demo_model, url
    app.close()


def test_learner_types_a_date_and_sees_output_alignment_and_heads_offline(browser, served):
    demo_model, url = served
    page = open_url(browser, url, url.rstrip("/"))
    assert page.wait_for("!!document.querySelector('#mf-generate')", seconds=30), "the page did not render"

    source = "7 marzo 2056"  # a held-out test date (never in training)
    expected = demo.predict(demo_model, source)
    type_text(page, "#mf-source textarea", source)
    click(page, "#mf-generate")
    output = page.wait_for(f"({OUTPUT}).length > 0 && {OUTPUT}", seconds=30)
    assert output == "2056-03-07" == expected.output

    # The alignment: one row per generated token, one column per source token.
    page.wait_for(f"({ROW_TOKENS}).length > 0", seconds=15)
    assert page.evaluate(ROW_TOKENS) == expected.attention.generated_tokens
    assert page.evaluate(COLUMN_TOKENS) == [demo._shown(t) for t in expected.attention.source_tokens]
    assert "cross-attention" in page.evaluate(TITLE) and "mean of heads" in page.evaluate(TITLE)
    assert page.evaluate(TOP_K_ROWS) == len(expected.attention.generated_tokens)

    # Another head, then another layer: the weights on the page change and match the model's.
    mean_weights = page.evaluate(WEIGHTS)
    click(page, "#mf-head input[value='1']")
    head_weights = wait_for_change(page, WEIGHTS, mean_weights)
    assert head_weights != mean_weights and "head 1" in page.evaluate(TITLE)
    matrix, _, _ = demo.attention_matrix(expected, "cross", layer=demo_model.num_layers - 1, head=1)
    assert head_weights == ",".join(f"{w:.4f}" for w in matrix.flatten().tolist())
    click(page, "#mf-layer input[value='0']")
    layer_weights = wait_for_change(page, WEIGHTS, head_weights)
    assert layer_weights != head_weights and "layer 0" in page.evaluate(TITLE)

    # Encoder self-attention: the source tokens on both axes.
    click(page, "#mf-kind input[value='encoder']")
    wait_for_change(page, TITLE, page.evaluate(TITLE))
    assert page.evaluate(ROW_TOKENS) == page.evaluate(COLUMN_TOKENS) == [demo._shown(t) for t in expected.attention.source_tokens]

    page.browser.pump(1.0)
    print(f"{len(page.all_requests)} requests, {len(page.outside_requests)} outside: {page.outside_requests}")
    assert page.outside_requests == []
    assert all(re.match(rf"({re.escape(url.rstrip('/'))}|ws://127\.0\.0\.1|data:|blob:|about:)", u) for u in page.all_requests)


def test_the_recorder_catches_a_page_that_reaches_outside(browser, date_run):
    """The control: the same page with a Google-hosted font must be caught asking fonts.googleapis.com."""
    gr = demo.import_gradio()
    demo_model = demo.load_demo_model(str(date_run))
    app = demo.build_app(demo_model)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
        theme=gr.themes.Default(font=[gr.themes.GoogleFont("Inter"), "sans-serif"]),
    )
    try:
        page = open_url(browser, url, url.rstrip("/"))
        page.wait_for("!!document.querySelector('#mf-generate')", seconds=30)
        page.browser.pump(1.0)
        assert any("fonts.googleapis.com" in request for request in page.outside_requests), page.outside_requests
    finally:
        app.close()
