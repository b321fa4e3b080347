"""The local front door serves the demo page from web/ and nothing outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.api_gateway import resolve_web_file


@pytest.fixture
def root(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "demo").mkdir(parents=True)
    (web / "demo" / "index.html").write_text("<html></html>")
    (web / "client.js").write_text("export {}")
    (web / "notes.txt").write_text("not served")
    (tmp_path / "secret.html").write_text("outside")
    return web.resolve()


@pytest.mark.parametrize("relative", ["demo/index.html", "client.js", "demo/../client.js", "demo/%69ndex.html"])
def test_files_inside_web_are_served(root, relative):
    assert resolve_web_file(root, relative) is not None


@pytest.mark.parametrize(
    "relative",
    [
        "../secret.html",
        "demo/../../secret.html",
        "%2e%2e/secret.html",
        "..%2Fsecret.html",
        "notes.txt",
        "demo/",
        "demo/missing.html",
        "demo\\..\\..\\secret.html",
        "demo/index.html%00.js",
        "/etc/passwd",
    ],
)
def test_anything_else_is_not(root, relative):
    assert resolve_web_file(root, relative) is None
