from django.core.management.base import BaseCommand, CommandError

from jobs.selectors import queue_depths
from project.celery import app


class Command(BaseCommand):
    help = "Workers online, queue depths, and active / reserved / scheduled task counts; exit 1 with no worker."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=1.0,
                            help="Seconds to wait for workers to answer the first ping (default 1).")

    def handle(self, *args, timeout, **options):
        self.stdout.write("Queues (messages waiting):")
        for queue, depth in queue_depths().items():
            self.stdout.write(f"  {queue:<12} {depth if depth is not None else 'unreachable'}")
        # A broadcast waits its whole timeout unless told how many replies to expect: one ping finds
        # the workers, then each question goes to exactly those and returns as soon as all answered.
        workers = sorted(name for reply in (app.control.ping(timeout=timeout) or []) for name in reply)
        self.stdout.write(f"Workers online: {len(workers)}")
        if not workers:
            raise CommandError("no worker answered")
        inspect = app.control.inspect(destination=workers, limit=len(workers), timeout=timeout)
        active, reserved = inspect.active() or {}, inspect.reserved() or {}
        scheduled, queues = inspect.scheduled() or {}, inspect.active_queues() or {}
        for name in workers:
            consumes = ",".join(q["name"] for q in queues.get(name, []))
            self.stdout.write(
                f"  {name:<32} queues={consumes:<24} active={len(active.get(name, []))} "
                f"reserved={len(reserved.get(name, []))} scheduled={len(scheduled.get(name, []))}"
            )
