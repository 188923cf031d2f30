"""The README is the front door: its quick start runs as written, and its commands are the real ones."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quickstart_code() -> str:
    block = README.split("<!-- quickstart:begin -->", 1)[1].split("<!-- quickstart:end -->", 1)[0]
    match = re.search(r"```python\n(.*?)```", block, re.S)
    assert match, "README quick start has no python block between its markers"
    return match.group(1)


def test_readme_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(quickstart_code(), "README.md quick start", "exec"), namespace)
    assert (tmp_path / "attention.png").stat().st_size > 0
    assert namespace["output"].logits.shape[:2] == (2, 10)


def test_ci_runs_exactly_the_readme_test_command():
    test_command = "HF_HUB_OFFLINE=1 python -m pytest -q"
    assert f"```bash\n{test_command}\n```" in README
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
