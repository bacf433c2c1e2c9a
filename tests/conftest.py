import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.support import worker as worker_support
from tests.support.tasks import EFFECTS_DDL

# What migrate made once and no test changes: kept by every flush, which then need not rebuild it
# (Django's post_migrate would, table by table, after each test); and the live workers' presence,
# which is theirs, not a test's (emptied, a worker would look absent until its next heartbeat).
# The operators' groups (core.roles) are migrate's too.
FLUSH_KEEPS = {"django_content_type", "auth_permission", "auth_group", "auth_group_permissions", "jobs_workerpresence"}


def _flush_by_delete_and_retried_after_a_deadlock():
    """The flush after each transactional test, made cheaper and sturdier.

    Cheaper: the test tables hold a few rows, and TRUNCATE pays a fixed cost per table (new files
    for it and each index: about a quarter of a second for all of them, every test), where DELETE
    of a few rows costs next to nothing. Django's foreign keys are deferrable, so one transaction
    of DELETEs, checked at commit, empties them in any order.

    Sturdier: a live worker may still be finishing an earlier test's work (a slice, a reply) while
    the flush empties every table; PostgreSQL then breaks the deadlock by aborting one side. When
    it aborts the flush, flush again: the worker's side has rolled back."""
    from django.core.management.base import CommandError
    from django.core.management.commands import flush
    from django.db.backends.postgresql.operations import DatabaseOperations

    def sql_flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences:
            return sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET CONSTRAINTS ALL DEFERRED"] + [f"DELETE FROM {self.quote_name(table)}" for table in tables
                                                   if table not in FLUSH_KEEPS]

    sql_flush = DatabaseOperations.sql_flush
    DatabaseOperations.sql_flush = sql_flush_by_delete
    handle = flush.Command.handle

    def handle_retried(self, **options):
        for attempt in range(5):
            try:
                return handle(self, **{**options, "inhibit_post_migrate": True})
            except CommandError as exc:
                if "deadlock detected" not in str(exc.__cause__ or "") or attempt == 4:
                    raise

    flush.Command.handle = handle_retried


_flush_by_delete_and_retried_after_a_deadlock()


# The three layers (pytest.ini): a test's layer is what it needs, read from its fixtures and
# markers unless it names one itself. `make test-unit` runs the first with neither PostgreSQL nor
# Redis reachable.
LAYERS = ("unit", "integration", "worker")
# Every fixture that starts a worker builds on celery_worker_process, or is `broker` (which starts a
# worker on RabbitMQ); beats start beat processes.
WORKER_FIXTURES = {"celery_worker_process", "broker", "beats", "streaming_stack"}
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


# The test files that share the session's `streaming_stack` (`make run` on servers of its own, about
# 20 s to start): handed out as one, so that one test process starts it once.
SHARING_THE_STREAMING_STACK = ("tests/chat/test_streams.py", "tests/core/test_streams.py", "tests/jobs/test_streams.py")


# The test files that take longest (a minute or more each, measured with --durations), handed out
# first: `make test` gives each pytest-xdist process a file at a time in collection order, and a
# long file left for last keeps one process busy while the other has nothing to do.
LONGEST_FIRST = (
    *SHARING_THE_STREAMING_STACK, "tests/core/test_outages.py", "tests/jobs/test_runner.py",
    "tests/documents/test_services.py",
    "tests/core/test_schema.py", "tests/chat/test_reply.py", "tests/devserver/test_launcher.py",
    "tests/devserver/test_embedded.py", "tests/research/test_services.py", "tests/documents/test_hostile.py",
)


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the files that share the streaming stack handed out together."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LoadFileSharingStacks(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return SHARING_THE_STREAMING_STACK[0] if path in SHARING_THE_STREAMING_STACK else path

    return LoadFileSharingStacks(config, log)


