"""The exported attention HTML, opened in a real headless Chromium with the network blocked.

Chromium is Debian's package (``apt-get install chromium``, done by ``.ci/run``), never a browser that a
test tool downloads. It is driven over the Chrome DevTools Protocol on a pipe (``--remote-debugging-pipe``:
NUL-terminated JSON on file descriptors 3 and 4), so the test needs nothing beyond the standard library.
Every request the page makes is paused; ``file:``/``data:``/``blob:``/``about:`` requests continue, every
other one is recorded and failed.

The same checks run against bertviz's own, unmodified export, which loads require.js, d3 and jQuery from
a CDN: offline it draws nothing, which shows these checks can fail.

Set ``MINIFORMER_SKIP_BROWSER_TESTS=1`` to skip (for machines without Chromium); otherwise a missing
browser fails the test with instructions.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from miniformer_hf import visualization

SKIP_ENV = "MINIFORMER_SKIP_BROWSER_TESTS"
CHROMIUM_ENV = "MINIFORMER_CHROMIUM"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--allow-file-access-from-files",
    # Belt and braces: even a request that slipped past interception would have nowhere to go.
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
]

SOURCE_TOKENS = ["the", "black", "cat", "sat", "</s>"]
TARGET_TOKENS = ["<s>", "le", "chat", "noir"]


def _chromium_path() -> str:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: browser tests skipped on request")
    candidates = [os.environ.get(CHROMIUM_ENV), shutil.which("chromium"), shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Chromium was not found (looked at $MINIFORMER_CHROMIUM, `chromium`, `chromium-browser` on PATH); "
        "the offline-HTML test needs a real browser. Install Debian's package with "
        "`apt-get update && apt-get install -y chromium` (as .ci/run does), point MINIFORMER_CHROMIUM at a "
        f"Chromium binary, or set {SKIP_ENV}=1 to skip these tests deliberately."
    )


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over Chromium's --remote-debugging-pipe."""

    def __init__(self, executable: str, user_data_dir: str) -> None:
        commands_read, self._commands_write = os.pipe()
        self._events_read, events_write = os.pipe()

        def give_child_the_pipes() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            read_copy, write_copy = os.dup(commands_read), os.dup(events_write)
            os.dup2(read_copy, 3)
            os.dup2(write_copy, 4)

        self.process = subprocess.Popen(
            [executable, *LAUNCH_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=give_child_the_pipes,
        )
        os.close(commands_read)
        os.close(events_write)
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.on_event = None  # called with each event message as it arrives

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for descriptor in (self._commands_write, self._events_read):
            try:
                os.close(descriptor)
            except OSError:
                pass

    def _read_message(self, deadline: float) -> dict | None:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._events_read], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._events_read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.process.poll()}).")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _dispatch(self, message: dict) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 20) -> dict:
        self._next_id += 1
        command_id = self._next_id
        request = {"id": command_id, "method": method, "params": params or {}}
        if session is not None:
            request["sessionId"] = session
        os.write(self._commands_write, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + timeout
        # Event handlers may send commands of their own, so replies are filed by id, not assumed in order.
        while command_id not in self._replies:
            message = self._read_message(deadline)
            if message is None:
                raise TimeoutError(f"No reply to DevTools command {method} within {timeout} s.")
            if "id" in message:
                self._replies[message["id"]] = message
            else:
                self._dispatch(message)
        reply = self._replies.pop(command_id)
        if "error" in reply:
            raise RuntimeError(f"DevTools command {method} failed: {reply['error']}")
        return reply.get("result", {})

    def pump(self, seconds: float) -> None:
        """Handle events for a while (request interception needs prompt answers)."""
        deadline = time.monotonic() + seconds
        while (message := self._read_message(deadline)) is not None:
            if "id" in message:
                self._replies[message["id"]] = message
            else:
                self._dispatch(message)


@dataclass
class OpenedPage:
    browser: DevToolsPipe
    session: str
    outside_requests: list[str] = field(default_factory=list)
    all_requests: list[str] = field(default_factory=list)

    def evaluate(self, expression: str):
        result = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, self.session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"Page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 10):
        """Poll a JavaScript expression until it is truthy (or time runs out); returns its last value."""
        deadline = time.monotonic() + seconds
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.browser.pump(0.1)
        return value


def open_page(browser: DevToolsPipe, path: Path, settle_seconds: float = 1.5) -> OpenedPage:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    page = OpenedPage(browser, session)

    def on_event(message: dict) -> None:
        if message.get("sessionId") != session:
            return
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            page.all_requests.append(params["request"]["url"])
        elif message.get("method") == "Fetch.requestPaused":
            url = params["request"]["url"]
            if url.startswith(LOCAL_SCHEMES):
                browser.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session)
            else:
                page.outside_requests.append(url)
                browser.send(
                    "Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"}, session
                )

    browser.on_event = on_event
    browser.send("Network.enable", session=session)
    browser.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
    browser.send("Page.enable", session=session)
    browser.send("Runtime.enable", session=session)
    browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session)
    page.wait_for("document.readyState === 'complete'", seconds=15)
    browser.pump(settle_seconds)  # let scripts that would fetch from a CDN try (and be blocked)
    return page


# JavaScript run in the page: the token labels drawn in each bertviz view's SVG.
SVG_TEXTS = """
Array.from(document.querySelectorAll('div[id^="bertviz-"]')).map(root =>
    Array.from(root.querySelectorAll('svg text')).map(node => node.textContent.trim()).filter(Boolean))
"""
SVG_LINE_COUNTS = """
Array.from(document.querySelectorAll('div[id^="bertviz-"]')).map(root => root.querySelectorAll('svg line').length)
"""
VIEW_COUNT = "document.querySelectorAll('div[id^=\"bertviz-\"]').length"


