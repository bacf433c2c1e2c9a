"""The operator's console in a real browser: styled, live, and every action a click away."""

import time

import pytest
from django.db import transaction
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from jobs.constants import Queue
from jobs.models import Job, JobRun
from tests.factories import JobRunFactory

SAME_ORIGIN_ONLY = """
const base = location.origin;
return performance.getEntriesByType('resource').map(e => e.name).filter(url => !url.startsWith(base));
"""


def wait(browser, seconds=30):
    # A live cell is replaced whole when its run changes: an element read a moment after the page
    # script swapped it is stale, and the next poll finds the new one.
    return WebDriverWait(browser, seconds, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))


def test_admin_is_styled_and_loads_nothing_from_elsewhere(logged_in):
    browser = logged_in
    header = browser.find_element(By.ID, "header")
    # Django's stylesheet paints the header; unstyled HTML leaves it transparent.
    assert header.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
    assert browser.execute_script("return getComputedStyle(document.body).fontFamily") != "\"Times New Roman\""
    browser.get(browser.base + "/admin/jobs/jobrun/")
    browser.shot("runs-list")
    assert browser.execute_script(SAME_ORIGIN_ONLY) == []


def test_progress_bar_moves_without_reload(logged_in, operator):
    from jobs.services.definitions import job_create, job_trigger

    browser = logged_in
    job = job_create(name=f"Countdown {operator.username}", kind="tests.countdown",
                     params={"steps": 16, "interval": 0.5}, owner=operator)
    with transaction.atomic():
        run = job_trigger(job=job, triggered_by="admin", actor=operator)
    browser.get(f"{browser.base}/admin/jobs/jobrun/{run.id}/change/")
    browser.execute_script("window.notReloaded = true")
    cell = f".run-live[data-run='{run.id}'] .run-bar"
    seen = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        value = browser.execute_script(f"var b=document.querySelector(\"{cell}\");"
                                       "return b ? b.getAttribute('aria-valuenow') : null")
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
            if len(seen) == 3:
                browser.shot("progress-moving")
        if value == "100":
            break
        time.sleep(0.2)
    assert len(seen) >= 4 and [int(v) for v in seen] == sorted(int(v) for v in seen), seen
    assert seen[-1] == "100"
    text = wait(browser).until(lambda b: (t := b.find_element(By.CSS_SELECTOR, f".run-live[data-run='{run.id}']").text)
                               and "SUCCESS" in t and t)
    # The message shown, not in a tooltip; the step it was in is over once the run succeeded.
    assert "0 left" in text and "counting down" not in text
    # The rest of the page follows, still without a reload: no Cancel button, the attempt counted,
    # the end time and the result, and the run's log line saying which attempt wrote it.
    wait(browser).until(lambda b: not b.find_elements(By.ID, "run-cancel"))
    wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, ".field-finished_at_s .readonly").text != "—")
    assert browser.find_element(By.CSS_SELECTOR, ".field-attempts_display .readonly").text.startswith("1/")
    assert '"steps": 16' in browser.find_element(By.CSS_SELECTOR, ".field-result_pretty .readonly").text
    entry = browser.find_element(By.CSS_SELECTOR, ".inline-related tbody tr.form-row")
    assert "Counted down 16 steps." in entry.text and entry.find_element(By.CSS_SELECTOR, "td.field-attempt").text == "1"
    assert browser.execute_script("return window.notReloaded") is True
    browser.shot("progress-done")
    # It followed the run's events (its stream opened: live.js says so once EventSource's `open`
    # fired), not a poll every second: the cells were rendered again only as the run changed.
    assert browser.execute_script("return document.documentElement.getAttribute('data-live')") in ("stream", "done")


