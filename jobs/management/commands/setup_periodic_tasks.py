from django.core.management.base import BaseCommand

from jobs.services.definitions import schedules_seed


class Command(BaseCommand):
    help = "Create the maintenance schedules that are missing; never changes an existing one."

    def handle(self, *args, **options):
        created = schedules_seed()
        if created:
            for name in created:
                self.stdout.write(f"created schedule: {name}")
        else:
            self.stdout.write("schedules already present; nothing changed")
