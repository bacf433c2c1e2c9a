"""Prometheus metrics of the background work, read at scrape time from the runs table and the broker.

Nothing is counted in process: web processes come and go, workers are separate processes, and the
runs table already holds every execution. Ended runs are counters and histograms over every run
that ever ended (jobs.services.tallies keeps them growing past cleanups), so `rate()` and
`histogram_quantile()` work; what is true now (runs waiting or running, queue depths) are gauges.
Every kind and status has its series, at 0 when nothing happened, so no series appears from nowhere.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.streams import streams_dropped_count
from jobs import selectors
from jobs.models import FINISHED_STATUSES, UNFINISHED_STATUSES, JobRun
from jobs.registry import kinds_all
from jobs.services.tallies import DURATION_BUCKETS, QUEUE_WAIT_BUCKETS, Tally, run_tallies_read


def _histogram(name: str, doc: str, bounds: tuple, by_kind: dict[str, Tally], *, buckets: str, total: str):
    family = HistogramMetricFamily(name, doc, labels=["kind"])
    for kind, tally in sorted(by_kind.items()):
        cumulative = [(str(float(bound)), count) for bound, count in zip(bounds, getattr(tally, buckets))]
        family.add_metric([kind], cumulative + [("+Inf", tally.started)], sum_value=getattr(tally, total))
    return family


class RunsCollector:
    def collect(self):
        kinds = {spec.kind for spec in kinds_all()}
        tallies = run_tallies_read()
        kinds |= {kind for kind, _ in tallies}

        ended = CounterMetricFamily("jobs_runs_ended", "Runs that ended, by kind and final status.",
                                    labels=["kind", "status"])
        by_kind = {kind: Tally() for kind in kinds}
        for kind in sorted(kinds):
            for status in FINISHED_STATUSES:
                tally = tallies.get((kind, status.value), Tally())
                ended.add_metric([kind, status.value], tally.ended)
                by_kind[kind].add(tally)
        yield ended
        yield _histogram("jobs_run_duration_seconds", "Start-to-end time of ended runs that started.",
                         DURATION_BUCKETS, by_kind, buckets="duration_buckets", total="duration_seconds_sum")
        yield _histogram("jobs_run_queue_wait_seconds", "Time from acceptance to first start, of ended runs.",
                         QUEUE_WAIT_BUCKETS, by_kind, buckets="queue_wait_buckets", total="queue_wait_seconds_sum")

        current = {(kind, status): n for kind, status, n in JobRun.objects.filter(status__in=UNFINISHED_STATUSES)
                   .values_list("kind", "status").annotate(n=Count("id")).order_by()}
        runs = GaugeMetricFamily("jobs_runs", "Runs waiting or running now, by kind and status.",
                                 labels=["kind", "status"])
        for kind in sorted(kinds | {kind for kind, _ in current}):
            for status in UNFINISHED_STATUSES:
                runs.add_metric([kind, status.value], current.get((kind, status.value), 0))
        yield runs

        tokens = selectors.token_usage()
        llm_tokens = CounterMetricFamily("llm_tokens", "LLM tokens the servers reported, by type (prompt, completion).",
                                         labels=["type"])
        llm_tokens.add_metric(["prompt"], tokens["prompt_tokens"])
        llm_tokens.add_metric(["completion"], tokens["completion_tokens"])
        yield llm_tokens
        yield CounterMetricFamily("llm_answers_without_token_counts",
                                  "LLM answers whose server reported no token counts (not in llm_tokens).",
                                  value=tokens["answers_without_counts"])
        dropped = streams_dropped_count()
        if dropped is not None:  # unknown while Redis does not answer: no sample, not 0
            yield CounterMetricFamily("streams_dropped", "Event streams dropped because their client stopped reading.",
                                      value=dropped)

        yield GaugeMetricFamily("jobs_dead_letters", "Dead runs not yet retried.",
                                value=JobRun.objects.dead_letters().count())
        yield GaugeMetricFamily("jobs_runs_stalled", "Running runs whose worker stopped reporting.",
                                value=JobRun.objects.stalled().count())

        # A queue the broker could not be asked about has no sample: unknown is not 0.
        depth = GaugeMetricFamily("jobs_queue_depth", "Messages waiting in each broker queue.", labels=["queue"])
        for queue, value in selectors.queue_depths().items():
            if value is not None:
                depth.add_metric([queue], value)
        yield depth
        offsets = selectors.worker_clock_offsets()
        yield GaugeMetricFamily("jobs_workers_online", "Workers whose last heartbeat is recent.", value=len(offsets))
        clocks = GaugeMetricFamily("jobs_worker_clock_offset_seconds",
                                   "How far each online worker's clock is ahead of the database's (negative: behind).",
                                   labels=["worker"])
        for worker, offset in offsets.items():
            if offset is not None:
                clocks.add_metric([worker], offset)
        yield clocks


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

