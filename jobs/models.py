from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from jobs.constants import (
    CORRELATION_ID_MAX_LENGTH,
    JOB_NAME_MAX_LENGTH,
    KIND_MAX_LENGTH,
    PROGRESS_MESSAGE_MAX_LENGTH,
    PROGRESS_STEP_MAX_LENGTH,
    QUEUE_MAX_LENGTH,
    WORKER_MAX_LENGTH,
)


class RunStatus(models.TextChoices):
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


FINISHED_STATUSES = (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.REVOKED)
WAITING_STATUSES = (RunStatus.QUEUED, RunStatus.RETRY)
RUNNING_STATUSES = (RunStatus.STARTED, RunStatus.PROGRESS)


def heartbeat_timeout() -> timedelta:
    """How long a held run may go without a heartbeat before it counts as lost (see stale_sql)."""
    return timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)


def stale_sql(timeout: str) -> str:
    """The stale rule, the one place it is written, as SQL with `timeout` (a placeholder for
    heartbeat_timeout()): a running run, not awaiting its children (those are held by no worker),
    whose heartbeat is older than the timeout by the database's clock (heartbeats are written by it
    too, so no worker's clock enters). The claim takes such a run over, the watchdog reaps it, and
    the admin and the API call it "stalled" (JobRunQuerySet.stalled, JobRun.stalled). A body past
    its hard time limit is killed by Celery, and its heartbeat stops with it."""
    running = ", ".join(f"'{status}'" for status in RUNNING_STATUSES)
    return (f"(jobs_jobrun.status IN ({running}) AND NOT jobs_jobrun.awaiting_children "
            f"AND jobs_jobrun.heartbeat_at < statement_timestamp() - {timeout})")


UNFINISHED_STATUSES = WAITING_STATUSES + RUNNING_STATUSES


class TriggeredBy(models.TextChoices):
    API = "api"
    ADMIN = "admin"
    SCHEDULE = "schedule"
    SHELL = "shell"
    SYSTEM = "system"


class JobRunQuerySet(models.QuerySet):
    def dead_letters(self) -> "JobRunQuerySet":
        """Dead runs nobody has retried yet: what an operator still has to look at."""
        return self.filter(dead=True).exclude(models.Exists(JobRun.objects.filter(retry_of=models.OuterRef("pk"))))

    def with_retries(self) -> "JobRunQuerySet":
        """Each run's retries (oldest first) fetched with it, as `prefetched_retries`: one query for a
        whole page of runs instead of one per dead run."""
        return self.prefetch_related(models.Prefetch("retries", queryset=JobRun.objects.order_by("created_at"),
                                                     to_attr="prefetched_retries"))

    def with_children_counts(self) -> "JobRunQuerySet":
        """Each run's children counted by status, as `children_counts` ({} without children), in the
        same query (one small indexed subquery per run shown)."""
        from django.db.models.expressions import RawSQL

        return self.annotate(children_counts=RawSQL(
            "SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb) FROM (SELECT status, count(*) AS n "
            "FROM jobs_jobrun child WHERE child.parent_id = jobs_jobrun.id GROUP BY status) counted", [],
            output_field=models.JSONField()))

    def with_stalled(self) -> "JobRunQuerySet":
        """Each run's JobRun.stalled computed in the same query (list pages), by stale_sql."""
        from django.db.models.expressions import RawSQL

        return self.annotate(is_stalled=RawSQL(f"coalesce({stale_sql('%s')}, false)", [heartbeat_timeout()],
                                               output_field=models.BooleanField()))

    def stalled(self) -> "JobRunQuerySet":
        """Runs that have lost their worker (stale_sql): what the watchdog takes over."""
        from django.db.models.expressions import RawSQL

        return self.alias(stalled_now=RawSQL(stale_sql("%s"), [heartbeat_timeout()],
                                             output_field=models.BooleanField())).filter(stalled_now=True)


