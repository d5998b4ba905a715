"""Prometheus metrics at /metrics (one registry per app, so tests can run several apps)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_OPERATION_NAMES = 200
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.operations = Counter(
            "larder_graphql_operations",
            "GraphQL operations by type, name and outcome",
            ["type", "name", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "larder_graphql_duration_seconds",
            "GraphQL operation duration",
            ["type", "name"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "larder_auth_failures",
            "Rejected credentials by reason and transport",
            ["reason", "transport"],
            registry=r,
        )
        self.version_conflicts = Counter(
            "larder_version_conflicts",
            "Writes refused because the recipe had changed",
            ["operation"],
            registry=r,
        )
        self.rate_limited = Counter(
            "larder_rate_limited",
            "Requests refused by a rate limit",
            ["kind"],
            registry=r,
        )
        self.feed_lag = Histogram(
            "larder_change_feed_lag_seconds",
            "Time from a change's commit to the change feed reading it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._names: set[str] = set()

    def operation_name(self, name: str | None) -> str:
        """A bounded label: client-chosen names beyond the first few hundred become 'other'."""
        if not name:
            return "anonymous"
        if not _NAME.fullmatch(name):
            return "other"
        if name not in self._names:
            if len(self._names) >= MAX_OPERATION_NAMES:
                return "other"
            self._names.add(name)
        return name

    def watch(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """Add gauges/counters read from live objects at scrape time."""
        self.registry.register(_FunctionCollector(collect))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _FunctionCollector(Collector):
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


def gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=value)


def counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name, documentation, value=value)