def select_attention_kind(page: OpenedPage, view_index: int, option_index: int) -> None:
    page.evaluate(
        f"""(() => {{
            const root = document.querySelectorAll('div[id^="bertviz-"]')[{view_index}];
            const menu = root.querySelector('#filter');
            menu.value = '{option_index}';
            menu.dispatchEvent(new Event('change', {{bubbles: true}}));
        }})()"""
    )


def offline_render_problems(page: OpenedPage, expected_tokens: set[str]) -> list[str]:
    """What is wrong with a page that should draw bertviz views offline (empty list: nothing)."""
    problems = []
    if page.outside_requests:
        problems.append(f"the page requested {len(page.outside_requests)} outside URLs: {page.outside_requests}")
    drawn = page.wait_for(f"({SVG_TEXTS}).some(texts => texts.length > 0) && {SVG_TEXTS}", seconds=3)
    if not drawn:
        problems.append("no SVG with token labels was drawn")
    else:
        missing = expected_tokens - set().union(*map(set, drawn))
        if missing:
            problems.append(f"token labels missing from the SVG: {sorted(missing)}")
    return problems


@pytest.fixture(scope="module")
def browser():
    executable = _chromium_path()
    with tempfile.TemporaryDirectory(prefix="miniformer-chromium-") as user_data_dir:
        pipe = DevToolsPipe(executable, user_data_dir)
        try:
            pipe.send("Browser.getVersion", timeout=60)
        except (RuntimeError, TimeoutError) as error:
            pipe.close()
            pytest.fail(f"Chromium at {executable} did not start or answer over the DevTools pipe: {error}")
        yield pipe
        pipe.close()


@pytest.fixture(scope="module")
def example() -> visualization.AttentionExample:
    generator = torch.Generator().manual_seed(0)
    layers, heads, source, target = 2, 2, len(SOURCE_TOKENS), len(TARGET_TOKENS)
    causal = torch.ones(target, target).tril().bool()

    def weights(query: int, key: int, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        result = []
        for _ in range(layers):
            scores = torch.randn(1, heads, query, key, generator=generator)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            result.append(torch.softmax(scores, dim=-1))
        return tuple(result)

    return visualization.AttentionExample(
        source_tokens=SOURCE_TOKENS,
        target_tokens=TARGET_TOKENS,
        encoder_attentions=weights(source, source),
        decoder_attentions=weights(target, target, causal),
        cross_attentions=weights(target, source),
    )


def test_exported_html_renders_offline_and_switches_views(browser, example, tmp_path):
    path = visualization.save_attention_html(tmp_path / "attention.html", example)
    page = open_page(browser, path)

    # Both views open on encoder self-attention, so the source tokens are what is drawn first.
    assert offline_render_problems(page, set(SOURCE_TOKENS)) == []
    assert page.outside_requests == []
    assert all(url.startswith(LOCAL_SCHEMES) for url in page.all_requests), page.all_requests
    assert page.evaluate(VIEW_COUNT) == 2  # head view and model view

    head_view, model_view = 0, 1
    lines_by_kind, labels_by_kind = {}, {}
    for option_index, kind in enumerate(["encoder", "decoder", "cross"]):
        for view_index in (head_view, model_view):
            select_attention_kind(page, view_index, option_index)
        page.browser.pump(0.2)
        labels_by_kind[kind] = page.evaluate(SVG_TEXTS)[head_view]
        lines_by_kind[kind] = page.evaluate(SVG_LINE_COUNTS)[model_view]

    # The head view labels queries on the left and keys on the right.
    assert labels_by_kind["encoder"] == SOURCE_TOKENS + SOURCE_TOKENS
    assert labels_by_kind["decoder"] == TARGET_TOKENS + TARGET_TOKENS
    assert labels_by_kind["cross"] == TARGET_TOKENS + SOURCE_TOKENS
    # The model view draws one line per (layer, head, query, key) of the chosen kind.
    layers, heads = len(example.encoder_attentions), example.encoder_attentions[0].shape[1]
    source, target = len(SOURCE_TOKENS), len(TARGET_TOKENS)
    assert lines_by_kind == {
        "encoder": layers * heads * source * source,
        "decoder": layers * heads * target * target,
        "cross": layers * heads * target * source,
    }
    assert page.outside_requests == []


def test_bertviz_own_export_draws_nothing_offline(browser, example, tmp_path):
    """The control: the same checks fail on bertviz's unmodified export (CDN scripts, blocked)."""
    bertviz = pytest.importorskip("bertviz")
    exported = bertviz.head_view(
        encoder_attention=list(example.encoder_attentions),
        decoder_attention=list(example.decoder_attentions),
        cross_attention=list(example.cross_attentions),
        encoder_tokens=SOURCE_TOKENS,
        decoder_tokens=TARGET_TOKENS,
        html_action="return",
    )
    path = tmp_path / "bertviz_export.html"
    path.write_text(exported.data, encoding="utf-8")
    page = open_page(browser, path)

    problems = offline_render_problems(page, set(SOURCE_TOKENS) | set(TARGET_TOKENS))
    assert any("outside URLs" in problem for problem in problems), problems
    assert "no SVG with token labels was drawn" in problems
    assert any("cdnjs.cloudflare.com" in url for url in page.outside_requests)
