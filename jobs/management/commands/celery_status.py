from django.core.management.base import BaseCommand, CommandError

from jobs.selectors import queue_depths
from project.celery import app


class Command(BaseCommand):
    help = "Workers online, queue depths, and active / reserved / scheduled task counts; exit 1 with no worker."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=1.0,
                            help="Seconds the workers have to answer the first question (default 1).")

    def handle(self, *args, timeout, **options):
        self.stdout.write("Queues (messages waiting):")
        for queue, depth in queue_depths().items():
            self.stdout.write(f"  {queue:<12} {depth if depth is not None else 'unreachable'}")
        # A broadcast waits its whole timeout unless told how many replies to expect: one question
        # finds the workers (and their queues), then each other goes to exactly those and returns as
        # soon as all have answered.
        queues = app.control.inspect(timeout=timeout).active_queues() or {}
        workers = sorted(queues)
        self.stdout.write(f"Workers online: {len(workers)}")
        if not workers:
            raise CommandError("no worker answered")
        inspect = app.control.inspect(destination=workers, limit=len(workers), timeout=timeout)
        active, reserved, scheduled = inspect.active() or {}, inspect.reserved() or {}, inspect.scheduled() or {}
        for name in workers:
            consumes = ",".join(q["name"] for q in queues.get(name, []))
            self.stdout.write(f"  {name:<32} queues={consumes:<24} active={_count(active, name)} "
                              f"reserved={_count(reserved, name)} scheduled={_count(scheduled, name)}")


def _count(replies: dict, worker: str) -> str:
    # A worker that did not answer in time is shown as unknown, not as idle.
    return str(len(replies[worker])) if worker in replies else "?"
