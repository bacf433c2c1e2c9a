#!/usr/bin/env bash
# Starts one Celery worker per queue group and beat (and Flower with --flower) under a supervisor
# that restarts a worker that dies and stops them all gracefully: see processes/workers.py.
# Environment: the same variables as the web app (DATABASE_URL, REDIS_URL, ...), plus
# DOCUMENTS_CONCURRENCY, DEFAULT_CONCURRENCY, DOCUMENTS_MAX_MEMORY_KB, CELERY_LOGLEVEL,
# WORKER_STOP_GRACE_SECONDS, FLOWER_PORT, FLOWER_ADDRESS.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" -m processes.workers "$@"
