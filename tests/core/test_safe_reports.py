"""The development error page shows no password: not in a URL setting, not in the cache location."""

import secrets
import sys

from django.conf import settings
from django.test import RequestFactory, override_settings
from django.views.debug import technical_500_response

CANARY = "canary-pw-" + secrets.token_hex(6)  # made at run time: the page shows this source line


def error_page() -> str:
    request = RequestFactory().get("/api/runs/", HTTP_X_TRACE=f"https://user:{CANARY}@example.com/")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


@override_settings(DEBUG=True, DATABASE_URL=f"postgres://app:{CANARY}@db:5432/app",
                   CELERY_BROKER_URL=f"redis://:{CANARY}@redis:6379/0", AI_API_KEY=CANARY,
                   SENTRY_DSN=f"https://{CANARY}@sentry.example/1",
                   CACHES={"default": {**settings.CACHES["default"], "LOCATION": f"redis://:{CANARY}@redis:6379/0"}})
def test_the_debug_page_masks_every_password():
    page = error_page()
    assert "boom" in page and "DATABASE_URL" in page and "CELERY_BROKER_URL" in page
    assert CANARY not in page
    password = settings.REDIS_URL.split("@")[0].rsplit(":", 1)[-1] if "@" in settings.REDIS_URL else None
    if password:  # the embedded Redis's real password
        assert password not in page
