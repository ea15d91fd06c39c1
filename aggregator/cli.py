"""Command line: argument parsing and output formatting only; the work is ``pipeline.run_once``.

Commands: ``run`` (one-shot regeneration), ``daemon`` (every source on its schedule until
stopped; ``--serve`` also serves), ``serve`` (the HTTP front, ``serve.Server``), ``status``
(what the state database says of sources, feeds and health), ``explain`` (which articles were
merged into an entry, and why), ``check`` (validate config.toml), ``opml export`` / ``opml
import FILE`` (subscription lists), ``adapters`` (list the source profiles). Exit codes: 0 done;
1 nothing could be produced, or ``--strict`` and some input was skipped; 2 the configuration (or
the command line) is wrong; 3 the state database or the output folder cannot be used (or the
server cannot listen).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from aggregator import __version__, opml, pipeline
from aggregator import config as config_mod
from aggregator.adapters import ADAPTERS, AUTO
from aggregator.errors import AggregatorError, ConfigError, PublishError, ServeError, StoreError
from aggregator.model import Config, FetchStatus, RunReport
from aggregator.store import Store

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

EXIT_OK, EXIT_NOTHING, EXIT_CONFIG, EXIT_STATE = 0, 1, 2, 3
# A progress bar is worth drawing only when there is this much to read.
PROGRESS_MIN_FILES = 200

log = logging.getLogger("aggregator")


def _m(text: object) -> str:
    """``text`` (a title, a path, a reason: what the input says) shown as it is, never read
    as rich markup: "[/x]" in a file name must not stop the report."""
    from rich.markup import escape

    return escape(str(text))


# The width tables are drawn to when the output is no terminal (cron's mail, journald, a pipe,
# `| less`) and COLUMNS does not say: rich's 80 would cut headers, paths and URLs short.
PIPE_WIDTH = 1000


def _console(stderr: bool) -> Console:
    """A rich console on stdout or stderr. soft_wrap: a message is one line however narrow
    the terminal, so it can be grepped; off a terminal, tables are as wide as their text."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(
        stderr=stderr, highlight=False, soft_wrap=True, width=PIPE_WIDTH if wide else None
    )


