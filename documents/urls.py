from django.urls import path
from rest_framework.routers import SimpleRouter

from documents.api import DocumentViewSet, SearchView

router = SimpleRouter()
router.register("documents", DocumentViewSet, basename="document")
urlpatterns = [path("search/", SearchView.as_view(), name="search")]
