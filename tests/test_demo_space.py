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


def test_space_checks_refuse_an_empty_folder_and_a_local_path(tmp_path):
    with pytest.raises(DemoError, match="Space folder is empty"):
        demo_space.write_space("", "alice/miniformer-dates")
    with pytest.raises(DemoError, match="is a local folder, but a Space runs on Hugging Face"):
        demo_space.write_space(tmp_path / "space", str(tmp_path))
    with pytest.raises(DemoError, match="is not a Hub repo id"):
        demo_space.check_space_repo_id("alice/dates/extra")
    assert not (tmp_path / "space").exists()


def test_write_space_from_a_local_run_folder_asks_for_the_repo_id(run_folder, tmp_path):
    space = tmp_path / "space"
    command = [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", str(run_folder), "--write-space", str(space)]
    env = _without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)})
    refused = subprocess.run(command, capture_output=True, text=True, env=env)
    assert refused.returncode == 1 and "is a local folder, but a Space runs on Hugging Face" in refused.stderr
    assert "--space-repo" in refused.stderr and not space.exists()
    with pytest.raises(DemoError, match="is a local folder"):
        demo_space.write_space(space, str(run_folder))
    written = subprocess.run(command + ["--space-repo", "alice/miniformer-dates"], capture_output=True, text=True, env=env)
    assert written.returncode == 0, written.stderr
    app = (space / "app.py").read_text(encoding="utf-8")
    assert "'alice/miniformer-dates'" in app and str(run_folder) not in app
    assert demo.held_out_examples(run_folder)[0] in app  # the local run gave the Space its examples


@pytest.mark.slow
def test_written_space_runs_the_demo_for_a_repo_id(run_folder, tmp_path):
    """Push the run to a local Hub, write the Space, run its app.py from the Space folder alone."""
    from hub_server import HubServer

    space = tmp_path / "space"
    result = subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "demo", "--model", "alice/miniformer-dates", "--write-space", str(space)],
        capture_output=True, text=True, env=_without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT)}),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "miniformer_hf", "requirements.txt"]
    requirements = (space / "requirements.txt").read_text()
    assert "gradio" in requirements and "transformers" in requirements
    assert "alice/miniformer-dates" in (space / "app.py").read_text()

    with HubServer(tokens={"hf_alice": "alice"}) as hub:
        hub_env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_alice", "HF_HOME": str(tmp_path / "hf_home"),
                   "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
        push = subprocess.run(
            [sys.executable, "-c", "import sys; from miniformer_hf.sharing import push_run_folder; "
             "push_run_folder(sys.argv[1], 'alice/miniformer-dates')", str(run_folder)],
            capture_output=True, text=True, env=_without_package_env(tmp_path, {"PYTHONPATH": str(REPO_ROOT), **hub_env}),
        )
        assert push.returncode == 0, push.stderr
        port = _free_port()
        # Only the Space folder on the path: the app must run from what --write-space wrote.
        env = _without_package_env(tmp_path, {**hub_env, "PYTHONPATH": str(space), "GRADIO_SERVER_PORT": str(port)})
        imported = subprocess.run([sys.executable, "-c", "import miniformer_hf.demo as d; print(d.__file__)"],
                                  cwd=space, capture_output=True, text=True, env=env)
        assert imported.stdout.strip() == str(space / "miniformer_hf" / "demo.py"), imported
        process = subprocess.Popen([sys.executable, "app.py"], cwd=space, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=env)
        try:
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
