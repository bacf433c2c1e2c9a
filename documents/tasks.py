from django.conf import settings

from core.errors import PermanentError
from documents import services
from documents.pipeline.embed import heap_release
from jobs.public import Queue, RetryPolicy, tracked_task

# Extraction errors are PermanentError (never retried); storage, database and embedding-server
# hiccups are retried with backoff.
INGEST_RETRY = RetryPolicy(retries=3, backoff=3.0, backoff_max=60, never_retry=(PermanentError,))


@tracked_task(kind=services.INGEST_KIND, queue=Queue.DOCUMENTS, retry=INGEST_RETRY, schedulable=False,
              fair_share=settings.DOCUMENT_FAIR_SHARE,
              soft_time_limit=840, time_limit=900, warm_up=services.ingest_warm_up,
              on_final_failure=services.document_mark_failed, on_revoked=services.document_mark_cancelled,
              description="Extracts, chunks, embeds and indexes one document.",
              params_schema={"type": "object", "properties": {"document_id": {"type": "string"}},
                             "required": ["document_id"]})
def ingest(ctx, document_id: str):
    try:
        return services.document_ingest(document_id=document_id, ctx=ctx)
    finally:
        heap_release()  # whatever the outcome: the next document starts from the process's size at rest


@tracked_task(kind="documents.maintain", queue=Queue.MAINTENANCE, staff_only=True,
              default_schedule=("Maintain documents", {"every_seconds": 3600}),
              description="Removes stored files with no document; re-dispatches documents stuck before processing.")
def maintain(ctx):
    return services.documents_maintain()
