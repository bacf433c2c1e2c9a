"""Headless Chromium (Debian's chromium and chromium-driver, through Selenium) against a live
`make run` stack on the test database: `make test-browser`. Screenshots go to .local/screenshots/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.support.launcher import Launcher, celery_processes_of
from tests.support.tasks import EFFECTS_DDL

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".local" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """The test database, made as pytest-django makes it. Its own fixture only makes it for tests
    marked django_db, and these are not: their writes must commit for the live stack to see them."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """web + workers + beat as `make run` starts them, with the tests' kinds registered."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
                    "(`.ci/run` does, with apt-get)", pytrace=False)
    marker = f"BROWSER_STACK_MARK={time.time_ns()}"
    # Never a developer's own database: the stack and the tests write to it.
    assert connection.settings_dict["NAME"].startswith("test_"), connection.settings_dict["NAME"]
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(EFFECTS_DDL)
        launcher = Launcher(tmp_path_factory.mktemp("stack"), TASK_MODULES_EXTRA="tests.support.tasks",
                            BROWSER_STACK_MARK=marker.split("=")[1])
        try:
            launcher.start()
            yield launcher
        finally:
            launcher.kill(marker)
            assert not celery_processes_of(marker)


@pytest.fixture(scope="session")
def screenshots():
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture
def browser(stack, screenshots, request):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Headless, and nothing of Chromium's own traffic: every request a page makes is the page's.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1400,1000"):
        options.add_argument(flag)
    # The console, where Chromium reports every Content-Security-Policy violation of every page.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.base = f"http://127.0.0.1:{stack.port}"
    driver.shot = lambda name: driver.save_screenshot(str(screenshots / f"{request.node.name}-{name}.png"))
    yield driver
    driver.shot("last")
    violations = csp_violations(driver)
    driver.quit()
    assert violations == [], "pages broke the Content-Security-Policy"


def csp_violations(driver) -> list[str]:
    """What the browser refused under the policy since the last call (a script, handler or style)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Content-Security-Policy" in entry["message"]]


@pytest.fixture
def committed(django_db_blocker):
    """Database access whose writes commit at once, for the live stack to see. Not emptied after each
    test (a flush would renumber content types under the running server): tests make unique rows."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def operator(committed):
    """A staff user the browser logs in as."""
    import uuid

    from django.contrib.auth import get_user_model

    password = "operator-pw-7261"
    name = f"operator-{uuid.uuid4().hex[:8]}"
    user = get_user_model().objects.create_superuser(name, f"{name}@example.com", password)
    user.plain_password = password
    return user


@pytest.fixture
def logged_in(browser, operator):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(browser.base + "/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(operator.username)
    browser.find_element(By.NAME, "password").send_keys(operator.plain_password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click returns before the next page has loaded: wait for the logged-in header.
    tools = WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.ID, "user-tools")))
    assert tools.text.upper().startswith("WELCOME")
    return browser
