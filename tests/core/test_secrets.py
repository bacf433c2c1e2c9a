"""Canary secrets: none reaches a log line, a run, a task result, an API answer or the error page,
even when the LLM server echoes the key back in its error body."""

import secrets

import pytest
from django.db import transaction
from django_celery_results.models import TaskResult

from chat.models import ChatSession, Message
from chat.services import message_post
from jobs.models import JobRun
from tests.support import worker as worker_support
from tests.support.fake_llm import Step
from tests.support.worker import wait_for_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_canary_secret_is_found_anywhere(celery_worker, fake_llm, api, user):
    canaries = {name: f"canary-{name.lower()}-{secrets.token_hex(8)}"
                for name in ("AI_API_KEY", "AI_PASSWORD", "EMBEDDING_API_KEY", "SECRET_KEY")}
    celery_worker.stop()
    worker = worker_support.worker("canary-worker", AI_SERVER_URL=fake_llm.url, AI_USERNAME="",
                                   **canaries).start()
    try:
        wait_for_worker("canary-worker")
        fake_llm.default = Step(status=500, echo_auth=True)
        with transaction.atomic():
            message = message_post(session=ChatSession.objects.create(owner=user), content="Is my key safe?")
        run = wait_until(lambda: (r := JobRun.objects.get(id=message.run_id)).status == "FAILURE" and r,
                         timeout=60, message="the reply to fail for good")
        assert fake_llm.auth_headers[0] == f"Bearer {canaries['AI_API_KEY']}"  # the server did get the key
        assert "500" in run.error  # the error says what happened, by status
    finally:
        worker.stop()
    stored = [worker.log_text()]
    stored += [f"{r.error} {r.traceback} {r.attempt_log} {r.result} {r.args}" for r in JobRun.objects.all()]
    stored += [f"{t.result} {t.traceback} {t.meta} {t.task_kwargs}" for t in TaskResult.objects.all()]
    stored += [m.content for m in Message.objects.all()]
    stored += [api.get(path).content.decode() for path in (
        f"/api/runs/{run.id}/", "/api/runs/", "/api/runs/stats/", "/api/health/",
        f"/api/chat/sessions/{message.session_id}/messages/")]
    everything = "\n".join(stored)
    assert "you sent Authorization" not in everything  # the upstream body is summarised, never copied
    for name, canary in canaries.items():
        assert canary not in everything, name


@pytest.mark.integration
def test_the_sentry_dsn_key_rides_in_no_broker_message():
    """A process with Sentry on publishes a task; the message as the broker holds it carries the
    trace (so traces still join up) but not the DSN's key."""
    import subprocess
    import sys

    import redis
    from django.conf import settings

    from jobs.broker import redis_queue_keys
    from tests.support.launcher import BASE_DIR
    from tests.support.worker import child_env

    key = secrets.token_hex(16)
    queue = f"canary-{secrets.token_hex(4)}"  # no worker reads it: the message stays for us to read
    publish = f"from project.celery import app; app.send_task('jobs.ping', kwargs={{}}, queue={queue!r})"
    subprocess.run([sys.executable, "manage.py", "shell", "-c", publish], cwd=BASE_DIR, check=True,
                   capture_output=True, env=child_env(SENTRY_DSN=f"http://{key}@127.0.0.1:9/1"))
    server = redis.Redis.from_url(settings.REDIS_URL)
    try:
        held = b"".join(raw for list_key in redis_queue_keys(queue) for raw in server.lrange(list_key, 0, -1))
    finally:
        server.delete(*redis_queue_keys(queue))
    assert b"sentry-trace" in held and b"baggage" in held
    assert key.encode() not in held
