"""HTTP sources: one conditional GET per feed URL, with limits. The only httpx import.

Input: the URL sources to fetch, each with its ``FetchPolicy`` and the ``FetchState`` the store
kept from the last fetch (ETag, Last-Modified, consecutive failures, no-request-before time).
Output: one ``HttpResult`` per source: the body and headers, "not modified", "waiting" (a
Retry-After or backoff time not reached: no request was made), or "failed" with a reason a
person can act on. Nothing here raises for a misbehaving server; nothing here touches the store.

What a server cannot do to a run:

* **stall it**: every fetch has one deadline for everything (connect, each redirect, the whole
  body), enforced with ``asyncio.timeout``; a server that drips a byte a second or never
  answers is cut off at the deadline;
* **exhaust memory**: the body is read as a stream and abandoned past ``max_bytes`` after
  decompression, so a gzip or brotli bomb stops at the cap;
* **send us elsewhere**: redirects are followed by hand, at most ``max_redirects``, only to
  http(s), and loops are named; only a chain of permanent redirects (301/308) is reported as a
  move;
* **reach inside the network**: every connection (first request and each redirect) resolves
  the host and refuses loopback, private, link-local, multicast and other non-global addresses,
  then connects to the address it checked (no second DNS answer can swap it), unless the
  source sets ``allow_private``;
* **hammer it or be hammered**: sources run concurrently under a global limit and a per-host
  limit; 429 and 503 honour Retry-After (seconds or an HTTP date); consecutive failures back
  off exponentially with jitter (``next_attempt``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import queue
import random
import re
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.abc
import anyio.streams.tls
import httpcore

# httpx's __init__ imports its own command-line client (click, rich.progress, pygments: about
# 0.15 s of CPU, a tenth of a pass where every feed answers 304) whenever click is installed,
# and uvicorn installs it (encode/httpx#3547). We never run that client. A module marked absent
# in sys.modules fails to import, and httpx then defines a stub ``main`` instead.
if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
import httpx

from aggregator.model import FetchPolicy, FetchState, Source

# What we ask for: the feed formats we read, best first (RFC 9110 section 12.5.1).
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
ENCODINGS = "gzip, deflate, br"  # br needs the brotli package (a dependency)

# Backoff after consecutive failures: 1 min, 2, 4 ... capped at 6 h, each times a jitter factor
# in [0.5, 1.0] so sources that failed together do not retry together. The jitter is seeded by
# the source name and failure count: reproducible for tests, spread across sources.
BACKOFF_BASE = 60.0
BACKOFF_MAX = 6 * 3600.0
# A Retry-After further away than this is treated as this (a server's typo must not silence a
# source for a year).
RETRY_AFTER_MAX = 7 * 24 * 3600.0

_REDIRECTS = (301, 302, 303, 307, 308)
_PERMANENT = (301, 308)
_READ_CHUNK = 64 * 1024
# What is left of an answer that was not read (a 304, a redirect, an error page) is read to its
# end, so that its connection can serve the next request, when it is at most this long and
# comes within this time (see _release).
_DRAIN_MAX = 64 * 1024
_DRAIN_SECONDS = 1.0


class _Refused(Exception):
    """A connection the address policy does not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    source: str
    url: str  # the URL requested first
    outcome: str  # "fetched", "not-modified", "failed", "waiting"
    final_url: str = ""  # after redirects
    status: int | None = None
    data: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()  # lower-case names
    reason: str | None = None  # why it failed, or why it is waiting
    retry_after: datetime | None = None  # the server asked for no request before this
    moved_to: str | None = None  # every redirect was permanent: the feed's new URL
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in ("fetched", "not-modified")

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def validator(self, name: str) -> str | None:
        """The ETag or Last-Modified to send back next time, if it can be sent at all."""
        return sendable(self.header(name))


_SENDABLE = re.compile(r"[\x20-\x7e]+")