class _Consoles:
    """The two rich consoles, each made when first written to: ``run --json`` from cron or a
    script prints nothing rich draws, and importing rich costs about 50 ms of every start."""

    @cached_property
    def out(self) -> Console:
        return _console(stderr=False)

    @cached_property
    def err(self) -> Console:
        return _console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aggregator",
        description="Read news archives, strip their boilerplate, deduplicate, and write clean "
        "merged Atom feeds.",
    )
    p.add_argument("--version", action="version", version=f"aggregator {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def listen_flags(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--host", type=_host, metavar="ADDRESS",
            help="address to listen on (default: [serve].host, else 127.0.0.1; 0.0.0.0 for all)",
        )  # fmt: skip
        cmd.add_argument(
            "--port", type=_port, metavar="PORT",
            help="port to listen on (default: [serve].port, else 8080; 0 for any free port)",
        )  # fmt: skip
        cmd.add_argument(
            "--access-log", action="store_true", default=None,
            help="log one line per request on stderr (default: [serve].access_log)",
        )  # fmt: skip

    # --config before the command (aggregator -c x.toml run) or after it; given after, the
    # command's wins, and its absence there (SUPPRESS) leaves the one before in place.
    p.add_argument(
        "--config", "-c", type=Path, default=config_mod.DEFAULT_CONFIG, metavar="PATH",
        help="configuration file (default: ./config.toml); also accepted after the command",
    )  # fmt: skip

    def with_config(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--config", "-c", type=Path, default=argparse.SUPPRESS, metavar="PATH",
            help="configuration file (default: ./config.toml)",
        )  # fmt: skip

    run = sub.add_parser(
        "run",
        help="read every source once and regenerate the feeds",
        description="Read every source (only new or changed files), clean and deduplicate the "
        "items, and regenerate the output feeds. Feeds whose bytes would not change are not "
        "rewritten.",
    )
    with_config(run)
    run.add_argument(
        "--source", "-s", action="append", metavar="NAME",
        help="only read this source (repeatable); every feed is still regenerated",
    )  # fmt: skip
    run.add_argument(
        "--dry-run", action="store_true",
        help="do everything but save state and write feeds; report what would change",
    )  # fmt: skip
    run.add_argument(
        "--offline", action="store_true",
        help="fetch nothing: read URL sources from the last body stored for each (to rebuild "
        "without the network, or to try a changed cleaning rule on real data)",
    )  # fmt: skip
    run.add_argument(
        "--retry-now", action="store_true",
        help="fetch URL sources that are waiting (backing off after failures, or asked by "
        "their server to wait with Retry-After) now, instead of when they are due",
    )  # fmt: skip
    run.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="if another aggregator (a daemon, another run) is using the state database, wait "
        "up to this long for it instead of giving up at once",
    )  # fmt: skip
    run.add_argument("--json", action="store_true", help="print the run report as JSON")
    run.add_argument(
        "--strict", action="store_true",
        help="exit 1 if any file or item was skipped or any source failed",
    )  # fmt: skip
    run.add_argument(
        "--verbose", "-v", action="store_true", help="log every skipped file as it happens"
    )

    daemon = sub.add_parser(
        "daemon",
        help="run every source on its schedule until stopped (SIGTERM or Ctrl-C)",
        description="Schedule every source at its interval or cron expression (with jitter), "
        "run the due sources in batches, and regenerate the feeds each batch touched. Logs go "
        "to standard error. Stop it with SIGTERM or Ctrl-C: the batch in progress finishes "
        "cleanly and it exits 0. One daemon per state database.",
    )
    with_config(daemon)
    daemon.add_argument(
        "--verbose", "-v", action="store_true", help="also log every HTTP request the fetches make"
    )
    daemon.add_argument(
        "--serve", action="store_true",
        help="also serve the feeds over HTTP, as `aggregator serve` does (--host, --port)",
    )  # fmt: skip
    listen_flags(daemon)

    status = sub.add_parser(
        "status",
        help="show each source's last run, errors and next run, and each feed",
        description="What the state database says: per source the last run, the daemon's next "
        "run, what the last run brought, failures, and the last error with its reason; per "
        "feed its entries and last update; and whether the service is healthy (what /healthz "
        "answers). Exit 0 when healthy, 1 when not.",
    )
    with_config(status)
    status.add_argument("--json", action="store_true", help="print it as JSON")

    check = sub.add_parser(
        "check",
        help="validate the configuration and name each problem by its key path",
        description="Validate config.toml: types, known adapters, unique names, existing paths.",
    )
    with_config(check)

    opml_cmd = sub.add_parser(
        "opml",
        help="export sources and feeds as OPML, or import a feed reader's OPML as sources",
        description="OPML subscription lists: export what is configured, or add the feeds of "
        "a reader's export to config.toml as sources.",
    )
    with_config(opml_cmd)  # aggregator opml -c x.toml export
    opml_sub = opml_cmd.add_subparsers(dest="opml_command", metavar="ACTION", required=True)
    export = opml_sub.add_parser(
        "export", help="write the URL sources and the output feeds as OPML",
        description="Write the URL sources and every output feed as OPML 2.0 (stdout, or "
        "--output FILE).",
    )  # fmt: skip
    with_config(export)
    export.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE")
    imp = opml_sub.add_parser(
        "import", help="add the feeds of an OPML file as sources in config.toml",
        description="Add every feed an OPML file lists as a [[sources]] entry (adapter auto) at "
        "the end of config.toml; report what was added and what was skipped, and why.",
    )  # fmt: skip
    with_config(imp)
    imp.add_argument("file", type=Path, metavar="FILE", help="an OPML file (a reader's export)")
    imp.add_argument(
        "--dry-run", action="store_true", help="report what would be added; change nothing"
    )

    srv = sub.add_parser(
        "serve",
        help="serve the feeds, a feed list, source health, /healthz and /metrics over HTTP",
        description="Serve the published feeds (with ETag/Last-Modified, gzip and brotli), a "
        "page listing them, a source health page, /healthz and /metrics, until Ctrl+C or "
        "SIGTERM. Paths are under base_url's path.",
    )
    with_config(srv)
    listen_flags(srv)

    explain = sub.add_parser(
        "explain",
        help="show which articles were merged into an entry and why",
        description="Show the story an entry id (urn:uuid:...), identity key or article URL "
        "belongs to: the entry, every article merged into it with the rule and similarity "
        "figures that merged it, and exact copies recorded as duplicates.",
    )
    with_config(explain)
    explain.add_argument("query", metavar="ENTRY", help="Atom entry id, identity key or URL")
    explain.add_argument("--json", action="store_true", help="print it as JSON")

    adapters = sub.add_parser(
        "adapters",
        help="list the source adapters (the names config.toml accepts)",
        description="List the adapters: the values sources[].adapter accepts.",
    )
    with_config(adapters)  # accepted like everywhere; the list does not depend on it
    return p


