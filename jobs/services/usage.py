"""LLM tokens: recorded on the run whose answer used them, and summed per user (TokenUsage)."""

from __future__ import annotations

from django.db import connection

from jobs.models import JobRun

# One statement: concurrent answers of one user add up, and a user's first answer makes the row.
_ADD_SQL = """
INSERT INTO jobs_tokenusage (owner_id, prompt_tokens, completion_tokens, reported, unreported)
VALUES (%(owner)s, %(prompt)s, %(completion)s, %(reported)s, %(unreported)s)
ON CONFLICT (owner_id) DO UPDATE
   SET prompt_tokens = jobs_tokenusage.prompt_tokens + EXCLUDED.prompt_tokens,
       completion_tokens = jobs_tokenusage.completion_tokens + EXCLUDED.completion_tokens,
       reported = jobs_tokenusage.reported + EXCLUDED.reported,
       unreported = jobs_tokenusage.unreported + EXCLUDED.unreported
"""


def run_usage_record(*, run_id, prompt_tokens: int | None, completion_tokens: int | None) -> None:
    """Inside the transaction of the run's final writes (so an answer counts once): the tokens the
    LLM server reported for it, on the run and added to its owner's sums. A server that reported
    none is counted as such, never guessed."""
    owner_id = JobRun.objects.filter(id=run_id).values_list("owner_id", flat=True).first()
    JobRun.objects.filter(id=run_id).update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    reported = prompt_tokens is not None or completion_tokens is not None
    with connection.cursor() as cursor:
        cursor.execute(_ADD_SQL, {"owner": owner_id, "prompt": prompt_tokens or 0, "completion": completion_tokens or 0,
                                  "reported": int(reported), "unreported": int(not reported)})