def _handed_out_at(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items):
    items.sort(key=_handed_out_at)  # stable: each file's tests keep their order
    for item in items:
        if any(item.get_closest_marker(layer) for layer in LAYERS):
            continue
        needs = set(item.fixturenames)
        if needs & WORKER_FIXTURES:
            item.add_marker(pytest.mark.worker)
        elif needs & DATABASE_FIXTURES or item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, an empty test Redis database, and the static files collected as
    `make run` collects them (pages name them through the manifest, as in production): what
    every test past the unit layer stands on, prepared once."""
    import redis
    from django.conf import settings
    from django.core.management import call_command

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    with django_db_blocker.unblock():
        call_command("collectstatic", "--no-input", verbosity=0)
    yield


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, started once the static files are collected: WhiteNoise looks
    for them when the server's first request builds its middleware."""
    return live_server


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One real worker for the session, consuming every queue, on the test database."""
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(EFFECTS_DDL)
        proc = worker_support.worker().start()
        worker_support.wait_for_worker("test-worker", timeout=90)
    yield proc
    proc.stop()


@pytest.fixture
def celery_worker(celery_worker_process, transactional_db):
    """A live worker for this test (restarted if an earlier test stopped or killed it)."""
    if not celery_worker_process.alive:
        celery_worker_process.start()
        worker_support.wait_for_worker("test-worker", timeout=90)
    with connection.cursor() as cursor:
        cursor.execute(EFFECTS_DDL)
        cursor.execute("TRUNCATE test_effects")
    return celery_worker_process


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request, transactional_db, settings):
    """A fault test on each broker: its worker (`.worker`) and this process's cuttable way to the
    broker (`.proxy`). Runs on RabbitMQ wherever one listens at TEST_RABBITMQ_URL (skipped, saying
    so, where none does)."""
    from core.breaker import breaker_for
    from tests.support import brokers

    if request.param == "redis":
        from tests.bootstrap import broker_proxy as proxy

        yield brokers.Broker("redis", request.getfixturevalue("celery_worker"), proxy, env={})
        proxy.enable()
        breaker_for(settings.CELERY_BROKER_URL).reset()
        return
    if not brokers.rabbitmq_listens():
        pytest.skip(f"no RabbitMQ listens at {brokers.RABBITMQ_URL}: start one there, or point TEST_RABBITMQ_URL at "
                    "one, to run the fault tests on RabbitMQ too")
    with connection.cursor() as cursor:
        cursor.execute(EFFECTS_DDL)
        cursor.execute("TRUNCATE test_effects")
    # A worker of the test's own, stopped after it (the session's Redis worker runs on beside it,
    # seeing none of RabbitMQ's messages): one left running would count among the workers online
    # in every later test.
    with brokers.rabbitmq_held(), brokers.publishing_on_rabbitmq(settings) as proxy:
        worker = brokers.rabbitmq_worker().start()
        try:
            worker_support.wait_for_worker(brokers.RABBITMQ_WORKER_NAME, timeout=90)
            yield brokers.Broker("rabbitmq", worker, proxy, env=brokers.RABBITMQ_ENV,
                                 worker_name=brokers.RABBITMQ_WORKER_NAME)
        finally:
            worker.stop()
            breaker_for(settings.CELERY_BROKER_URL).reset()


@pytest.fixture(scope="module")
def fake_llm():
    """An OpenAI-compatible server on loopback (tests/support/fake_llm.py), one per test module."""
    from tests.support.fake_llm import FakeLLM

    server = FakeLLM()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def streaming_stack(tmp_path_factory):
    """`make run` on servers of its own with the fake LLM server (tests/support/streaming.py), one per
    test process: the stream tests of every app use it, through HTTP as clients do."""
    import time

    from tests.support.fake_llm import FakeLLM
    from tests.support.streaming import StreamingStack

    llm = FakeLLM()
    marker = str(time.time_ns())
    stack = StreamingStack(tmp_path_factory.mktemp("streaming"), llm, STREAMING_TEST_MARK=marker)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop(f"STREAMING_TEST_MARK={marker}")
        llm.stop()


@pytest.fixture
def beats():
    """Start real beat processes (each stopped after the test); beat also runs the watchdog."""
    started = []

    def start(name="test-beat", **env):
        proc = worker_support.beat(name, **env).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def effects():
    def read(prefix: str = "") -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT key, value FROM test_effects WHERE key LIKE %s", [prefix + "%"])
            return dict(cursor.fetchall())

    return read


@pytest.fixture
def broker_proxy(settings):
    """The cuttable way to this process's broker; restored afterwards, breaker closed, so the next
    test publishes at once."""
    from core.breaker import breaker_for
    from tests.bootstrap import broker_proxy as proxy

    yield proxy
    proxy.enable()
    breaker_for(settings.CELERY_BROKER_URL).reset()


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def other_user(db):
    from tests.factories import UserFactory

    return UserFactory()


def _client_for(user):
    from rest_framework.authtoken.models import Token

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user):
    return _client_for(user)


@pytest.fixture
def other_api(other_user):
    return _client_for(other_user)
