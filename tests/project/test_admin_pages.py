"""Every admin list and add/change page renders for a superuser (no broken field or template)."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from chat.models import ChatSession, Message
from documents.models import Chunk, Document
from tests.factories import JobFactory, JobRunFactory

pytestmark = pytest.mark.django_db


def test_every_admin_page_renders(client):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(root)
    run = JobRunFactory(owner=root, status="FAILURE", dead=True, error="boom")
    JobFactory(owner=root)
    document = Document.objects.create(owner=root, title="T", original_name="t.txt", format="text", size=1,
                                       sha256="c" * 64, file="documents/x/y/original", status="ready", run=run)
    Chunk.objects.create(document=document, chunk_index=0, char_start=0, char_end=1, text="t", embedding=[0.1] * 384)
    session = ChatSession.objects.create(owner=root)
    Message.objects.create(session=session, role="user", content="hi")

    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        changelist = client.get(reverse("admin:%s_%s_changelist" % info))
        assert changelist.status_code == 200, info
        obj = model._default_manager.first()
        if obj is not None:
            change = client.get(reverse("admin:%s_%s_change" % info, args=[obj.pk]))
            assert change.status_code == 200, info
