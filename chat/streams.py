"""A reply as the LLM writes it (`stream_url` of a posted message), as Server-Sent Events.

Before the first word: `status` events saying where the reply stands (`queued`, `retrying` with
when, `started` with the attempt, `stopping`). Then `delta` events of new text, and `reset` when
an attempt starts the text over (its worker was lost, or the LLM failed mid-answer and it is being
retried): discard what was shown. Then exactly one of `done` (the saved reply), `error` (the apology
saved after the last attempt failed) or `stopped` (stopped by its user: the text so far, kept), and
the stream closes.

Event ids are the ids of the text's entries in Redis (`<ms>-<seq>`): resuming with one gives every
entry after it. Once the reply is saved, the stream is replayed from the database: the reply whole
(id `0-1`), then its end (id `end`; resuming after it answers 204). A Last-Event-ID that is not one
of this reply's is refused (400) while its text is kept; once Redis no longer keeps it, a reply that
has ended is replayed whole after a `reset`.
"""

from __future__ import annotations

from chat.models import Message, Role
from chat.selectors import session_visible_to
from chat.services import reply_event
from core.errors import ErrorCode
from core.streams import Event, StreamRefused, not_found, stream_route
from jobs.public import (
    FINISHED_STATUSES,
    JobRun,
    LiveEventsUnavailable,
    RunStatus,
    entry_id_order,
    message_decode,
    run_events_key,
    run_status_event,
    run_stream_holds,
    run_stream_read,
)

# The id of the events before any text (where the reply stands), and of a reply replayed from the
# database whole: resuming after the first gives all the text, after the second only the end.
BEFORE_TEXT_ID = "0-0"
WHOLE_REPLY_ID = "0-1"
FROM_THE_START = (None, BEFORE_TEXT_ID, WHOLE_REPLY_ID)
TERMINAL_EVENT = {RunStatus.SUCCESS: "done", RunStatus.FAILURE: "error", RunStatus.REVOKED: "stopped"}


def reply_stream_path(message_id: int) -> str:
    return f"/api/chat/messages/{message_id}/stream/"


def _state(data: dict) -> dict | None:
    """A run's `status` event as the reply's: where the reply stands, or None (nothing to tell)."""
    status = data.get("status")
    if data.get("cancel_requested"):
        return {"state": "stopping"}
    if status == RunStatus.QUEUED:
        return {"state": "queued", **({"due_at": data["due_at"]} if data.get("due_at") else {})}
    if status == RunStatus.RETRY:
        return {"state": "retrying", "attempt": data.get("attempt"), "retry_at": data.get("retry_at"),
                "error": data.get("error")}
    if status == RunStatus.STARTED:
        return {"state": "started", "attempt": data.get("attempt"), "max_attempts": data.get("max_attempts")}
    return None


def _standing(state: dict | None) -> tuple | None:
    return None if state is None else (state.get("state"), state.get("attempt"))


