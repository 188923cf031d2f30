"""miniformer_hf/demo_space.py: the Hugging Face Space written by `miniformer demo --write-space` runs the demo for
a Hub repo id from its own folder alone; a local run folder, an empty folder name or a folder it did not write are
refused before anything is written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')

from miniformer_hf import demo, demo_space  # noqa: E402
from miniformer_hf.demo import DemoError  # noqa: E402
from test_demo import (  # noqa: E402  (one trained run per session, shared with test_demo.py)
    REPO_ROOT, _free_port, _wait_for_url, _without_package_env, call_predict,
)


@pytest.fixture(scope="module")
def run_folder(date_run) -> Path:
    return date_run  # tests/conftest.py: one trained date model per session


@pytest.fixture(scope="module")
def write_space_commands(run_folder, tmp_path_factory) -> tuple[Path, dict]:
    """`miniformer demo --write-space` three times, offline and without the package installed: for the local run
    folder without --space-repo (refused; into "refused"), with it (into "local"), and for a Hub repo id (into
    "hub"). They run one after another in one Python process, as `python -m miniformer_hf.cli` runs each
    (tests/cli_runner.py: imports are most of a command's time). Returns (their folder, name -> result)."""
    from cli_runner import run_commands

    folder = tmp_path_factory.mktemp("write-space")
    local = ["demo", "--model", str(run_folder), "--write-space"]
    commands = {
        "refused": (folder, [*local, str(folder / "refused")]),
        "local": (folder, [*local, str(folder / "local"), "--space-repo", "alice/miniformer-dates"]),
        "hub": (folder, ["demo", "--model", "alice/miniformer-dates", "--write-space", str(folder / "hub")]),
    }
    return folder, run_commands(commands, env=_without_package_env(folder, {"PYTHONPATH": str(REPO_ROOT)}), cwd=folder)


def test_space_checks_refuse_an_empty_folder_and_a_local_path(tmp_path):
    with pytest.raises(DemoError, match="Space folder is empty"):
        demo_space.write_space("", "alice/miniformer-dates")
    with pytest.raises(DemoError, match="is a local folder, but a Space runs on Hugging Face"):
        demo_space.write_space(tmp_path / "space", str(tmp_path))
    with pytest.raises(DemoError, match="is not a Hub repo id"):
        demo_space.check_space_repo_id("alice/dates/extra")
    assert not (tmp_path / "space").exists()


def test_write_space_from_a_local_run_folder_asks_for_the_repo_id(run_folder, write_space_commands):
    folder, results = write_space_commands
    refused = results["refused"]
    assert refused["code"] == 1 and "is a local folder, but a Space runs on Hugging Face" in refused["stderr"]
    assert "--space-repo" in refused["stderr"] and not (folder / "refused").exists()
    with pytest.raises(DemoError, match="is a local folder"):
        demo_space.write_space(folder / "refused", str(run_folder))
    written = results["local"]
    assert written["code"] == 0, written["stderr"]
    app = (folder / "local" / "app.py").read_text(encoding="utf-8")
    assert "'alice/miniformer-dates'" in app and str(run_folder) not in app
    assert demo.held_out_examples(run_folder)[0] in app  # the local run gave the Space its examples


@pytest.mark.slow
def test_written_space_runs_the_demo_for_a_repo_id(run_folder, write_space_commands, tmp_path, monkeypatch):
    """Push the run to a local Hub, write the Space, run its app.py from the Space folder alone."""
    from hub_server import HubServer
    from test_sharing import _point_client_at

    from miniformer_hf.sharing import push_run_folder

    folder, results = write_space_commands
    space = folder / "hub"
    assert results["hub"]["code"] == 0, results["hub"]["stderr"]
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "miniformer_hf", "requirements.txt"]
    requirements = (space / "requirements.txt").read_text()
    assert "gradio" in requirements and "transformers" in requirements
    assert "alice/miniformer-dates" in (space / "app.py").read_text()

    with HubServer(tokens={"hf_alice": "alice"}) as hub:
        _point_client_at(monkeypatch, hub.url, tmp_path / "pusher_home")  # this process pushes the run there
        push_run_folder(run_folder, "alice/miniformer-dates", token="hf_alice")
        hub_env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_alice", "HF_HOME": str(tmp_path / "hf_home"),
                   "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
        port = _free_port()
        # Only the Space folder on the path: the app must run from what --write-space wrote. The process says
        # which miniformer_hf.demo it imported, then runs app.py as `python app.py` would.
        env = _without_package_env(tmp_path, {**hub_env, "PYTHONPATH": str(space), "GRADIO_SERVER_PORT": str(port)})
        start = ("import runpy, sys; import miniformer_hf.demo as d; print('DEMO MODULE', d.__file__, flush=True); "
                 "sys.argv = ['app.py']; runpy.run_path('app.py', run_name='__main__')")
        process = subprocess.Popen([sys.executable, "-c", start], cwd=space, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=env)
        try:
            before = []  # what the imports may print first (warnings), then the module line
            while len(before) < 50 and not (before and (not before[-1] or before[-1].startswith("DEMO MODULE "))):
                before.append(process.stdout.readline())
            assert before[-1].strip() == f"DEMO MODULE {space / 'miniformer_hf' / 'demo.py'}", before
            url = _wait_for_url(process, port)
            output, _ = call_predict(url, "7 marzo 2056")
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", output), output
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_write_space_refuses_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "notes"
    (mine / "miniformer_hf").mkdir(parents=True)
    (mine / "miniformer_hf" / "thesis.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(DemoError, match="not a Space written by"):
        demo_space.write_space(mine, "alice/miniformer-dates")
    assert (mine / "miniformer_hf" / "thesis.txt").read_text(encoding="utf-8") == "keep me"
    assert not (mine / "app.py").exists()

    space = tmp_path / "space"
    demo_space.write_space(space, "alice/miniformer-dates")
    written_again = demo_space.write_space(space, "alice/other")  # a Space this command wrote is refreshed
    assert "alice/other" in (space / "app.py").read_text(encoding="utf-8") and written_again
