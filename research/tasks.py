"""The research kinds: a digest run (definable as a job by any user) and its per-document children."""

from django.conf import settings

from documents.models import DocumentFormat
from documents.pipeline.embed import embeddings_warm_up
from jobs.public import BLANK_PATTERN, Queue, RetryPolicy, tracked_task
from research import services

DIGEST_PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["topic"],
    "properties": {
        "topic": {"type": "string", "minLength": 1, "maxLength": 300, "pattern": BLANK_PATTERN,
                  "description": "What the digest is about; also how documents are chosen."},
        "questions": {"type": "array", "maxItems": 10, "uniqueItems": True,
                      "items": {"type": "string", "minLength": 1, "maxLength": 300, "pattern": BLANK_PATTERN},
                      "description": "Standing questions each document is asked."},
        "documents": {"type": "array", "maxItems": settings.RESEARCH_MAX_DOCUMENTS, "uniqueItems": True,
                      "items": {"type": "string", "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                                                             "[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
                      "description": "Only these documents (ids); all of them are read."},
        "formats": {"type": "array", "uniqueItems": True, "items": {"enum": list(DocumentFormat.values)},
                    "description": "Only documents of these formats."},
        "uploaded_after": {"type": "string", "maxLength": 40,
                           "description": "Only documents uploaded at or after this ISO date or date-time."},
        "max_documents": {"type": "integer", "minimum": 1, "maximum": settings.RESEARCH_MAX_DOCUMENTS,
                          "description": f"At most this many documents, the most relevant "
                                         f"(default {services.DEFAULT_MAX_DOCUMENTS})."},
        "force_reprocess": {"type": "boolean",
                            "description": "Read every document again instead of reusing unchanged findings."},
    },
}
# Search and an LLM server both fail for a while and recover: a few spaced attempts, then dead.
RESEARCH_RETRY = RetryPolicy(retries=3, backoff=3.0, backoff_max=60)


@tracked_task(kind="research.digest", queue=Queue.RESEARCH, params_schema=DIGEST_PARAMS_SCHEMA, retry=RESEARCH_RETRY,
              description="A digest of your documents on a topic: each relevant document read in its own child run, "
                          "then one digest with citations.",
              job_output=services.digest_job_output, params_check=services.digest_params_check,
              warm_up=embeddings_warm_up, owner_required=True)
def digest(ctx, **_):
    return services.digest_run(ctx=ctx)


@tracked_task(kind=services.PROCESS_KIND, queue=Queue.RESEARCH, retry=RESEARCH_RETRY, schedulable=False,
              description="Reads one document of a digest: its most relevant passages and a finding with citations.",
              params_schema={"type": "object"}, parent_share=settings.RESEARCH_MAX_CHILDREN_IN_FLIGHT,
              warm_up=embeddings_warm_up)
def process_document(ctx, source_id: int, **_):
    return services.document_process(ctx=ctx, source_id=source_id)
