from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from chat.urls import router as chat_router
from chat.urls import urlpatterns as chat_urls
from core.api_errors import api_not_found
from core.docs import redoc_bundle
from core.health import health
from documents.urls import router as documents_router
from documents.urls import urlpatterns as documents_urls
from jobs.api import JobViewSet, RunViewSet, TaskViewSet
from jobs.metrics import metrics_view
from research.urls import router as research_router

router = DefaultRouter()
router.register("runs", RunViewSet, basename="run")
router.register("jobs", JobViewSet, basename="job")
router.register("tasks", TaskViewSet, basename="task")
router.registry.extend(documents_router.registry)
router.registry.extend(chat_router.registry)
router.registry.extend(research_router.registry)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health/", health, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's set-up as a script of its own (?script): no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/redoc/assets/bundles/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
    path("api/", include(documents_urls)),
    path("api/", include(chat_urls)),
    path("api/", include(router.urls)),
    # Any other /api/…/ address answers in the API's error shape (also with DEBUG on); addresses
    # without the slash still get CommonMiddleware's redirect first.
    re_path(r"^api/[\s\S]*/\Z", api_not_found),
]
handler404 = "core.api_errors.api_not_found"
handler500 = "core.api_errors.api_server_error"
