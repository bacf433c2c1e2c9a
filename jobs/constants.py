"""The job platform's names and field limits: the models declare their columns with these, and
every write that truncates a value to fit uses the same number."""

from core.queues import Queue  # noqa: F401  (the platform's names, with its limits below)

KIND_MAX_LENGTH = 100
QUEUE_MAX_LENGTH = 50
JOB_NAME_MAX_LENGTH = 200
PROGRESS_STEP_MAX_LENGTH = 50
PROGRESS_MESSAGE_MAX_LENGTH = 255
# host:pid of the worker process holding a run.
WORKER_MAX_LENGTH = 200
CORRELATION_ID_MAX_LENGTH = 128
# A release's reason kept on the run (error is a text column; this keeps the list pages light).
RELEASE_REASON_MAX_CHARS = 500

# A worker's main process records itself on each of Celery's event heartbeats (every 2 s); it
# counts as online while its last one is this recent: a main loop busy for a few seconds, or one
# heartbeat lost to a slow database, is not a lost worker.
WORKER_PRESENCE_SECONDS = 10
