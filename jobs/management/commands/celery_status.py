from django.core.management.base import BaseCommand, CommandError

from jobs.selectors import queue_depths
from project.celery import app


class Command(BaseCommand):
    help = "Workers online, queue depths, and active / reserved / scheduled task counts; exit 1 with no worker."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=2.0)

    def handle(self, *args, timeout, **options):
        inspect = app.control.inspect(timeout=timeout)
        active = inspect.active() or {}
        reserved = inspect.reserved() or {}
        scheduled = inspect.scheduled() or {}
        queues = inspect.active_queues() or {}
        self.stdout.write("Queues (messages waiting):")
        for queue, depth in queue_depths().items():
            self.stdout.write(f"  {queue:<12} {depth if depth is not None else 'unreachable'}")
        workers = sorted(set(active) | set(reserved) | set(queues))
        self.stdout.write(f"Workers online: {len(workers)}")
        for name in workers:
            consumes = ",".join(q["name"] for q in queues.get(name, []))
            self.stdout.write(
                f"  {name:<32} queues={consumes:<24} active={len(active.get(name, []))} "
                f"reserved={len(reserved.get(name, []))} scheduled={len(scheduled.get(name, []))}"
            )
        if not workers:
            raise CommandError("no worker answered")
