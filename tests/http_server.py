"""A real HTTP server on 127.0.0.1 for tests that download: serves one directory, counts requests,
and can misbehave on demand (drop the connection mid-file, send slowly).

    with serve_directory(tmp_path) as server:
        monkeypatch.setenv("DYMN_RELEASE_URL", server.url)
        ...
        server.drop_after = 1000      # later responses: full Content-Length header, then close after 1000 bytes
        assert server.request_count("dymn04_as.pt") == 1
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path


class LoopbackServer:
    """State shared with the handler threads; set the knobs between requests."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[str] = []  # request paths, in arrival order
        self.drop_after: int | None = None  # bytes of the body to send before dropping the connection
        self.chunk_delay: float = 0.0  # seconds to sleep after each 64 KiB of body (to make downloads overlap)
        self._lock = threading.Lock()

    def request_count(self, name: str | None = None) -> int:
        with self._lock:
            return sum(1 for p in self.requests if name is None or p.rsplit("/", 1)[-1] == name)

    def _record(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)


class _Handler(http.server.SimpleHTTPRequestHandler):
    state: LoopbackServer  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:
        self.state._record(self.path)
        super().do_GET()

    def copyfile(self, source, outputfile) -> None:  # the body, after send_head sent the true Content-Length
        limit, delay = self.state.drop_after, self.state.chunk_delay
        if limit is None and not delay:
            shutil.copyfileobj(source, outputfile)
            return
        sent = 0
        while chunk := source.read(64 * 1024 if limit is None else min(64 * 1024, limit - sent)):
            outputfile.write(chunk)
            sent += len(chunk)
            if delay:
                outputfile.flush()
                time.sleep(delay)
        if limit is not None:
            outputfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that gave up (timeouts, failed tests)
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_directory(path: str | Path) -> Iterator[LoopbackServer]:
    """Serve the files of `path` at `server.url` (ends in '/') on an ephemeral loopback port."""
    state = LoopbackServer()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(path)))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