def test_retry_a_dead_run_from_its_page(logged_in, operator):
    browser = logged_in
    dead = JobRunFactory(kind="jobs.ping", queue=Queue.JOBS, status="FAILURE", dead=True, owner=operator,
                         error="ConnectionError: the upstream went away", traceback="Traceback (most recent call)")
    browser.get(f"{browser.base}/admin/jobs/jobrun/{dead.id}/change/")
    browser.shot("dead-run")
    browser.find_element(By.ID, "run-retry").click()
    wait(browser).until(lambda b: JobRun.objects.filter(retry_of=dead).exists())
    retry = JobRun.objects.get(retry_of=dead)
    wait(browser).until(EC.url_contains(f"/admin/jobs/jobrun/{retry.id}/change/"))
    # The new run finishes on a real worker, and its page shows it without a reload.
    wait(browser, 60).until(EC.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f".run-live[data-run='{retry.id}']"), "SUCCESS"))
    browser.shot("retried-run")
    browser.get(f"{browser.base}/admin/jobs/jobrun/{dead.id}/change/")
    assert f"retried → {retry.short_id}" in browser.find_element(By.CSS_SELECTOR, ".run-live").text
    browser.get(f"{browser.base}/admin/jobs/jobrun/?attention=dead_letter&q={dead.short_id}")
    assert not browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_api_docs_render_every_operation_from_the_host(browser, page):
    browser.get(browser.base + page)
    if page == "/api/docs/":
        wait(browser).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) >= 30)
        assert "Upload a file" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    else:
        wait(browser).until(lambda b: "Upload a file" in b.find_element(By.TAG_NAME, "body").text)
    browser.shot("docs")
    assert browser.execute_script(SAME_ORIGIN_ONLY) == []


def test_a_research_digest_from_the_job_form_to_its_run_tree_and_digest(logged_in, operator):
    """An operator defines a digest in the admin, runs it, watches its children finish on the run
    page without a reload, and reads the digest from the job's page."""
    from documents.models import Document
    from documents.services import document_upload
    from research.models import Digest
    from tests.support.files import upload

    browser = logged_in
    notes = {"wal.txt": "Write-ahead logging flushes every change to the log before the data pages, so a crash "
                        "is recovered by replaying the log.",
             "fsync.txt": "Durability depends on fsync: a write still in a volatile cache is lost with the power.",
             "replicas.txt": "Synchronous replication waits for a standby to confirm the commit record."}
    ids = []
    for name, text in notes.items():
        with transaction.atomic():
            document, _ = document_upload(owner=operator, upload=upload(name, text.encode()), title=name)
        ids.append(document.id)
    wait(browser, 180).until(lambda b: Document.objects.filter(id__in=ids, status="ready").count() == 3)

    name = f"Durability digest {operator.username}"
    browser.get(browser.base + "/admin/jobs/job/add/")
    Select(browser.find_element(By.NAME, "kind")).select_by_value("research.digest")
    wait(browser).until(EC.presence_of_element_located((By.NAME, "param__topic")))
    browser.find_element(By.NAME, "name").send_keys(name)
    # A digest reads its owner's documents: the form asks whose (and refuses none).
    Select(browser.find_element(By.NAME, "owner")).select_by_value(str(operator.pk))
    browser.find_element(By.NAME, "param__topic").send_keys("How is committed data kept safe?")
    browser.find_element(By.NAME, "param__questions").send_keys("What happens after a crash?")
    browser.find_element(By.CSS_SELECTOR, "input[name=param__formats][value=text]").click()
    browser.find_element(By.NAME, "_continue").click()
    job = wait(browser).until(lambda b: Job.objects.filter(name=name).first())
    assert job.params["questions"] == ["What happens after a crash?"] and job.params["formats"] == ["text"]

    wait(browser).until(EC.presence_of_element_located((By.ID, "job-run-now"))).click()
    run = wait(browser).until(lambda b: JobRun.objects.filter(job=job).first())
    wait(browser, 60).until(lambda b: run.children.exists() or JobRun.objects.get(id=run.id).is_finished)
    browser.get(f"{browser.base}/admin/jobs/jobrun/{run.id}/change/")
    browser.execute_script("window.notReloaded = true")
    rows = browser.find_elements(By.CSS_SELECTOR, ".run-tree > tbody > tr")[1:]
    assert len(rows) == 3 and all("research.process_document" in row.text for row in rows)
    assert {row.find_element(By.CSS_SELECTOR, "a[href*='/admin/documents/document/']").text for row in rows} == {
        f"{Document.objects.get(id=i).title} ({i})" for i in ids}
    wait(browser, 90).until(lambda b: all("SUCCESS" in cell.text for cell in b.find_elements(
        By.CSS_SELECTOR, ".run-tree .run-live")))
    wait(browser, 60).until(EC.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f".field-live .run-live[data-run='{run.id}']"), "SUCCESS"))
    assert browser.execute_script("return window.notReloaded") is True
    browser.shot("digest-run-tree")

    browser.get(f"{browser.base}/admin/jobs/job/{job.id}/change/")
    browser.find_element(By.CSS_SELECTOR, ".field-latest_output a").click()
    digest = Digest.objects.get(run=run)
    wait(browser).until(EC.url_contains(f"/admin/research/digest/{digest.id}/change/"))
    content = browser.find_element(By.CSS_SELECTOR, ".field-content_pre pre").text
    assert "How is committed data kept safe?" in content and "## wal.txt" in content and "[1]" in content
    cited = browser.find_elements(By.CSS_SELECTOR, ".field-citations_table tr")[1:]
    assert len(cited) == len(digest.citations) >= 3
    covered = browser.find_element(By.CSS_SELECTOR, ".field-documents_covered").text
    assert all(title in covered for title in notes)
    browser.shot("digest-page")
    assert browser.execute_script(SAME_ORIGIN_ONLY) == []


