"""A Hugging Face Space for the live attention page (``miniformer demo --write-space DIR``).

    write_space(folder, repo_id)      app.py + requirements.txt + README.md (+ a copy of this package)
    check_space_folder / check_space_repo_id   what the command checks before writing anything

A Space runs on Hugging Face and downloads its model from the Hub, so the repo id must name a Hub repository,
never a local run folder (its app.py would fail there).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

from .demo import DemoError

SPACE_APP = '''"""Miniformer attention demo for {repo_id!r}, written by `miniformer demo --write-space`."""

import os

from miniformer_hf.demo import launch, load_demo_model

MODEL = os.environ.get("MINIFORMER_MODEL", {repo_id!r})
EXAMPLES = {examples!r}

if __name__ == "__main__":
    demo_model = load_demo_model(MODEL)
    demo_model.examples = demo_model.examples or EXAMPLES
    # A Space sets GRADIO_SERVER_NAME=0.0.0.0; anywhere else the page stays on this machine (127.0.0.1).
    app, url = launch(demo_model, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                      port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), block=False)
    print(f"Miniformer demo of {{MODEL}}: open {{url}} in a browser (Ctrl+C stops it).", flush=True)
    app.block_thread()
'''

SPACE_REQUIREMENTS = (
    "torch>=2.4",
    "transformers>=5.24,<6",
    "tokenizers>=0.21",
    "safetensors>=0.4",
    "huggingface_hub>=1.0",
    "datasets>=3.0",
    "babel==2.19.0",
    "gradio>=6,<7",
)
SPACE_README = """---
title: Miniformer attention
sdk: gradio
app_file: app.py
pinned: false
---

A live attention page for the Miniformer model `{repo_id}`: type a source text, see the output, the beams,
the cross-attention of each generated token over the source, and the top next tokens at each step.
"""


def write_space(folder: str | Path, repo_id: str, *, examples: Sequence[str] = ()) -> list[Path]:
    """Write a Hugging Face Space that runs the demo for ``repo_id``: app.py, requirements.txt, README.md and a
    copy of this package (``miniformer_hf/``, so the Space runs exactly this code). Returns the files written.

    ``repo_id`` must be a Hub repository (a Space downloads its model; it has no local run folder)."""
    check_space_repo_id(repo_id)
    folder = Path(check_space_folder(folder))
    app = folder / "app.py"
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not _written_by_us(app))):
        raise DemoError(
            f"{folder} exists and is not a Space written by `miniformer demo --write-space`; nothing was changed. "
            "Expected a new or empty folder (or one this command wrote before, which it refreshes)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    package = Path(__file__).resolve().parent
    target = folder / "miniformer_hf"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    written = [
        _write(folder / "app.py", SPACE_APP.format(repo_id=repo_id, examples=list(examples))),
        _write(folder / "requirements.txt", "\n".join(SPACE_REQUIREMENTS) + "\n"),
        _write(folder / "README.md", SPACE_README.format(repo_id=repo_id)),
    ]
    return written + sorted(target.rglob("*.py"))


def check_space_folder(folder: Any) -> str | Path:
    """The folder to write a Space to; an empty name is a `DemoError` (it would silently mean no Space)."""
    if not str(folder).strip():
        raise DemoError("The Space folder is empty (''); expected a new or empty folder such as space/.")
    return folder


def check_space_repo_id(repo_id: Any) -> str:
    """A Hub repo id (``user/name``) a Space can download; a local folder or a malformed id is a `DemoError`."""
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise DemoError("The Space needs the Hub repository it should load (a repo id such as user/miniformer-dates).")
    if Path(repo_id).expanduser().exists():
        raise DemoError(
            f"{repo_id} is a local folder, but a Space runs on Hugging Face and cannot read this machine's files: "
            "its app.py would fail to load the model. Push the run first (miniformer push --model "
            f"{repo_id} --repo-id user/name) and give the Space that repo id (--space-repo user/name)."
        )
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(part and part.replace("-", "").replace("_", "").replace(".", "").isalnum() for part in parts):
        raise DemoError(f"{repo_id!r} is not a Hub repo id; expected user/name (letters, digits, '-', '_', '.').")
    return repo_id


def _written_by_us(app: Path) -> bool:
    """True for the app.py of a Space this command wrote (its first line says so)."""
    try:
        with app.open(encoding="utf-8") as file:
            return "written by `miniformer demo --write-space`" in file.readline()
    except (OSError, UnicodeDecodeError):
        return False


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["SPACE_REQUIREMENTS", "check_space_folder", "check_space_repo_id", "write_space"]
