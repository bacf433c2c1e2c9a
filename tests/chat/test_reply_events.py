"""How a reply's stream tells its run's events (chat/streams.py's ReplyFeed), without a server."""

from types import SimpleNamespace

import pytest

from chat.streams import ReplyFeed

pytestmark = pytest.mark.unit


def _feed() -> ReplyFeed:
    return ReplyFeed(SimpleNamespace(pk=7, run_id="0b0e5d3c-0000-4000-8000-000000000001"))


def _message(entry_id: str, event_type: str, data: str) -> bytes:
    return f"{entry_id}\n{event_type}\n{data}".encode()


def test_text_is_passed_on_once_by_id_and_a_reset_only_when_text_was_shown():
    feed = _feed()
    assert feed.on_message("c", _message("1-0", "reset", '{"attempt":1}')) == []  # nothing shown yet
    [delta] = feed.on_message("c", _message("1-1", "delta", '{"delta":"Hi"}'))
    assert (delta.event, delta.data, delta.id) == ("delta", {"delta": "Hi"}, "1-1")
    assert feed.on_message("c", _message("1-1", "delta", '{"delta":"Hi"}')) == []  # read from the stream too
    [reset] = feed.on_message("c", _message("2-0", "reset", '{"attempt":2}'))
    assert reset.event == "reset" and reset.id == "2-0"


def test_where_the_reply_stands_is_told_once_per_change_and_the_end_asks_for_the_database():
    feed = _feed()
    [queued] = feed.on_message("c", _message("", "status", '{"status":"QUEUED"}'))
    assert queued.data == {"state": "queued"} and queued.id == "0-0"
    retry = '{"status":"RETRY","attempt":1,"retry_at":"2026-12-07T10:00:05+00:00","error":"AI server answered 503"}'
    [retrying] = feed.on_message("c", _message("", "status", retry))
    assert retrying.data["state"] == "retrying" and retrying.data["retry_at"].endswith("+00:00")
    stopping = '{"status":"STARTED","cancel_requested":true}'
    assert [e.data for e in feed.on_message("c", _message("", "status", stopping))] == [{"state": "stopping"}]
    assert feed.on_message("c", _message("", "status", stopping)) == []  # every worker that hears it says so
    assert feed.on_message("c", _message("", "progress", '{"current":1}')) == []
    assert feed.on_message("c", _message("", "status", '{"status":"SUCCESS"}')) is None