def test_an_inline_script_or_handler_is_refused_and_reported(logged_in):
    """The policy is in force, and the suite would see a page that broke it: a script written into
    the admin's page by hand (as an injection would be) does not run, and the console says why."""
    from tests.browser.conftest import csp_violations

    logged_in.get(logged_in.base + "/admin/")
    csp_violations(logged_in)  # what came before is the other tests' business
    ran = logged_in.execute_script("""
        window.injected = false;
        const script = document.createElement('script');
        script.textContent = 'window.injected = true';
        document.body.appendChild(script);
        const button = document.createElement('button');
        button.setAttribute('onclick', 'window.injected = true');
        document.body.appendChild(button);
        button.click();
        return window.injected;
    """)
    assert ran is False
    refused = csp_violations(logged_in)
    assert len(refused) >= 2 and all("script-src" in message for message in refused), refused


# A phone's width and a laptop's.
WIDTHS = [390, 1280]
NOTHING_OVERFLOWS = """
const width = document.documentElement.clientWidth;
const wide = [...document.querySelectorAll('#content *')].filter(el => {
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.right > width + 1 && !el.closest('.results');
}).map(el => el.tagName + '.' + el.className + ' ' + (el.textContent || '').trim().slice(0, 40));
return {scrolls: document.documentElement.scrollWidth > width + 1, wide: wide.slice(0, 5), width: innerWidth};
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_dashboard_and_a_run_tree_fit_the_screen(logged_in, operator, width):
    """From a phone to a desktop: no sideways scrolling, no label wrapped a letter per line, and
    every child's status and attempts in view."""
    browser = logged_in
    parent = JobRunFactory(kind="tests.fan_out", queue=Queue.JOBS, status="PROGRESS", owner=operator,
                           awaiting_children=True, progress_total=3, args={"key": "layout", "children": 3})
    for index, status in enumerate(("SUCCESS", "FAILURE", "PROGRESS")):
        JobRunFactory(kind="tests.child", queue=Queue.JOBS, status=status, parent=parent, owner=operator,
                      args={"key": "layout", "index": index}, dead=status == "FAILURE",
                      error="ValueError: a child that failed" if status == "FAILURE" else "")
    browser.set_window_size(width, 1000)
    assert browser.execute_script("return innerWidth") <= width
    browser.get(browser.base + "/admin/")
    browser.shot(f"dashboard-{width}")
    layout = browser.execute_script(NOTHING_OVERFLOWS)
    assert not layout["scrolls"] and layout["wide"] == [], layout
    labels = browser.find_elements(By.CSS_SELECTOR, ".run-summary dt")
    assert len(labels) == 3 and all(label.size["height"] < 30 for label in labels), \
        [(label.text, label.size) for label in labels]  # one line each, not a letter per line
    browser.get(f"{browser.base}/admin/jobs/jobrun/{parent.id}/change/")
    browser.execute_script("document.querySelector('.run-tree').scrollIntoView()")
    browser.shot(f"run-tree-{width}")
    layout = browser.execute_script(NOTHING_OVERFLOWS)
    assert not layout["scrolls"] and layout["wide"] == [], layout
    right_edge = browser.execute_script("return document.documentElement.clientWidth")
    for cell in browser.find_elements(By.CSS_SELECTOR, ".run-tree .run-live, .run-tree .run-field"):
        box = cell.rect
        assert cell.is_displayed() and box["x"] >= 0 and box["x"] + box["width"] <= right_edge + 1, cell.text


