import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs.models import JobRun, RunStatus, TriggeredBy
from jobs.registry import queues_all
from jobs.services.runs import run_enqueue


class Command(BaseCommand):
    help = "Send a tracked ping through every queue and print each round trip; exit 1 if one gets no answer."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=15.0, help="Seconds to wait for each queue.")

    def handle(self, *args, timeout, **options):
        sent = {}
        for queue in queues_all():
            with transaction.atomic():
                run = run_enqueue(kind="jobs.ping", args={"echo": queue}, queue=queue, triggered_by=TriggeredBy.SHELL)
            sent[queue] = (run.id, time.monotonic())
        failed = []
        deadline = time.monotonic() + timeout
        pending = dict(sent)
        while pending and time.monotonic() < deadline:
            done = dict(JobRun.objects.filter(id__in=[run_id for run_id, _ in pending.values()],
                                              status=RunStatus.SUCCESS).values_list("id", "finished_at"))
            for queue, (run_id, started) in list(pending.items()):
                if run_id in done:
                    self.stdout.write(f"{queue:<12} ok   {1000 * (time.monotonic() - started):8.1f} ms")
                    del pending[queue]
            time.sleep(0.05)
        for queue in pending:
            self.stdout.write(f"{queue:<12} no answer within {timeout:.0f} s")
            failed.append(queue)
        if failed:
            raise CommandError(f"no worker answered on: {', '.join(failed)}")
