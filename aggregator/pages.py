"""The server's pages for people: the feed list (home) and the per-source health view.

Input: ``model.Status`` (what ``pipeline.status`` read from the state database), the health
verdict of ``pipeline.health`` and the current time. Output: a complete HTML document as UTF-8
bytes. Pure: no I/O, no clock (``now`` is passed in). Every value from the configuration or the
database is escaped (a source's title or an upstream's error message is text, never markup);
the pages need no JavaScript.

The home page carries an autodiscovery ``<link rel="alternate" type="application/atom+xml">``
for every feed, so a reader given the site's address finds them all, and links the OPML list.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from aggregator import opml
from aggregator.model import SourceStatus, Status

# Sent with every HTML page the server makes: nothing runs, nothing is framed or posted; images
# (the feed page shows each entry's lead image from the outlet) may come from anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src http: https:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 0 auto; padding: 0 1rem 3rem; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; } .bad { color: #b42318; } .muted { color: #666; }
a { color: #0645ad; } code { word-break: break-all; }
nav { padding: .8rem 0; border-bottom: 1px solid #ddd; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(t: datetime | None) -> str:
    if t is None:
        return '<span class="muted">never</span>'
    return f'<time datetime="{_e(t.isoformat())}">{t:%Y-%m-%d %H:%M:%S} UTC</time>'


def _ago(t: datetime | None, now: datetime) -> str:
    """'3 min ago' / 'in 12 min', beside the absolute time."""
    if t is None:
        return ""
    seconds = (now - t).total_seconds()
    span = abs(seconds)
    if span < 120:
        text = f"{span:.0f} s"
    elif span < 7200:
        text = f"{span / 60:.0f} min"
    elif span < 172800:
        text = f"{span / 3600:.0f} h"
    else:
        text = f"{span / 86400:.0f} days"
    return (
        f' <span class="muted">({text} ago)</span>'
        if seconds >= 0
        else f" <span>(in {text})</span>"
    )


def _page(title: str, head: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n{head}<style>{_STYLE}</style></head>\n"
        f'<body>\n<nav><a href="./">Feeds</a> · <a href="status">Source health</a> · '
        f'<a href="{opml.FILENAME}">OPML</a> · <a href="metrics">Metrics</a> · '
        f'<a href="healthz">healthz</a></nav>\n{body}\n</body></html>\n'
    ).encode()


def _verdict(health: tuple[bool, str]) -> str:
    ok, why = health
    cls, word = ("ok", "Healthy") if ok else ("bad", "Unhealthy")
    return f'<p class="{cls}" id="health"><strong>{word}</strong>: {_e(why)}</p>'


def home(status: Status, health: tuple[bool, str]) -> bytes:
    """Every output feed with its title, entry count, last update and subscribe link."""
    head = "".join(
        f'<link rel="alternate" type="application/atom+xml" title="{_e(f.title)}" '
        f'href="{_e(f.url)}">\n'
        for f in status.feeds
    )
    rows = "".join(
        f'<tr class="feed" data-feed="{_e(f.name)}">'
        f'<td><a href="{_e(f.filename)}">{_e(f.title)}</a></td>'
        f'<td class="n entries">{f.entries}</td><td>{_when(f.updated)}</td>'
        f'<td><a href="{_e(f.url)}" type="application/atom+xml" rel="alternate">subscribe</a> '
        f"<code>{_e(f.url)}</code></td></tr>\n"
        for f in status.feeds
    )
    body = (
        "<h1>Feeds</h1>\n"
        f"{_verdict(health)}\n"
        "<p>Copy a feed's address into your feed reader to subscribe, or import "
        f'<a href="{opml.FILENAME}">all feeds as OPML</a>. Opening a feed here shows it as a '
        "page; readers get the Atom.</p>\n"
        '<table id="feeds"><thead><tr><th>feed</th><th>entries</th><th>last update</th>'
        f"<th>subscribe</th></tr></thead><tbody>\n{rows}</tbody></table>"
    )
    return _page("Feeds", head, body)


def _source_row(s: SourceStatus, now: datetime) -> str:
    if s.failing:
        state = '<span class="bad">failing</span>'
    elif s.last_success is not None:
        state = '<span class="ok">ok</span>'
    else:
        state = '<span class="muted">not run yet</span>'
    error = (
        f"{_when(s.last_error_at)}<br>{_e(s.last_error)}"
        if s.last_error
        else '<span class="muted">none</span>'
    )
    waiting = (
        f"<br>{s.failures} failure(s) in a row; no request before {_when(s.retry_at)}"
        if s.failures or s.retry_at
        else ""
    )
    return (
        f'<tr class="source" data-source="{_e(s.name)}"><td><strong>{_e(s.name)}</strong><br>'
        f'{_e(s.title)}<br><code class="muted">{_e(s.where)}</code></td><td>{state}</td>'
        f"<td>{_when(s.last_success)}{_ago(s.last_success, now)}</td>"
        f'<td class="error">{error}{waiting}</td>'
        f"<td>{_when(s.next_run)}{_ago(s.next_run, now)}</td>"
        f'<td class="n new">{s.new}</td><td class="n updated">{s.updated}</td>'
        f'<td class="n duplicates">{s.duplicates}</td>'
        f'<td class="n">{s.runs} / {s.errors}</td></tr>\n'
    )


def health_page(status: Status, health: tuple[bool, str], now: datetime) -> bytes:
    """Per source: last success, last error and its reason, next run, the last run's new,
    updated and duplicate items; then the recent cycles."""
    rows = "".join(_source_row(s, now) for s in status.sources)
    cycles = "".join(
        f'<tr><td>{_when(c.started)}</td><td class="n">{c.seconds:.2f} s</td>'
        f'<td class="n">{c.sources}</td><td class="n">{c.failed}</td>'
        f"<td>{_e(c.error) if c.error else ''}</td></tr>\n"
        for c in status.cycles
    )
    body = (
        "<h1>Source health</h1>\n"
        f"{_verdict(health)}\n"
        '<table id="sources"><thead><tr><th>source</th><th>state</th><th>last success</th>'
        "<th>last error</th><th>next run</th><th>new</th><th>updated</th><th>duplicates</th>"
        "<th>runs / errors</th></tr></thead><tbody>\n"
        f"{rows}</tbody></table>\n"
        '<p class="muted">new / updated / duplicates: items in the source\'s last run. '
        "Next run: set while the daemon runs.</p>\n"
        f"<h2>Recent cycles</h2>\n<p>{status.cycles_total} cycle(s) in all, "
        f"{status.cycle_seconds_total:.1f} s.</p>\n"
        '<table id="cycles"><thead><tr><th>started</th><th>took</th><th>sources</th>'
        f"<th>failed</th><th>error</th></tr></thead><tbody>\n{cycles}</tbody></table>"
    )
    return _page("Source health", "", body)
