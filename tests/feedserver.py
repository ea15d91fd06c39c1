"""A real HTTP server on 127.0.0.1 for the fetching tests, misbehaving on request.

Each path is given a ``Route``: a status, headers and body, or one of the misbehaviours a feed
server shows in the wild (drip-feeding, hanging, resetting the connection, redirecting in
circles, a gzip bomb). The server records every request it receives (path, headers, time), so
tests can assert what was asked and when, not only what came back.

It is ``http.server.ThreadingHTTPServer`` with daemon threads: a hanging handler never keeps
the test process alive. ``start()`` binds port 0 and returns the base URL; ``stop()`` shuts the
server down and joins its thread.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # "drip": headers, then one byte a second; "hang": accept and say nothing; "reset": half
    # the body, then a TCP reset; None: answer normally.
    behaviour: str | None = None
    etag: str | None = None  # answer 304 to a matching If-None-Match
    last_modified: float | None = None  # epoch seconds; 304 to If-Modified-Since at or after
    delay: float = 0.0  # seconds before answering
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None  # full control


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    at: float
    method: str = "GET"
    body: bytes = b""  # POST requests (a WebSub hub stand-in reads the publish pings)
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one per connection


class FeedServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls  # serve https with this context (a trustme certificate in the tests)
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base = ""

    def route(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.base + path

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: tests read owner.requests instead

            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests.append(
                        Request(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            time.time(),
                            peer=self.client_address[:2],
                        )
                    )
                route = owner.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found", {"content-type": "text/plain"})
                    return
                if route.delay:
                    time.sleep(route.delay)
                if route.handler is not None:
                    route.handler(self)
                    return
                if route.behaviour == "hang":
                    time.sleep(3600)
                    return
                if route.etag and self.headers.get("if-none-match") == route.etag:
                    self._send(304, b"", {"etag": route.etag})
                    return
                if route.last_modified is not None and self.headers.get("if-modified-since"):
                    self._send(304, b"", {})
                    return
                headers = dict(route.headers)
                if route.etag:
                    headers["etag"] = route.etag
                if route.last_modified is not None:
                    headers["last-modified"] = formatdate(route.last_modified, usegmt=True)
                if route.behaviour == "drip":
                    self._head(route.status, headers, len(route.body))
                    for byte in route.body:
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(1.0)
                    return
                if route.behaviour == "reset":
                    self._head(route.status, headers, len(route.body))
                    self.wfile.write(route.body[: len(route.body) // 2])
                    self.wfile.flush()
                    # SO_LINGER with a zero timeout: the last close() sends RST, not FIN. The
                    # buffered files hold the socket too; close them all, then end the handler.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.wfile.close()
                    self.rfile.close()
                    self.connection.close()
                    return
                self._send(route.status, route.body, headers)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner._lock:
                    owner.requests.append(
                        Request(
                            self.path, {k.lower(): v for k, v in self.headers.items()},
                            time.time(), "POST", body,
                        )
                    )  # fmt: skip
                route = owner.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found", {"content-type": "text/plain"})
                    return
                self._send(route.status, route.body, dict(route.headers))

            def _head(self, status: int, headers: dict[str, str], length: int | None) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if length is not None:
                    self.send_header("content-length", str(length))
                self.end_headers()

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self._head(status, headers, None if status == 304 else len(body))
                if status != 304:
                    self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        port = server.server_address[1]
        self.base = f"https://localhost:{port}" if self.tls else f"http://127.0.0.1:{port}"
        return self.base

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def gzip_bomb(size: int) -> bytes:
    """``size`` bytes of zeros, gzipped (a thousandfold smaller)."""
    return gzip.compress(b"\0" * size, compresslevel=9)
