"""The two no-op tasks the overhead benchmark compares."""

from celery import shared_task

from jobs.registry import tracked_task


@shared_task(name="bench.bare_noop", ignore_result=True)
def bare_noop(counter: str):
    from project.celery import app

    # The counter is how the benchmark sees completion without a result backend.
    with app.connection_for_write() as conn:
        conn.default_channel.client.incr(counter)


@tracked_task(kind="bench.tracked_noop", queue="jobs", description="Does nothing (benchmark).", schedulable=False)
def tracked_noop(run):
    return None