def _host(text: str) -> str:
    try:
        return config_mod.valid_host(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _config_error(e: ConfigError, err: Console) -> int:
    err.print(f"[bold red]config error:[/] {_m(e)}", highlight=False)
    for problem in e.problems:
        err.print(f"  - {_m(problem)}", highlight=False)
    return EXIT_CONFIG


def _cmd_adapters(out: Console) -> int:
    from rich.table import Table

    table = Table(title="Adapters (sources[].adapter)")
    table.add_column("name")
    table.add_column("outlet")
    table.add_column("language")
    table.add_column("what it reads")
    for key, profile in ADAPTERS.items():
        table.add_row(
            key, profile.outlet if profile.hosts else "-", profile.lang, profile.description
        )
    table.add_row(AUTO, "-", "-", "detect per file: the outlet whose site the article link is on")
    out.print(table)
    return EXIT_OK


def _cmd_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, err)
    problems = config_mod.check_paths(cfg)
    if problems:
        return _config_error(
            ConfigError(f"{args.config}: {len(problems)} problem(s)", tuple(problems)), err
        )
    out.print(
        f"{args.config}: OK: {len(cfg.sources)} source(s), {len(cfg.feeds)} feed(s) into "
        f"{cfg.output_dir}, state in {cfg.state_db}",
        highlight=False,
    )
    return EXIT_OK


def _cmd_opml(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, err)
    if args.opml_command == "export":
        data = opml.export(cfg)
        if args.output is None:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except OSError as e:  # a full disk or a closed pipe behind the redirection
                err.print(
                    f"[bold red]error:[/] cannot write the OPML to standard output "
                    f"({_m(e.strerror or str(e))}); use -o FILE to name a file",
                    highlight=False,
                )
                return EXIT_STATE
        else:
            try:
                args.output.write_bytes(data)
            except OSError as e:
                err.print(
                    f"[bold red]error:[/] {args.output}: cannot write it ({e.strerror or e}); "
                    "check that its folder exists and is writable",
                    highlight=False,
                )
                return EXIT_STATE
            err.print(f"wrote {args.output}", highlight=False)
        return EXIT_OK
    try:
        found = opml.read(args.file.read_bytes(), str(args.file))
    except OSError as e:
        return _config_error(ConfigError(f"{args.file}: cannot read it: {e}"), err)
    except ConfigError as e:
        return _config_error(e, err)
    plan = opml.plan(cfg, found)
    verb = "would add" if args.dry_run else "added"
    if plan.added and not args.dry_run:  # first: nothing is said to be added unless it was
        rows = [(name, f.title or name, f.url or "", f.homepage) for name, f in plan.added]
        try:
            config_mod.append_sources(args.config, rows)
        except OSError as e:
            err.print(
                f"[bold red]error:[/] {args.config}: cannot update it ({e.strerror or e}); "
                "check that it is writable",
                highlight=False,
            )
            return EXIT_STATE
        except ConfigError as e:
            err.print(f"[bold red]nothing added:[/] {_m(e)}", highlight=False)
            for problem in e.problems:
                err.print(f"  - {_m(problem)}", highlight=False)
            return EXIT_CONFIG
    for name, f in plan.added:
        out.print(_m(f"{verb} source {name}: {f.title} <{f.url}>"), highlight=False)
    for f, why in plan.skipped:
        out.print(_m(f"skipped {f.title or f.url}: {why}"), highlight=False)
    out.print(
        f"{args.file}: {len(plan.added)} {verb}, {len(plan.skipped)} skipped"
        + ("" if args.dry_run or not plan.added else f"; see the end of {args.config}"),
        highlight=False,
    )
    return EXIT_OK


