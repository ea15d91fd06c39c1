"""URL repairs for article bodies: image-proxy unwrapping, absolute URLs, tracking parameters.

Inputs: a URL as found in a body, and the article's own URL as the base. Output: the URL a reader
should load, or None when no absolute http(s) URL can be made of it. Pure string work.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import (
    parse_qsl,
    quote,
    unquote,
    unquote_plus,
    urlencode,
    urljoin,
    urlsplit,
)

# Query parameters that identify a campaign or a click, never a page. Sources: Google
# Analytics (utm_*), Facebook (fbclid), Google Ads (gclid, dclid), Microsoft (msclkid), Mailchimp
# (mc_cid, mc_eid), Instagram (igshid), Yandex (yclid), Alibaba (spm), Twitter (ref_src), DW's
# feeds (maca). An article's identity (aggregator/dedupe.py) and the links in its body drop them.
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "spm",
        "ref_src", "_ga", "_gl", "maca", "ocid", "cmpid", "at_medium", "at_campaign", "wt.mc_id",
    }
)  # fmt: skip

# Image proxies mirrors route pictures through, and where each keeps the original URL.
#   images.weserv.nl / wsrv.nl: ?url=host/path, "ssl:" prefix for https (weserv.nl docs);
#     seen without scheme and without the "/" before "?" in seeds/voa/ and seeds/dw/.
#   i0-i3.wp.com (Jetpack Photon): /host/path.
_QUERY_PROXIES = frozenset({"images.weserv.nl", "wsrv.nl"})
# The proxy's own query parameters (wsrv.nl API reference): size, crop, adjustments, format.
_WESERV_PARAMS = frozenset(
    {
        "w", "h", "dpr", "fit", "cbg", "we", "a", "fpx", "fpy", "crop", "cx", "cy", "cw", "ch",
        "precrop", "trim", "mask", "mtrim", "mbg", "flip", "flop", "ro", "rbg", "bg", "blur",
        "con", "filt", "gam", "mod", "sat", "hue", "sharp", "tint", "q", "output", "il", "af",
        "l", "lum", "n", "page", "filename", "default", "maxage", "encoding", "errorredirect", "t",
    }
)  # fmt: skip
_PATH_PROXIES = frozenset({"i0.wp.com", "i1.wp.com", "i2.wp.com", "i3.wp.com"})


def is_tracking_param(name: str) -> bool:
    """True for a query parameter that tracks a click (see ``_TRACKING_PARAMS``)."""
    lowered = name.lower()
    return lowered.startswith(_TRACKING_PREFIXES) or lowered in _TRACKING_PARAMS


def strip_tracking(url: str) -> str:
    """``url`` without its tracking parameters; the rest (order, fragment, encoding) as
    written. ``url`` itself when it has none."""
    before, hash_mark, fragment = url.partition("#")  # a "?" in the fragment is not a query
    head, mark, query = before.partition("?")
    if not mark:
        return url
    params = query.split("&")
    kept = [p for p in params if not is_tracking_param(unquote_plus(p.partition("=")[0]))]
    if len(kept) == len(params):
        return url
    return head + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment


def _split_loose(url: str) -> tuple[str, str, str]:
    """(host, path, query) of a URL that may lack its scheme ("images.weserv.nl?url=...")."""
    u = url.strip()
    if u.startswith("//"):
        u = "https:" + u
    elif "://" not in u:
        u = "https://" + u
    parts = urlsplit(u)
    return (parts.hostname or "").lower(), parts.path, parts.query


def unwrap_proxy(url: str) -> str | None:
    """The original image URL behind a proxy URL, over https; None when ``url`` is no proxy."""
    try:
        host, path, query = _split_loose(url)
    except ValueError:
        return None
    target: str | None = None
    if host in _QUERY_PROXIES:
        pairs = parse_qsl(query, keep_blank_values=True)
        target = next((v for k, v in pairs if k == "url"), None)
        # "?url=host/a.jpg?width=900&height=600": the target's own query was not encoded, so
        # its parameters after the first read as the proxy's. Those the proxy does not know
        # are given back to the target (only when it has a query of its own already).
        if target and "?" in target:
            extra = [(k, v) for k, v in pairs if k != "url" and k not in _WESERV_PARAMS]
            if extra:
                target += "&" + urlencode(extra)
    elif host in _PATH_PROXIES and len(path) > 1:
        target = path.lstrip("/")
    if not target:
        return None
    target = unquote(target).strip() if "%" in target[:12] else target.strip()
    for prefix in ("ssl:", "https://", "http://", "//"):
        if target.lower().startswith(prefix):
            target = target[len(prefix) :]
            break
    if not target or target.startswith("/"):
        return None
    # "?url=javascript:alert(1)" would read as the host "javascript" with a port of words.
    return has_host("https://" + target)


def has_host(url: str) -> str | None:
    """``url`` when its host can be one (a name without empty labels, an IPv4 address, or an
    IP literal) and its port is 1-65535 or absent; else None. "http://.../a", "http://x:0/"
    and "http://999.999.999.999/" are no addresses a reader could open (a browser takes a
    host ending in a number for an IPv4 address, and refuses one that is none)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # "http://[::1/x", a port out of range or of words
        return None
    host = parts.hostname or ""
    if not host or port == 0:
        return None
    if ":" not in host:
        labels = host.removesuffix(".").split(".")
        if "" in labels:
            return None
        if labels[-1].isascii() and labels[-1].isdigit():
            try:
                ipaddress.IPv4Address(".".join(labels))
            except ValueError:
                return None
    return url


# What a URI may not hold as it is (RFC 3986): space and controls, characters outside ASCII,
# '"<>\\^`{|}', and a "%" that starts no escape. They are written percent-encoded (UTF-8).
_NOT_URI = re.compile(r'[^\x21-\x7e]|["<>\\^`{|}]|%(?![0-9A-Fa-f]{2})')


def as_uri(url: str) -> str:
    """``url`` as a URI a strict consumer accepts: what may not appear percent-encoded, the
    host (an internationalised name stays as given: IRIs are Atom's links) left alone. A URL
    that is one already comes back unchanged."""
    if not _NOT_URI.search(url):
        return url
    head = _AUTHORITY.match(url)
    cut = head.end() if head else 0
    return url[:cut] + _NOT_URI.sub(lambda m: quote(m[0], safe=""), url[cut:])


_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def absolute(url: str, base: str | None) -> str | None:
    """``url`` made absolute against ``base``; protocol-relative becomes https.

    None when the result is not http(s) (``javascript:``, ``data:``, or relative with no base).
    """
    u = url.strip()
    if not u:
        return None
    if u.startswith("//"):
        u = "https:" + u
    elif base and "://" not in u[:12]:
        u = urljoin(base, u)
    try:
        scheme = urlsplit(u).scheme.lower()
    except ValueError:
        return None
    if scheme in ("http", "https"):
        return u
    if scheme == "mailto":
        return u
    return None
