"""The S3 path, against moto's S3 server on loopback, with a worker configured for it."""

import socket
from pathlib import Path

import boto3
import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import override_settings

from documents import services
from documents.models import Chunk, Document
from tests.factories import UserFactory
from tests.support import worker as worker_support
from tests.support.files import upload
from tests.support.worker import wait_for_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "documents-test"


@pytest.fixture
def s3_server():
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_STORAGE_BUCKET_NAME": BUCKET, "AWS_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_S3_REGION_NAME": "us-east-1"}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield env, client
    server.stop()


def test_upload_ingest_and_delete_through_s3(celery_worker, s3_server, monkeypatch):
    env, client = s3_server
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    celery_worker.stop()
    s3_worker = worker_support.worker("s3-worker", **env).start()
    storages = {"default": {"BACKEND": "storages.backends.s3.S3Storage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    try:
        wait_for_worker("s3-worker")
        with override_settings(STORAGES=storages, AWS_STORAGE_BUCKET_NAME=BUCKET,
                               AWS_S3_ENDPOINT_URL=env["AWS_S3_ENDPOINT_URL"], AWS_S3_REGION_NAME="us-east-1"):
            document, created = services.document_upload(
                owner=UserFactory(), upload=upload("clouds.txt", b"Cumulonimbus clouds bring thunderstorms."))
            key = f"documents/{document.owner_id}/{document.id}/original"
            assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read().startswith(b"Cumulonimbus")
            wait_until(lambda: Document.objects.get(id=document.id).status == "ready", timeout=120,
                       message="document read back from S3 and indexed")
            assert Chunk.objects.filter(document=document).exists()
            services.document_delete(document=Document.objects.get(id=document.id))
            assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    finally:
        s3_worker.stop()


def test_an_original_kept_by_the_local_storage_is_its_owners_alone_whatever_the_umask():
    """Every user's documents live under MEDIA_ROOT: another account on the host reads none of them,
    even when the process that saved them runs with a permissive umask."""
    import os

    from django.conf import settings as django_settings

    previous = os.umask(0o022)
    try:
        with transaction.atomic():
            document, _ = services.document_upload(owner=UserFactory(), upload=upload("private.txt", b"Mine alone.\n"))
    finally:
        os.umask(previous)
    path = Path(django_settings.MEDIA_ROOT) / document.file.name
    assert path.stat().st_mode & 0o777 == 0o600
    assert all(folder.stat().st_mode & 0o077 == 0 for folder in path.parents
               if folder.is_relative_to(django_settings.MEDIA_ROOT))


def test_a_bucket_or_credentials_the_storage_refuses_answer_503_and_fail_the_ingestion_at_once(s3_server, monkeypatch):
    """Against moto's S3: a bucket that is not there, then keys it does not know (moto checks them
    once its free actions are used up), are the deployment's configuration: the upload answers 503
    in the one error shape and nothing is kept; a worker reading such a document gets the error that
    fails its run without a retry, naming the setting to fix."""
    from django.core.files.storage import default_storage
    from moto import settings as moto_settings

    from integrations.http import ServiceMisconfigured
    from integrations.storage import storage_errors_sorted

    env, client = s3_server
    client.put_object(Bucket=BUCKET, Key="documents/kept/original", Body=b"kept")
    owner = UserFactory()
    storages = {"default": {"BACKEND": "storages.backends.s3.S3Storage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, env[key])
    s3 = {"AWS_S3_ENDPOINT_URL": env["AWS_S3_ENDPOINT_URL"], "AWS_S3_REGION_NAME": "us-east-1"}
    with override_settings(STORAGES=storages, AWS_STORAGE_BUCKET_NAME="no-such-bucket", **s3):
        with pytest.raises(services.DocumentsError) as refused:
            services.document_upload(owner=owner, upload=upload("a.txt", b"Some words to keep."))
        assert refused.value.http_status == 503 and "AWS" not in refused.value.message
        with pytest.raises(ServiceMisconfigured, match="set AWS_STORAGE_BUCKET_NAME"), storage_errors_sorted():
            default_storage.save("probe", ContentFile(b"x"))
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with override_settings(STORAGES=storages, AWS_STORAGE_BUCKET_NAME=BUCKET, **s3):
        with pytest.raises(services.DocumentsError) as refused:
            services.document_upload(owner=owner, upload=upload("b.txt", b"Other words to keep."))
        assert refused.value.http_status == 503
        for call in (lambda: default_storage.save("probe", ContentFile(b"x")),
                     lambda: default_storage.open("documents/kept/original").read()):
            with pytest.raises(ServiceMisconfigured, match="rejected the credentials.*AWS_ACCESS_KEY_ID"), \
                    storage_errors_sorted():
                call()
    assert not Document.objects.filter(owner=owner).exists()
