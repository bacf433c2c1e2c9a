"""What the speed of bench/task_overhead.py's peers is bought with: each one's worker killed mid-batch.

For each of bare Celery, Celery + django-celery-results, django-q2 and tracked runs, on the same Redis
and PostgreSQL with two worker processes: a batch of tasks is enqueued, the worker's whole process
group is killed (SIGKILL, as the kernel's OOM killer or a lost machine would) once a few tasks have
finished, the worker is started again, and the bench waits RECOVERY_WINDOW_SECONDS, making the
watchdog pass that beat makes under `make run`. Each task's body counts its finished executions in
Redis, so the bench tells which tasks finished once, more than once, or not at all, and, for those
not finished, whether the broker still holds their message (it comes back after Celery's visibility
timeout) or nothing holds them any more (lost).

Every system at the project's settings and each peer's defaults: a Celery message is acknowledged
after its task (`acks_late`), django-q2's Redis broker pops a task off its list and has no
acknowledgement, and a tracked run's worker that stops heartbeating is taken over after
RUN_HEARTBEAT_TIMEOUT_SECONDS.

    python bench/worker_kill.py [--tasks 40] [--work-ms 200]
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.peers_settings"
os.environ.setdefault("DEBUG", "false")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Count  # noqa: E402

from bench.noop_tasks import bare_noop, counter_client, results_noop  # noqa: E402
from bench.support import bench_options, start_worker, stop_worker  # noqa: E402
from bench.task_overhead import BENCH_QUEUE, LABELS, SYSTEMS, start_q2_cluster, stop_q2_cluster  # noqa: E402
from jobs.models import JobRun  # noqa: E402
from jobs.services.maintenance import watchdog  # noqa: E402
from jobs.services.runs import run_enqueue  # noqa: E402

# Long enough for a tracked run held by the killed worker to be taken over (its heartbeat timeout,
# then the next watchdog pass) and run again; far shorter than Celery's visibility timeout, which
# is reported for what waits on it.
RECOVERY_WINDOW_SECONDS = settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 2 * settings.WATCHDOG_INTERVAL_SECONDS + 5
# Tasks finished before the kill: the batch is under way, with work in flight and work waiting.
KILL_AFTER_FINISHED = 6
MARKS_KEY = "bench:worker_kill:{system}"


def _enqueue(system: str, n: int, work_ms: float) -> None:
    key = MARKS_KEY.format(system=system)
    for index in range(n):
        mark = f"{key}:{index}"
        if system == "bare":
            bare_noop.apply_async(kwargs={"counter": f"{key}:done", "work_ms": work_ms, "mark": mark},
                                  queue=BENCH_QUEUE)
        elif system == "results":
            results_noop.apply_async(kwargs={"work_ms": work_ms, "mark": mark}, queue=BENCH_QUEUE)
        elif system == "q2":
            from django_q.tasks import async_task

            async_task("bench.noop_tasks.q2_noop", work_ms, mark, group="bench-kill")
        else:
            run_enqueue(kind="bench.tracked_noop", queue=BENCH_QUEUE, args={"work_ms": work_ms, "mark": mark})


def _executions(system: str, n: int) -> list[int]:
    """Finished executions of each task of the batch, by index."""
    counts = counter_client().hgetall(MARKS_KEY.format(system=system))
    return [int(counts.get(str(index).encode(), 0)) for index in range(n)]


def _broker_channel():
    """The Redis transport's channel: its client, and the names of its unacknowledged set."""
    from project.celery import app

    return app.connection_for_write().default_channel


def _celery_unacked_on_bench_queue() -> list[str]:
    """Delivery tags of messages a Celery worker took from the bench queue and never acknowledged:
    Redis gives them back to a worker once the visibility timeout has passed."""
    channel = _broker_channel()
    return [tag.decode() for tag, raw in channel.client.hgetall(channel.unacked_key).items()
            if json.loads(raw)[2] == BENCH_QUEUE]


def _forget_unacked(tags: list[str]) -> None:
    """The killed batch's stranded messages, dropped so that they do not come back an hour later."""
    channel = _broker_channel()
    for tag in tags:
        channel.client.zrem(channel.unacked_index_key, tag)
        channel.client.hdel(channel.unacked_key, tag)


def _start(system: str) -> subprocess.Popen:
    if system == "q2":
        return start_q2_cluster()
    return start_worker(queues=BENCH_QUEUE, concurrency=2, include="bench.noop_tasks", name="bench-kill")


def _stop(system: str, proc: subprocess.Popen) -> None:
    (stop_q2_cluster if system == "q2" else stop_worker)(proc)


