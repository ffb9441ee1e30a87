"""The README contract: CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = _bash_blocks(readme)
    install_and_ask, install_and_test = blocks[0].strip(), blocks[1].strip()
    assert "marco ask" in install_and_ask and "pip install" in install_and_ask
    assert "pytest" in install_and_test
    ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_and_test in ci_lines


def test_readme_option_table_is_the_settings_spec():
    """The README's option table is generated from the settings spec and the
    registered commands; after changing a setting, regenerate it with
    `python -m marco_cli.commands._readme README.md`."""
    from marco_cli.commands._readme import replace_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert replace_table(readme) == readme, "README option table is stale: run python -m marco_cli.commands._readme README.md"