def _plain(value: Any) -> Any:
    """``value`` with its dataclasses as dicts, recursively: ``dataclasses.asdict`` without the
    deep copy of every leaf, which cost 35 ms for a run of 500 sources (a fifth of what a
    scripted run where every feed answered 304 spends beyond fetching)."""
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _print_json(doc: object) -> None:
    """``doc`` as JSON on stdout: indented for a person at a terminal, on one line for a
    script (json's C encoder writes only that: ~0.05 s less for a 500-source report)."""
    indent = 2 if sys.stdout.isatty() else None
    print(json.dumps(doc, ensure_ascii=False, indent=indent, default=str))


def _report_json(report: RunReport) -> dict[str, Any]:
    data: dict[str, Any] = _plain(report)
    for feed in data["feeds"]:
        feed["path"] = str(feed["path"])
    for source in data["sources"]:
        source["rules"] = dict(source["rules"])
    data["skipped"] = report.skipped
    data["produced"] = report.produced
    return data


def _print_report(report: RunReport, out: Console) -> None:
    from rich.table import Table

    title = "Run summary" + (" (dry run: nothing saved or written)" if report.dry_run else "")
    table = Table(title=title)
    columns = ("source", "items", "read", "new", "updated", "unchanged", "duplicates", "near-dups",
               "skipped")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "source" else "right")
    fetched = [s for s in report.sources if s.fetch is not None]
    if fetched:
        table.add_column("fetch")
    for s in report.sources:
        row = [
            s.name, str(s.files_seen), str(s.files_read), str(s.new), str(s.updated),
            str(s.unchanged), str(s.duplicates), str(s.near_duplicates), str(len(s.skipped)),
        ]  # fmt: skip
        if fetched:
            status = s.fetch
            row.append(_fetch_cell(status) if status is not None else "")
        table.add_row(*row)
    out.print(table)
    for s in report.sources:
        if s.recleaned:
            out.print(
                f"source {s.name}: {s.recleaned} stored article{'s' if s.recleaned != 1 else ''}"
                " cleaned again by this version's rules (ids and dates kept)",
                highlight=False,
            )
        if s.fetch is not None and s.fetch.moved_to:
            out.print(
                f"[yellow]source {s.name} moved permanently[/] to {_m(s.fetch.moved_to)}; "
                "it is fetched there from now on: update its url in config.toml",
                highlight=False,
            )
        for skip in s.skipped:
            out.print(f"[yellow]skipped[/] {_m(skip.origin)}: {_m(skip.reason)}", highlight=False)
    rules = sorted({name for s in report.sources for name, _ in s.rules})
    if rules:
        fired = Table(title="Cleaning rules fired")
        fired.add_column("rule")
        for s in report.sources:
            fired.add_column(s.name, justify="right")
        for name in rules:
            fired.add_row(name, *(str(dict(s.rules).get(name, 0)) for s in report.sources))
        out.print(fired)
    feeds = Table(title="Feeds")
    feeds.add_column("feed")
    feeds.add_column("entries", justify="right")
    feeds.add_column("file")
    feeds.add_column("")
    for f in report.feeds:
        state = ("would change" if report.dry_run else "written") if f.written else "unchanged"
        feeds.add_row(f.name, str(f.entries), _m(f.path), state)
    out.print(feeds)
    if report.retention_removed:
        out.print(f"retention removed {report.retention_removed} old item(s)")
    out.print(f"done in {report.seconds:.2f} s", highlight=False)


