from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from documents.errors import DocumentsError
from documents.services import document_upload
from jobs.public import TriggeredBy, run_watch


class Command(BaseCommand):
    help = "Upload files for a user and queue their ingestion; --wait prints each run's progress."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--wait", action="store_true")

    def handle(self, *args, username, paths, wait, **options):
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"no user {username!r} (create one with create_api_token)")
        failed = 0
        for number, path in enumerate(map(Path, paths), start=1):
            prefix = f"[{number}/{len(paths)}] {path.name}"
            if not path.is_file():
                self.stderr.write(f"{prefix}: not a file")
                failed += 1
                continue
            try:
                document, created = document_upload(owner=owner, triggered_by=TriggeredBy.SHELL,
                                                     upload=SimpleUploadedFile(path.name, path.read_bytes()))
            except DocumentsError as exc:
                self.stderr.write(f"{prefix}: {exc.message}")
                failed += 1
                continue
            self.stdout.write(f"{prefix}: document {document.id} {'queued' if created else 'already uploaded'}")
            if wait and created and document.run_id:
                run = run_watch(run_id=document.run_id, out=self.stdout, prefix="    ")
                if run.status != "SUCCESS":
                    self.stderr.write(f"{prefix}: {run.status}: {run.error or 'no error recorded'}")
                    failed += 1
        if failed:
            raise CommandError(f"{failed} of {len(paths)} file(s) failed")
