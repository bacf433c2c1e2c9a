"""`project.settings` is the settings of DJANGO_ENV: production.py when it says "production",
local.py otherwise. Each environment's module can also be named directly in DJANGO_SETTINGS_MODULE
(project.settings.local, project.settings.production, project.settings.test). DJANGO_ENV may be
set in the process's environment or in `.env` (core.configuration)."""

from core.configuration import environment

if environment().get("DJANGO_ENV") == "production":
    from project.settings.production import *  # noqa: F403
else:
    from project.settings.local import *  # noqa: F403