def _print_problems(report: RunReport, con: _Consoles) -> None:
    """Sources that failed, feeds that could not be written and warnings, on stderr, with or
    without --json: what cron mails and a person must act on, once each. (rich is loaded
    only when there is one.)"""
    lines = [
        *(f"[bold red]source {s.name} failed:[/] {_m(s.error)}" for s in report.sources if s.error),
        *(f"[bold red]error:[/] {_m(error)}" for error in report.errors),
        *(f"[yellow]warning:[/] {_m(warning)}" for warning in report.warnings),
    ]
    for line in lines:
        con.err.print(line, highlight=False)


def _cmd_explain(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, err)
    if not cfg.state_db.exists():
        err.print(f"{cfg.state_db}: no state database yet; run `aggregator run` first")
        return EXIT_NOTHING
    try:
        args.query.encode("utf-8")
    except UnicodeEncodeError:  # bytes the terminal's locale could not decode
        err.print(
            "the query is not valid UTF-8 text, so no entry, key or URL can be it; "
            "copy the id or URL from a feed",
            highlight=False,
        )
        return EXIT_NOTHING
    try:
        with Store(cfg.state_db, readonly=True) as store:
            found = pipeline.explain(store, args.query)
    except StoreError as e:
        err.print(f"[bold red]error:[/] {_m(e)}", highlight=False)
        return EXIT_STATE
    if found is None:
        err.print(
            f"{args.query}: no entry, article or duplicate with this id, key or URL in "
            f"{cfg.state_db}; give an entry's urn:uuid id, an identity key or an article URL",
            highlight=False,
        )
        return EXIT_NOTHING
    if args.json:
        _print_json(found)
        return EXIT_OK
    _print_explanation(found, out)
    return EXIT_OK


def _print_explanation(found: dict[str, Any], out: Console) -> None:
    members, merges = found["members"], found["merges"]
    if not members:
        out.print(f"{_m(found['asked'])}: no longer stored", highlight=False)
    else:
        entry = members[0]
        out.print(
            f"[bold]entry[/] {entry['atom_id']}  ({_m(entry['key'])}, source {entry['source']})"
        )
        shown = next((m for m in members if m["key"] == found["shown"]), entry)
        out.print(f"  title      {_m(shown['title'])}", highlight=False)
        out.print(f"  link       {_m(entry['link'])}", highlight=False)
        out.print(f"  published  {entry['published']}   updated {entry['updated']}")
        own = "its own" if shown["key"] == entry["key"] else shown["key"]
        out.print(f"  shows the title and text of {_m(own)} (the fullest)", highlight=False)
        if found["asked"] != entry["key"]:
            out.print(
                f"  asked for {_m(found['asked'])}, which belongs to this entry", highlight=False
            )
    out.print(f"articles in this story ({len(members)}):")
    for m in members:
        shingles = found["sketches"].get(m["key"], {}).get("shingles", "-")
        why = "the entry's own article"
        if m["key"] in merges:
            g = merges[m["key"]]
            why = (
                f'merged by rule "{g["rule"]}" against {g["matched"]}: similarity'
                f" {g['similarity']:.2f}, containment {g['containment']:.2f}, title"
                f" {g['title_similarity']:.2f}, {g['days_apart']:g} days apart; at {g['merged_at']}"
            )
        out.print(f"  {_m(m['key'])}  ({m['source']}, {shingles} shingles)  {why}", highlight=False)
        out.print(f"      {_m(m['link'] or '(no link)')}", highlight=False)
    if found["duplicates"]:
        out.print(f"exact copies recorded as duplicates ({len(found['duplicates'])}):")
        for d in found["duplicates"]:
            out.print(
                _m(
                    f"  {d['key']}  ({d['source']})  {d['reason']} as {d['kept_key']}; read from"
                    f" {d['origin']}"
                ),
                highlight=False,
            )
            out.print(f"      {_m(d['link'] or '(no link)')}", highlight=False)
    if found["tombstone"]:
        t = found["tombstone"]
        out.print(
            f"{_m(found['asked'])}: tombstone ({_m(t['reason'])}, {t['at']})", highlight=False
        )