def _by_status(rows, field: str = "status") -> str:
    counts = rows.values(field).annotate(n=Count("pk")).order_by("-n")
    return ", ".join(f"{row['n']} {row[field]}" for row in counts) or "none"


def _records(system: str) -> str:
    """What the system's own records say about the batch afterwards."""
    key = MARKS_KEY.format(system=system)
    if system == "tracked":
        return _by_status(JobRun.objects.filter(kind="bench.tracked_noop", args__mark__startswith=key))
    if system == "results":
        from django_celery_results.models import TaskResult

        return _by_status(TaskResult.objects.filter(task_name="bench.results_noop", task_kwargs__contains=key))
    if system == "q2":
        from django_q.models import Task

        return f"{Task.objects.filter(group='bench-kill', success=True).count()} successful"
    return "none kept"


def _clear(system: str) -> None:
    key = MARKS_KEY.format(system=system)
    counter_client().delete(key, f"{key}:done")
    JobRun.objects.filter(kind="bench.tracked_noop").delete()
    from django_celery_results.models import TaskResult
    from django_q.models import Task

    TaskResult.objects.filter(task_name="bench.results_noop").delete()
    Task.objects.filter(group="bench-kill").delete()


def trial(system: str, n: int, work_ms: float) -> dict:
    _clear(system)
    proc = _start(system)
    try:
        _enqueue(system, n, work_ms)
        deadline = time.monotonic() + 60
        while sum(_executions(system, n)) < KILL_AFTER_FINISHED:
            if time.monotonic() > deadline:
                raise SystemExit(f"{LABELS[system]}: fewer than {KILL_AFTER_FINISHED} tasks finished in 60 s")
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
        finished_at_kill = sum(1 for count in _executions(system, n) if count)
        proc = _start(system)
        window_ends = killed_at + RECOVERY_WINDOW_SECONDS
        next_watchdog = 0.0
        all_finished_after = None
        # The whole window, even once all have finished: a task finished twice would show late.
        while time.monotonic() < window_ends:
            if time.monotonic() >= next_watchdog:
                watchdog()  # beat's pass under `make run`
                next_watchdog = time.monotonic() + settings.WATCHDOG_INTERVAL_SECONDS
            if all_finished_after is None and all(_executions(system, n)):
                all_finished_after = time.monotonic() - killed_at
            time.sleep(0.5)
    finally:
        _stop(system, proc)
    counts = _executions(system, n)
    stranded = _celery_unacked_on_bench_queue() if system != "q2" else []
    outcome = {
        "finished_at_kill": finished_at_kill,
        "all_finished_after": all_finished_after,
        "once": sum(1 for count in counts if count == 1),
        "twice": sum(1 for count in counts if count > 1),
        "never": sum(1 for count in counts if count == 0),
        "records": _records(system),
    }
    # A tracked run's old message may still be held as well: it comes back to a run already
    # finished, whose claim skips it. Only tasks that never finished count as waiting on it.
    outcome["held_by_broker"] = min(len(stranded), outcome["never"])
    outcome["lost"] = outcome["never"] - outcome["held_by_broker"]
    _forget_unacked(stranded)
    return outcome


def main() -> None:
    options = bench_options(tasks=40, work_ms=200.0)
    logging.disable(logging.INFO)  # a line per task enqueued and per watchdog pass; warnings stay
    call_command("migrate", "django_q", verbosity=0)
    print(f"{options.tasks} tasks of {options.work_ms:.0f} ms, 2 worker processes; the worker's process group "
          f"SIGKILLed once {KILL_AFTER_FINISHED} had finished, started again, and {RECOVERY_WINDOW_SECONDS:.0f} s "
          "given to recover", flush=True)
    visibility = settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    for system in SYSTEMS:
        outcome = trial(system, options.tasks, options.work_ms)
        where = ""
        if outcome["held_by_broker"]:
            where += f", {outcome['held_by_broker']} held by Redis until Celery's visibility timeout ({visibility} s)"
        if outcome["lost"]:
            where += f", {outcome['lost']} LOST (nothing holds them)"
        if outcome["all_finished_after"] is not None:
            where += f", every task finished {outcome['all_finished_after']:.0f} s after the kill"
        print(f"  {LABELS[system]:<17} ({outcome['finished_at_kill']} finished before the kill) "
              f"finished once {outcome['once']:>3}, more than once {outcome['twice']}, "
              f"not finished {outcome['never']}{where}; its records: {outcome['records']}", flush=True)
    _clear("tracked")


if __name__ == "__main__":
    main()
