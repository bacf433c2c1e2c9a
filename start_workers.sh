#!/usr/bin/env bash
# Starts one Celery worker per queue group and beat (and Flower with --flower);
# forwards SIGINT/SIGTERM to all of them so a stop is graceful (tasks finish or are re-queued).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: start_workers.sh [--flower] [--no-beat] [--help]

Starts:
  worker "documents"  queue documents            concurrency $DOCUMENTS_CONCURRENCY (default 1)
  worker "default"    queues chat,jobs           concurrency $DEFAULT_CONCURRENCY   (default 2)
  worker "maintenance" queue maintenance         concurrency 1
  beat                (django-celery-beat, one at a time via a Redis lock)
  flower              with --flower, on $FLOWER_PORT (default 5555)

Environment: the same variables as the web app (DATABASE_URL, REDIS_URL, ...);
CELERY_LOGLEVEL (default info).
USAGE
}

FLOWER=0
BEAT=1
for arg in "$@"; do
  case "$arg" in
    --flower) FLOWER=1 ;;
    --no-beat) BEAT=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"
CELERY="${CELERY:-celery}"
LOGLEVEL="${CELERY_LOGLEVEL:-info}"
pids=()

start() {
  "$@" &
  pids+=($!)
}

# Embedding is memory-heavy: fewer malloc arenas, and a pool process that grew past the cap is
# replaced after its task (DOCUMENTS_MAX_MEMORY_KB).
start env MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" "$CELERY" -A project worker -n "documents@%h" -Q documents \
  -c "${DOCUMENTS_CONCURRENCY:-1}" -l "$LOGLEVEL" -E --max-memory-per-child "${DOCUMENTS_MAX_MEMORY_KB:-700000}"
start "$CELERY" -A project worker -n "default@%h" -Q chat,jobs -c "${DEFAULT_CONCURRENCY:-2}" -l "$LOGLEVEL" -E
start "$CELERY" -A project worker -n "maintenance@%h" -Q maintenance -c 1 -l "$LOGLEVEL" -E
if [ "$BEAT" = 1 ]; then
  start "$CELERY" -A project beat -l "$LOGLEVEL" --pidfile=
fi
if [ "$FLOWER" = 1 ]; then
  start "$CELERY" -A project flower --port="${FLOWER_PORT:-5555}" --address="${FLOWER_ADDRESS:-127.0.0.1}"
fi

stop() {
  trap - INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  exit 0
}
trap stop INT TERM

# If any process dies, stop the others: a half-running set of workers hides failures.
wait -n
status=$?
echo "a worker process exited ($status); stopping the others" >&2
stop
