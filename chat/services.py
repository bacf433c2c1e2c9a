"""Writes for chat: posting messages, writing replies (grounded, with citations), summaries."""

from __future__ import annotations

import logging
import re
import time
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from chat.errors import ChatError
from chat.models import ChatSession, Message, MessageStatus, ProfileSummary, Role
from core.context import ContextNote, context_notes
from documents.selectors import SearchHit, chunks_search, documents_searchable
from integrations.llm import ChatStream, llm_complete, llm_configured, llm_stream
from jobs.public import JobRun, RunContext, TriggeredBy, run_enqueue, run_retry, run_stream, run_usage_record

logger = logging.getLogger(__name__)

REPLY_KIND = "chat.reply"
SESSION_SUMMARY_KIND = "chat.summarize_session"
PROFILE_SUMMARY_KIND = "chat.summarize_profile"
# Passages of the user's documents given to the model with each question.
CONTEXT_CHUNKS = 4
# Earlier conversation sent with each question, newest first until this many characters.
HISTORY_CHAR_BUDGET = 6000
MESSAGE_MAX_CHARS = 8000
SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer using the user's documents when they are relevant and cite them "
    "as [1], [2] by their numbers. If the documents do not contain the answer, say so plainly."
)


def session_create(*, owner, title: str = "") -> ChatSession:
    return ChatSession.objects.create(owner=owner, title=title[:200])


def message_post(*, session: ChatSession, content: str, triggered_by: str = TriggeredBy.API) -> Message:
    """Save the user's message and queue its reply, in one transaction."""
    content = content.strip()
    if not content:
        raise ChatError("content must not be empty.", field="content")
    if len(content) > MESSAGE_MAX_CHARS:
        raise ChatError(f"content is {len(content)} characters; the limit is {MESSAGE_MAX_CHARS}.", field="content")
    # The run's id is chosen here so the message names its run as it is inserted (the foreign key is
    # checked at commit), with no second write of the message.
    run_id = uuid.uuid4()
    with transaction.atomic():
        message = Message.objects.create(session=session, role=Role.USER, content=content, run_id=run_id)
        message.run = run_enqueue(kind=REPLY_KIND, args={"message_id": message.id}, owner=session.owner,
                                  triggered_by=triggered_by, run_id=run_id)
    return message


def _citations(hits: list[SearchHit]) -> list[dict]:
    return [{"document_id": h.document_id, "title": h.title, "chunk_index": h.chunk_index, "page": h.page}
            for h in hits]


def _where(hit: SearchHit) -> str:
    return f"{hit.title}, page {hit.page}" if hit.page else hit.title


def _history(message: Message) -> list[dict[str, str]]:
    earlier = (Message.objects.filter(session_id=message.session_id, status=MessageStatus.COMPLETE,
                                      created_at__lte=message.created_at)
               .exclude(id=message.id).order_by("-created_at", "-id").values_list("role", "content")[:50])
    turns, used = [], 0
    for role, content in earlier:
        used += len(content)
        if used > HISTORY_CHAR_BUDGET:
            break
        turns.append({"role": role, "content": content})
    return list(reversed(turns))


def _passages_reply(hits: list[SearchHit], notes: list[ContextNote]) -> str:
    if not hits and not notes:
        return ("No assistant model is configured, and none of your documents matched this question. "
                "Upload documents to get passages from them here.")
    lines = ["No assistant model is configured, so here are the passages from your documents that best match "
             "your question:"]
    for number, hit in enumerate(hits, start=1):
        lines.append(f"\n[{number}] {_where(hit)}:\n{hit.text.strip()}")
    lines += [f"\n{entry}" for entry in _notes_numbered(notes, after=len(hits))]
    return "\n".join(lines)


def _notes_numbered(notes: list[ContextNote], *, after: int) -> list[str]:
    """Notes numbered on from the passages, so one list of citations covers both."""
    return [f"[{number}] {note.title}:\n{note.text.strip()}" for number, note in enumerate(notes, start=after + 1)]


class _ReplyStopped(Exception):
    """The reply's run was cancelled while the LLM wrote it: the text so far is kept, as stopped."""

    def __init__(self, content: str, citations: list):
        super().__init__("stopped")
        self.content, self.citations = content, citations