class ReplyFeed:
    def __init__(self, message: Message):
        self.message_id = message.pk
        self.run_id = message.run_id
        self.channels = [run_events_key(message.run_id)]
        self.ended = False
        self.cursor: str | None = None
        self.text_shown = False
        self.reply: dict | None = None
        self.redis_away = False
        self.state_shown: dict | None = None

    # --- from what is stored -----------------------------------------------------------------

    def _run(self) -> JobRun:
        return JobRun.objects.get(id=self.run_id)

    def _saved_reply(self) -> dict | None:
        reply = Message.objects.filter(reply_to_id=self.message_id, role=Role.ASSISTANT, run_id=self.run_id).first()
        return reply_event(reply) if reply else None

    def _ending(self, run: JobRun) -> list[Event]:
        """The one terminal event, with the reply as saved."""
        reply = self.reply if self.reply and self.reply.get("status") else self._saved_reply()
        data = {"message": reply}
        if run.status == RunStatus.FAILURE:
            data["error"] = run.error
        self.ended = True
        return [Event(TERMINAL_EVENT[RunStatus(run.status)], data, id="end")]

    def _whole(self, run: JobRun, *, after_whole: bool = False) -> list[Event]:
        """A reply that has ended, from the database: its text in one `delta`, then its end."""
        events = []
        if self.text_shown and not after_whole:
            events.append(Event("reset", {"reason": "the reply is given again, whole"}, id=WHOLE_REPLY_ID))
        reply = self._saved_reply()
        self.reply = reply
        if reply and reply["content"] and not after_whole and run.status != RunStatus.FAILURE:
            events.append(Event("delta", {"delta": reply["content"]}, id=WHOLE_REPLY_ID))
        return events + self._ending(run)

    # --- the feed ----------------------------------------------------------------------------

    def opening(self, *, last_event_id: str | None) -> list[Event]:
        run = self._run()
        resumed = last_event_id not in FROM_THE_START
        self.text_shown = last_event_id not in (None, BEFORE_TEXT_ID)
        kept = self._kept(after=last_event_id if resumed else None, check=resumed)
        if run.status in FINISHED_STATUSES:
            if kept is None or not resumed:
                return self._whole(run, after_whole=last_event_id == WHOLE_REPLY_ID)
            return self._entries(kept) + self._ending(run)
        events = self._status(_state(run_status_event(run)))
        if kept is None and self.redis_away:
            return events + self.redis_lost()
        return events + self._entries(kept or [])

    def _kept(self, *, after: str | None, check: bool) -> list[tuple[str, str, dict]] | None:
        """The reply's kept entries after `after`; None when Redis keeps none (or does not answer)."""
        try:
            if check:
                held = run_stream_holds(run_id=self.run_id, entry_id=after)
                if held is False or (held is None and not self._finished()):
                    raise StreamRefused(400, ErrorCode.INVALID, "Last-Event-ID is not an event of this reply's stream.")
                if held is None:
                    return None
            return run_stream_read(run_id=self.run_id, after=after)
        except LiveEventsUnavailable:
            self.redis_away = True
            return None

    def _finished(self) -> bool:
        return JobRun.objects.filter(id=self.run_id, status__in=FINISHED_STATUSES).exists()

    def _entries(self, entries: list[tuple[str, str, dict]]) -> list[Event]:
        events = []
        for entry_id, event_type, data in entries:
            events += self._entry(entry_id, event_type, data)
        return events

    def _entry(self, entry_id: str, event_type: str, data: dict) -> list[Event]:
        if self.cursor is not None and entry_id_order(entry_id) <= entry_id_order(self.cursor):
            return []  # heard on the channel and read from the stream: once
        self.cursor = entry_id
        if event_type == "delta" and isinstance(data.get("delta"), str):
            self.text_shown = True
            return [Event("delta", {"delta": data["delta"]}, id=entry_id)]
        if event_type == "reset":
            if not self.text_shown:
                return []  # nothing shown to discard
            self.text_shown = False
            return [Event("reset", {"reason": f"attempt {data.get('attempt')} starts the reply over"}, id=entry_id)]
        if event_type == "reply":
            self.reply = data
        return []

    def on_message(self, channel: str, payload: bytes) -> list[Event] | None:
        entry_id, event_type, data = message_decode(payload)
        if entry_id:
            return self._entry(entry_id, event_type, data)
        if event_type != "status":
            return []
        if data.get("status") in FINISHED_STATUSES:
            return None  # catch_up gives the end, with the reply as saved
        return self._status(_state(data))

    def _status(self, state: dict | None) -> list[Event]:
        """Where the reply stands, when that changed: a cancel is announced by every worker that hears
        it, and a transition read from the run as the stream opens may be heard again on the channel
        (with the time the worker computed, not the database's)."""
        if state is None or _standing(state) == _standing(self.state_shown):
            return []
        self.state_shown = state
        return [Event("status", state, id=self.cursor or BEFORE_TEXT_ID)]

    def catch_up(self) -> list[Event]:
        run = self._run()
        if run.status not in FINISHED_STATUSES:
            return []
        if self.redis_away or self.reply is None:
            return self._whole(run)  # the text shown may be short of the saved reply: give it whole
        return self._ending(run)

    def redis_lost(self) -> list[Event]:
        self.redis_away = True
        return [Event("notice", {"live": False, "message": "The reply's text cannot be followed live now (Redis is "
                                                           "not answering); it will be given whole once saved."},
                      id=self.cursor or BEFORE_TEXT_ID)]


@stream_route(r"/api/chat/messages/(?P<message_id>[0-9]{1,18})/stream/", last_event_id=r"[0-9]{1,15}-[0-9]{1,10}|end")
def reply_stream_open(*, user, query: dict, message_id: str) -> ReplyFeed:
    message = (Message.objects.filter(id=int(message_id), role=Role.USER, run__isnull=False,
                                      session__in=session_visible_to(user=user)).first())
    if message is None:
        raise not_found()
    return ReplyFeed(message)
