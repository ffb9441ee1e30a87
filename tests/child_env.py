"""The PYTHONPATH of the marco children the tests start."""

from __future__ import annotations

import os
from pathlib import Path


def pythonpath(root: Path) -> str:
    """The repository ahead of the inherited PYTHONPATH, never instead of it: the
    inherited entries carry the no-model stand-in (tests/conftest.py) into the
    child, so a child of a test without ``@pytest.mark.model`` cannot load the
    embedded model either."""
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(root), inherited] if inherited else [str(root)])
