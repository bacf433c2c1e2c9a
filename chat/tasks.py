from django.conf import settings

from chat import services
from core.errors import PermanentError
from documents.pipeline.embed import embeddings_warm_up
from jobs.public import Queue, RetryPolicy, tracked_task

# Progressive retries from AI_RETRY_DELAYS (default 5, 15, 30 s); 400/401/403/404 never retry.
AI_RETRY = RetryPolicy(delays=tuple(settings.AI_RETRY_DELAYS), never_retry=(PermanentError,),
                       retry_after_cap=max(settings.AI_RETRY_DELAYS, default=30.0) * 2)
# Every attempt may wait AI_TIMEOUT for the answer; the limits leave room for health check and retrieval.
AI_SOFT_LIMIT = int(settings.AI_TIMEOUT + settings.AI_CONNECT_TIMEOUT + 30)


@tracked_task(kind=services.REPLY_KIND, queue=Queue.CHAT, retry=AI_RETRY, schedulable=False,
              soft_time_limit=AI_SOFT_LIMIT, time_limit=AI_SOFT_LIMIT + 15, warm_up=embeddings_warm_up,
              on_final_failure=services.message_reply_failed,
              description="Writes the assistant's reply to a user message, grounded in the user's documents.")
def reply(ctx, message_id: int):
    return services.message_reply(message_id=message_id, ctx=ctx)


@tracked_task(kind=services.SESSION_SUMMARY_KIND, queue=Queue.CHAT, retry=AI_RETRY, schedulable=False,
              soft_time_limit=AI_SOFT_LIMIT, time_limit=AI_SOFT_LIMIT + 15,
              description="Summarises one chat session.")
def summarize_session(ctx, session_id: int):
    return services.session_summarize(session_id=session_id, ctx=ctx)


@tracked_task(kind=services.PROFILE_SUMMARY_KIND, queue=Queue.CHAT, retry=AI_RETRY, schedulable=False,
              soft_time_limit=AI_SOFT_LIMIT, time_limit=AI_SOFT_LIMIT + 15,
              description="Summarises what a user works on across their sessions.")
def summarize_profile(ctx, user_id: int):
    return services.profile_summarize(user_id=user_id, ctx=ctx)