def test_beats_admin_leaves_the_watchdog_and_a_jobs_schedule_to_their_owners(logged_in, operator):
    """The operator's bulk "Disable" cannot switch off the recovery that needs no operator, and a
    job's crontab row cannot be edited away from what the job says; the list says when each runs."""
    from django_celery_beat.models import PeriodicTask

    from jobs.services.definitions import job_create

    browser = logged_in
    job = job_create(name=f"Weekdays {operator.username}", kind="tests.countdown", owner=operator,
                     params={"steps": 1}, schedule={"crontab": "30 6 * * 1-5", "timezone": "UTC"})
    wait(browser, 60).until(lambda b: PeriodicTask.objects.filter(name="jobs-watchdog").exists())  # beat installs it
    watchdog = PeriodicTask.objects.get(name="jobs-watchdog")
    browser.get(browser.base + "/admin/django_celery_beat/periodictask/")
    assert "NEXT RUN" in browser.find_element(By.CSS_SELECTOR, "#result_list thead").text.upper()
    for task_id in (watchdog.id, job.periodic_task_id):
        browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{task_id}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("disable_tasks")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    warning = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .warning")))
    assert "2 periodic task(s) left as they are" in warning.text
    browser.shot("beat-bulk-refused")
    assert PeriodicTask.objects.get(id=watchdog.id).enabled and PeriodicTask.objects.get(id=job.periodic_task_id).enabled
    crontab = PeriodicTask.objects.get(id=job.periodic_task_id).crontab
    browser.get(f"{browser.base}/admin/django_celery_beat/crontabschedule/{crontab.id}/change/")
    notice = browser.find_element(By.CSS_SELECTOR, ".messagelist .info")
    assert job.name in notice.text and not browser.find_elements(By.NAME, "_save")
    browser.shot("beat-crontab-read-only")
    notice.find_element(By.LINK_TEXT, job.name).click()
    wait(browser).until(EC.url_contains(f"/admin/jobs/job/{job.id}/change/"))


def test_a_run_an_operator_starts_on_a_users_job_is_the_users(logged_in, operator, stack):
    """From the owner's side: the run "Run now" makes on alice's job is in alice's own list and
    opens for her; the page shows her as its owner and the operator as who started it."""
    import uuid

    import httpx
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from jobs.services.definitions import job_create

    browser = logged_in
    alice = get_user_model().objects.create_user(f"alice-{uuid.uuid4().hex[:6]}")
    token = Token.objects.create(user=alice).key
    job = job_create(name="Alice's countdown", kind="tests.countdown", owner=alice, params={"steps": 2})
    browser.get(f"{browser.base}/admin/jobs/job/{job.id}/change/")
    browser.find_element(By.ID, "job-run-now").click()
    run = wait(browser).until(lambda b: JobRun.objects.filter(job=job).first())
    browser.get(f"{browser.base}/admin/jobs/jobrun/{run.id}/change/")
    assert browser.find_element(By.CSS_SELECTOR, ".field-owner .readonly").text == alice.username
    assert browser.find_element(By.CSS_SELECTOR, ".field-started_by .readonly").text == operator.username
    browser.shot("run-owner-and-starter")
    with httpx.Client(base_url=browser.base, headers={"Authorization": f"Bearer {token}"}, timeout=5) as client:
        listed = client.get("/api/runs/", params={"job": job.id}).json()["results"]
        assert [r["id"] for r in listed] == [str(run.id)] and listed[0]["started_by"] == operator.id
        assert client.get(f"/api/runs/{run.id}/").status_code == 200


