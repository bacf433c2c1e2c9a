"""The fault tests on either broker: Redis (the suite's own) or the RabbitMQ on loopback.

A test that takes the `broker` fixture runs twice. On RabbitMQ its worker is a worker of its own
started with `CELERY_BROKER_URL=amqp://…` (as `make run` with that variable set starts them), and
this process publishes, pings and revokes through a cuttable proxy to the same RabbitMQ, with the
settings a process started with that URL would have (queues declared with x-max-priority, no
Redis priority steps). Everything is put back when the test ends.

Unlike Redis (a database per pytest process), one RabbitMQ vhost holds one set of queues for every
pytest process on the machine: a worker started by one would take, and drop as unknown, the runs
another published, and a purge in one would empty the other's queue. So a test holds RabbitMQ to
itself (`rabbitmq_held`) while it runs on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from tests.support.proxy import TcpProxy
from tests.support.worker import ALL_QUEUES, CeleryProcess

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
RABBITMQ_ENV = {"CELERY_BROKER_URL": RABBITMQ_URL}
# Options of the Redis transport alone: a process started on RabbitMQ never has them.
REDIS_ONLY_OPTIONS = ("priority_steps", "sep", "queue_order_strategy")


@dataclass
class Broker:
    name: str
    worker: CeleryProcess
    # This process's way to the broker, which a test can cut; the worker connects directly.
    proxy: TcpProxy
    # What a worker or beat started for the test needs in its environment to use this broker.
    env: dict[str, str]
    # The worker's name (`-n name@%h`), as `wait_for_worker` asks for it.
    worker_name: str = "test-worker"

    def messages_drop(self, *, queue: str) -> None:
        """Every message waiting in `queue` gone, as from a broker restarted without its data."""
        if self.name == "redis":
            import redis
            from django.conf import settings

            redis.Redis.from_url(settings.REDIS_URL).flushdb()
            return
        from kombu import Connection

        with Connection(RABBITMQ_URL) as connection:
            connection.default_channel.queue_purge(queue)


def rabbitmq_listens() -> bool:
    address = urlparse(RABBITMQ_URL)
    try:
        socket.create_connection((address.hostname, address.port or 5672), timeout=1).close()
        return True
    except OSError:
        return False


_rabbitmq_proxy: TcpProxy | None = None


def rabbitmq_proxy() -> TcpProxy:
    """One proxy to RabbitMQ per pytest process, made on first use."""
    global _rabbitmq_proxy
    if _rabbitmq_proxy is None:
        address = urlparse(RABBITMQ_URL)
        _rabbitmq_proxy = TcpProxy(target_host=address.hostname, target_port=address.port or 5672)
    return _rabbitmq_proxy


RABBITMQ_WORKER_NAME = "test-worker-rabbitmq"


@contextmanager
def rabbitmq_held():
    """RabbitMQ's queues to this process alone for the block: the other pytest processes' RabbitMQ
    tests wait (an exclusive lock on a file named after the broker's URL, let go by the kernel if
    this process dies)."""
    digest = hashlib.sha256(RABBITMQ_URL.encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"rabbitmq-tests-{digest}.lock"
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def rabbitmq_worker(name: str = RABBITMQ_WORKER_NAME) -> CeleryProcess:
    """A worker on RabbitMQ, named apart from the session's Redis one (workers record their presence
    by name in the one database)."""
    return CeleryProcess(
        name,
        ["worker", "-n", f"{name}@%h", "-Q", ALL_QUEUES, "-c", "2", "-l", "info",
         "--include", "tests.support.tasks", "--without-mingle", "--without-gossip"],
        **RABBITMQ_ENV,
    )


@contextmanager
def publishing_on_rabbitmq(settings):
    """This process's Celery app and settings as if it had been started on RabbitMQ (through the
    proxy), for the length of the block."""
    from jobs.broker import celery_app

    proxy = rabbitmq_proxy()
    address = urlparse(RABBITMQ_URL)
    auth = f"{address.username}:{address.password}@" if address.password else ""
    proxied_url = urlunparse(address._replace(netloc=f"{auth}{address.hostname}:{proxy.port}"))
    options = {key: value for key, value in settings.CELERY_BROKER_TRANSPORT_OPTIONS.items()
               if key not in REDIS_ONLY_OPTIONS}
    settings.CELERY_BROKER_URL = proxied_url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    settings.CELERY_TASK_QUEUE_MAX_PRIORITY = 9

    app = celery_app()
    saved = {key: app.conf[key] for key in ("broker_transport_options", "task_queue_max_priority")}
    # Celery reads the broker's URL from this variable before its configuration.
    saved_url = os.environ["CELERY_BROKER_URL"]
    os.environ["CELERY_BROKER_URL"] = proxied_url
    app.conf.update(broker_transport_options=options, task_queue_max_priority=9)
    _forget_connections(app)
    try:
        yield proxy
    finally:
        proxy.enable()
        os.environ["CELERY_BROKER_URL"] = saved_url
        app.conf.update(saved)
        _forget_connections(app)


def _forget_connections(app) -> None:
    """Drop the app's pooled connections and the queue declarations it cached, so that the next
    publish connects to the broker now configured and declares queues as that broker wants them."""
    from kombu import pools

    pools.reset()  # closes every pooled connection and forgets the pools, keyed by connection
    app._pool = None
    app.__dict__.pop("control", None)  # its mailbox keeps the producer pool it first used
    amqp = app.amqp
    amqp._producer_pool = None
    for cached in ("queues", "router", "default_queue"):
        amqp.__dict__.pop(cached, None)
    amqp._rtable = None
