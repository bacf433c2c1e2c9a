import json

from django.core.management.base import BaseCommand, CommandError

from core.configuration import configuration_report
from core.health import health_report


class Command(BaseCommand):
    help = ("Print the same report as GET /api/health/, and where this process's first settings came from "
            "(environment, .env, or default); exit 1 when the service is down.")

    def handle(self, *args, **options):
        body, status = health_report()
        self.stdout.write(json.dumps({**body, "configuration": configuration_report()}, indent=2))
        if status >= 500:
            raise CommandError(f"status: {body['status']}")
