"""Writes of the job platform, by concern: `runs` (accepting, publishing, cancelling, retrying),
`maintenance` (the watchdog, cleanup) and `definitions` (jobs and their beat schedules)."""
