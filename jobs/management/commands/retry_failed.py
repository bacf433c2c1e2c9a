from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration

from jobs.services.steering import runs_retry_failed


class Command(BaseCommand):
    help = "Retry dead runs that have not been retried yet: each gets a new run linked by retry_of."

    def add_arguments(self, parser):
        parser.add_argument("--kind", help="Only runs of this kind.")
        parser.add_argument("--since", help="Only runs created since: an ISO time, or a duration such as '2 days' or '06:00:00'.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be retried; change nothing.")

    def handle(self, *args, kind, since, dry_run, **options):
        since_at = None
        if since:
            since_at = parse_datetime(since)
            if since_at is None:
                duration = parse_duration(since.replace(" days", " 00:00:00").replace(" day", " 00:00:00"))
                if duration is None:
                    raise CommandError(f"--since {since!r}: give an ISO time or a duration such as '2 days'")
                since_at = timezone.now() - duration
        runs = runs_retry_failed(kind=kind, since=since_at, dry_run=dry_run)
        total = len(runs)
        for number, run in enumerate(runs, start=1):
            if dry_run:
                self.stdout.write(f"[{number}/{total}] would retry {run.id} {run.kind}: {run.error[:80]}")
            else:
                self.stdout.write(f"[{number}/{total}] retried {run.retry_of_id} as {run.id} ({run.kind})")
        self.stdout.write(f"{'would retry' if dry_run else 'retried'} {total} run(s)")
