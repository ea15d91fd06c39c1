"""The daemon: every source on its own schedule, the pipeline run in batches. The only
apscheduler import.

::

    APScheduler (one job a source: its interval or cron, with jitter)
        │ due(source)                          coalesced: a source due twice is due once
        ▼
    pending ──▶ batch thread: pipeline.run_once(only=the due sources) ──▶ feeds, state, logs
                 (one batch at a time, under the state database's lock)

A job does nothing but mark its source due; one batch thread runs whatever is due, a short
moment after the first of them fell due so that sources scheduled together run together. So a
source never runs twice at once, and each batch regenerates the feeds its sources touched once,
not once per source. Jobs coalesce with no misfire limit: a run missed while the machine slept,
or while a long batch ran, runs once when it can, not once per missed time.

config.toml edited while it runs: the batch thread looks at the file every CONFIG_CHECK
seconds between batches and takes in a changed text that ``config.load`` accepts (``_reload``):
jobs are added, removed or rescheduled, and a batch writes the feeds with the new settings.

Stopping (SIGTERM, SIGINT, SIGHUP unless ignored, or ``stop()``): no new batch starts; a batch
in progress takes in the fetches under way (each bounded by its source's timeout), reads no further archive files,
commits what it did and writes its feeds; then the process exits 0. The state database stays
consistent because every write is a transaction and every feed file is replaced atomically; a
second signal is not needed and changes nothing.

Inputs: a ``Config``. Outputs: runs of the pipeline, the schedule in the state database (for
the health page), log lines. Nothing here parses, cleans or writes feeds itself.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator import config as config_mod
from aggregator import pipeline
from aggregator.errors import AggregatorError, ConfigError, StateBusy, StateGone
from aggregator.model import Config, RunReport, Source, SourceReport
from aggregator.store import Store
from aggregator.store.lock import StateLock

log = logging.getLogger("aggregator.daemon")

# Sources that fall due within this long of the first one run in the same batch. Jobs
# scheduled together (every source at start-up, sources sharing a cron line) fire within a few
# milliseconds of each other (seen: under 5 ms for 3 sources); jitter spreads interval sources
# on purpose and they may run apart.
BATCH_WINDOW = 0.25

# Jitter: each run moves by up to this share of the source's interval, at most JITTER_MAX
# seconds, so 500 sources set to "30m" do not all hit their servers in the same second.
JITTER_SHARE = 0.1
JITTER_MAX = 300.0
# How long a batch waits for a one-shot `aggregator run` holding the state database.
LOCK_WAIT = 600.0
# How often config.toml is looked at (a stat; read only when it changed).
CONFIG_CHECK = 2.0


# crontab's weekday numbers: 0 and 7 are Sunday. APScheduler numbers Monday 0, so each is
# handed over as a name.
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_PART = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def _weekdays(field: str) -> str:
    """A crontab weekday field in APScheduler's terms: every numbered part (``0``, ``1-5``,
    ``*/2``, ``0,6``) as the day names it means; named parts (``mon-fri``) as they are."""
    if field == "*":
        return field
    out: list[str] = []
    for part in field.split(","):
        m = _WEEKDAY_PART.match(part)
        if m is None:  # names, or something APScheduler will name the problem of
            out.append(part)
            continue
        start, end, step = m.group(1), m.group(2), m.group(3)
        if start == "*":
            if end is not None:
                raise ValueError(f"weekday {part!r} is not a crontab weekday")
            first, last = 0, 6
        else:
            first = int(start)
            last = int(end) if end is not None else (7 if step else first)
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"weekday {part!r} is out of range: 0-7, 0 and 7 are Sunday")
        out += [_WEEKDAY_NAMES[d] for d in range(first, last + 1, int(step or 1))]
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str, jitter: float | None = None) -> BaseTrigger:
    """A crontab line (``minute hour day month weekday``), in UTC, meaning what cron means:
    weekday 0 and 7 are Sunday, and when both the day of the month and the weekday are
    restricted, either one matching is enough (``0 0 1 * 1``: the 1st, and every Monday).
    APScheduler's own reading differs on both (its weekday 0 is Monday, and it requires both
    days to match). Raises ValueError with the reason when the line is not one."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, written = fields
    weekday = _weekdays(written)

    def cron(day: str, weekday: str, jitter: float | None = None) -> CronTrigger:
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=weekday,
            timezone=UTC, jitter=jitter,
        )  # fmt: skip

    if day.startswith("*") or written.startswith("*"):  # (crontab: "*/2" is unrestricted)
        return cron(day, weekday, jitter)
    return OrTrigger([cron(day, "*"), cron("*", weekday)], jitter=jitter)


