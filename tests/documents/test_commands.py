import pytest
from django.core.management import CommandError, call_command

from documents.models import Document
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_document_prints_each_stage_and_reports_bad_files(celery_worker, capsys, tmp_path):
    user = UserFactory(username="shell-user")
    good = tmp_path / "notes.md"
    good.write_text("# Tides\n\nSpring tides follow the full and new moon.\n")
    bad = tmp_path / "fake.pdf"
    bad.write_text("not a pdf")
    with pytest.raises(CommandError, match="1 of 2"):
        call_command("upload_document", "shell-user", str(good), str(bad), "--wait")
    captured = capsys.readouterr()
    assert "[1/2] notes.md: document" in captured.out and "100.0% SUCCESS" in captured.out
    assert "[2/2] fake.pdf: The name says PDF" in captured.err
    assert Document.objects.get(owner=user).status == "ready"