def _fetch_cell(status: FetchStatus) -> str:
    colour = {"fetched": "green", "not-modified": "green", "failed": "red", "waiting": "yellow"}
    text = f"[{colour.get(status.outcome, 'default')}]{status.outcome}[/]"
    if status.failures:
        text += f" ({status.failures} failure(s) in a row)"
    return f"{text} {status.detail}" if status.detail else text


def _cmd_run(args: argparse.Namespace, con: _Consoles) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="aggregator: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, con.err)
    names = {s.name for s in cfg.sources}
    unknown = [n for n in args.source or () if n not in names]
    if unknown:
        problem = f"--source {unknown[0]}: no such source; configured: {', '.join(sorted(names))}"
        return _config_error(ConfigError(str(args.config), (problem,)), con.err)

    progress_bar: Progress | None = None
    tasks: dict[str, Any] = {}
    # Asked once, and only of a long run: rich's is_terminal reads the environment each time
    # (~15 us), and on_progress is called for every file read. A stderr that is no terminal
    # (cron, a pipe) never loads rich for it.
    to_terminal = cache(lambda: sys.stderr.isatty() and con.err.is_terminal)

    def on_progress(source: str, done: int, total: int) -> None:
        nonlocal progress_bar
        if total < PROGRESS_MIN_FILES or not to_terminal():
            return
        if progress_bar is None:
            from rich.progress import (  # ~20 ms: only when a bar is shown
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )  # fmt: skip

            progress_bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=con.err, transient=True,
            )  # fmt: skip
            progress_bar.start()
        if source not in tasks:
            tasks[source] = progress_bar.add_task(f"reading {source}", total=total)
        progress_bar.update(tasks[source], completed=done)

    stopping = _Stopping(con, args.dry_run)
    try:
        with (
            pipeline.exclusive(cfg, args.wait),
            Store(cfg.state_db) as store,
            pipeline.on_stop_signals(stopping.on_signal),
        ):
            report = pipeline.run_once(
                cfg, store, datetime.now(UTC), only=args.source, dry_run=args.dry_run,
                offline=args.offline, progress=on_progress, stop=stopping,
                retry_now=args.retry_now,
            )  # fmt: skip
    except (StoreError, PublishError) as e:
        con.err.print(f"[bold red]error:[/] {_m(e)}", highlight=False)
        return EXIT_STATE
    except KeyboardInterrupt:  # Ctrl-C before the run began (waiting for the state lock)
        con.err.print("interrupted before the run began; nothing was changed")
        return 128 + signal.SIGINT
    finally:
        if progress_bar is not None:
            progress_bar.stop()

    if args.json:
        data = _report_json(report)
        if stopping.signal is not None:
            data["interrupted"] = stopping.signal.name
        _print_json(data)
    else:
        _print_report(report, con.out)
    _print_problems(report, con)
    if stopping.signal is not None:
        con.err.print(
            f"interrupted ({stopping.signal.name}): a dry run, nothing was saved or written"
            if args.dry_run
            else f"interrupted ({stopping.signal.name}): what was read before it is saved "
            "and in the feeds; run again to read the rest"
        )
        return 128 + stopping.signal
    if report.errors:
        con.err.print("some feeds could not be written; see the errors above")
        return EXIT_STATE
    if not report.produced:
        con.err.print("nothing could be produced: every feed is empty; see the reasons above")
        return EXIT_NOTHING
    failed = sum(1 for s in report.sources if s.error)
    if args.strict and (report.skipped or failed):
        con.err.print(
            f"--strict: {report.skipped} input(s) skipped, {failed} source(s) failed; "
            "see the reasons above"
        )
        return EXIT_NOTHING
    return EXIT_OK


