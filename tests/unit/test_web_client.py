"""The JavaScript client's own tests (`node --test web/test/`), run by `make test` through pytest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_node_tests_of_the_web_client_pass():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the web client's tests (node --test web/test/) need Node 20+")
    result = subprocess.run(
        [node, "--test", "web/test/"], cwd=REPO, capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