def message_reply(*, message_id: int, ctx: RunContext) -> dict:
    """Write the assistant's reply to one user message, streamed to its followers as the LLM writes
    it (ctx.stream: a `reset` when an attempt starts the text, then `delta`s). Safe to run again: it
    replaces, never adds. The reply is saved only if the run was not cancelled meanwhile (in one
    transaction with its success); a cancel while the LLM writes stops it at once and keeps the text
    so far, as a reply `stopped`.

    The answer is a step: kept the moment the LLM gives it, so an attempt that fails after that (a
    database outage, a killed worker before the final write) is finished by the next one without
    asking the LLM again."""
    replied = Message.objects.filter(reply_to=OuterRef("pk"), role=Role.ASSISTANT, status=MessageStatus.COMPLETE)
    try:
        message = (Message.objects.select_related("session__owner")
                   .annotate(reply_id=Subquery(replied.values("id")[:1]),
                             searchable=documents_searchable(owner_id=OuterRef("session__owner_id")))
                   .get(id=message_id, role=Role.USER))
    except Message.DoesNotExist:
        return {"skipped": "message deleted"}
    if message.reply_id is not None:
        return {"reply_id": message.reply_id, "already_replied": True}
    answered_before = "answer" in ctx.checkpoints
    try:
        answer = ctx.step("answer", lambda: _reply_compose(message=message, searchable=message.searchable, ctx=ctx))
    except _ReplyStopped as stopped:
        content, citations = stopped.content, stopped.citations
        return ctx.stop(lambda: _reply_keep(message=message, content=content, status=MessageStatus.STOPPED,
                                            citations=citations, ctx=ctx))
    if answered_before:  # an earlier attempt's answer, reused: its followers get it whole
        ctx.stream("reset", {"attempt": ctx.attempt})
        ctx.stream("delta", {"delta": answer["content"]})

    def save() -> dict:
        result = _reply_keep(message=message, content=answer["content"], status=MessageStatus.COMPLETE,
                             citations=answer["citations"], ctx=ctx, prompt_tokens=answer.get("prompt_tokens"),
                             completion_tokens=answer.get("completion_tokens"))
        run_usage_record(run_id=ctx.id, prompt_tokens=answer.get("prompt_tokens"),
                         completion_tokens=answer.get("completion_tokens"))
        return result

    return ctx.commit(save)