class JobRun(models.Model):
    """Every tracked execution, from the moment it is accepted. Its id is the Celery task id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=KIND_MAX_LENGTH)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    queue = models.CharField(max_length=QUEUE_MAX_LENGTH)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="runs", db_index=False)
    triggered_by = models.CharField(max_length=10, choices=TriggeredBy.choices, default=TriggeredBy.SYSTEM)
    # Who started it, when someone did (a "Run now", a retry): the run is its job's owner's all the
    # same, so the owner sees it; this says which operator acted.
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", db_index=False)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs",
                            db_index=False)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
                               db_index=False)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries",
                                 db_index=False)
    args = models.JSONField(default=dict, blank=True, help_text="Ids and small parameters only.")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    attempt_log = models.JSONField(default=list, blank=True,
                                   help_text="One entry per failed attempt: attempt, error, delay before the next.")
    progress_current = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    progress_step = models.CharField(max_length=PROGRESS_STEP_MAX_LENGTH, blank=True, default="")
    progress_message = models.CharField(max_length=PROGRESS_MESSAGE_MAX_LENGTH, blank=True, default="")
    eta_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When the attempt holding the run (or the last one) claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Last sign of life from the worker holding the run.")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True,
                                  help_text="When the run's next attempt may start (a RETRY's, or a first one put off by "
                                            "Celery's `countdown` / `eta`); earlier messages do nothing.")
    prompt_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens of the prompts the LLM server reported for this run's answer (null: "
                                         "it reported none, or the run used no LLM).")
    completion_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens of the answer the LLM server reported (null: it reported none).")
    canvas_id = models.UUIDField(
        null=True, blank=True, help_text="The Celery group, chain or chord the run is a member of (Celery's root id): "
                                         "its members share it, in the order they were recorded.")
    continuation = models.JSONField(
        null=True, blank=True, help_text="What follows this run in a Celery chain or chord (jobs.services.canvas): "
                                         "the next links of its chain, or its chord's body; cleared once handed on.")
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="A run not started by then ends REVOKED as expired and never runs "
                                                "(Celery's `expires`).")
    worker = models.CharField(max_length=WORKER_MAX_LENGTH, blank=True, default="",
                              help_text="Worker process (host:pid) of the attempt that holds (or last held) the run.")
    lease = models.PositiveIntegerField(
        default=0, help_text="Which claim holds the run: every claim takes the next number, and every write an "
                             "attempt makes names its own, so a worker that lost the run writes nothing.")
    checkpoints = models.JSONField(
        default=dict, blank=True, help_text="What completed steps left for a later attempt of this run (an LLM "
                                            "answer, chunks embedded so far); a new attempt resumes after them.")
    cancel_requested = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    dead = models.BooleanField(default=False)
    awaiting_children = models.BooleanField(
        default=False, help_text="Its body handed the work to its child runs and holds no worker; the last child "
                                 "to finish queues it again for its final step.")
    correlation_id = models.CharField(max_length=CORRELATION_ID_MAX_LENGTH, blank=True, default="")
    time_limit = models.PositiveIntegerField(default=0, help_text="Hard limit in seconds.")

    objects = JobRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # Every status change rewrites a run's entry in each index that is not partial: few indexes,
        # and partial ones for links most runs do not have (job, parent, retry_of) keep a claim and
        # an outcome cheap. Owner and kind lookups use the composite indexes.
        indexes = [
            # The staff lists' order (API and admin, newest first): a page reads its rows off this
            # index instead of sorting the table.
            models.Index(fields=["created_at"], name="run_created"),
            models.Index(fields=["status", "created_at"], name="run_status_created"),
            models.Index(fields=["owner", "created_at"], name="run_owner_created"),
            models.Index(fields=["kind", "created_at"], name="run_kind_created"),
            models.Index(fields=["job", "created_at"], name="run_job_created", condition=models.Q(job__isnull=False)),
            models.Index(fields=["parent"], name="run_parent", condition=models.Q(parent__isnull=False)),
            models.Index(fields=["retry_of"], name="run_retry_of", condition=models.Q(retry_of__isnull=False)),
            models.Index(fields=["correlation_id"], name="run_correlation"),
            models.Index(fields=["created_at"], name="run_dead_created", condition=models.Q(dead=True)),
            models.Index(fields=["created_at"], name="run_undispatched",
                         condition=models.Q(status__in=[s.value for s in WAITING_STATUSES])),
            # Ended runs by when they ended: the tallies' fold and the cleanup read only recent or old ones.
            models.Index(fields=["finished_at"], name="run_finished",
                         condition=models.Q(status__in=[s.value for s in FINISHED_STATUSES])),
            models.Index(fields=["heartbeat_at"], name="run_running_heartbeat",
                         condition=models.Q(status__in=[s.value for s in RUNNING_STATUSES])),
            models.Index(fields=["created_at"], name="run_awaiting_children",
                         condition=models.Q(awaiting_children=True)),
            models.Index(fields=["canvas_id", "created_at"], name="run_canvas", condition=models.Q(canvas_id__isnull=False)),
            # Chain and chord members not yet handed on: the watchdog's backstop reads only these.
            models.Index(fields=["created_at"], name="run_continuing", condition=models.Q(continuation__isnull=False)),
            # Waiting runs put off to a due time, or that expire: beat reads them every second.
            models.Index(fields=["due_at"], name="run_waiting_due",
                         condition=models.Q(status=RunStatus.QUEUED, due_at__isnull=False)),
            models.Index(fields=["expires_at"], name="run_waiting_expires",
                         condition=models.Q(status__in=[s.value for s in WAITING_STATUSES], expires_at__isnull=False)),
        ]
        # What the lifecycle keeps true, kept by the database too: a write that would break it
        # (a bug, a hand-made UPDATE) is refused instead of leaving a run no one can reason about.
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="run_status_known"),
            # Counts are never negative already (positive integer columns); a run has at least one attempt.
            models.CheckConstraint(condition=models.Q(max_attempts__gte=1), name="run_max_attempts_at_least_one"),
            models.CheckConstraint(condition=~models.Q(status__in=[s.value for s in FINISHED_STATUSES])
                                   | models.Q(finished_at__isnull=False), name="run_finished_has_finished_at"),
            models.CheckConstraint(condition=models.Q(dead=False) | models.Q(status=RunStatus.FAILURE),
                                   name="run_dead_only_failed"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def is_retryable(self) -> bool:
        """FAILURE or REVOKED, or a SUCCESS that says it is partial (some of its children failed)."""
        partial = self.status == RunStatus.SUCCESS and isinstance(self.result, dict) and self.result.get("partial")
        return self.status in (RunStatus.FAILURE, RunStatus.REVOKED) or bool(partial)

    @property
    def celery_state(self) -> str:
        """The run's status in Celery's state names: a run waiting to start is PENDING."""
        return "PENDING" if self.status == RunStatus.QUEUED else self.status

    @property
    def step_shown(self) -> str:
        """The step to show beside the status: where the work stands, or where it stopped. A run that
        succeeded is past every step, so its last one ("indexing") would read as unfinished work."""
        return "" if self.status == RunStatus.SUCCESS else self.progress_step

    @property
    def progress_info(self) -> dict:
        """What Celery's `AsyncResult.info` shows of a run that has not ended: its progress."""
        return {"current": self.progress_current, "total": self.progress_total, "step": self.progress_step,
                "message": self.progress_message, "eta_seconds": self.eta_seconds}

    @property
    def percent(self) -> float | None:
        if not self.progress_total:
            return 100.0 if self.status == RunStatus.SUCCESS else None
        return round(100.0 * min(self.progress_current, self.progress_total) / self.progress_total, 1)

    @property
    def stalled(self) -> bool:
        """Running, but its worker has stopped reporting (stale_sql): the watchdog will take it over,
        an operator may force-fail it first. From the list's own query where it was annotated
        (JobRunQuerySet.with_stalled), else asked of the database."""
        if "is_stalled" in self.__dict__:
            return bool(self.is_stalled)
        if self.status not in RUNNING_STATUSES or self.awaiting_children:
            return False  # never stale, whatever the heartbeat: no query needed
        return JobRun.objects.filter(pk=self.pk).stalled().exists()

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def elapsed_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)


