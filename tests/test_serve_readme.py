"""The README's ``marco serve`` example, run as written on a fresh install
(Marco-o1 not downloaded, an empty MARCO_HOME): its curl/jq commands and its
Python, word for word, against a real server started by the README's own
command line. Only the port is swapped for a free one, and the server gets a
small ``--max-tokens`` and ``--children`` so the searches finish quickly on
one CPU thread."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from child_env import MARCO, ROOT
from serve_process import marco_env, start

README = (ROOT / "README.md").read_text()


def serve_example() -> tuple[str, list[str], str]:
    """(the serve command, the curl commands, the Python block) of the README."""
    bash = next(b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "marco serve" in b)
    lines = bash.strip().splitlines()
    serve = lines[0]
    commands, current = [], []
    for line in lines[1:]:
        if line.startswith("curl ") and current:
            commands.append("\n".join(current))
            current = []
        if line.strip():
            current.append(line)
    commands.append("\n".join(current))
    python = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "localhost:8000" in b)
    return serve, commands, python


def test_the_readme_example_names_what_it_needs():
    serve, commands, python = serve_example()
    assert serve.startswith("marco serve --port 8000 &") and "-m " not in serve.split("#")[0]
    assert len(commands) == 3 and all("localhost:8000" in c for c in commands)
    assert '"model": "marco-o1+mcts"' in commands[1] and '"model": "marco-o1"' in commands[2]
    assert 'model="marco-o1+mcts"' in python


@pytest.mark.model
@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the README example needs curl and jq")
def test_the_readme_serve_example_works_on_a_fresh_install(tmp_path):
    serve, commands, python = serve_example()
    args = serve.split("&")[0].split()
    assert args[:2] == ["marco", "serve"]
    args = [a if a != "8000" else "0" for a in args[2:]] + ["--max-tokens", "64", "--children", "2"]
    home = tmp_path / "fresh"
    env = marco_env(home)
    served = start(home, argv=[*MARCO, "serve", *args], env=env)
    try:
        assert "marco-o1:Q4_K_M is not downloaded" in served.stderr()

        def run(command: str) -> str:
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command.replace("localhost:8000", f"localhost:{served.port}")],
                capture_output=True,
                text=True,
                timeout=600,
                env=env,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        ids = run(commands[0]).split()
        assert ids[:2] == ["smollm2-135m", "smollm2-135m+mcts"] and "smollm2-135m+mcts-quick" in ids
        out = run(commands[1]).strip().splitlines()
        assert out[0] == "smollm2-135m+mcts"  # the model that answered, not the one asked for
        assert 0.0 <= float(out[-1]) <= 1.0 and "null" not in out
        content = "\n".join(out[1:-1]).strip()
        assert content
        stream = run(commands[2])
        assert stream.rstrip().endswith("data: [DONE]") and '"error"' not in stream
        assert '"content"' in stream and '"model": "smollm2-135m"' in stream

        done = subprocess.run(
            [sys.executable, "-c", python.replace("localhost:8000", f"localhost:{served.port}")],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        printed = done.stdout.splitlines()
        assert any(re.fullmatch(r"0(\.\d+)?|1(\.0+)?", line.strip()) for line in printed), done.stdout
    finally:
        served.stop()
