"""What the admin index shows above the app list."""

from core.permissions import sees_everyones
from jobs import selectors
from jobs.models import JobRun


def dashboard_context(request) -> dict:
    # Everyone's runs, so for whoever may see them (core.permissions), not for any staff user.
    if not (request.path.rstrip("/").endswith("/admin") and sees_everyones(request.user, JobRun)):
        return {}
    return {
        "run_dashboard": {
            "last_day": selectors.runs_last_day_by_status(),
            "queue_depths": selectors.queue_depths(),
            "workers": selectors.workers_online(),
            "dead": selectors.runs_dead_latest(limit=10),
            "stalled": JobRun.objects.stalled().count(),
        }
    }
