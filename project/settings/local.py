"""Development: DEBUG on, a fixed development key, loopback host names."""

from project.settings.base import *  # noqa: F403
from project.settings.base import env
from project.settings.checks import settings_check

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me-0123456789abcdef")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

settings_check(globals())
