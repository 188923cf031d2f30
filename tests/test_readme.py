"""The README is the front door: its quick start runs as written, its commands are the real ones, the learner's
path comes before any reference material, and every docs/ page it links exists (code blocks there run too)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))


def readme_code(name: str) -> str:
    """The python block between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in README.md or a docs/ page."""
    for text in [README] + [page.read_text(encoding="utf-8") for page in DOCS]:
        if f"<!-- {name}:begin -->" in text:
            block = text.split(f"<!-- {name}:begin -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
            match = re.search(r"```python\n(.*?)```", block, re.S)
            assert match, f"no python block between the {name} markers"
            return match.group(1)
    raise AssertionError(f"neither README.md nor docs/*.md has <!-- {name}:begin --> markers")


def test_readme_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(readme_code("quickstart"), "README.md quick start", "exec"), namespace)
    assert (tmp_path / "attention.png").stat().st_size > 0
    target_length = namespace["target"].input_ids.shape[1]
    assert namespace["output"].logits.shape[:2] == (1, target_length) and namespace["output"].loss > 0
    # The cross-attention is of the real pair: one row per decoder input (<s> + target shifted), one column per
    # source token (not the source attending to itself).
    cross = namespace["attention_weights"].cross_attentions[2]
    assert cross.shape[-2:] == (target_length, namespace["source"].input_ids.shape[1])
    assert namespace["decoder_input_ids"][0, 1:].tolist() == namespace["target"].input_ids[0, :-1].tolist()
    # docs/attention.md continues from the quick start's model and tokenizer.
    exec(compile(readme_code("attention"), "docs/attention.md", "exec"), namespace)
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


def test_readme_is_a_front_door_with_the_learners_path_first():
    lines = README.splitlines()
    assert len(lines) <= 300, f"README has {len(lines)} lines; reference material belongs in docs/"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:3] == ["## Two commands", "## Learn the paper", "## Quick start (Python)"], headings
    learn = README.split("## Learn the paper", 1)[1].split("\n## ", 1)[0]
    for step in ("miniformer_hf/modeling_miniformer.py", "notebooks/annotated_miniformer.ipynb", "miniformer demo"):
        assert step in learn, step
    assert 'fast_kernels=False' in learn and 'attn_implementation="eager"' in learn
    # No benchmark table or training flag reference before the learner's path.
    before = README.split("## Learn the paper", 1)[0]
    assert "benchmark" not in before.lower() and "--recipe" not in before


def test_every_linked_page_exists_and_links_back():
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", README))
    assert linked == {f"docs/{page.name}" for page in DOCS}, linked
    for page in DOCS:
        text = page.read_text(encoding="utf-8")
        assert "[Back to the README](../README.md)" in text, page.name
        for target in re.findall(r"\]\(\.\./([^)#]+)\)", text):
            assert (ROOT / target).exists(), f"{page.name} links to {target}, which does not exist"
