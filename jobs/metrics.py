"""Prometheus metrics of the background work, read at scrape time from the runs table and the broker.

Nothing is counted in process: web processes come and go, workers are separate processes, and the
runs table already holds every execution. Durations and queue waits are gauge histograms over the
runs that finished (or started) within METRICS_WINDOW_SECONDS, so each scrape shows recent behaviour.
"""

from __future__ import annotations

import hmac
import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jobs import selectors
from jobs.models import JobRun

# Seconds: from sub-second chat replies to quarter-hour ingestions.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# Seconds a run waited between being accepted and its first start.
QUEUE_WAIT_BUCKETS = (0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def _histograms(*, column_from: str, column_to: str, since_column: str, buckets: tuple, since) -> dict:
    """{kind: ([cumulative counts per bucket..., +Inf], sum)} for runs whose `since_column` is recent."""
    bucket_sql = ", ".join(f"count(*) FILTER (WHERE d <= {float(b)})" for b in buckets)
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT kind, {bucket_sql}, count(*), coalesce(sum(d), 0)
              FROM (SELECT kind, extract(epoch FROM {column_to} - {column_from}) AS d
                      FROM jobs_jobrun
                     WHERE {since_column} >= %s AND {column_to} IS NOT NULL AND {column_from} IS NOT NULL) runs
             GROUP BY kind""", [since])
        rows = cursor.fetchall()
    return {row[0]: (list(row[1:-1]), float(row[-1])) for row in rows}


class RunsCollector:
    def collect(self):
        now = timezone.now()
        since = now - timedelta(seconds=settings.METRICS_WINDOW_SECONDS)

        runs = GaugeMetricFamily("jobs_runs", "Runs by kind and status (all recorded runs).", labels=["kind", "status"])
        for kind, status, count in (JobRun.objects.values_list("kind", "status").annotate(n=Count("id")).order_by()):
            runs.add_metric([kind, status], count)
        yield runs

        yield GaugeMetricFamily("jobs_dead_letters", "Dead runs not yet retried.",
                                value=JobRun.objects.dead_letters().count())
        yield GaugeMetricFamily("jobs_runs_stalled", "Running runs whose worker stopped reporting.",
                                value=JobRun.objects.stalled().count())

        for name, doc, column_from, column_to, since_column, buckets in (
            ("jobs_run_duration_seconds", "Start-to-finish time of runs finished within the window.",
             "started_at", "finished_at", "finished_at", DURATION_BUCKETS),
            ("jobs_run_queue_wait_seconds", "Time from acceptance to start of runs started within the window.",
             "created_at", "started_at", "started_at", QUEUE_WAIT_BUCKETS),
        ):
            family = GaugeHistogramMetricFamily(name, doc, labels=["kind"])
            for kind, (counts, total) in _histograms(column_from=column_from, column_to=column_to,
                                                     since_column=since_column, buckets=buckets, since=since).items():
                labelled = [(str(float(b)), c) for b, c in zip(buckets, counts)] + [("+Inf", counts[-1])]
                family.add_metric([kind], labelled, gsum_value=total)
            yield family

        depth = GaugeMetricFamily("jobs_queue_depth", "Messages waiting in each broker queue.", labels=["queue"])
        for queue, value in selectors.queue_depths().items():
            if value is not None:
                depth.add_metric([queue], value)
        yield depth
        yield GaugeMetricFamily("jobs_workers_online", "Workers that answered a ping.",
                                value=len(selectors.workers_online(timeout=settings.METRICS_PING_SECONDS)))


def _allowed(request) -> bool:
    """With METRICS_TOKEN set, only `Authorization: Bearer <token>`; without it, loopback clients only."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_view(request):
    if not _allowed(request):
        return HttpResponse("Forbidden: set METRICS_TOKEN and send it as a Bearer token, or scrape from this host.\n",
                            status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

