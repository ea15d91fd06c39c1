"""The HTTP front: the published files in output_dir, and pages about them. The only home of
the HTTP server libraries (uvicorn, with httptools and uvloop where installed).

Input: a ``Config``. Output: an ASGI application (``app(config)``) and a blocking server
(``serve(config, host, port)``, or ``Server`` to stop it from another thread). What it answers,
under the path of ``base_url`` (``/`` for ``http://localhost:8080/``):

    /            the feed list (pages.home), with autodiscovery links
    /status      per-source health (pages.health_page)
    /healthz     200 while cycles succeed on time, else 503 (pipeline.health), text
    /metrics     Prometheus text (metrics.py)
    /<file>      a regular, non-hidden file under output_dir whose extension is in ``MIME``,
                 in subfolders too; everything else is 404, a malformed path 400

Files are answered from a cache keyed by (inode, size, mtime) from one ``os.stat`` per
request: the bytes, a strong ETag (BLAKE2b of the bytes), Last-Modified, and the gzip, brotli
and (for Atom, to a browser) HTML renderings, each made once per file version in a worker
thread. So a conditional GET that matches is a stat and a header compare. A feed is replaced
by rename (publish.py), which gives it a new inode: the next request sees the new version.

It must not touch SQL or the stages: state comes from ``pipeline.status``/``pipeline.health``.
It never follows a path outside output_dir (symlinks are resolved and checked on each new
file version) and never serves dot-files (publish.py's temporary ``.name.tmp`` files).
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import logging
import os
import re
import signal
import socket
import stat
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import brotli
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aggregator import metrics, pages, pipeline, stylesheet
from aggregator.errors import ServeError
from aggregator.model import Config, ServeSettings

log = logging.getLogger("aggregator")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# What may be served, by extension; anything else under output_dir is 404. Every type is
# text, sent as UTF-8 (the writer, opml.py and feed.xsl write UTF-8).
MIME = {
    ".atom": "application/atom+xml",  # RFC 4287
    ".rss": "application/rss+xml",
    ".json": "application/feed+json",  # JSON Feed 1.1
    ".opml": "text/x-opml",
    ".xsl": "text/xsl",  # what Chromium and Firefox accept for an xml-stylesheet
    ".xml": "application/xml",
    ".html": "text/html",
    ".css": "text/css",
}
# Feeds change once a cycle (30 min by default, [fetch].interval); five minutes of freshness
# spares revalidations from readers that poll often, and delays a new entry by at most that.
FILE_MAX_AGE = 300
# Brotli quality 9: an 800 KB, 100-entry feed compresses in 40 ms to 30.4 KB; quality 11
# takes 1.1 s for 29.7 KB (measured on the bench corpus). gzip 9: 18 ms.
BROTLI_QUALITY = 9
GZIP_LEVEL = 9
# Bytes kept in the file cache (every rendering counted); the least recently used file goes
# first. 500 feeds of 100 entries (~800 KB each, ~1 MB with their compressed forms) fit.
CACHE_BYTES = 512 * 1024 * 1024
# Seconds a stopping server waits for requests in flight before closing their connections.
SHUTDOWN_GRACE = 5

_ETAGS = re.compile(rb'(?:W/)?("[^"]*")')


# --- content negotiation (pure; cached per header value, which repeats from each client) ---


def _params_q(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


@lru_cache(maxsize=512)
def _encoding(header: bytes) -> str:
    """ "br", "gzip" or "" (identity) for an Accept-Encoding value (RFC 9110 12.5.3): the
    acceptable coding of highest q, brotli first on a tie, identity when it is preferred."""
    q: dict[str, float] = {}
    for part in header.decode("latin-1").split(","):
        name, _, params = part.partition(";")
        name = name.strip().lower()
        if name:
            q["gzip" if name == "x-gzip" else name] = _params_q(params)
    star = q.get("*")
    best, best_q = "", 0.0
    for coding in ("br", "gzip"):
        value = q.get(coding, star or 0.0)
        if value > best_q:
            best, best_q = coding, value
    identity = q.get("identity", 1.0 if star is None else star)
    return best if best_q > 0 and best_q >= identity else ""


_XML_TYPES = ("application/atom+xml", "application/xml", "text/xml")


@lru_cache(maxsize=512)
def _wants_html(header: bytes) -> bool:
    """True when an Accept value ranks text/html above every XML type a feed is (a browser
    navigating: ``text/html,...,application/xml;q=0.9,*/*;q=0.8``). A reader's ``*/*``, its
    ``application/atom+xml``, or no Accept at all gets the feed itself (RFC 9110 12.5.1: the
    most specific matching range gives a type its q)."""
    ranges = []
    for part in header.decode("latin-1").split(","):
        media, _, params = part.partition(";")
        main, _, sub = media.strip().lower().partition("/")
        if main and sub:
            ranges.append((main, sub, _params_q(params)))

    def q(mime: str) -> float:
        main, sub = mime.split("/")
        best, rank = 0.0, -1
        for m, s, value in ranges:
            r = 2 if (m, s) == (main, sub) else 1 if (m == main and s == "*") else 0
            if (r == 2 or r == 1 or (m, s) == ("*", "*")) and r > rank:
                best, rank = value, r
        return best

    return bool(ranges) and q("text/html") > max(q(t) for t in _XML_TYPES)


@lru_cache(maxsize=512)
def _since(header: bytes) -> float | None:
    """An If-Modified-Since value as Unix time; None when it is not an HTTP-date (ignored,
    RFC 9110 13.1.3)."""
    try:
        when = parsedate_to_datetime(header.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):  # (year 9999999999: overflow)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _none_match(header: bytes, etag: bytes) -> bool:
    """If-None-Match is false (so: 304) when it is ``*`` or lists the current entity tag;
    weak comparison (RFC 9110 13.1.2, 8.8.3.2): ``W/"x"`` matches ``"x"``."""
    if header.strip() == b"*":
        return True
    return etag in header and etag in _ETAGS.findall(header)


# --- the file cache ---


@dataclass(slots=True)
class _Variant:
    """One rendering of a file version, with its response headers made once."""

    body: bytes
    ok: list[tuple[bytes, bytes]]  # headers of the 200
    not_modified: list[tuple[bytes, bytes]]  # headers of the 304
    etag: bytes


@dataclass(slots=True)
class _File:
    key: tuple[int, int, int]  # (inode, size, mtime_ns)
    path: str
    mime: str
    digest: str
    last_modified: bytes
    mtime: int  # whole seconds, as Last-Modified says it
    variants: dict[str, _Variant] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(v.body) for v in self.variants.values())


def _variant(f: _File, body: bytes, etag: bytes, coding: str = "", html: bool = False) -> _Variant:
    """A rendering of ``f`` with its 200 and 304 headers, made once."""
    common = [
        (b"etag", etag),
        (b"last-modified", f.last_modified),
        (b"cache-control", b"public, max-age=%d" % FILE_MAX_AGE),
        # A feed's answer depends on Accept too (a browser gets the page).
        (b"vary", b"accept, accept-encoding" if f.mime == MIME[".atom"] else b"accept-encoding"),
    ]
    mime = "text/html" if html else f.mime
    ok = [
        (b"content-type", f"{mime}; charset=utf-8".encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        *common,
    ]
    if coding:
        ok.append((b"content-encoding", coding.encode()))
    if html:
        ok.append((b"content-security-policy", pages.CONTENT_SECURITY_POLICY.encode()))
    return _Variant(body, ok, common, etag)


class _Invalid(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Files:
    """Files under ``root`` by their path relative to it, and what each costs to send."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.real_root = os.path.realpath(root)
        self._cache: OrderedDict[str, _File] = OrderedDict()
        self._bytes = 0
        self._pending: dict[tuple[str, str], asyncio.Future[Any]] = {}

    @staticmethod
    def check(rel: str) -> str:
        """The content type for a request path relative to the root; _Invalid(400) for a
        malformed or climbing path, _Invalid(404) for a hidden file or a type not served."""
        segments = rel.split("/")
        if not segments[-1]:
            raise _Invalid(404)  # a folder: no listings
        for seg in segments:
            if seg in ("", ".", "..") or "\\" in seg or "\x00" in seg:
                raise _Invalid(400)
            if seg[0] == ".":
                raise _Invalid(404)
        _, dot, ext = segments[-1].rpartition(".")
        mime = MIME.get(dot + ext) if dot else None
        if mime is None:
            raise _Invalid(404)
        return mime

    def _load(self, path: str, mime: str) -> _File | None:
        """Read a new file version (in a worker thread). None if it is gone, not a regular
        file, or resolves outside the root."""
        real = os.path.realpath(path)
        if not real.startswith(self.real_root + os.sep):
            log.warning("serve: %s resolves outside output_dir (%s); not served", path, real)
            return None
        try:
            with Path(real).open("rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                body = fh.read()
        except OSError:
            return None
        mtime = int(st.st_mtime)
        f = _File(
            key=(st.st_ino, st.st_size, st.st_mtime_ns),
            path=path,
            mime=mime,
            digest=hashlib.blake2b(body, digest_size=16).hexdigest(),
            last_modified=formatdate(mtime, usegmt=True).encode(),
            mtime=mtime,
        )
        f.variants[""] = _variant(f, body, f'"{f.digest}"'.encode())
        return f

    def _render(self, f: _File, name: str) -> _Variant:
        """Make rendering ``name`` of ``f`` (in a worker thread): "gzip"/"br" the file
        compressed, "html" the readable page of a feed, "html+gzip"/"html+br" that compressed.
        A strong ETag differs per rendering: the page's is its own digest, a compressed one is
        its source's tag with the coding appended."""
        if name == "html":
            try:
                page = stylesheet.to_html(f.variants[""].body)
            except ValueError as e:
                log.warning("serve: %s: cannot show it as a page (%s); sending the feed", f.path, e)
                return f.variants[""]
            tag = hashlib.blake2b(page, digest_size=16).hexdigest()
            return _variant(f, page, f'"{tag}"'.encode(), html=True)
        kind, _, coding = name.rpartition("+")
        source = f.variants["html"] if kind else f.variants[""]
        packed = (
            gzip.compress(source.body, GZIP_LEVEL, mtime=0)
            if coding == "gzip"
            else brotli.compress(source.body, quality=BROTLI_QUALITY)
        )
        etag = source.etag[:-1] + b"-" + coding.encode() + b'"'
        return _variant(f, packed, etag, coding, html=source is not f.variants[""])

    async def _once(self, key: tuple[str, str], fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` in a worker thread, once for any number of requests waiting on it."""
        fut = self._pending.get(key)
        if fut is None:
            fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
            self._pending[key] = fut
            fut.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(fut)

    async def get(self, rel: str, mime: str) -> _File | None:
        """The current version of the file at ``rel`` (already checked), or None."""
        f = self._cache.get(rel)
        path = f.path if f is not None else f"{self.root}/{rel}"
        try:
            # A str path, not a Path: this stat is most of the work of a 304.
            st = os.stat(path)  # noqa: PTH116
        except (OSError, ValueError):
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            if f is not None:
                self._drop(rel)
            return None
        if f is not None and f.key == (st.st_ino, st.st_size, st.st_mtime_ns):
            self._cache.move_to_end(rel)
            return f
        new: _File | None = await self._once((rel, "load"), self._load, path, mime)
        if new is None:
            return None
        if rel in self._cache:
            self._drop(rel)
        self._cache[rel] = new
        self._grow(new.size)
        return new

    async def variant(self, rel: str, f: _File, name: str) -> _Variant:
        v = f.variants.get(name)
        if v is None:
            if name.startswith("html+") and "html" not in f.variants:
                await self.variant(rel, f, "html")
            v = await self._once((rel, f.digest + name), self._render, f, name)
            if name not in f.variants:
                f.variants[name] = v
                if self._cache.get(rel) is f:
                    self._grow(len(v.body))
        return v

    def _drop(self, rel: str) -> None:
        old = self._cache.pop(rel)
        self._bytes -= old.size

    def _grow(self, n: int) -> None:
        self._bytes += n
        while self._bytes > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.size


# --- the application ---


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, head: bool
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _text(send: Send, status: int, text: str, head: bool, **extra: str) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *((k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()),
    ]
    await _respond(send, status, headers, body, head)


class App:
    """The ASGI application (``app(config)``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Requests' paths come decoded (ASGI), base_url's is percent-encoded (/my%20feeds/).
        self.location = urlsplit(config.base_url).path or "/"
        self.prefix = unquote(self.location)
        self.files = _Files(config.output_dir)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        head = method == "HEAD"
        if method != "GET" and not head:
            await _text(send, 405, "only GET and HEAD\n", False, allow="GET, HEAD")
            return
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            if path + "/" == self.prefix:
                await _text(send, 308, "moved\n", head, location=self.location)
            else:
                await _text(send, 404, "not found\n", head)
            return
        rel = path[len(self.prefix) :]
        if rel in _PAGES:
            await _PAGES[rel](self, send, head)
        else:
            await self._file(scope, send, rel, head)

    async def _file(self, scope: Scope, send: Send, rel: str, head: bool) -> None:
        try:
            mime = _Files.check(rel)
        except _Invalid as e:
            await _text(send, e.status, "bad path\n" if e.status == 400 else "not found\n", head)
            return
        f = await self.files.get(rel, mime)
        if f is None:
            await _text(send, 404, "not found\n", head)
            return
        accept = b""
        coding = b""
        none_match = None
        since = None
        for key, value in scope["headers"]:
            if key == b"accept-encoding":
                coding = value
            elif key == b"if-none-match":
                none_match = value
            elif key == b"if-modified-since":
                since = value
            elif key == b"accept":
                accept = value
        name = _encoding(coding) if coding else ""
        if mime == MIME[".atom"] and accept and _wants_html(accept):
            name = "html+" + name if name else "html"
        v = await self.files.variant(rel, f, name)
        if none_match is not None:
            fresh = _none_match(none_match, v.etag)
        elif since is not None:
            when = _since(since)
            fresh = when is not None and f.mtime <= when
        else:
            fresh = False
        if fresh:
            await send({"type": "http.response.start", "status": 304, "headers": v.not_modified})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _respond(send, 200, v.ok, v.body, head)

    async def _status(self) -> tuple[Any, tuple[bool, str], datetime]:
        now = datetime.now(UTC)
        state = await asyncio.to_thread(pipeline.status, self.config)
        return state, pipeline.health(self.config, state, now), now

    async def _page(self, send: Send, head: bool, body: bytes) -> None:
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            (b"content-security-policy", pages.CONTENT_SECURITY_POLICY.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        await _respond(send, 200, headers, body, head)

    async def home(self, send: Send, head: bool) -> None:
        state, health, _ = await self._status()
        await self._page(send, head, pages.home(state, health))

    async def health_page(self, send: Send, head: bool) -> None:
        state, health, now = await self._status()
        await self._page(send, head, pages.health_page(state, health, now))

    async def healthz(self, send: Send, head: bool) -> None:
        _, (ok, why), _ = await self._status()
        await _text(send, 200 if ok else 503, why + "\n", head)

    async def metrics(self, send: Send, head: bool) -> None:
        state, (ok, _), _ = await self._status()
        body, content_type = await asyncio.to_thread(metrics.exposition, state, ok)
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await _respond(send, 200, headers, body, head)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


_PAGES: dict[str, Callable[[App, Send, bool], Awaitable[None]]] = {
    "": App.home,
    "status": App.health_page,
    "healthz": App.healthz,
    "metrics": App.metrics,
}


# The limits uvicorn's httptools protocol does not set. A request's head (request line and
# headers) is a few hundred bytes; 64 KiB is far past any real client (nginx's default buffers
# hold 8 KiB a line) and bounds what one connection can make the parser chew.
MAX_HEAD = 64 * 1024
_LINGER_SECONDS = 1.0


class _GuardedHttp(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools), with a cap on a request's head and a deadline
    for the request. Without them, one client sending a 100 MB header held the event loop for
    seconds, and clients that open a connection and send nothing, or a byte a second, kept it
    forever until the open-file limit was reached (slowloris). A head over ``MAX_HEAD`` is
    answered 431, a request (head and any body) not complete within ``header_timeout`` of its
    first byte (of the connection, for the first) 408, and the connection is closed. Idle time
    between kept-alive requests is uvicorn's own keep-alive timeout."""

    header_timeout = ServeSettings().header_timeout
    _deadline: asyncio.TimerHandle | None = None
    _head = 0  # bytes of the current request's head received so far
    _reading_head = True
    _refused = False  # answered 408 or 431: what else comes is read and dropped, then closed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _unsupported_upgrade_warning(self) -> None:
        """A request asking to upgrade (to a WebSocket, to h2c) is answered as plain HTTP, as
        RFC 9110 7.8 allows, without uvicorn's two warnings a request: any client could fill
        the log with them."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head += len(data)
            if self._head > MAX_HEAD:
                self._refuse(431, "Request Header Fields Too Large")
                return
            self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._reading_head, self._head = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # The deadline covers the whole request, a body included (nothing here takes one; a
        # body dripped a byte at a time would hold the connection as a slow head did).
        self._disarm()
        super().on_message_complete()
        self._reading_head = True  # the next request's head: timed from its first byte

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer is still going out: no 408 inside it
            return
        self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` and end the connection. Closing at once, with the client's bytes
        still unread, would make the kernel reset the connection, and the client would lose
        the answer; so our side is shut, what the client still sends is dropped for a
        second, and then the connection is closed."""
        self._disarm()
        self._reading_head, self._refused = False, True
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            % (status, reason.encode())
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)


def _connection_limit() -> int:
    """Connections served at once before new ones are answered 503: half the open-file limit
    (each is a descriptor; the rest are for feeds and the state), between 64 and 4,096."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, soft // 2))


def app(config: Config) -> App:
    """The ASGI application serving ``config``'s output folder and pages."""
    return App(config)


# --- the server ---


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, or ServeError saying why not and what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ServeError(
            f"cannot listen on {host}:{port}: {e}; check --host or [serve].host"
        ) from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        hints = {
            errno.EADDRINUSE: "another program is using that port; stop it or choose another --port",
            errno.EACCES: "ports below 1024 need root; choose a port above 1024",
            errno.EADDRNOTAVAIL: "that address is not one of this machine's; check --host",
        }
        hint = hints.get(e.errno or 0, "check --host/--port or [serve] in config.toml")
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}; {hint}") from e
    return sock


class Server:
    """``aggregator serve`` as an object: ``bind()`` (ServeError if it cannot), then ``run()``,
    which blocks until SIGINT or SIGTERM (when run in the main thread) or until ``stop()`` is
    called from any thread, then finishes the requests in flight and returns.

    The daemon runs it in the main thread with its scheduler in a background thread:
    ``server.run()`` returning means "stop", so the daemon shuts its scheduler down after it.
    Signals that arrive while ``run()`` is running are the server's: it swallows them (after
    stopping) instead of re-raising them as uvicorn would, so the process exits 0.
    """

    def __init__(
        self, config: Config, host: str | None = None, port: int | None = None,
        access_log: bool | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.host = host if host is not None else config.serve.host
        self.port = port if port is not None else config.serve.port
        logs = access_log if access_log is not None else config.serve.access_log
        # A class per server: the deadline is config.toml's, and protocols are made by uvicorn.
        protocol = type(
            "GuardedHttp", (_GuardedHttp,), {"header_timeout": config.serve.header_timeout}
        )
        self.app = app(config)
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=self.host,
                port=self.port,
                http=protocol,
                limit_concurrency=_connection_limit(),
                lifespan="off",
                ws="none",
                log_config=None,
                log_level="warning",
                access_log=logs,
                server_header=False,
                # No X-Forwarded-For rewriting: nothing here uses the client's address, and
                # the middleware costs a quarter of the 304 rate (bench/serve_bench.py).
                proxy_headers=False,
                timeout_graceful_shutdown=SHUTDOWN_GRACE,
            )
        )
        if logs:
            # uvicorn gives its access logger the level above (warning), which would drop
            # every request line (they are INFO); they go wherever the caller's logging does.
            logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        self._sock: socket.socket | None = None

    def reconfigure(self, config: Config) -> None:
        """Answer the status and health pages for ``config`` (config.toml edited, taken in by
        the daemon); the folder served, its base URL and [serve] stay as they were bound."""
        self.config = config
        self.app.config = config

    def bind(self) -> str:
        """Listen; returns the address served, e.g. ``http://127.0.0.1:8080/``."""
        if self._sock is None:
            self._sock = _listen(self.host, self.port)
        host, port = self._sock.getsockname()[:2]
        prefix = urlsplit(self.config.base_url).path or "/"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{prefix}"

    def run(self) -> None:
        self.bind()
        assert self._sock is not None
        main = threading.current_thread() is threading.main_thread()
        if main:
            # uvicorn restores the handlers it found and re-raises the signal it caught: with
            # this handler that only asks the (stopped) server to stop, and a signal in the
            # moment before uvicorn installs its own stops it too. The caller's handlers come
            # back afterwards.
            saved = {
                s: signal.signal(s, lambda *_: self.stop()) for s in (signal.SIGINT, signal.SIGTERM)
            }
        try:
            self._uvicorn.run(sockets=[self._sock])
        finally:
            self._sock.close()
            self._sock = None
            if main:
                for s, handler in saved.items():
                    signal.signal(s, handler)

    def stop(self) -> None:
        """Ask a running server to stop (thread-safe: uvicorn polls this flag)."""
        self._uvicorn.should_exit = True


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM; host and port default to config.toml's [serve]."""
    server = Server(config, host, port)
    log.info("serving %s at %s", config.output_dir, server.bind())
    server.run()
