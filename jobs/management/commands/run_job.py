import json

from django.core.management.base import BaseCommand, CommandError

from jobs.errors import JobsError
from jobs.models import Job, TriggeredBy
from jobs.services.definitions import job_trigger
from jobs.watch import run_watch


class Command(BaseCommand):
    help = "Run a job now (by name), optionally overriding params; --wait follows its progress to the end."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--params", default="{}", help='JSON object merged over the job\'s params.')
        parser.add_argument("--wait", action="store_true", help="Print progress until the run finishes.")

    def handle(self, *args, name, params, wait, **options):
        job = Job.objects.filter(name=name).first()
        if job is None:
            raise CommandError(f"no job named {name!r}")
        try:
            run = job_trigger(job=job, triggered_by=TriggeredBy.SHELL, params=json.loads(params))
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not JSON: {exc}")
        except JobsError as exc:
            raise CommandError(exc.message)
        self.stdout.write(f"run {run.id} queued ({run.kind} on {run.queue})")
        if wait:
            run = run_watch(run_id=run.id, out=self.stdout)
            if run.status != "SUCCESS":
                raise CommandError(f"run {run.id} ended {run.status}: {run.error}")
            self.stdout.write(f"result: {json.dumps(run.result)}")
