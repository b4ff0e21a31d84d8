"""``GET /metrics``: Prometheus text for the server: requests by status, latency, queue depth, and per
worker its RSS and requests served, workers busy, worker restarts by reason (rss, requests, died, stuck), requests
retried on a fresh worker, requests stopped early by reason (disconnect, shutdown), whether it drains."""

from __future__ import annotations

import itertools
from typing import Any

from qasr.serve.pool import WorkerPool


class Metrics:
    def __init__(self, pool: WorkerPool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series only restate the start time
        self.pool = pool
        self.registry = CollectorRegistry()
        self.requests = Counter("qasr_requests", "Transcription requests by HTTP status.", ["status"], registry=self.registry)
        self.latency = Histogram("qasr_request_seconds", "Transcription request latency.", registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))  # fmt: skip
        self.retries = Counter("qasr_request_retries", "Requests run again on a fresh worker after theirs died.", registry=self.registry)
        self.cancelled = Counter("qasr_requests_cancelled", "Requests stopped early, by reason.", ["reason"], registry=self.registry)
        for reason in ("disconnect", "shutdown"):
            self.cancelled.labels(reason=reason)
        self.registry.register(_PoolCollector(pool))
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def observe(self, status: int, seconds: float) -> None:
        self.requests.labels(status=str(status)).inc()
        self.latency.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _PoolCollector:
    """Read at scrape time, so the figures are the pool's own, never a copy that drifts."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        queue = GaugeMetricFamily("qasr_queue_depth", "Requests waiting for a worker.")
        queue.add_metric([], self.pool.waiting)
        yield queue
        busy = GaugeMetricFamily("qasr_workers_busy", "Workers serving a request now.")
        busy.add_metric([], self.pool.busy)
        yield busy
        rss = GaugeMetricFamily("qasr_worker_rss_bytes", "Resident set of each worker after its last request.", labels=["worker", "pid"])
        served = GaugeMetricFamily("qasr_worker_requests", "Requests each worker has served.", labels=["worker", "pid"])
        for w in self.pool.workers.values():
            rss.add_metric([str(w.index), str(w.pid)], w.rss)
            served.add_metric([str(w.index), str(w.pid)], w.served)
        yield rss
        yield served
        restarts = CounterMetricFamily("qasr_worker_restarts", "Workers replaced, by reason.", labels=["reason"])
        for reason in ("rss", "requests", "died", "stuck"):
            restarts.add_metric([reason], self.pool.stats.restarts.get(reason, 0))
        yield restarts
