"""GET /metrics in Prometheus' text format.

Requests, errors and latencies are counted by each web process (prometheus_client; when the server
runs several worker processes, in its multiprocess mode: every worker writes its counts to files in
PROMETHEUS_MULTIPROC_DIR, and whichever worker answers a scrape adds them all up). What the index
and the daemon are doing (documents, pending changes, commits and their duration, skipped files,
generation) is read at scrape time from the status the daemon publishes, so `searchd web` beside a
separate `searchd watch` reports it too.

The same token rules as the API, unless the server is told to let a scraper on this machine (a
loopback client) in without it (--open-metrics).
"""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any, Callable, Iterator

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
ENDPOINT = "metrics.metrics"
# Seconds; a search takes milliseconds, a page with a costly article a little more.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATES = ("ok", "indexing", "degraded", "stopped", "failed", "no index")

metrics_routes = Blueprint("metrics", __name__)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


class Metrics:
    """This web process's counters, and the exposition of all of them. One per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("searchd_http_requests", "HTTP requests answered, by route and status.",
                                ["route", "status"], registry=self.registry)
        self.errors = Counter("searchd_http_errors", "HTTP requests answered with a server error (5xx), by route and status.",
                              ["route", "status"], registry=self.registry)
        self.latency = Histogram("searchd_http_request_duration_seconds", "Time from request to response, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.search = Histogram("searchd_search_duration_seconds",
                                "Time the search service took per search (not answered from the response cache).",
                                buckets=LATENCY_BUCKETS, registry=self.registry)
        self.workers = Gauge("searchd_web_workers", "Web worker processes serving.",
                             multiprocess_mode="livesum", registry=self.registry)
        self.workers.set(1)
        # Per worker (a pid label when there are several): one stuck on an old snapshot shows.
        self.snapshot = Gauge("searchd_worker_snapshot_documents",
                              "Documents in the index snapshot this web worker searched last.",
                              multiprocess_mode="liveall", registry=self.registry)
        self._generation: Any = None

    def searched(self, seconds: float, generation: Any, documents: Callable[[], int]) -> None:
        """A search ran (not answered from the cache) on the snapshot of `generation`."""
        self.search.observe(seconds)
        if generation != self._generation:
            self._generation = generation
            self.snapshot.set(documents())

    def observe(self, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(route, code).inc()
        if status >= 500:
            self.errors.labels(route, code).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self, status: Callable[[], dict[str, Any]]) -> bytes:
        """Every worker's counts (or this process's, when it is the only one), and the index's
        from `status` (the daemon's)."""
        registry = CollectorRegistry(auto_describe=True)
        if multiprocess():
            MultiProcessCollector(registry)
        else:
            registry.register(self.registry)
        registry.register(_IndexCollector(status))
        return generate_latest(registry)


class _IndexCollector:
    """The index and its daemon, from the status the daemon last published."""

    def __init__(self, status: Callable[[], dict[str, Any]]):
        self.status = status

    def collect(self) -> Iterator[Any]:
        data = self.status()
        yield _gauge("searchd_documents", "Documents in the index.", data.get("documents"))
        yield _gauge("searchd_pending_changes", "Changes seen and not yet searchable (0: every file seen is searchable).",
                     data.get("pending"))
        yield _gauge("searchd_skipped_files", "Files the daemon could not index (searchd status lists them).",
                     len(data.get("skipped") or {}))
        yield _gauge("searchd_index_generation", "Generation of the index: changes with every commit.",
                     data.get("generation"))
        yield _gauge("searchd_last_commit_timestamp_seconds", "Unix time of the last commit.", data.get("last_commit"))
        state = GaugeMetricFamily("searchd_status", "1 for the daemon's current status, 0 for the others.",
                                  labels=["status"])
        for name in STATES:
            state.add_metric([name], 1.0 if data.get("status") == name else 0.0)
        yield state
        commits = CounterMetricFamily("searchd_commits", "Commits since the daemon started.")
        commits.add_metric([], float(data.get("commits") or 0))
        yield commits
        timing = data.get("commit_seconds")
        if timing:
            yield _histogram("searchd_commit_duration_seconds", "Time each commit took (since the daemon started).", timing)


def _gauge(name: str, documentation: str, value: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], float(value) if isinstance(value, (int, float)) else float("nan"))
    return family


def _histogram(name: str, documentation: str, timing: dict[str, Any]) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound, count in zip([*timing["bounds"], float("inf")], timing["counts"]):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=float(timing["sum"]))


# --- the hooks and the route ---------------------------------------------------------------------

def install(app: Flask, metrics: Metrics) -> None:
    app.extensions["searchd.metrics"] = metrics
    app.before_request(_start_clock)
    app.after_request(_count)
    app.register_blueprint(metrics_routes)


def _start_clock() -> None:
    g.searchd_started = time.perf_counter()


def _count(response: Response) -> Response:
    started = g.get("searchd_started")
    if started is not None:
        rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        current_app.extensions["searchd.metrics"].observe(rule, response.status_code, time.perf_counter() - started)
    return response


@metrics_routes.get("/metrics")
def metrics() -> Response:
    site = current_app.extensions["searchd"]
    response = Response(site.metrics.exposition(site.status), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def loopback_client() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