def _log_in_as(browser, groups: list[str]):
    """A fresh staff user in `groups` (core.roles), logged in in place of whoever was."""
    import uuid

    from tests.factories import StaffFactory

    user = StaffFactory(username=f"staff-{uuid.uuid4().hex[:8]}", groups=groups)
    user.set_password("staff-pw-4417")
    user.save()
    browser.delete_all_cookies()
    browser.get(browser.base + "/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(user.username)
    browser.find_element(By.NAME, "password").send_keys("staff-pw-4417")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "user-tools")))
    return user


def test_a_viewer_sees_another_users_run_with_no_action_and_an_operator_cancels_it(browser, committed, screenshots):
    from core.roles import OPERATORS, VIEWERS
    from tests.factories import UserFactory

    alice = UserFactory()
    waiting = JobRunFactory(kind="tests.stubborn", queue=Queue.JOBS, status="QUEUED", owner=alice,
                            args={"key": "never-published"})
    _log_in_as(browser, [VIEWERS])
    browser.get(f"{browser.base}/admin/jobs/jobrun/{waiting.id}/change/")
    browser.shot("run-page-as-viewer")
    assert browser.find_elements(By.CSS_SELECTOR, ".run-live")  # the run is there to read
    assert not browser.find_elements(By.ID, "run-cancel") and not browser.find_elements(By.ID, "run-retry")
    browser.get(f"{browser.base}/admin/jobs/jobrun/")
    assert not browser.find_elements(By.NAME, "action")  # no bulk action is offered

    _log_in_as(browser, [OPERATORS])
    browser.get(f"{browser.base}/admin/jobs/jobrun/{waiting.id}/change/")
    browser.shot("run-page-as-operator")
    browser.find_element(By.ID, "run-cancel").click()
    wait(browser).until(lambda b: JobRun.objects.get(id=waiting.id).status == "REVOKED")
    browser.get(f"{browser.base}/admin/jobs/jobrun/{waiting.id}/history/")
    assert "Cancelled" in browser.find_element(By.ID, "change-history").text

