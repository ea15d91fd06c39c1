"""``/metrics``: the state database's counts in the Prometheus text format. The only
prometheus_client import.

Input: ``model.Status`` (``pipeline.status``) and the health verdict. Output: the exposition
bytes and their content type. Pure: one custom collector over the status it is given, in a
registry of its own (no process-global registry, so the server can be built twice in one
process, as the tests and the daemon do), so every scrape reads the database afresh and two
processes (a daemon and a server) agree.

Metrics (label ``source`` or ``feed``)::

    aggregator_source_runs_total             fetches/reads of the source
    aggregator_source_errors_total           of which failed
    aggregator_source_items_total{kind}      new / updated / duplicate items, all runs
    aggregator_source_last_run_items{kind}   new / updated / duplicate / unchanged / skipped, last run
    aggregator_source_last_success_timestamp_seconds
    aggregator_source_last_error_timestamp_seconds
    aggregator_source_next_run_timestamp_seconds    (while a daemon runs)
    aggregator_source_consecutive_failures
    aggregator_cycle_duration_seconds        summary: _count cycles, _sum seconds
    aggregator_last_cycle_duration_seconds, aggregator_last_cycle_timestamp_seconds
    aggregator_last_cycle_failed_sources
    aggregator_feed_entries, aggregator_feed_updated_timestamp_seconds
    aggregator_healthy                       1 while /healthz answers 200
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from aggregator.model import Status


def _ts(t: datetime | None) -> float | None:
    return t.timestamp() if t is not None else None


class _StatusCollector(Collector):
    def __init__(self, status: Status, healthy: bool) -> None:
        self._status = status
        self._healthy = healthy

    def collect(self) -> Iterator[Metric]:
        sources = self._status.sources
        runs = CounterMetricFamily(
            "aggregator_source_runs", "Fetches or reads of the source", labels=["source"]
        )
        errors = CounterMetricFamily(
            "aggregator_source_errors",
            "Fetches or reads of the source that failed",
            labels=["source"],
        )
        items = CounterMetricFamily(
            "aggregator_source_items",
            "Items taken from the source over all runs, by outcome",
            labels=["source", "kind"],
        )
        last = GaugeMetricFamily(
            "aggregator_source_last_run_items",
            "Items in the source's last run, by outcome",
            labels=["source", "kind"],
        )
        times = {
            "last_success": GaugeMetricFamily(
                "aggregator_source_last_success_timestamp_seconds",
                "When the source last ran without error (Unix time)",
                labels=["source"],
            ),
            "last_error_at": GaugeMetricFamily(
                "aggregator_source_last_error_timestamp_seconds",
                "When the source last failed (Unix time)",
                labels=["source"],
            ),
            "next_run": GaugeMetricFamily(
                "aggregator_source_next_run_timestamp_seconds",
                "When the daemon will next run the source (Unix time)",
                labels=["source"],
            ),
        }
        failures = GaugeMetricFamily(
            "aggregator_source_consecutive_failures",
            "Failed fetches of the source in a row (URL sources)",
            labels=["source"],
        )
        for s in sources:
            runs.add_metric([s.name], s.runs)
            errors.add_metric([s.name], s.errors)
            items.add_metric([s.name, "new"], s.new_total)
            items.add_metric([s.name, "updated"], s.updated_total)
            items.add_metric([s.name, "duplicate"], s.duplicates_total)
            for kind, value in (
                ("new", s.new), ("updated", s.updated), ("duplicate", s.duplicates),
                ("unchanged", s.unchanged), ("skipped", s.skipped),
            ):  # fmt: skip
                last.add_metric([s.name, kind], value)
            for attr, family in times.items():
                when = _ts(getattr(s, attr))
                if when is not None:
                    family.add_metric([s.name], when)
            failures.add_metric([s.name], s.failures)
        yield from (runs, errors, items, last, *times.values(), failures)

        st = self._status
        yield SummaryMetricFamily(
            "aggregator_cycle_duration_seconds",
            "Pipeline cycles (one-shot runs and daemon batches) and the seconds they took",
            count_value=st.cycles_total,
            sum_value=st.cycle_seconds_total,
        )
        if st.cycles:
            c = st.cycles[0]
            yield GaugeMetricFamily(
                "aggregator_last_cycle_duration_seconds", "Seconds the last cycle took", c.seconds
            )
            yield GaugeMetricFamily(
                "aggregator_last_cycle_timestamp_seconds",
                "When the last cycle started (Unix time)",
                c.started.timestamp(),
            )
            yield GaugeMetricFamily(
                "aggregator_last_cycle_failed_sources",
                "Sources that failed in the last cycle",
                c.failed,
            )
        entries = GaugeMetricFamily(
            "aggregator_feed_entries", "Entries in the feed", labels=["feed"]
        )
        updated = GaugeMetricFamily(
            "aggregator_feed_updated_timestamp_seconds",
            "The feed's <updated>: its newest entry's; with no entry, when it emptied (Unix time)",
            labels=["feed"],
        )
        for f in st.feeds:
            entries.add_metric([f.name], f.entries)
            if f.updated is not None:
                updated.add_metric([f.name], f.updated.timestamp())
        yield entries
        yield updated
        yield GaugeMetricFamily(
            "aggregator_healthy", "1 while /healthz answers 200, else 0", int(self._healthy)
        )


def exposition(status: Status, healthy: bool) -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status, healthy))
    return generate_latest(registry), CONTENT_TYPE_LATEST
