"""A throw-away HTTP server on 127.0.0.1 for testing downloads without a network."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.drop_after is None:
            self.wfile.write(body)
        else:
            # Promise the whole body, send part of it, then hang up.
            self.wfile.write(body[: server.drop_after])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, format, *args):  # keep test output quiet
        pass


@contextmanager
def serve_files(files: dict[str, bytes], drop_after: int | None = None):
    """Serve ``files`` (URL path -> content) until the ``with`` block ends.

    Parameters
    ----------
    files : dict
        E.g. ``{"/cifar-10-python.tar.gz": archive_bytes}``; other paths get 404.
    drop_after : int, optional
        If given, every response announces the full length but the connection
        is closed after this many bytes of the body.

    Yields
    ------
    base_url : str
        ``http://127.0.0.1:<port>`` (an ephemeral port).
    requests : list of str
        The paths requested so far (appended to while serving).
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.files = dict(files)
    server.requests = []
    server.drop_after = drop_after
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
