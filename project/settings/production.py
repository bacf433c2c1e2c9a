"""Production (DJANGO_ENV=production): no secret defaults, DEBUG off, HTTPS only; a setting that
would be unsafe stops start-up naming the variable to fix."""

from project.settings.base import *  # noqa: F403
from project.settings.base import env
from project.settings.checks import check_production_settings, settings_check

DJANGO_ENV = "production"
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="production")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

check_production_settings(secret_key=SECRET_KEY, debug=DEBUG, allowed_hosts=ALLOWED_HOSTS)
settings_check(globals())
