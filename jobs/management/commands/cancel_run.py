from django.core.management.base import BaseCommand, CommandError

from jobs.errors import JobsError
from jobs.models import JobRun
from jobs.services.runs import run_cancel


class Command(BaseCommand):
    help = "Durably cancel a run: a queued run never executes; a running one stops at its next progress report."

    def add_arguments(self, parser):
        parser.add_argument("run_id")

    def handle(self, *args, run_id, **options):
        run = JobRun.objects.filter(id=run_id).first() if _is_uuid(run_id) else None
        if run is None:
            raise CommandError(f"no run {run_id}")
        try:
            run = run_cancel(run=run)
        except JobsError as exc:
            raise CommandError(exc.message)
        state = run.status if run.status == "REVOKED" else f"{run.status}, cancel requested"
        self.stdout.write(f"run {run.id}: {state}")


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
