"""How an outside service's HTTP answer is sorted for the retry policy (pure: answers built here)."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from core.errors import PermanentError, TransientError
from integrations.http import response_check, retry_after_seconds


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, text='{"error": "sk-secret-echoed-back"}')


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("", None)])
def test_retry_after_in_seconds_accepts_whole_and_fractional_numbers(value, seconds):
    assert retry_after_seconds(answer(429, **({"Retry-After": value} if value else {}))) == seconds


def test_retry_after_as_an_http_date_counts_from_now():
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_seconds(answer(503, **{"Retry-After": when})) <= 30


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_transient_with_the_servers_hint(status):
    with pytest.raises(TransientError) as raised:
        response_check(answer(status, **{"Retry-After": "4"}), service="embedding server")
    assert raised.value.retry_after == 4.0 and str(raised.value).startswith(f"embedding server answered {status}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_permanent_and_never_repeat_the_body(status):
    with pytest.raises(PermanentError) as raised:
        response_check(answer(status), service="AI server")
    assert "sk-secret" not in str(raised.value) and f"refused the request: {status}" in str(raised.value)


def test_success_passes():
    assert response_check(answer(200), service="AI server") is None
