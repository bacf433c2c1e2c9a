"""The operator's console: runs that update themselves, a run page with everything needed to act
(traceback, attempts, log, retry / cancel / force-fail), dead letters that leave once retried, jobs
edited through a real form, and beat's copies of job schedules kept read-only.

runs.py (runs and their task results), jobs.py (jobs and beat's schedules), and widgets.py: the
live cells, links and actions the other apps' admins use too. The HTML is in templates/admin/jobs/."""

from jobs.admin import jobs, runs  # noqa: F401  (registers the model admins)