def _reply_keep(*, message: Message, content: str, status: str, citations: list, ctx: RunContext,
                prompt_tokens: int | None = None, completion_tokens: int | None = None) -> dict:
    reply = _reply_save(message=message, content=content, status=status, citations=citations, run_id=ctx.id,
                        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    _reply_announce(reply)
    result = {"reply_id": reply.id, "citations": len(citations),
              "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}
    return {**result, "stopped": True} if status == MessageStatus.STOPPED else result


def reply_event(reply: Message) -> dict:
    """The saved reply as its stream's terminal event carries it (chat.streams)."""
    return {"id": reply.id, "session": reply.session_id, "role": reply.role, "content": reply.content,
            "status": reply.status, "reply_to": reply.reply_to_id, "citations": reply.citations,
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "created_at": reply.created_at.isoformat()}


def _reply_announce(reply: Message) -> None:
    """Once the reply is committed, its stream's followers get it (before the run's end is told)."""
    event = reply_event(reply)
    transaction.on_commit(lambda: run_stream(run_id=reply.run_id, event="reply", data=event))


def _reply_compose(*, message: Message, searchable: bool, ctx: RunContext) -> dict:
    """The reply's text and citations: the user's passages (if `searchable`: any ready document) and
    notes, then the LLM (or the passages)."""
    owner = message.session.owner
    hits = chunks_search(user=owner, query=message.content, k=CONTEXT_CHUNKS) if searchable else []
    notes = context_notes(user=message.session.owner, question=message.content)
    found = (f"Found {len(hits)} passage(s) in the user's documents"
             + (f" and {len(notes)} note(s): {', '.join(n.title for n in notes)}." if notes else "."))
    if llm_configured():
        context = "\n\n".join(f"[{n}] ({_where(h)}) {h.text.strip()}" for n, h in enumerate(hits, start=1))
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        if context:
            messages.append({"role": "system", "content": f"Passages from the user's documents:\n\n{context}"})
        if notes:
            numbered = "\n\n".join(_notes_numbered(notes, after=len(hits)))
            messages.append({"role": "system", "content": f"Notes on this question, citable the same way:\n\n"
                                                          f"{numbered}"})
        messages += _history(message) + [{"role": "user", "content": message.content}]
        citations = _citations(hits) + [note.citation for note in notes]
        started = time.monotonic()
        # What was found is logged while the LLM server thinks, not before it is asked (or, if it
        # never was, once that is known).
        logged: list[bool] = []

        def found_log() -> None:
            logged.append(True)
            ctx.log(found)

        stream = ChatStream(messages=messages, on_sent=found_log)
        ctx.stream("reset", {"attempt": ctx.attempt})
        try:
            with ctx.watching_cancel(stream.stop):
                completion = llm_stream(stream=stream, on_delta=lambda piece: ctx.stream("delta", {"delta": piece}))
        finally:
            if not logged:
                found_log()
        if completion.stopped:
            ctx.log(f"Stopped while the LLM server wrote, after {len(completion.content)} characters.")
            raise _ReplyStopped(completion.content, citations)
        ctx.log(f"The LLM server answered in {time.monotonic() - started:.2f} s ({len(completion.content)} characters"
                + (f", {completion.prompt_tokens} + {completion.completion_tokens} tokens)."
                   if completion.prompt_tokens is not None else "; it reported no token counts)."))
        return {"content": completion.content, "citations": citations, "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens}
    content = _passages_reply(hits, notes)
    ctx.log(found)
    ctx.log("No LLM server is configured (AI_SERVER_URL): replied with the passages.")
    ctx.stream("reset", {"attempt": ctx.attempt})
    ctx.stream("delta", {"delta": content})
    return {"content": content, "citations": _citations(hits) + [note.citation for note in notes]}


def _reply_save(*, message: Message, content: str, status: str, citations: list, run_id,
                prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Message:
    reply, _ = Message.objects.update_or_create(
        reply_to=message, role=Role.ASSISTANT,
        defaults={"session_id": message.session_id, "content": content, "status": status,
                  "citations": citations, "run_id": run_id, "prompt_tokens": prompt_tokens,
                  "completion_tokens": completion_tokens},
    )
    return reply


def message_reply_failed(*, run: JobRun, message_id: int, **_) -> None:
    """After the last attempt: exactly one apology, marked failed (replaced if the run is retried later)."""
    message = Message.objects.filter(id=message_id).first()
    if message is not None:
        _reply_announce(_reply_save(message=message, content=settings.AI_APOLOGY_TEXT, status=MessageStatus.FAILED,
                                    citations=[], run_id=run.id))


def reply_retry(*, message: Message, triggered_by: str = TriggeredBy.ADMIN) -> JobRun:
    """Retry the reply to a user message whose reply failed: the apology is replaced on success."""
    user_message = message.reply_to if message.role == Role.ASSISTANT else message
    run = user_message.run
    if run is None:
        raise ChatError("This message has no reply run to retry.")
    latest = run
    while latest.retries.exists():
        latest = latest.retries.order_by("-created_at").first()
    with transaction.atomic():
        new_run, _ = run_retry(run=latest, triggered_by=triggered_by)
        Message.objects.filter(id=user_message.id).update(run=new_run)
    return new_run


# --- Summaries --------------------------------------------------------------------------

SUMMARY_PROMPT = "Summarise this conversation in at most five sentences: topics, questions, conclusions."
PROFILE_PROMPT = "From these conversation summaries, describe in at most five sentences what this user works on."
EXTRACTIVE_SENTENCES = 5


def _extractive(texts: list[str]) -> str:
    """Without an LLM: the first sentence of each of the most recent texts, longest first."""
    sentences = []
    for text in texts:
        first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
        if first and first not in sentences:
            sentences.append(first)
    return " ".join(sentences[:EXTRACTIVE_SENTENCES])


def _summarise(*, prompt: str, texts: list[str]) -> str:
    if not texts:
        return ""
    if not llm_configured():
        return _extractive(texts)
    return llm_complete(messages=[{"role": "system", "content": prompt},
                                   {"role": "user", "content": "\n\n".join(texts)[:HISTORY_CHAR_BUDGET * 2]}])


def session_summarize_enqueue(*, session: ChatSession, triggered_by: str = TriggeredBy.API) -> JobRun:
    with transaction.atomic():
        return run_enqueue(kind=SESSION_SUMMARY_KIND, args={"session_id": session.id}, owner=session.owner,
                           triggered_by=triggered_by)


def session_summarize(*, session_id: int, ctx: RunContext) -> dict:
    session = ChatSession.objects.filter(id=session_id).first()
    if session is None:
        return {"skipped": "session deleted"}
    turns = list(session.messages.filter(status=MessageStatus.COMPLETE).order_by("created_at"))
    texts = [f"{t.role}: {t.content}" for t in turns] if llm_configured() else \
        [t.content for t in turns if t.role == Role.USER]
    summary = ctx.step("summary", lambda: _summarise(prompt=SUMMARY_PROMPT, texts=texts))

    def save() -> dict:
        ChatSession.objects.filter(id=session.id).update(summary=summary, summarized_at=timezone.now())
        return {"chars": len(summary)}

    return ctx.commit(save)


def profile_summarize_enqueue(*, user, triggered_by: str = TriggeredBy.API) -> JobRun:
    with transaction.atomic():
        return run_enqueue(kind=PROFILE_SUMMARY_KIND, args={"user_id": user.id}, owner=user,
                           triggered_by=triggered_by)


def profile_summarize(*, user_id: int, ctx: RunContext) -> dict:
    sessions = list(ChatSession.objects.filter(owner_id=user_id).order_by("-created_at")[:20])
    texts = [s.summary for s in sessions if s.summary] or [
        m.content for m in Message.objects.filter(session__owner_id=user_id, role=Role.USER).order_by("-created_at")[:20]
    ]
    summary = ctx.step("summary", lambda: _summarise(prompt=PROFILE_PROMPT, texts=texts))

    def save() -> dict:
        ProfileSummary.objects.update_or_create(user_id=user_id,
                                                defaults={"summary": summary, "summarized_at": timezone.now()})
        return {"chars": len(summary), "sessions": len(sessions)}

    return ctx.commit(save)
