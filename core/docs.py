"""The ReDoc bundle as drf-spectacular-sidecar ships it, but for its one remote reference: the
vendor logo it fetches from a CDN. Served with that address replaced, so the page loads nothing
from outside the host (the Content-Security-Policy would block it anyway; this avoids the attempt)."""

from functools import lru_cache

from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.views.decorators.http import require_GET

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# An empty image: the logo's place in the sidebar stays blank.
EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"
# The bundle changes only with the sidecar package (a new release of the app).
BUNDLE_MAX_AGE_SECONDS = 24 * 3600


@lru_cache(maxsize=1)
def _local_bundle() -> bytes:
    with open(finders.find(REDOC_BUNDLE), "rb") as handle:
        return handle.read().replace(REMOTE_LOGO, EMPTY_IMAGE)


@require_GET
def redoc_bundle(request):
    response = HttpResponse(_local_bundle(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={BUNDLE_MAX_AGE_SECONDS}"
    return response