class _Stopping:
    """``run``'s stop signals (Ctrl-C, SIGTERM, SIGHUP unless ignored), as the daemon's: the
    first asks the run to stop (``run_once``'s ``stop``: no further file is read or fetch
    started, what was read is committed and its feeds written); a second ends the process at
    once. The workers ignore them: only this process decides."""

    def __init__(self, con: _Consoles, dry_run: bool) -> None:
        self.con, self.dry_run = con, dry_run
        self.signal: signal.Signals | None = None
        self._said = False

    def __call__(self) -> bool:
        """Whether to stop; the first time it is yes, says so. (Said here, not by the signal
        handler: after SIGHUP the terminal may be gone, and a write to it fails.)"""
        if self.signal is None:
            return False
        if not self._said:
            self._said = True
            then = "what was read is saved and the feeds written from it"
            if self.dry_run:
                then = "nothing is saved (a dry run)"
            with contextlib.suppress(OSError):
                self.con.err.print(
                    f"{self.signal.name}: stopping after the files and fetches under way; "
                    f"{then} (send it again to stop at once)"
                )
        return True

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)
            return
        # A second signal: out at once, as SIGKILL would be. (A KeyboardInterrupt raised here
        # could land inside the worker pool's shutdown and leave the process waiting for ever
        # on workers told nothing.) That is safe: every save is a transaction, the feeds of
        # what was saved are marked outdated with it, the workers die with this process and
        # the state lock goes with it; only a temporary file may be left in the output folder.
        said = (
            "stopped at once (a dry run: nothing was saved or written)\n"
            if self.dry_run
            else "stopped at once: what was read up to the last save is kept and the feeds "
            "are rebuilt from it by the next run; run again to read the rest\n"
        )
        with contextlib.suppress(OSError):
            os.write(2, said.encode())
        os._exit(128 + self.signal)


def _when(at: datetime | None) -> str:
    """Short, so the table fits 80 columns, as ``ls -l`` does: a time within half a year of
    now to the minute, any other as a date with its year."""
    if at is None:
        return "-"
    near = abs(datetime.now(UTC) - at) < timedelta(days=182)
    return f"{at:%m-%d %H:%M}" if near else f"{at:%Y-%m-%d}"


def _cmd_status(args: argparse.Namespace, out: Console, err: Console) -> int:
    from rich.table import Table

    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, err)
    state = pipeline.status(cfg)
    healthy, why = pipeline.health(cfg, state, datetime.now(UTC))
    if args.json:
        doc = {"healthy": healthy, "reason": why, **asdict(state)}
        _print_json(doc)
        return EXIT_OK if healthy else EXIT_NOTHING
    sources = Table(title="sources (times in UTC)", title_justify="left")
    for column in ("source", "last run", "next run", "new/upd/dup", "failed/runs"):
        sources.add_column(column, no_wrap=True)
    sources.add_column("last error", overflow="fold")
    for s in state.sources:
        error = _m(f"{_when(s.last_error_at)}: {s.last_error}") if s.last_error else ""
        sources.add_row(
            s.name, _when(s.last_run), _when(s.next_run),
            f"{s.new}/{s.updated}/{s.duplicates}", f"{s.errors}/{s.runs}", error,
        )  # fmt: skip
    out.print(sources)
    for s in state.sources:
        if s.moved_to:
            out.print(
                f"[yellow]moved:[/] source {_m(s.name)} answers from {_m(s.moved_to)} (a permanent"
                f" redirect from {_m(s.where)}); update its url in config.toml",
                highlight=False,
            )
    feeds = Table(title="feeds (times in UTC)", title_justify="left")
    for column in ("feed", "entries", "updated"):
        feeds.add_column(column, no_wrap=True)
    feeds.add_column("url", overflow="fold")
    for f in state.feeds:
        feeds.add_row(f.name, str(f.entries), _when(f.updated), _m(f.url))
    out.print(feeds)
    colour = "green" if healthy else "red"
    out.print(f"[{colour}]{'healthy' if healthy else 'unhealthy'}[/]: {_m(why)}")
    return EXIT_OK if healthy else EXIT_NOTHING


def _serve_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )


def _server(args: argparse.Namespace, cfg: Config, err: Console) -> Any:
    """A bound ``serve.Server`` (or None after printing why it cannot listen)."""
    from aggregator import serve  # uvicorn only for the commands that serve

    server = serve.Server(cfg, args.host, args.port, args.access_log)
    try:
        address = server.bind()
    except ServeError as e:
        err.print(f"[bold red]error:[/] {_m(e)}", highlight=False)
        return None
    err.print(f"serving {cfg.output_dir} at {address} (Ctrl+C stops)", highlight=False)
    elsewhere = _base_elsewhere(cfg.base_url, address)
    if elsewhere:
        err.print(f"[yellow]warning:[/] {_m(elsewhere)}", highlight=False)
    return server


def _base_elsewhere(base_url: str, address: str) -> str | None:
    """A warning when ``base_url`` names this machine but another port than the one served:
    every feed's self link, the pages' subscribe links and the OPML lead there, not here.
    (A public base_url differs from the address on purpose, behind a reverse proxy.)"""
    from urllib.parse import urlsplit

    base, here = urlsplit(base_url), urlsplit(address)
    local = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}  # noqa: S104 - names, not binds
    port = base.port or (443 if base.scheme == "https" else 80)
    if base.hostname not in local or port == here.port:
        return None
    wildcard = here.hostname in ("0.0.0.0", "::")  # noqa: S104 - every interface: no URL
    usable = here._replace(netloc=f"localhost:{here.port}").geturl() if wildcard else address
    return (
        f"base_url is {base_url}, but this server listens on port {here.port}: the feeds' "
        "self links and the subscribe links on its pages lead to base_url. Set base_url to "
        f"{usable} in config.toml (and run again), or serve on port {port}"
    )


def _cmd_serve(args: argparse.Namespace, err: Console) -> int:
    _serve_logging()
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, err)
    server = _server(args, cfg, err)
    if server is None:
        return EXIT_STATE
    server.run()
    err.print("stopped", highlight=False)
    return EXIT_OK


def _cmd_daemon(args: argparse.Namespace, err: Console) -> int:
    _serve_logging()
    # The pipeline's per-file and per-fetch lines only with --verbose; the daemon's own always.
    logging.getLogger("aggregator").setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("aggregator.daemon").setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs a line per request: --verbose's job.
    logging.getLogger("httpx").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as e:
        return _config_error(e, err)
    from aggregator.daemon import Daemon  # APScheduler only for the daemon

    if not args.serve and (args.host or args.port is not None or args.access_log):
        problem = "--host, --port and --access-log go with --serve"
        return _config_error(ConfigError("command line", (problem,)), err)
    daemon = Daemon(cfg, serving=args.serve)
    try:
        if not args.serve:
            daemon.run()
            return EXIT_OK
        # The daemon's lock first: a second daemon says so before it binds a port. Then the
        # server owns the main thread and SIGTERM/SIGINT; when it returns, the batch in
        # progress finishes and the daemon stops.
        daemon.start()
        try:
            server = _server(args, cfg, err)
            if server is not None:
                daemon.reloaded.append(server.reconfigure)
                server.reconfigure(daemon.config)  # (taken in since it started)
                server.run()
        finally:
            daemon.shutdown()
        if server is None:
            return EXIT_STATE
    except StoreError as e:
        err.print(f"[bold red]error:[/] {_m(e)}", highlight=False)
        return EXIT_STATE
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    con = _Consoles()
    try:
        if args.command == "run":
            return _cmd_run(args, con)
        out, err = con.out, con.err
        if args.command == "adapters":
            return _cmd_adapters(out)
        if args.command == "check":
            return _cmd_check(args, out, err)
        if args.command == "daemon":
            return _cmd_daemon(args, err)
        if args.command == "serve":
            return _cmd_serve(args, err)
        if args.command == "status":
            return _cmd_status(args, out, err)
        if args.command == "opml":
            return _cmd_opml(args, out, err)
        if args.command == "explain":
            return _cmd_explain(args, out, err)
        raise AssertionError(f"unhandled command {args.command!r}")  # argparse lists them all
    except AggregatorError as e:  # anything we raise on purpose that escaped a command
        con.err.print(f"[bold red]error:[/] {_m(e)}", highlight=False)
        return EXIT_NOTHING
