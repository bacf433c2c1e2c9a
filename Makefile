# Two commands: `make run` and `make test`. Everything else is a helper they use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-browser install services stop migrate check lint bench clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# The runtime (requirements.txt) and the development and test tools (requirements-dev.txt, which
# includes it); re-installs only when either changed since the last install.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m devserver.launcher

# tests/bootstrap.py starts the embedded servers it needs and stops them when pytest exits. The
# suite runs in TEST_PROCESSES pytest-xdist processes, a test file at a time in each (a file's
# module-wide stack or fake server stays in one process; the stream tests' files, which share one
# stack, go together: tests/conftest.py); TEST_PROCESSES=0 runs it in this one.
TEST_PROCESSES ?= 2
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest --ignore=tests/browser -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

# The unit layer alone (pure logic, a few seconds): no embedded server is started, and the
# database and Redis URLs point at a closed port, so a test that needs either fails here.
test-unit: install
	DATABASE_URL=postgres://nobody@127.0.0.1:9/none REDIS_URL=redis://127.0.0.1:9/0 \
	  $(PY) -m pytest -o addopts="-ra --strict-markers --timeout=60" -m unit --ignore=tests/browser $(PYTEST_ARGS)

# Headless Chromium against a live `make run` stack: needs Debian's chromium and chromium-driver
# (`.ci/run` installs them with apt-get). Screenshots land in .local/screenshots/.
test-browser: install
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

services: install
	$(PY) -m devserver.embedded start

stop:
	$(PY) -m devserver.embedded stop

migrate: install
	$(PY) manage.py migrate

# check --deploy with production settings, then pip-audit of the pinned requirements when its
# advisory database can be reached (it says so, and does not fail, when it cannot). A known
# advisory fails; a dependency PyPI does not know from here (a local build, a mirror's version) is
# named as not audited, and does not fail.
check: install
	DJANGO_ENV=production SECRET_KEY=$$($(PY) -c "import secrets;print(secrets.token_urlsafe(64))") \
	  ALLOWED_HOSTS=example.com $(PY) manage.py check --deploy --fail-level WARNING
	@if $(PY) -c "import urllib.request; urllib.request.urlopen('https://pypi.org/pypi/pip/json', timeout=5)" \
	    >/dev/null 2>&1; then \
	  mkdir -p .local; $(VENV)/bin/pip-audit --progress-spinner off -r requirements.txt > .local/pip-audit.txt 2>&1; \
	  found=$$?; grep -v -e "could not be audited" -e "^Name  *Skip Reason" -e "^-----" .local/pip-audit.txt; \
	  unaudited=$$(grep -c "could not be audited" .local/pip-audit.txt); \
	  if [ "$$unaudited" -gt 0 ]; then \
	    echo "pip-audit: $$unaudited dependencies not audited: PyPI does not know their versions from this machine (list: .local/pip-audit.txt)."; \
	  fi; \
	  exit $$found; \
	else \
	  echo "pip-audit: skipped, the advisory database (pypi.org) is not reachable from this machine."; \
	fi

lint: install
	$(VENV)/bin/ruff check .

# Benchmarks print ratios against a baseline run side by side; figures go in bench/README.md.
# The peers and profiler the benchmarks compare with (bench/requirements.txt) are theirs alone: the
# runtime never imports them.
bench: install
	$(PY) -m pip install --disable-pip-version-check -q -r bench/requirements.txt
	$(PY) -m devserver.embedded start
	$(PY) manage.py migrate --noinput
	$(PY) bench/task_overhead.py
	$(PY) bench/worker_kill.py
	$(PY) bench/checkpoints.py
	$(PY) bench/ingest.py
	$(PY) bench/ingest_api.py
	$(PY) bench/chat_overhead.py
	$(PY) bench/retrieval.py
	$(PY) bench/research.py
	$(PY) bench/canvas.py
	$(PY) bench/streams.py
	$(PY) bench/cleanup.py
	$(PY) bench/scale.py

clean:
	rm -rf .local