def jitter_for(source: Source) -> float:
    return min(source.policy.interval * JITTER_SHARE, JITTER_MAX)


def trigger_for(source: Source) -> BaseTrigger:
    jitter = jitter_for(source)
    if source.policy.cron:
        return cron_trigger(source.policy.cron, jitter)
    return IntervalTrigger(seconds=source.policy.interval, jitter=jitter, timezone=UTC)


class Daemon:
    """``Daemon(config).run()`` until a signal; or ``start()`` / ``stop()`` / ``join()``."""

    def __init__(
        self, config: Config, batch_window: float = BATCH_WINDOW, serving: bool = False
    ) -> None:
        self.config = config
        self.batch_window = batch_window
        # Settings the process holds for its whole life: a change waits for a restart.
        self._fixed = ("state_db", "output_dir", "base_url", "serve") if serving else ("state_db",)
        self.reloaded: list[Callable[[Config], None]] = []  # told of each config.toml taken in
        # config.toml's file id at the last look, and the one last taken in (or refused): a
        # change is taken in once the file has stayed the same for a look (not half-written).
        self._looked: tuple[int, int, int] | None = None
        self._taken: object = _NEVER
        self._refused: str | None = None  # the digest of a text already said to be unusable
        self._pending: set[str] = set()
        self._due = threading.Condition()
        self._stopping = threading.Event()
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._batcher = threading.Thread(target=self._batches, name="aggregator-batches")
        self._lock = StateLock(config.state_db, purpose="daemon", kind="daemon")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, now: datetime | None = None) -> None:
        """Take the daemon lock (StateBusy if another daemon has it), schedule every source,
        and start the batch thread."""
        self._lock.__enter__()
        now = now or datetime.now(UTC)
        try:
            # Made (and migrated) now or never: a later batch never makes one (Store's
            # create=False), and a daemon that cannot keep its state does not start.
            with Store(self.config.state_db):
                pass
            first = self._first_runs(now)
            for source in self.config.sources:
                self._schedule(source, first[source.name])
            self._scheduler.start()
            self._publish_schedule()
            self._batcher.start()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        log.info(
            "daemon started: %d source(s), state %s, feeds in %s",
            len(self.config.sources), self.config.state_db, self.config.output_dir,
        )  # fmt: skip

    def stop(self) -> None:
        """Ask everything to stop; ``join`` waits for it."""
        if not self._stopping.is_set():
            log.info("stopping: finishing the batch in progress, starting no other")
            self._stopping.set()
        with self._due:
            self._due.notify_all()

    def join(self) -> None:
        if self._batcher.is_alive():
            self._batcher.join()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
            # Nothing is scheduled any more: the health check must not wait for these runs.
            self._publish_schedule({s.name: None for s in self.config.sources})
        self._lock.__exit__(None, None, None)
        log.info("daemon stopped")

    def shutdown(self) -> None:
        """``stop`` and ``join`` with the stop signals only asking again: a second signal
        while the batch in progress finishes must not cut it short."""
        if threading.current_thread() is threading.main_thread():
            for sig in pipeline.stop_signals():
                signal.signal(sig, lambda signum, frame: self.stop())
        self.stop()
        self.join()

    def run(self) -> None:
        """Start, then block until SIGTERM, SIGINT or SIGHUP; stop cleanly."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop()

        with pipeline.on_stop_signals(on_signal):
            self.start()
            try:
                while not self._stopping.wait(1.0):
                    if not self._batcher.is_alive():  # cannot happen unless a bug killed it
                        break
            finally:
                self.stop()
                self.join()

    # -- scheduling --------------------------------------------------------------------------

    def _first_runs(self, now: datetime, config: Config | None = None) -> dict[str, datetime]:
        """Each source's first run: now, unless it ran recently (a restart): then one interval
        after its last run, or for a cron source its first cron time after the last run (now
        if that time passed while the daemon was down), so restarting the daemon does not
        poll every server again."""
        config = config or self.config
        known = {s.name: s for s in pipeline.status(config).sources}
        first = {}
        for source in config.sources:
            last = known[source.name].last_run
            at = now
            if last is not None and source.policy.cron:
                due = cron_trigger(source.policy.cron).get_next_fire_time(None, last)
                # get_next_fire_time gives a time at or after ``last``: step past the run itself.
                if due is not None and due <= last:
                    due = cron_trigger(source.policy.cron).get_next_fire_time(
                        None, last + timedelta(seconds=1)
                    )
                at = max(now, due) if due is not None else now
            elif last is not None:
                at = max(now, last + timedelta(seconds=source.policy.interval))
            first[source.name] = at
        return first

    def _schedule(self, source: Source, first: datetime | None) -> None:
        """A job for ``source``: its first run at ``first`` (None: by its trigger, from now)."""
        at = {} if first is None else {"next_run_time": first}
        self._scheduler.add_job(
            self._mark_due, trigger_for(source), args=(source.name,), id=source.name,
            name=f"source {source.name}", **at,
        )  # fmt: skip

    def _mark_due(self, name: str) -> None:
        with self._due:
            self._pending.add(name)
            self._due.notify_all()

    def _publish_schedule(self, runs: dict[str, datetime | None] | None = None) -> None:
        if runs is None:
            runs = {job.id: job.next_run_time for job in self._scheduler.get_jobs()}
        try:
            pipeline.set_next_runs(self.config, runs)
        except StateGone:
            pass  # the batch said so
        except AggregatorError as e:
            log.error("cannot record the schedule: %s", e)

    # -- batches -----------------------------------------------------------------------------

    def _batches(self) -> None:
        while not self._stopping.is_set():
            with self._due:
                if not self._pending:
                    self._due.wait(CONFIG_CHECK)
            if self._stopping.is_set():
                return
            try:
                reloaded = self._reload()
            except Exception:  # a bug: said, and the daemon goes on with what it has
                log.error("bug while taking in config.toml:\n%s", traceback.format_exc())
                reloaded = False
            if not reloaded and not self._pending:
                continue
            # Let the sources that fall due together gather into one batch.
            self._stopping.wait(self.batch_window)
            if self._stopping.is_set():
                return
            with self._due:
                due, self._pending = sorted(self._pending), set()
            self._batch(due)

    # -- config.toml edited while running ----------------------------------------------------

    def _reload(self) -> bool:
        """Take in config.toml when its text changed since it was loaded: sources added are
        scheduled and run now, sources taken out are no longer run (their feeds are retired),
        a changed schedule applies from now on, a source read from elsewhere runs now. True
        when it was taken in: the feeds are written again by a batch now (one with no source
        when none is due). A text that cannot be used is said once, and the daemon goes on
        with what it has."""
        path = self.config.path
        if path is None:
            return False
        seen, self._looked = self._looked, _file_id(path)
        if seen != self._looked or seen == self._taken:  # changing now, or already seen to
            return False
        self._taken = seen
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            log.error(
                "cannot read %s (%s); the daemon goes on with the configuration it had",
                path, e,
            )  # fmt: skip
            return False
        digest = config_mod.text_digest(text)
        if digest in (self.config.digest, self._refused):
            return False
        try:
            new = config_mod.load(path, text)
        except ConfigError as e:
            self._refused = digest
            log.error(
                "%s was changed but cannot be used; the daemon goes on with the configuration "
                "it had. Fix it (aggregator check names each problem) and save it again:\n  %s",
                path, "\n  ".join(e.problems or (str(e),)),
            )  # fmt: skip
            return False
        fixed = [k for k in self._fixed if getattr(new, k) != getattr(self.config, k)]
        if fixed:
            self._refused = digest
            log.error(
                "%s now changes %s, which the daemon takes only when it starts; it goes on with "
                "the configuration it had until it is restarted",
                path, " and ".join(fixed),
            )  # fmt: skip
            return False
        self._apply(new)
        return True

    def _apply(self, new: Config) -> None:
        before = {s.name: s for s in self.config.sources}
        now = datetime.now(UTC)
        try:
            first = self._first_runs(now, new)
        except AggregatorError as e:  # the state database gone or unreadable: the batch says so
            log.warning("cannot read when the sources last ran (%s); added ones run now", e)
            first = {s.name: now for s in new.sources}
        self.config = new
        removed = sorted(before.keys() - {s.name for s in new.sources})
        added, changed, rescheduled = [], [], []
        with self._due:
            for name in removed:
                self._scheduler.remove_job(name)
                self._pending.discard(name)
            for source in new.sources:
                old = before.get(source.name)
                if old is None:
                    added.append(source.name)
                    # Due now: run by the batch this reload makes, then on its schedule. (A
                    # source put back that ran recently waits, as at start.)
                    at = first[source.name]
                    self._schedule(source, at if at > now else None)
                    if at <= now:
                        self._pending.add(source.name)
                    continue
                if (old.policy.interval, old.policy.cron) != (
                    source.policy.interval, source.policy.cron,
                ):  # fmt: skip
                    rescheduled.append(source.name)
                    self._scheduler.reschedule_job(source.name, trigger=trigger_for(source))
                if (old.path, old.url, old.adapter, old.include) != (
                    source.path, source.url, source.adapter, source.include,
                ):  # fmt: skip
                    changed.append(source.name)
                    self._pending.add(source.name)
        self._refused = None  # a text refused before is said again if it comes back
        parts = [
            f"{what}: {', '.join(names)}"
            for what, names in (
                ("sources added", added), ("taken out", removed),
                ("read from elsewhere, run now", changed), ("schedule changed", rescheduled),
            )
            if names
        ]  # fmt: skip
        log.info(
            "%s was changed: taken in (%s); writing the feeds again",
            new.path, "; ".join(parts) or "the same sources",
        )  # fmt: skip
        runs = {job.id: job.next_run_time for job in self._scheduler.get_jobs()}
        self._publish_schedule({**runs, **dict.fromkeys(removed)})  # removed: not run any more
        for tell in self.reloaded:
            tell(new)

    def _batch(self, due: list[str]) -> None:
        now = datetime.now(UTC)
        started = time.perf_counter()
        log.info("running %s", ", ".join(due) or "no source: writing the feeds")
        try:
            with (
                StateLock(self.config.state_db, LOCK_WAIT, "daemon", cancel=self._stopping),
                Store(self.config.state_db, create=False) as store,
            ):
                report = pipeline.run_once(
                    self.config, store, now, only=due, stop=self._stopping.is_set
                )
        except StateBusy as e:
            log.error("%s; these sources run at their next time", e)
            return
        except AggregatorError as e:
            log.error("the run of %s failed: %s", ", ".join(due), e)
            self._record_crash(now, started, str(e))
            return
        except Exception as e:  # a bug: loud, with its traceback, and /healthz says so
            log.error("bug in the run of %s:\n%s", ", ".join(due), traceback.format_exc())
            self._record_crash(now, started, f"internal error ({type(e).__name__}: {e})")
            return
        finally:
            self._publish_schedule()
        self._log_report(report)

    def _record_crash(self, now: datetime, started: float, error: str) -> None:
        try:
            pipeline.record_crash(self.config, now, time.perf_counter() - started, error)
        except StateGone:
            pass  # the batch said so
        except AggregatorError as e:
            log.error("cannot record the failed run: %s", e)

    def _log_report(self, report: RunReport) -> None:
        jobs = {job.id: job.next_run_time for job in self._scheduler.get_jobs()}
        for r in report.sources:
            nxt = jobs.get(r.name)
            when = f"; next run {nxt:%Y-%m-%d %H:%M:%S} UTC" if nxt else ""
            line = _describe(r)
            if r.error or (r.fetch and r.fetch.outcome == "failed"):
                log.error("%s: %s%s", r.name, line, when)
            else:
                log.info("%s: %s%s", r.name, line, when)
        out = self.config.output_dir
        written = [
            f"{f.path.relative_to(out) if f.path.is_relative_to(out) else f.path} ({f.entries})"
            for f in report.feeds
            if f.written
        ]
        log.info(
            "batch done in %.1f s; feeds rewritten: %s",
            report.seconds, ", ".join(written) or "none (nothing changed)",
        )  # fmt: skip
        for error in report.errors:
            log.error("%s", error)
        for warning in report.warnings:
            log.warning("%s", warning)


_NEVER = object()


def _file_id(path: Path) -> tuple[int, int, int] | None:
    """What tells a file's new contents without reading it: its inode (an editor's save by
    rename), modification time and size; None when it cannot be looked at."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _describe(r: SourceReport) -> str:
    parts = [f"{r.new} new, {r.updated} updated, {r.duplicates} duplicate(s)"]
    if r.near_duplicates:
        parts.append(f"{r.near_duplicates} merged into other stories")
    if r.skipped:
        parts.append(f"{len(r.skipped)} skipped")
    if r.fetch is not None:
        parts.append(f"{r.fetch.outcome}: {r.fetch.detail}" if r.fetch.detail else r.fetch.outcome)
    if r.error:
        parts.append(f"failed: {r.error}")
    return ", ".join(parts)
