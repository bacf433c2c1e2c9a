"""Research digests: choose the user's documents relevant to a topic, read each in its own child
run (a finding with citations), and compose the digest from the findings once the last child ends.

A digest run is one tracked run of `research.digest`; its children are runs of
`research.process_document` with `parent` set (see jobs.runner.RunContext.fan_out). A child that
fails for good does not sink the digest: it is composed from the rest, says which documents it
could not read, and the run ends SUCCESS with `result.partial` true. Retrying that run re-reads
only those documents. A digest with no document read at all fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from html import unescape

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core.errors import PermanentError
from documents.models import Document, DocumentStatus
from documents.pipeline.embed import texts_embed
from documents.retrieval import SearchHit, SearchMode
from documents.selectors import chunks_search, documents_closeness, documents_relevant
from integrations.llm import llm_complete, llm_configured
from jobs.public import Job, JobRun, RunContext, RunStatus, run_enqueue
from research.errors import ResearchError
from research.models import Digest, DigestSource, Finding, FindingMethod

logger = logging.getLogger(__name__)

PROCESS_KIND = "research.process_document"
# A finding cites this many passages per question: enough to answer from, few enough for a prompt.
FINDING_PASSAGES_PER_QUESTION = 3
# A quote in a citation, and a passage in a prompt, are cut to these lengths.
QUOTE_CHARS = 300
PROMPT_PASSAGE_CHARS = 1200
DEFAULT_MAX_DOCUMENTS = 20
# The least cosine similarity between the topic (or a question) and a document's best passage for the
# document to be read and its passages cited (measured by bench/relevance_floor.py; see bench/README.md).
DIGEST_RELEVANCE_FLOOR = 0.25
NOT_RELEVANT_CHECKPOINT = "not_relevant"
_REF = re.compile(r"\[(\d+)\]")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class DigestRequest:
    """A digest's params, read once from the run's args."""

    topic: str
    questions: tuple[str, ...]
    documents: tuple[str, ...]
    formats: tuple[str, ...]
    uploaded_after: datetime | None
    max_documents: int
    force_reprocess: bool

    @property
    def queries(self) -> tuple[str, ...]:
        """What each document is searched with, and measured against the relevance floor: the
        topic and each question (a document about the topic answers none of the questions word for word)."""
        return (self.topic, *self.questions)

    @property
    def subject(self) -> str:
        """The topic and questions as one text: what documents are chosen by and digests matched on."""
        return " ".join((self.topic, *self.questions))

    @property
    def method(self) -> str:
        return FindingMethod.LLM if llm_configured() else FindingMethod.EXTRACTIVE

    @property
    def question_key(self) -> str:
        asked = json.dumps([self.method, self.topic.strip().lower(), [q.strip().lower() for q in self.questions]])
        return hashlib.sha256(asked.encode()).hexdigest()


def uploaded_after_parse(value: str | None) -> datetime | None:
    """An ISO date or date-time (UTC when it names no offset); ResearchError for anything else."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime(day.year, day.month, day.day)
    except ValueError:
        moment = None
    if moment is None:
        raise ResearchError("uploaded_after must be an ISO date or date-time, e.g. 2026-01-31 or "
                            "2026-01-31T08:00:00Z.", field="params.uploaded_after")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, dt_timezone.utc)


def digest_params_check(params: dict) -> None:
    """What the params' JSON Schema cannot say (called when a job is defined or triggered)."""
    uploaded_after_parse(params.get("uploaded_after"))


def _request_from(args: dict) -> DigestRequest:
    return DigestRequest(
        topic=args["topic"].strip(), questions=tuple(q.strip() for q in args.get("questions") or ()),
        documents=tuple(args.get("documents") or ()), formats=tuple(args.get("formats") or ()),
        uploaded_after=uploaded_after_parse(args.get("uploaded_after")),
        max_documents=int(args.get("max_documents") or DEFAULT_MAX_DOCUMENTS),
        force_reprocess=bool(args.get("force_reprocess")),
    )


