from django.core.management.base import BaseCommand, CommandError

from jobs.broker import BrokerUnavailable, workers_inspect
from jobs.selectors import queue_depths


class Command(BaseCommand):
    help = "Workers online, queue depths, and active / reserved / scheduled task counts; exit 1 with no worker."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=1.0,
                            help="Seconds the workers have to answer the first question (default 1).")

    def handle(self, *args, timeout, **options):
        self.stdout.write("Queues (messages waiting):")
        for queue, depth in queue_depths().items():
            self.stdout.write(f"  {queue:<12} {depth if depth is not None else 'unreachable'}")
        try:
            workers = workers_inspect(timeout=timeout)
        except BrokerUnavailable as exc:
            raise CommandError(f"the broker is unreachable ({exc}); work is still accepted and waits") from exc
        self.stdout.write(f"Workers online: {len(workers)}")
        if not workers:
            raise CommandError("no worker answered")
        for name, seen in workers.items():
            self.stdout.write(f"  {name:<32} queues={','.join(seen['queues']):<24} active={_count(seen['active'])} "
                              f"reserved={_count(seen['reserved'])} scheduled={_count(seen['scheduled'])}")


def _count(tasks: list | None) -> str:
    # A worker that did not answer in time is shown as unknown, not as idle.
    return str(len(tasks)) if tasks is not None else "?"