# Every cell of every row of the result list, and the viewport's right edge: a cell past it is
# one an operator has to scroll sideways to read.
CELLS_PAST_THE_EDGE = """
const edge = document.documentElement.clientWidth;
return [...document.querySelectorAll('#result_list tbody td, #result_list tbody th')].filter(cell => {
  const box = cell.getBoundingClientRect();
  return box.width > 0 && box.right > edge + 1;
}).map(cell => cell.className + ': ' + cell.textContent.trim().slice(0, 30));
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_runs_and_documents_lists_show_every_column_without_scrolling(logged_in, operator, width):
    from tests.factories import DocumentFactory

    browser = logged_in
    failed = JobRunFactory(kind="research.process_document", queue=Queue.RESEARCH, status="FAILURE", dead=True,
                           owner=operator,
                           error="LLMUnavailable: the AI server answered 503 three times; the last attempt timed "
                                 "out after 90 s while waiting for the first byte")
    document = DocumentFactory(owner=operator, title=f"Operator's notes {width} {operator.username}.txt")
    browser.set_window_size(width, 1000)
    browser.get(f"{browser.base}/admin/jobs/jobrun/?q={failed.short_id}")
    browser.shot(f"runs-list-{width}")
    assert browser.execute_script(CELLS_PAST_THE_EDGE) == []
    row = browser.find_element(By.XPATH, f"//tr[.//a[text()='{failed.short_id}']]")
    # Each fact an operator scans the list for is in the row: status, kind and queue, attempts,
    # the error's start, the owner and how it started, and when it was accepted.
    for text in ("FAILURE", "research.process_document", "research", "0/", "LLMUnavailable", operator.username,
                 "System"):
        assert text in row.text, (text, row.text)
    browser.get(f"{browser.base}/admin/documents/document/?q={operator.username}")
    browser.shot(f"documents-list-{width}")
    assert browser.execute_script(CELLS_PAST_THE_EDGE) == []
    row = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr")
    assert document.title in row.text and operator.username in row.text and "Ready" in row.text


@pytest.mark.parametrize("width", WIDTHS)
def test_a_finished_ingestions_page_names_its_document_and_shows_nothing_alarming(logged_in, operator, width):
    from documents.services import document_upload
    from tests.support.files import upload

    browser = logged_in
    with transaction.atomic():
        text = f"Revenue grew in {width} {operator.username}. " * 50
        document, _ = document_upload(owner=operator, upload=upload("quarterly.txt", text.encode()),
                                      title=f"Quarterly report {width}")
    run = document.run
    wait(browser, 120).until(lambda b: JobRun.objects.get(id=run.id).status == "SUCCESS")
    browser.set_window_size(width, 1000)
    browser.get(f"{browser.base}/admin/jobs/jobrun/{run.id}/change/")
    browser.shot(f"run-page-{width}")
    assert f"Quarterly report {width}" in browser.find_element(By.CSS_SELECTOR, ".field-args_links").text
    live = browser.find_element(By.CSS_SELECTOR, f".field-live .run-live[data-run='{run.id}']").text
    assert "SUCCESS" in live and "indexing" not in live  # no step left over from the work
    cancel = browser.find_element(By.CSS_SELECTOR, ".field-cancel_state .readonly")
    assert cancel.text == "No" and not cancel.find_elements(By.TAG_NAME, "img")  # no red icon for "no"
    assert not browser.find_elements(By.CSS_SELECTOR, "#content img[src*='icon-no']")
    assert "checkpoints" in browser.find_element(By.CSS_SELECTOR, ".field-steps_kept").text
    layout = browser.execute_script(NOTHING_OVERFLOWS)
    assert not layout["scrolls"] and layout["wide"] == [], layout


@pytest.mark.parametrize("width", WIDTHS)
def test_the_job_form_keeps_what_was_typed_and_puts_each_error_on_its_field(logged_in, operator, width):
    browser = logged_in
    browser.set_window_size(width, 1000)
    name = f"Typed first {operator.username} {width}"
    browser.get(browser.base + "/admin/jobs/job/add/")
    browser.find_element(By.NAME, "name").send_keys(name)
    browser.find_element(By.NAME, "enabled").click()  # unticked
    browser.find_element(By.NAME, "crontab").send_keys("61 * * *")
    Select(browser.find_element(By.NAME, "kind")).select_by_value("tests.countdown")
    wait(browser).until(EC.presence_of_element_located((By.NAME, "param__steps")))
    # The kind change reloaded the form with its params, and what was typed before it is still there.
    assert browser.find_element(By.NAME, "name").get_attribute("value") == name
    assert browser.find_element(By.NAME, "crontab").get_attribute("value") == "61 * * *"
    assert not browser.find_element(By.NAME, "enabled").is_selected()
    browser.shot(f"job-form-{width}")
    layout = browser.execute_script(NOTHING_OVERFLOWS)
    assert not layout["scrolls"] and layout["wide"] == [], layout
    edge = browser.execute_script("return document.documentElement.clientWidth")
    for field in browser.find_elements(By.CSS_SELECTOR, "#content .form-row select, #content .form-row input"
                                                        "[type=text], #content .form-row textarea"):
        assert field.rect["x"] + field.rect["width"] <= edge + 1, field.get_attribute("name")

    # "On demand only" with a crontab typed: said on the crontab's field, nothing saved.
    browser.find_element(By.NAME, "param__steps").send_keys("3")
    browser.find_element(By.NAME, "_save").click()
    error = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".field-crontab .errorlist")))
    assert "On demand only" in error.text and "Crontab" in error.text
    browser.shot(f"job-form-errors-{width}")
    assert not Job.objects.filter(name=name).exists()
    Select(browser.find_element(By.NAME, "schedule_type")).select_by_value("crontab")
    browser.find_element(By.NAME, "_save").click()
    wait(browser).until(EC.staleness_of(error))  # the page the form came back on, not the last one
    error = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".field-crontab .errorlist")))
    assert "crontab" in error.text.lower() and "On demand only" not in error.text
    assert browser.find_element(By.NAME, "name").get_attribute("value") == name
    crontab = browser.find_element(By.NAME, "crontab")
    crontab.clear()
    crontab.send_keys("0 3 * * *")
    browser.find_element(By.NAME, "_save").click()
    wait(browser).until(EC.url_to_be(browser.base + "/admin/jobs/job/"))
    job = Job.objects.get(name=name)
    assert job.params == {"steps": 3} and job.schedule == {"crontab": "0 3 * * *", "timezone": "UTC"}
    # Saved disabled, as it was ticked off before the kind was chosen: beat has its entry, switched off.
    assert not job.enabled and job.periodic_task is not None and not job.periodic_task.enabled
    browser.shot(f"job-saved-{width}")


def test_an_operator_sees_no_schedules_no_job_can_have_and_no_add_for_results(browser, committed):
    from core.roles import OPERATORS

    _log_in_as(browser, [OPERATORS])
    browser.get(browser.base + "/admin/")
    page = browser.find_element(By.ID, "content").text
    for absent in ("Clocked", "Solar events", "Access attempts", "Access logs", "Access failures"):
        assert absent not in page, absent
    browser.get(browser.base + "/admin/django_celery_results/taskresult/")
    assert not browser.find_elements(By.CSS_SELECTOR, ".object-tools a.addlink")


FOLLOW_REPLY = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
const source = new EventSource(url);
const seen = {names: [], text: ""};
for (const name of ["status", "delta", "reset", "done", "error", "stopped"]) {
  source.addEventListener(name, (event) => {
    seen.names.push(name);
    const data = JSON.parse(event.data);
    if (name === "delta") seen.text += data.delta;
    if (name === "reset") seen.text = "";
    if (["done", "error", "stopped"].includes(name)) { source.close(); seen.end = data; done(seen); }
  });
}
source.onerror = () => { if (!seen.end) { source.close(); seen.failed = source.readyState; done(seen); } };
"""