# --- the parent: choose, fan out, compose -------------------------------------------------------

def digest_run(*, ctx: RunContext) -> dict | None:
    """One attempt of a digest run. First call: choose the documents and hand them to child runs
    (returns None while they work). Called again once the last child has ended: compose."""
    run = JobRun.objects.select_related("owner", "job__owner", "retry_of").get(id=ctx.id)
    # Params that skipped validation (a run enqueued from the shell) raise ResearchError: not retried.
    request = _request_from(run.args)
    if _reader(run) is None:
        raise PermanentError("a digest run needs an owner (or a job with one): whose documents would it read?")
    if DigestSource.objects.filter(run=run).exists():
        return digest_compose(ctx=ctx, run=run, request=request)
    ctx.progress(0, None, step="selecting", message=f"Choosing documents about “{request.topic[:80]}”")
    plan, not_relevant = _plan(run=run, request=request)
    to_read = sum(1 for source, _ in plan if source.finding_id is None)
    if not_relevant:
        # Kept with the run for the composition, a later attempt (after the children) that names them.
        ctx.checkpoint({NOT_RELEVANT_CHECKPOINT: not_relevant})

    def create_children() -> int:
        DigestSource.objects.bulk_create([source for source, _ in plan])
        made = 0
        for source, earlier_child in plan:
            if source.finding_id is not None:
                continue
            source.child = run_enqueue(kind=PROCESS_KIND, args={"source_id": source.pk,
                                                                "document_id": str(source.document_id)},
                                       owner=run.owner, triggered_by=run.triggered_by, parent=run,
                                       retry_of=earlier_child)
            source.save(update_fields=["child"])
            made += 1
        return made

    ctx.fan_out(create_children, step="processing papers",
                message=f"Processing {to_read} paper{'s' if to_read != 1 else ''}… "
                        f"({len(plan) - to_read} reused)")
    ctx.log(f"chose {len(plan)} documents: {to_read} to read, {len(plan) - to_read} findings reused, "
            f"{len(not_relevant)} below the relevance floor")
    if ctx.awaiting_children:
        return None
    return digest_compose(ctx=ctx, run=run, request=request)


def _plan(*, run: JobRun, request: DigestRequest) -> tuple[list[tuple[DigestSource, JobRun | None]], list[dict]]:
    """The documents of this run, each with a reusable finding or the earlier child (if any) a new
    child retries, and those left out as not relevant enough. A retry of a digest run keeps the
    documents of the run it retries and re-reads only those without a finding; a new run chooses
    them by relevance."""
    if run.retry_of_id and DigestSource.objects.filter(run_id=run.retry_of_id).exists():
        plan = []
        for earlier in DigestSource.objects.filter(run_id=run.retry_of_id, document__isnull=False) \
                .select_related("document", "child"):
            plan.append((DigestSource(run=run, document=earlier.document, title=earlier.title, rank=earlier.rank,
                                      finding_id=earlier.finding_id),
                         None if earlier.finding_id else earlier.child))
        return plan, []
    documents, not_relevant = _documents_chosen(owner=_reader(run), request=request)
    reusable = {} if request.force_reprocess else _findings_reusable(documents=documents, request=request)
    return [(DigestSource(run=run, document=document, title=document.title, rank=rank,
                          finding=reusable.get(document.pk)), None)
            for rank, document in enumerate(documents, start=1)], not_relevant


def _reader(run: JobRun):
    """Whose documents a digest reads, and who owns the digest: the job's owner (a staff member may
    trigger another user's job), else whoever started the run."""
    return run.job.owner if run.job is not None and run.job.owner is not None else run.owner


