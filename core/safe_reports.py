"""What the development error page (and error e-mails) may show of the settings and the request."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

# user:password@ inside any URL-like value (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, a cache LOCATION …)
_URL_CREDENTIALS = re.compile(r"(://[^/@\s:]*:)[^@\s/]+@")


class SecretsReporterFilter(SafeExceptionReporterFilter):
    """Django's filter hides settings named like secrets; this one also hides a DSN and the password
    inside every URL, wherever the value sits (a setting, a nested dict, the request's META)."""

    hidden_settings = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DSN", flags=re.IGNORECASE)

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):  # lazy strings too (they pass isinstance, not the regex)
            return _URL_CREDENTIALS.sub(rf"\g<1>{self.cleansed_substitute}@", str(cleansed))
        return cleansed
