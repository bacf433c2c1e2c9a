"""The pure parts of a run's live events: how they are coalesced, encoded and ordered."""

import pytest

from core.streams import Event
from jobs.live import RunEvent, _coalesced, entry_id_order, message_decode

pytestmark = pytest.mark.unit


def test_back_to_back_deltas_of_one_run_leave_as_one_and_nothing_else_merges():
    events = [RunEvent("a", "delta", {"delta": "Hel"}, kept=True), RunEvent("a", "delta", {"delta": "lo"}, kept=True),
              RunEvent("b", "delta", {"delta": "x"}, kept=True), RunEvent("a", "reset", {"attempt": 2}, kept=True),
              RunEvent("a", "delta", {"delta": "new"}, kept=True), RunEvent("a", "progress", {"current": 1})]
    assert [(e.run_id, e.type, e.data) for e in _coalesced(events)] == [
        ("a", "delta", {"delta": "Hello"}), ("b", "delta", {"delta": "x"}), ("a", "reset", {"attempt": 2}),
        ("a", "delta", {"delta": "new"}), ("a", "progress", {"current": 1})]


def test_a_channel_message_decodes_to_its_entry_id_type_and_data_and_garbage_to_nothing_harmful():
    assert message_decode(b'1700000000000-3\ndelta\n{"delta":"a\\nb"}') == ("1700000000000-3", "delta", {"delta": "a\nb"})
    assert message_decode("\nstatus\n{\"status\":\"STARTED\"}") == ("", "status", {"status": "STARTED"})
    assert message_decode(b"garbage") == ("garbage", "", {})
    assert message_decode(b"\nlog\n[1,2]") == ("", "log", {})


def test_entry_ids_order_as_redis_orders_them():
    ids = ["1700000000000-10", "1700000000000-9", "1700000000001-0", "999-0"]
    assert sorted(ids, key=entry_id_order) == ["999-0", "1700000000000-9", "1700000000000-10", "1700000000001-0"]


def test_an_event_is_one_sse_block_whose_data_is_one_line_of_json():
    block = Event("delta", {"delta": "two\nlines"}, id="5-1").encode().decode()
    assert block == 'id: 5-1\nevent: delta\ndata: {"delta":"two\\nlines"}\n\n'
    assert Event("status", {"state": "queued"}).encode().startswith(b"event: status\n")