def _documents_chosen(*, owner, request: DigestRequest) -> tuple[list[Document], list[dict]]:
    """The owner's ready documents the filter allows, most relevant to the topic first, and those
    the search found (or the params named) whose closest passage to the topic and questions is
    below DIGEST_RELEVANCE_FLOOR, left out ({document_id, title, closeness}): a digest reads
    nothing it would cite as noise."""
    candidates = Document.objects.filter(owner=owner, status=DocumentStatus.READY)
    if request.documents:
        candidates = candidates.filter(id__in=request.documents)
    if request.formats:
        candidates = candidates.filter(format__in=request.formats)
    if request.uploaded_after:
        candidates = candidates.filter(created_at__gte=request.uploaded_after)
    by_id = {str(d.pk): d for d in candidates.only("id", "title", "ready_at", "owner_id")}
    if not by_id:
        return [], []
    # An unreachable vector store is a DocumentsError coded unavailable: the run is retried later.
    ranked = documents_relevant(user=owner, query=request.subject, limit=request.max_documents, among=set(by_id))
    if request.documents:
        ranked += [pk for pk in by_id if pk not in ranked]
    ranked = ranked[:request.max_documents]
    closeness = documents_closeness(user=owner, queries=list(request.queries), document_ids=ranked)
    # A document with no passage to compare (nothing indexed) has no closeness: it is left out, as
    # null, never as a number that would read as a similarity.
    relevant = {pk for pk, value in closeness.items() if value >= DIGEST_RELEVANCE_FLOOR}
    chosen = [by_id[pk] for pk in ranked if pk in relevant]
    not_relevant = [{"document_id": pk, "title": by_id[pk].title,
                     "closeness": round(closeness[pk], 3) if pk in closeness else None}
                    for pk in ranked if pk not in relevant]
    return chosen, not_relevant


def closeness_described(closeness: float | None) -> str:
    """Why a document was left out, in words: how close its closest passage came, or that it had none."""
    if closeness is None:
        return "no passage to compare"
    return f"closest passage {closeness:.2f}, under {DIGEST_RELEVANCE_FLOOR}"


def _findings_reusable(*, documents: list[Document], request: DigestRequest) -> dict:
    findings = Finding.objects.filter(document__in=documents, question_key=request.question_key)
    versions = {d.pk: d.ready_at for d in documents}
    # One finding per document, question set and version (a constraint): the current version's, if any.
    return {f.document_id: f for f in findings if versions.get(f.document_id) == f.document_version}


def digest_compose(*, ctx: RunContext, run: JobRun, request: DigestRequest) -> dict:
    """The digest from the findings of this run's documents (the final step, once per run: a second
    call finds the digest made and returns its result)."""
    sources = list(DigestSource.objects.filter(run=run).select_related("finding", "child").order_by("rank"))
    not_relevant = ctx.checkpoints.get(NOT_RELEVANT_CHECKPOINT, [])
    read = [s for s in sources if s.finding is not None]
    unread = [{"document_id": str(s.document_id) if s.document_id else None, "title": s.title,
               "error": _why_unread(s.child)} for s in sources if s.finding is None]
    if sources and not read:
        raise PermanentError(f"none of the {len(sources)} chosen documents could be read; retry the run to read "
                             "them again")
    ctx.progress(len(sources), len(sources) or None, step="composing",
                 message=f"Composing the digest from {len(read)} findings")
    started = time.monotonic()
    citations, sections = _citations_numbered(read)
    # A step: an attempt that fails after the LLM composed (a database outage, a killed worker)
    # leaves the composition to the next one, which writes it without asking again.
    if request.method == FindingMethod.LLM and read:
        content = ctx.step("composition", lambda: _llm_compose(request=request, sections=sections))
    else:
        content = _extractive_compose(request=request, sections=sections, total=len(sources),
                                      left_out=len(not_relevant))
    topic_embedding = list(map(float, texts_embed([request.subject])[0]))
    if unread:
        content += "\n\n## Not read\n" + "\n".join(f"- {u['title']}: {u['error']}" for u in unread)
    if not_relevant:
        content += "\n\n## Not relevant enough\n" + "\n".join(
            f"- {n['title']} ({closeness_described(n['closeness'])})" for n in not_relevant)
    logger.info("digest composed", extra={"run_id": str(run.id), "documents": len(sources), "read": len(read),
                                          "seconds": round(time.monotonic() - started, 3)})

    def write() -> dict:
        digest = Digest.objects.filter(run=run).first()
        if digest is None:
            digest = Digest.objects.create(owner=_reader(run), job=run.job, run=run, topic=request.topic,
                                           questions=list(request.questions), method=request.method,
                                           content=content, citations=citations, unread=unread,
                                           not_relevant=not_relevant, partial=bool(unread),
                                           topic_embedding=topic_embedding)
            digest.documents.set([s.document_id for s in read if s.document_id])
        return {"digest_id": digest.pk, "partial": digest.partial, "documents": len(sources), "read": len(read),
                "reused": sum(1 for s in read if s.reused), "unread": digest.unread,
                "not_relevant": len(digest.not_relevant)}

    return ctx.commit(write)