def sendable(value: str | None) -> str | None:
    """``value`` when a request header can carry it: a server's ETag or Last-Modified with a
    byte outside printable ASCII ("W/\"caf\u00e9\"") was kept and sent back, and httpx refused
    every later request to the feed."""
    return value if value and _SENDABLE.fullmatch(value) else None


# -- the address policy ----------------------------------------------------------------------


def refused_reason(address: str) -> str | None:
    """Why ``address`` may not be fetched without ``allow_private``, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for test, what in (
        (ip.is_loopback, "a loopback address"),
        (ip.is_private, "a private-network address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_reserved, "a reserved address"),
    ):
        if test:
            return what
    return None if ip.is_global else "not a public address"


@cache
def _system_tls(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """The system's CA store (local and corporate CAs included) as a TLS client context.
    Loading it costs about 40 ms of CPU, so it is made when the first https connection needs
    it (a run over http feeds, a local RSSHub say, never pays) and kept for the daemon's later
    cycles. SSL_CERT_FILE and SSL_CERT_DIR, which OpenSSL reads while loading, key it."""
    return ssl.create_default_context()


def system_tls() -> ssl.SSLContext:
    return _system_tls(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


class _Stream(httpcore.AsyncNetworkStream):
    """One connection as httpcore sees it: an anyio byte stream, read and written without a
    timeout of its own. The fetch's deadline (``asyncio.timeout`` in ``_fetch_one``) bounds
    every read and write, so the per-call cancel scope httpcore's own anyio stream opens
    around each of them is pure cost; so is its lookup of the socket, through anyio's typed
    attributes, each time httpcore asks whether a pooled connection is still open
    (``is_readable``). Together about 7% of the CPU of a request (500 304s, median of 6)."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = _attr(stream, anyio.abc.SocketAttribute.raw_socket)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._stream.receive(max_bytes)
            with anyio.fail_after(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as e:
            raise httpcore.ReadTimeout(str(e)) from e
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as e:
            raise httpcore.ReadError(str(e) or type(e).__name__) from e

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if timeout is None:
                await self._stream.send(buffer)
                return
            with anyio.fail_after(timeout):
                await self._stream.send(buffer)
        except TimeoutError as e:
            raise httpcore.WriteTimeout(str(e)) from e
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as e:
            raise httpcore.WriteError(str(e) or type(e).__name__) from e

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # httpcore hands over the pool's context, a stand-in (see _transport): certificates
        # are verified against system_tls(), loaded only now that one is needed.
        try:
            with anyio.fail_after(timeout):
                wrapped = await anyio.streams.tls.TLSStream.wrap(
                    self._stream,
                    ssl_context=system_tls(),
                    hostname=server_hostname,
                    standard_compatible=False,
                    server_side=False,
                )
        except TimeoutError as e:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(e)) from e
        except ssl.SSLCertVerificationError as e:
            await self.aclose()
            raise httpcore.ConnectError(
                f"the server's TLS certificate is not trusted ({e.verify_message}); if a private "
                "CA signed it, add that CA to the system's store or name a CA bundle in "
                "SSL_CERT_FILE"
            ) from e
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as e:
            await self.aclose()
            raise httpcore.ConnectError(f"TLS handshake failed: {e}") from e
        return _Stream(wrapped)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of every pooled connection on every request
            return self._socket is not None and _readable(self._socket)
        if info == "ssl_object":
            return _attr(self._stream, anyio.streams.tls.TLSAttribute.ssl_object)
        if info == "client_addr":
            return _attr(self._stream, anyio.abc.SocketAttribute.local_address)
        if info == "server_addr":
            return _attr(self._stream, anyio.abc.SocketAttribute.remote_address)
        if info == "socket":
            return self._socket
        return None


def _attr(stream: anyio.abc.ByteStream, attribute: Any) -> Any:
    """One of anyio's typed attributes of ``stream`` (None when it has not got it)."""
    return stream.extra(attribute, None)  # noqa: S610 - anyio's extra, not Django's


