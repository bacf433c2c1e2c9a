"""The workers' broker consumer: Celery's own, reconnecting within seconds of the broker's return,
and switching task events off once nobody reads them (jobs.events).

Celery's consumer reaches a broker it lost through kombu's `ensure_connection` with its defaults:
2, 4, 6 … up to 30 s between attempts. After a minute's outage a worker came back up to 30 s after
Redis did, while the web tier and beat (which publish the work accepted meanwhile) were back within
seconds: that work then waited on a worker asleep in its back-off.
"""

from __future__ import annotations

import functools

from celery.worker.consumer import Consumer

import jobs.control  # noqa: F401  (Celery's revoke, durable for runs: registered as the workers load this)

# Between attempts to reach the broker again: a second at first, then never more than this. An
# attempt is one TCP connect to a server that refuses it while down, cheap for both sides.
RECONNECT_INTERVAL_FIRST_SECONDS = 1.0
RECONNECT_INTERVAL_MAX_SECONDS = 2.0


class PromptlyReconnectingConsumer(Consumer):
    class Blueprint(Consumer.Blueprint):
        default_steps = [*Consumer.Blueprint.default_steps, "jobs.events:TaskEventsLease"]

    def ensure_connected(self, conn):
        # A new connection each time Celery (re)connects, so each gets the intervals once. kombu's
        # interval_max is counted on top of the first interval.
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=RECONNECT_INTERVAL_FIRST_SECONDS,
            interval_step=RECONNECT_INTERVAL_FIRST_SECONDS,
            interval_max=RECONNECT_INTERVAL_MAX_SECONDS - RECONNECT_INTERVAL_FIRST_SECONDS)
        return super().ensure_connected(conn)