def _why_unread(child: JobRun | None) -> str:
    if child is None:
        return "not read"
    if child.error:
        return child.error
    return "its run was cancelled" if child.status == RunStatus.REVOKED else f"its run ended {child.status}"


def _citations_numbered(read: list[DigestSource]) -> tuple[list[dict], list[tuple[str, str]]]:
    """One numbering for the whole digest: each finding's [n] becomes the digest's [m]."""
    citations: list[dict] = []
    sections = []
    for source in read:
        mapping = {}
        for citation in source.finding.citations:
            citations.append({**citation, "ref": len(citations) + 1, "document_id": str(source.document_id),
                              "title": source.title})
            mapping[citation["ref"]] = len(citations)
        sections.append((source.title, _refs_renumbered(source.finding.content, mapping)))
    return citations, sections


def _refs_renumbered(text: str, mapping: dict[int, int]) -> str:
    """A finding's [n] as the digest's [m]; a number it never cited is dropped, not invented."""
    return _REF.sub(lambda m: f"[{mapping[int(m[1])]}]" if int(m[1]) in mapping else "", text)


def _extractive_compose(*, request: DigestRequest, sections: list[tuple[str, str]], total: int,
                        left_out: int = 0) -> str:
    if not total:
        if left_out:
            return (f"# {request.topic}\n\nNone of your ready documents is relevant enough to this topic "
                    f"({left_out} found, each listed below).")
        return f"# {request.topic}\n\nNone of your ready documents matched this topic and filter."
    lines = [f"# {request.topic}", "", f"From {len(sections)} of {total} chosen documents."]
    if request.questions:
        lines += ["", "Questions: " + "; ".join(request.questions)]
    for title, text in sections:
        lines += ["", f"## {title}", text]
    return "\n".join(lines)


def _llm_compose(*, request: DigestRequest, sections: list[tuple[str, str]]) -> str:
    findings = "\n\n".join(f"### {title}\n{text}" for title, text in sections)
    asked = "\n".join(f"- {q}" for q in request.questions) or "- What do these documents say about it?"
    return llm_complete(messages=[
        {"role": "system", "content": "You write a research digest from findings about several documents. Use "
                                      "only the findings. Keep their bracketed citation numbers, such as [3], "
                                      "after each claim. Do not invent numbers."},
        {"role": "user", "content": f"Topic: {request.topic}\nQuestions:\n{asked}\n\nFindings:\n{findings}"},
    ]).strip()


# --- the children: one finding per document ----------------------------------------------------

