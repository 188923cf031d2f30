"""The README is the front door: its quick start runs as written, and its commands are the real ones."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_code(name: str) -> str:
    block = README.split(f"<!-- {name}:begin -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
    match = re.search(r"```python\n(.*?)```", block, re.S)
    assert match, f"README has no python block between its {name} markers"
    return match.group(1)


def test_readme_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(readme_code("quickstart"), "README.md quick start", "exec"), namespace)
    assert (tmp_path / "attention.png").stat().st_size > 0
    assert namespace["output"].logits.shape[:2] == (2, 10)
    # The "Seeing attention" section continues from the quick start's model and tokenizer.
    exec(compile(readme_code("attention"), "README.md seeing attention", "exec"), namespace)
    for name in ("cross.png", "heads.png", "attention.html"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_ci_runs_exactly_the_readme_test_command():
    two_commands = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", two_commands.split("### By hand", 1)[0], re.S)
    assert commands == ["scripts/setup.sh train", "scripts/setup.sh test"]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines
    # The set-up script's test job runs the manual test command shown below the two commands.
    test_command = "HF_HUB_OFFLINE=1 python -m pytest -q"
    assert f"```bash\n{test_command}\n```" in README
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "export HF_HUB_OFFLINE=1\nexec python -m pytest -q" in setup
