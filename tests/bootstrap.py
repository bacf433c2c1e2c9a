"""Loaded with `-p tests.bootstrap`, before Django is configured.

Starts the embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set and points
the settings at them (project.settings.test holds everything else), gives the tests their own
Redis database, and routes this process's broker connection through a proxy the tests can cut
(the worker connects directly, as a worker on another host would).

`make test` runs the suite in two pytest-xdist processes. The servers are shared (the controller
starts them before it starts the two); everything a test can change is each process's own: its
test database (pytest-django names it after the process), its Redis database, and its uploads,
static files and logs under .local/. So the two never see each other's queues, workers or rows.
"""

import atexit
import os
import shutil
from urllib.parse import urlparse, urlunparse

# The suite is configured by its own settings (project.settings.test) and the environment alone,
# never by a developer's `.env` (core.configuration); the processes it starts inherit this.
os.environ["ENV_FILE"] = ""

from devserver import embedded  # noqa: E402

# The tests flush this Redis database at start: keep it apart from anything you use. The second
# xdist process takes the next one.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "9")) + int(XDIST_WORKER.removeprefix("gw") or 0)
# What one pytest process writes under .local/ (uploads, static files, logs), apart from the other's.
TEST_FILES_SUFFIX = f"-{XDIST_WORKER}" if XDIST_WORKER else ""

os.umask(embedded.OWNER_ONLY_UMASK)  # the suite's files under .local/, as `make run`'s
started = embedded.ensure_started()
if started.started_postgres or started.started_redis:
    # Leave the machine as we found it: stop what this test run started.
    atexit.register(embedded.stop, postgres=started.started_postgres, redis=started.started_redis)
_redis = urlparse(os.environ.get("REDIS_URL") or started.redis_url)
REDIS_URL = urlunparse(_redis._replace(path=f"/{TEST_REDIS_DB}"))
os.environ["REDIS_URL"] = REDIS_URL
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = started.database_url

from tests.support.proxy import TcpProxy  # noqa: E402

broker_proxy = TcpProxy(target_host=_redis.hostname, target_port=_redis.port or 6379)
_auth = f"{_redis.username or ''}:{_redis.password}@" if _redis.password else ""
PROXIED_BROKER_URL = urlunparse(_redis._replace(netloc=f"{_auth}{_redis.hostname}:{broker_proxy.port}",
                                                path=f"/{TEST_REDIS_DB}"))
os.environ["CELERY_BROKER_URL"] = PROXIED_BROKER_URL

# The tests' files live apart from `make run`'s (project.settings.test), and start empty.
# Set here, not left to the settings' defaults, so that the workers and servers a test starts
# inherit them; set in every process (an xdist process inherits its controller's environment).
for variable, folder in (("MEDIA_ROOT", "test-media"), ("STATIC_ROOT", "test-static")):
    os.environ[variable] = str(embedded.LOCAL_DIR / f"{folder}{TEST_FILES_SUFFIX}")
    shutil.rmtree(os.environ[variable], ignore_errors=True)
