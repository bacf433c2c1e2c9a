from django.urls import path
from rest_framework.routers import SimpleRouter

from chat.api import ProfileSummarizeView, ProfileView, SessionViewSet

router = SimpleRouter()
router.register("chat/sessions", SessionViewSet, basename="chat-session")
urlpatterns = [
    path("chat/profile/", ProfileView.as_view(), name="chat-profile"),
    path("chat/profile/summarize/", ProfileSummarizeView.as_view(), name="chat-profile-summarize"),
]
