"""Prometheus metrics at /metrics, read from the live runtime at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from app.main import Runtime


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        yield GaugeMetricFamily(
            "larder_ws_connections",
            "Authenticated WebSocket connections open",
            value=runtime.limiter.total,
        )
        yield GaugeMetricFamily(
            "larder_subscriptions",
            "Active subscriptions on this process",
            value=runtime.hub.subscriber_count,
        )
        yield CounterMetricFamily(
            "larder_change_events",
            "Change events read from the change stream",
            value=runtime.hub.published,
        )
        yield CounterMetricFamily(
            "larder_subscriber_overflows",
            "Subscriptions closed because they fell behind",
            value=runtime.hub.overflowed,
        )
        feed = runtime.feed
        yield CounterMetricFamily(
            "larder_change_feed_restarts",
            "Times the change feed reconnected",
            value=0 if feed is None else feed.restarts,
        )
        yield GaugeMetricFamily(
            "larder_change_feed_connected",
            "1 while the change stream is open",
            value=1 if feed is not None and feed.connected.is_set() else 0,
        )


def make_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