class LogLevel(models.TextChoices):
    """Python's logging levels, as a body's log lines name them."""

    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class RunTally(models.Model):
    """Ended runs of one kind and status folded into counts (jobs.services.tallies): what the
    /metrics counters and histograms add to the runs not folded yet, so they only ever grow, even
    after the runs themselves are cleaned up."""

    kind = models.CharField(max_length=KIND_MAX_LENGTH)
    status = models.CharField(max_length=10, choices=RunStatus.choices)
    ended = models.BigIntegerField(default=0)
    started = models.BigIntegerField(default=0, help_text="Of those ended, how many had started (the histograms' count).")
    duration_seconds_sum = models.FloatField(default=0)
    duration_buckets = ArrayField(models.BigIntegerField(), default=list,
                                  help_text="Cumulative counts per DURATION_BUCKETS bound.")
    queue_wait_seconds_sum = models.FloatField(default=0)
    queue_wait_buckets = ArrayField(models.BigIntegerField(), default=list,
                                    help_text="Cumulative counts per QUEUE_WAIT_BUCKETS bound.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "status"], name="run_tally_kind_status")]

    def __str__(self) -> str:
        return f"{self.kind} {self.status}: {self.ended}"


class RunTallyMark(models.Model):
    """The one row saying up to when ended runs are folded into RunTally (by finished_at)."""

    folded_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"folded until {self.folded_until:%Y-%m-%d %H:%M:%S}"


class RunCount(models.Model):
    """Ended runs counted by owner, kind and status up to `counted_until` (jobs.services.counts):
    the run stats add the runs ended since, so they answer without reading every run."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+")
    kind = models.CharField(max_length=KIND_MAX_LENGTH)
    status = models.CharField(max_length=10, choices=RunStatus.choices)
    runs = models.BigIntegerField()
    counted_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.kind} {self.status}: {self.runs}"


class TokenUsage(models.Model):
    """The LLM tokens each user's runs used, as the servers reported them (jobs.services.usage):
    kept apart from the runs so that the sums only grow, past the cleanup of old runs."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+", help_text="Empty: runs of no user (scheduled jobs).")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    reported = models.BigIntegerField(default=0, help_text="Answers whose server reported their tokens.")
    unreported = models.BigIntegerField(default=0, help_text="Answers whose server reported none (not counted above).")

    class Meta:
        verbose_name_plural = "token usage"
        constraints = [models.UniqueConstraint(fields=["owner"], name="token_usage_owner",
                                               nulls_distinct=False)]

    def __str__(self) -> str:
        return f"{self.owner_id or 'system'}: {self.prompt_tokens} + {self.completion_tokens}"


