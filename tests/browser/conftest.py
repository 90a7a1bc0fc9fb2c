"""Fixtures for the browser test: the built book served on 127.0.0.1, and Chromium.

The browser test is not part of the unit-test run (``pytest tests/`` skips this
directory, see ``norecursedirs`` in ``pyproject.toml``). Run it after building
the HTML::

    jupyter-book build . -W --keep-going
    pytest tests/browser

It needs Debian's ``chromium`` (``/usr/bin/chromium``, or the path in
``$CONVLAB_CHROMIUM``) and Playwright's Python package, which drives that
browser; it never downloads a browser of its own. ``CONVLAB_BOOK_HTML`` may
name another build directory than ``_build/html``. Full-page screenshots of
every chapter at 1280 px and 400 px are kept in ``_build/screenshots`` (or
``$CONVLAB_SCREENSHOTS``).
"""

import functools
import http.server
import os
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def html_dir():
    path = Path(os.environ.get("CONVLAB_BOOK_HTML", ROOT / "_build" / "html"))
    if not (path / "index.html").is_file():
        pytest.fail(f"no built book at {path}: run 'jupyter-book build . -W --keep-going' first")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _serve(directory):
    """Serve ``directory`` on 127.0.0.1 for as long as the generator runs."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def server_url(html_dir):
    yield from _serve(html_dir)


@pytest.fixture(scope="session")
def fixture_url():
    """The known-bad pages of ``tests/browser/fixtures`` (they need no build)."""
    yield from _serve(Path(__file__).parent / "fixtures")


@pytest.fixture(scope="session")
def screenshot_dir():
    """Where the full-page screenshots of every chapter are kept: ``_build/screenshots``."""
    path = Path(os.environ.get("CONVLAB_SCREENSHOTS", ROOT / "_build" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser_context():
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CONVLAB_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).is_file():
        pytest.fail(
            f"Chromium not found at {executable}: install Debian's package "
            "(apt-get install chromium) or set CONVLAB_CHROMIUM"
        )
    with tempfile.TemporaryDirectory(prefix="convlab-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
            )
            try:
                yield context
            finally:
                context.close()