def document_process(*, ctx: RunContext, source_id: int) -> dict:
    """Read one chosen document: its passages most relevant to the digest's questions, and a
    finding made from them (by the LLM when one is configured, else the passages themselves)."""
    source = DigestSource.objects.select_related("run", "document").filter(pk=source_id).first()
    if source is None or source.document is None:
        raise PermanentError("the document was deleted after it was chosen")
    document = source.document
    if document.status != DocumentStatus.READY:
        raise PermanentError(f"the document is {document.status}, not ready")
    request = _request_from(source.run.args)
    steps = len(request.queries) + 1
    passages: dict[int, SearchHit] = {}
    for done, query in enumerate(request.queries):
        ctx.progress(done, steps, step="reading", message=document.title[:200])
        hits = chunks_search(user=document.owner, query=query, k=FINDING_PASSAGES_PER_QUESTION,
                             document_id=document.pk, mode=SearchMode.HYBRID)
        for hit in hits:
            # A passage is cited only if it is shown to be close to what was asked: found by the
            # vector search at or above the floor (a keyword match alone may be a licence's "data").
            if hit.vector_score is not None and hit.vector_score >= DIGEST_RELEVANCE_FLOOR:
                passages.setdefault(hit.chunk_index, hit)
    if not passages:
        raise PermanentError(f"no passage of the document is relevant enough to the questions "
                             f"(closeness under {DIGEST_RELEVANCE_FLOOR})")
    ordered = sorted(passages.values(), key=lambda hit: -hit.score)
    citations = [{"ref": ref, "chunk_index": hit.chunk_index, "page": hit.page, "quote": _quote(hit)}
                 for ref, hit in enumerate(ordered, start=1)]
    ctx.progress(steps - 1, steps, step="writing finding", message=document.title[:200])
    if request.method == FindingMethod.LLM:
        content = ctx.step("finding", lambda: _llm_finding(request=request, title=document.title, hits=ordered))
    else:
        content = "\n".join(f"- “{c['quote']}” [{c['ref']}]" for c in citations)

    def write() -> dict:
        finding, _ = Finding.objects.update_or_create(
            document=document, question_key=request.question_key, document_version=document.ready_at,
            defaults={"method": request.method, "content": content,
                      "citations": citations, "run_id": ctx.id, "created_at": timezone.now()})
        DigestSource.objects.filter(pk=source.pk).update(finding=finding)
        return {"finding_id": finding.pk, "passages": len(citations), "method": request.method}

    return ctx.commit(write)


def _quote(hit: SearchHit) -> str:
    """The passage when it is short; else the words search highlighted around the matches."""
    text = " ".join(hit.text.split())
    if len(text) > QUOTE_CHARS:
        text = " ".join(unescape(_TAG.sub("", hit.snippet or text)).split())
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"


def _llm_finding(*, request: DigestRequest, title: str, hits: list[SearchHit]) -> str:
    numbered = "\n\n".join(f"[{ref}] (page {hit.page or '?'}) {' '.join(hit.text.split())[:PROMPT_PASSAGE_CHARS]}"
                           for ref, hit in enumerate(hits, start=1))
    asked = "\n".join(f"- {q}" for q in request.questions) or f"- What does it say about {request.topic}?"
    return llm_complete(messages=[
        {"role": "system", "content": "You report what one document says, using only the numbered passages. "
                                      "Cite the passage numbers in brackets, such as [2], after each claim."},
        {"role": "user", "content": f"Document: {title}\nTopic: {request.topic}\nQuestions:\n{asked}\n\n"
                                    f"Passages:\n{numbered}"},
    ]).strip()


# --- shown with the job -------------------------------------------------------------------------

def digest_job_output(job: Job) -> dict | None:
    """The job's latest digest, as the job's API and admin page show it."""
    from django.urls import reverse

    digest = Digest.objects.filter(job=job).order_by("-created_at").first()
    if digest is None:
        return None
    return {"digest_id": digest.pk, "url": reverse("digest-detail", args=[digest.pk]), "topic": digest.topic,
            "partial": digest.partial, "created_at": digest.created_at.isoformat(),
            "label": f"digest {digest.pk} of {timezone.localtime(digest.created_at):%Y-%m-%d %H:%M:%S}"
                     + (" (partial)" if digest.partial else ""),
            "admin_url": reverse("admin:research_digest_change", args=[digest.pk])}