class JobRunLogEntry(models.Model):
    """What a run's body reported as it went (one row per line), shown beside the run."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="log_entries")
    attempt = models.PositiveIntegerField(default=0, help_text="The attempt that wrote it (0: before attempts "
                                                               "were recorded with their lines).")
    level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["run", "created_at"], name="runlog_run_created")]
        verbose_name_plural = "job run log entries"

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class Job(models.Model):
    """A named, parameterised kind of work that runs on demand or on a schedule kept in beat."""

    name = models.CharField(max_length=JOB_NAME_MAX_LENGTH)
    kind = models.CharField(max_length=KIND_MAX_LENGTH)
    params = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="jobs")
    enabled = models.BooleanField(default=True)
    schedule = models.JSONField(null=True, blank=True,
                                help_text='{"crontab": "0 3 * * *", "timezone": "UTC"} or {"every_seconds": 3600}')
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="job")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Unique per owner (a name tells nothing about other users' jobs); system jobs have none.
            models.UniqueConstraint(fields=["owner", "name"], name="job_name_per_owner"),
            models.UniqueConstraint(fields=["name"], condition=models.Q(owner__isnull=True),
                                    name="job_name_system"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkerPresence(models.Model):
    """A worker's last heartbeat (jobs.services.presence): which workers are up, and on which
    queues, read from here rather than by a broadcast ping that waits its whole timeout."""

    name = models.CharField(primary_key=True, max_length=WORKER_MAX_LENGTH, help_text="Celery node name.")
    queues = ArrayField(models.CharField(max_length=QUEUE_MAX_LENGTH), default=list)
    # By the database's clock, as every time a worker is judged by.
    seen_at = models.DateTimeField(db_index=True)
    clock_offset_seconds = models.FloatField(
        null=True, blank=True, help_text="How far the worker's clock is ahead of the database's (negative: behind); "
                                         "shown only: nothing the worker holds depends on its clock.")

    class Meta:
        verbose_name = "worker presence"

    def __str__(self) -> str:
        return self.name