def _readable(sock: socket.socket) -> bool:
    """True when an idle connection has something to read: the server closed it (EOF) or sent
    what it should not have. Either way httpcore drops it instead of reusing it."""
    if sock.fileno() == -1:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend: connections as ``_Stream``, and, when ``guarded``, the address
    policy applied at connect time."""

    def __init__(self, guarded: bool) -> None:
        self._guarded = guarded

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = [host]
        if self._guarded:
            addresses = await self._checked(host, port)
        error: Exception | None = None
        for address in addresses:  # connect to the very address that was checked
            try:
                with anyio.fail_after(timeout):
                    stream = await anyio.connect_tcp(address, port, local_host=local_address)
            except TimeoutError as e:
                raise httpcore.ConnectTimeout(f"no connection to {host} in time") from e
            except OSError as e:
                error = httpcore.ConnectError(f"cannot connect to {host}: {e.strerror or e}")
                continue
            raw = _attr(stream, anyio.abc.SocketAttribute.raw_socket)
            for option in socket_options or ():
                raw.setsockopt(*option)
            return _Stream(stream)
        raise error or httpcore.ConnectError(f"no address for host {host!r}")

    async def _checked(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}: {e.strerror}") from e
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            why = refused_reason(address)
            if why is not None:
                raise _Refused(
                    f"{host} is {address}, {why}; refused by default. If this source is yours "
                    "(a local RSSHub, say), set allow_private = true on it in config.toml"
                )
        return addresses

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise _Refused("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _transport(guarded: bool, connections: int) -> httpx.AsyncHTTPTransport:
    """httpx's transport over our backend. Requests go to the transport itself, not through an
    ``AsyncClient``: redirects are followed in ``_get``, one checked hop at a time; a feed
    fetcher keeps no cookies between sources; and the client's layers (cookie jar, auth, event
    hooks, URL merging) cost about 15% of the CPU of a 304."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    # A context without certificates, for httpx and httpcore to hold (given none, httpcore
    # would load certifi's bundle for every https connection): _Stream.start_tls verifies
    # against system_tls() instead, loaded once and only when an https connection opens.
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    transport = httpx.AsyncHTTPTransport(limits=limits, retries=0, trust_env=False, verify=tls)
    # httpx has no public hook for the network backend; its transport's connection pool takes
    # one. Rebuilt with the same settings httpx would use.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_Backend(guarded),
    )
    return transport


# -- when to ask again -----------------------------------------------------------------------


