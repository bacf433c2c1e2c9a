from rest_framework.routers import SimpleRouter

from research.api import DigestViewSet

router = SimpleRouter()
router.register("digests", DigestViewSet, basename="digest")