def test_chromiums_eventsource_follows_a_reply_and_a_run_with_the_admins_session(logged_in, operator):
    from chat.models import ChatSession, Message
    from chat.services import message_post

    browser = logged_in
    with transaction.atomic():
        message = message_post(session=ChatSession.objects.create(owner=operator), content="What do my notes say?")
    browser.set_script_timeout(60)
    seen = browser.execute_async_script(FOLLOW_REPLY, f"/api/chat/messages/{message.id}/stream/")
    assert "failed" not in seen, seen
    assert seen["names"][-1] == "done" and "delta" in seen["names"]
    saved = Message.objects.get(reply_to=message)
    assert seen["text"] == saved.content == seen["end"]["message"]["content"]
    # The run's own events, in the same browser: its log lines, then its final status.
    events = browser.execute_async_script("""
        const [url, done] = [arguments[0], arguments[arguments.length - 1]];
        const source = new EventSource(url); const names = [];
        for (const name of ["status", "progress", "log"]) {
          source.addEventListener(name, (event) => {
            names.push(name);
            if (name === "status" && ["SUCCESS", "FAILURE", "REVOKED"].includes(JSON.parse(event.data).status)) {
              source.close(); done(names);
            }
          });
        }
        source.onerror = () => { source.close(); done(names.concat(["error"])); };
    """, f"/api/runs/{message.run_id}/events/")
    assert events[-1] == "status" and "log" in events and "error" not in events

    # The admin's page of a user message follows its reply as it is written, to the saved text.
    with transaction.atomic():
        second = message_post(session=message.session, content="And what else?")
    browser.get(f"{browser.base}/admin/chat/message/{second.id}/change/")
    box = ".reply-live"
    wait(browser, 60).until(lambda b: b.find_element(By.CSS_SELECTOR, box).get_attribute("data-finished") == "1")
    shown = browser.find_element(By.CSS_SELECTOR, f"{box} .reply-text").text
    assert shown == Message.objects.get(reply_to=second).content.strip()
    # Followed to its end, or already saved when the page was drawn (a reply of passages is quick).
    assert browser.find_element(By.CSS_SELECTOR, box).get_attribute("data-live") in (None, "done")
    browser.shot("reply-followed")
