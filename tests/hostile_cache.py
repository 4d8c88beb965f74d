"""A Bazel-style HTTP cache server that lies, for the tests of a hostile remote cache
(test_cache_hostile.py): a real server on a loopback socket (http.server in a thread), holding
/ac/ and /cas/ values in a dict that a test rewrites at will, and answering chosen paths with an
endless body or a false Content-Length."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDLESS_LIMIT = 1 << 30  # an endless body stops here at the latest, should a client never hang up


class HostileCache:
    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}  # "/ac/<key>" or "/cas/<digest>" (without the prefix) -> value
        self.endless: set[str] = set()  # paths answered 200 with zeros until the client hangs up
        self.announce: dict[str, int] = {}  # paths answered with this Content-Length, then zeros
        self.sent: dict[str, int] = {}  # body bytes written per path (for the endless ones)
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def entries(self) -> dict[str, bytes]:
        """Action key -> entry bytes."""
        return {path[len("/ac/") :]: data for path, data in self.store.items() if path.startswith("/ac/")}


def _handler(cache: HostileCache):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            data = self.rfile.read(length)
            with cache.lock:
                cache.store[self.path] = data
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, body: bool) -> None:
            path = self.path
            if path in cache.endless or path in cache.announce:
                self.send_response(200)
                if path in cache.announce:
                    self.send_header("Content-Length", str(cache.announce[path]))
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if body:
                    self._zeros(path, cache.announce.get(path, ENDLESS_LIMIT))
                return
            with cache.lock:
                data = cache.store.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _zeros(self, path: str, limit: int) -> None:
            chunk = bytes(64 * 1024)
            sent = 0
            try:
                while sent < min(limit, ENDLESS_LIMIT):
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:  # the client hung up: what a careful client does
                pass
            with cache.lock:
                cache.sent[path] = cache.sent.get(path, 0) + sent

    return Handler
