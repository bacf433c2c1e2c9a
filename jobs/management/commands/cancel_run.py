from django.core.management.base import BaseCommand, CommandError

from jobs.errors import JobsError
from jobs.selectors import runs_matching_id
from jobs.services.steering import run_cancel


class Command(BaseCommand):
    help = "Durably cancel a run: a queued run never executes; a running one stops at its next progress report."

    def add_arguments(self, parser):
        parser.add_argument("run_id", help="The run's id, or its short id as the admin shows it (first 8 characters).")

    def handle(self, *args, run_id, **options):
        matches = runs_matching_id(prefix=run_id)
        found = list(matches[:2]) if matches is not None else []
        if not found:
            raise CommandError(f"no run {run_id}")
        if len(found) > 1:
            raise CommandError(f"{run_id} starts more than one run's id; give more of it.")
        try:
            run = run_cancel(run=found[0])
        except JobsError as exc:
            raise CommandError(exc.message)
        state = run.status if run.status == "REVOKED" else f"{run.status}, cancel requested"
        self.stdout.write(f"run {run.id}: {state}")
