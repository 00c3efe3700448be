"""GET /metrics (Prometheus text format) and GET /metrics/series (the dashboard's one-hour history), plus
the plugin that times every API request. The metric definitions live in assay/metrics.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import bottle

from assay.api.http import PREFIXES, Router, error_body, json_response, q_str
from assay.engine import Engine
from assay.errors import NotFound
from assay.protocol import DEFAULT_NAMESPACE

DISABLED = "metrics are switched off on this engine (ASSAY_METRICS=0)"


def register(r: Router, engine: Engine) -> None:
    m = engine.metrics

    @r(
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition format)",
        "meta",
        responses={200: None, 404: "Error"},
        description="Counters, histograms and gauges in the Prometheus text format 0.0.4 (OpenMetrics "
        "when the Accept header asks for it). Same auth as the API: public only when the engine runs "
        "without auth. On Postgres every instance exports its own process metrics and only the leader "
        "the cluster-wide gauges (`assay_cluster_gauges_exported` says which). See docs/operations.md.",
    )
    def metrics() -> Any:
        if not m.enabled:
            return error_body(NotFound(DISABLED))
        data, content_type = m.exposition(bottle.request.headers.get("Accept", ""))
        bottle.response.content_type = content_type
        bottle.response.set_header("Cache-Control", "no-store")
        return data

    @r(
        "GET",
        "/metrics/series",
        "The last hour of throughput, queue depth, latency and failures (dashboard charts)",
        "meta",
        query=[("namespace", "string", "namespace (default main)")],
        responses={200: "MetricsSeries", 404: "Error"},
        description="Sampled every `interval_secs` in this engine process (the last entry is the partial "
        "interval up to now). Counts are per interval; `latency` is the mean schedule-to-start time of "
        "the tasks claimed in the interval (null: none claimed); `failures` totals the window by type.",
    )
    def series() -> str:
        if not m.enabled:
            return error_body(NotFound(DISABLED))
        return json_response(m.series(q_str("namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE))

    if m.enabled:
        r.app.install(HttpTimer(m.http_request))


class HttpTimer:
    """Bottle plugin: counts and times API requests by method, route template (never an id) and status."""

    name = "assay-metrics"
    api = 2

    def __init__(self, record: Callable[[str, str, int, float], None]) -> None:
        self.record = record

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        rule = str(route.rule)
        for prefix in PREFIXES:
            if rule.startswith(prefix + "/"):
                rule = rule[len(prefix) :]
                break
        label = rule.replace("<", "{").replace(">", "}")
        method = str(route.method)
        record = self.record
        clock = time.perf_counter

        def timed(*args: Any, **kw: Any) -> Any:
            t0 = clock()
            status = 500
            try:
                out = callback(*args, **kw)
                status = bottle.response.status_code
                return out
            except bottle.HTTPResponse as resp:
                status = resp.status_code
                raise
            finally:
                record(method, label, status, clock() - t0)

        return timed
