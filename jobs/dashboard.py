"""What the admin index shows above the app list."""

from jobs import selectors
from jobs.models import JobRun


def dashboard_context(request) -> dict:
    if not (request.path.rstrip("/").endswith("/admin") and request.user.is_staff):
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