def backoff(name: str, failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures (see BACKOFF_BASE)."""
    if failures <= 0:
        return 0.0
    delay: float = min(BACKOFF_BASE * 2.0 ** min(failures - 1, 30), BACKOFF_MAX)
    jitter: float = random.Random(f"{name}/{failures}").uniform(0.5, 1.0)  # noqa: S311
    return delay * jitter


def next_attempt(
    result: HttpResult, before: FetchState, now: datetime
) -> tuple[int, datetime | None]:
    """(consecutive failures, no request before) after ``result``."""
    if result.outcome == "waiting":
        return before.failures, before.retry_at
    if result.ok:
        return 0, None
    failures = before.failures + 1
    if result.retry_after is not None:  # the server said when (429/503 Retry-After): obey it
        return failures, result.retry_after
    return failures, now + timedelta(seconds=backoff(result.source, failures))


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """A Retry-After header (delay-seconds or an HTTP date, RFC 9110 section 10.2.3) as a time."""
    if not value:
        return None
    value = value.strip()
    try:
        when = now + timedelta(seconds=min(max(int(value), 0), RETRY_AFTER_MAX))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        when = min(max(when, now), now + timedelta(seconds=RETRY_AFTER_MAX))
    return when


# -- one fetch -------------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


async def _read_capped(response: httpx.Response, cap: int) -> bytes | None:
    """The decompressed body, or None as soon as it passes ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes(_READ_CHUNK):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _get(
    transport: httpx.AsyncHTTPTransport, source: Source, url: str, before: FetchState, now: datetime
) -> HttpResult:
    policy = source.policy
    headers = {"user-agent": policy.user_agent, "accept": ACCEPT, "accept-encoding": ENCODINGS}
    headers.update({k.lower(): v for k, v in policy.headers})
    if before.url == url:  # validators belong to a URL; a moved feed starts afresh
        if etag := sendable(before.etag):
            headers["if-none-match"] = etag
        if last_modified := sendable(before.last_modified):
            headers["if-modified-since"] = last_modified
    fail = _Failure(source.name, url)
    seen = [url]
    permanent = True
    current = url
    while True:
        # No timeout extension: the fetch's one deadline is asyncio.timeout in _fetch_one. (An
        # httpx client's default, 5 s a read, cut off a server slower than that whatever the
        # source's timeout said.)
        response = await transport.handle_async_request(
            httpx.Request("GET", current, headers=headers)
        )
        try:
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    return fail(f"HTTP {status} redirect without a Location header", status)
                target = urljoin(current, location.strip())
                if urlsplit(target).scheme not in ("http", "https"):
                    return fail(
                        f"redirected to {target!r}, which is not an http(s) URL; refused", status
                    )
                if target in seen:
                    chain = " -> ".join([*seen[seen.index(target) :], target])
                    return fail(f"redirect loop: {chain}", status)
                if len(seen) > policy.max_redirects:
                    return fail(
                        f"more than {policy.max_redirects} redirects ({' -> '.join(seen)} -> ...); "
                        "use the final URL in config.toml",
                        status,
                    )
                permanent = permanent and status in _PERMANENT
                seen.append(target)
                current = target
                continue
            moved = current if permanent and current != url else None
            if status == 304:
                return HttpResult(source.name, url, "not-modified", current, status, moved_to=moved)
            if status in (429, 503):
                asked = retry_after(response.headers.get("retry-after"), now)
                return fail(
                    f"HTTP {status} {response.reason_phrase}: the server asks us to wait"
                    + (f" until {asked:%Y-%m-%d %H:%M:%S} UTC" if asked else ""),
                    status,
                    asked,
                )
            if status >= 400:
                return fail(f"HTTP {status} {response.reason_phrase}", status)
            if status != 200:
                return fail(
                    f"HTTP {status} {response.reason_phrase}: expected 200 with a feed", status
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                return fail(_too_big(int(declared), policy), status)
            data = await _read_capped(response, policy.max_bytes)
            if data is None:
                return fail(_too_big(None, policy), status)
            if not data.strip():
                return fail(_empty(data, response), status)
            return HttpResult(
                source.name, url, "fetched", current, status, data,
                tuple((k.lower(), v) for k, v in response.headers.multi_items()),
                moved_to=moved,
            )  # fmt: skip
        finally:
            await _release(response)


async def _release(response: httpx.Response) -> None:
    """Close ``response``, first reading what is left of a short body. httpcore puts a
    connection back in its pool only when the answer was read to its end: a 304 closed unread
    cost every next request a new connection (a new TLS handshake over https), a quarter of
    the fetching CPU of a 304 pass (bench/fetch_bench.py). A body that is long, of unknown
    length or slow to come is not worth the wait: its connection is closed."""
    try:
        declared = response.headers.get("content-length", "")
        short = response.status_code == 304 or (declared.isdigit() and int(declared) <= _DRAIN_MAX)
        if short and not response.is_stream_consumed:
            async with asyncio.timeout(_DRAIN_SECONDS):
                async for _ in response.aiter_raw():
                    pass
    except (TimeoutError, httpx.HTTPError):
        pass  # the connection is not reused; nothing else depends on it
    finally:
        await response.aclose()


def _empty(data: bytes, response: httpx.Response) -> str:
    coding = response.headers.get("content-encoding", "").strip().lower()
    if not data and coding not in ("", "identity") and response.num_bytes_downloaded:
        # (A brotli stream cut short decodes to nothing, without an error.)
        return (
            f"the server answered 200 with {response.num_bytes_downloaded} bytes of "
            f"{coding}-compressed body that decompress to nothing: the compression is broken "
            "or cut short (a fault of the server or of a proxy on the way)"
        )
    return "the server answered 200 with an empty body"


def _too_big(declared: int | None, policy: FetchPolicy) -> str:
    size = f" ({_size(declared)} declared)" if declared else ""
    return (
        f"the body is larger than {_size(policy.max_bytes)}{size}; not a feed we will read "
        "(raise max_bytes for this source if it is real)"
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    name: str
    url: str

    def __call__(
        self, reason: str, status: int | None = None, asked: datetime | None = None
    ) -> HttpResult:
        return HttpResult(
            self.name, self.url, "failed", status=status, reason=reason, retry_after=asked
        )


def _explain(e: BaseException, url: str, policy: FetchPolicy) -> str:
    """A transport error in words a person can act on."""
    if isinstance(e, _Refused):
        return str(e)
    if isinstance(e, TimeoutError | httpx.TimeoutException):
        return (
            f"no complete answer within {policy.timeout:g} s (the server is slow or hangs); "
            "raise timeout for this source if it is just slow"
        )
    if isinstance(e, httpx.ConnectError):
        text = str(e) or "connection failed"
        if "refused" in text.lower():
            return f"connection refused by {urlsplit(url).netloc}: is the server running?"
        return text
    if isinstance(e, httpx.RemoteProtocolError | httpx.ReadError):
        return f"the connection broke off mid-answer ({e or type(e).__name__}); will retry"
    if isinstance(e, httpx.DecodingError):
        return f"the body's Content-Encoding is broken ({e})"
    if isinstance(e, httpx.UnsupportedProtocol | httpx.InvalidURL | ValueError):
        return f"not a fetchable URL: {e}"
    return f"{type(e).__name__}: {e}"


async def _fetch_one(
    transport: httpx.AsyncHTTPTransport,
    source: Source,
    before: FetchState,
    now: datetime,
    limits: tuple[asyncio.Semaphore, asyncio.Semaphore],
    stop: Callable[[], bool] | None = None,
) -> HttpResult | None:
    url = source.url or ""
    if before.retry_at is not None and now < before.retry_at:
        return HttpResult(
            source.name, url, "waiting",
            reason=f"not asked again before {before.retry_at:%Y-%m-%d %H:%M:%S} UTC",
        )  # fmt: skip
    started = time.perf_counter()
    async with limits[0], limits[1]:
        if stop is not None and stop():
            return None  # its turn came after the run was asked to stop: not started
        try:
            async with asyncio.timeout(source.policy.timeout):
                result = await _get(transport, source, url, before, now)
        except (_Refused, TimeoutError, httpx.HTTPError, httpx.InvalidURL, ValueError) as e:
            # (ValueError: a redirect to a malformed URL, "http://[::1".)
            result = _Failure(source.name, url)(_explain(e, url, source.policy))
    return replace(result, seconds=time.perf_counter() - started)


async def _fetch_all(
    sources: Sequence[Source],
    validators: dict[str, FetchState],
    now: datetime,
    concurrency: int,
    per_host: int,
    done: Callable[[HttpResult], None],
    stop: Callable[[], bool] | None = None,
) -> None:
    overall = asyncio.Semaphore(concurrency)
    hosts: dict[str, asyncio.Semaphore] = {}
    # Only the transports some source needs: guarded (the address policy) and private.
    transports = {
        guarded: _transport(guarded, concurrency)
        for guarded in {not s.policy.allow_private for s in sources}
    }
    try:
        tasks = []
        for s in sources:
            host = (urlsplit(s.url or "").hostname or "").lower()
            limit = hosts.setdefault(host, asyncio.Semaphore(per_host))
            transport = transports[not s.policy.allow_private]
            before = validators.get(s.name, FetchState())
            fetch = _fetch_one(transport, s, before, now, (overall, limit), stop)
            tasks.append(_report(fetch, done))
        await asyncio.gather(*tasks)
    finally:
        for transport in transports.values():
            await transport.aclose()


async def _report(fetch: Awaitable[HttpResult | None], done: Callable[[HttpResult], None]) -> None:
    result = await fetch
    if result is not None:  # None: not started, the run is stopping
        done(result)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency except on Windows): the same
    asyncio API at about 20% less CPU a fetch (bench/fetch_bench.py); else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def fetch_all(
    sources: Sequence[Source],
    validators: dict[str, FetchState],
    now: datetime,
    *,
    concurrency: int = 16,
    per_host: int = 4,
    stop: Callable[[], bool] | None = None,
) -> Iterator[HttpResult]:
    """Fetch every URL source concurrently; yield one result per source as each completes.
    Once ``stop`` says True no further fetch starts; those under way end as usual (each by
    its timeout) and their sources are the only ones yielded after it.

    The fetching runs in its own thread and event loop, so the caller can parse and store one
    feed while the others are still downloading: network waits overlap the CPU work instead of
    adding to it (bench/fetch_bench.py)."""
    if not sources:
        return
    results: queue.SimpleQueue[HttpResult | BaseException | None] = queue.SimpleQueue()

    def run() -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(
                    _fetch_all(sources, validators, now, concurrency, per_host, results.put, stop)
                )
        except BaseException as e:
            results.put(e)
        finally:
            results.put(None)

    thread = threading.Thread(target=run, name="aggregator-fetch", daemon=True)
    thread.start()
    try:
        while (result := results.get()) is not None:
            if isinstance(result, BaseException):
                raise result
            yield result
    finally:
        thread.join()


# -- WebSub: telling the hub a feed changed ------------------------------------------------

# Seconds to wait for the hub's answer to one publish ping. A hub answers at once (it fetches
# the feed later); a slow one must not hold up a run.
HUB_TIMEOUT = 10.0


def ping_hub(hub: str, urls: Sequence[str], user_agent: str) -> list[str]:
    """Tell the WebSub hub at ``hub`` that each of ``urls`` changed: one POST per URL,
    ``hub.mode=publish&hub.url=<url>`` form-encoded (the PubSubHubbub 0.4 publish request
    WebSub hubs accept; W3C WebSub leaves publishing to the hub, and this is what they
    implement). A problem per URL the hub did not accept, in words for the person running
    the tool; an empty list when all went through. The hub is the operator's own choice in
    config.toml, so no address guard applies. Never raises for a network failure."""
    problems = []
    with httpx.Client(
        timeout=HUB_TIMEOUT,
        headers={"user-agent": user_agent},
        follow_redirects=False,
        verify=system_tls(),  # the system's CA store, as for the feeds
    ) as client:
        for url in urls:
            try:
                response = client.post(hub, data={"hub.mode": "publish", "hub.url": url})
            except httpx.HTTPError as e:
                problems.append(
                    f"WebSub hub {hub}: could not tell it {url} changed ({_explain_hub(e)});"
                    " readers relying on the hub will see the change when they next poll"
                )
                continue
            if not 200 <= response.status_code < 300:
                problems.append(
                    f"WebSub hub {hub}: answered HTTP {response.status_code} to the publish"
                    f" ping for {url}; check output.hub in config.toml"
                )
    return problems


def _explain_hub(e: httpx.HTTPError) -> str:
    if isinstance(e, httpx.TimeoutException):
        return f"no answer within {HUB_TIMEOUT:.0f} s"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect: {e}"
    return f"{type(e).__name__}: {e}"
