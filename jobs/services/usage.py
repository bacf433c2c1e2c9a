"""LLM tokens: recorded on the run whose answer used them, and summed per user (TokenUsage)."""

from __future__ import annotations

from django.db import connection

# One statement: the run's counts, and its owner's sums (concurrent answers of one user add up, and a
# user's first answer makes the row).
_ADD_SQL = """
WITH run AS (
    UPDATE jobs_jobrun SET prompt_tokens = %(prompt_tokens)s, completion_tokens = %(completion_tokens)s
     WHERE id = %(run)s
    RETURNING owner_id
)
INSERT INTO jobs_tokenusage (owner_id, prompt_tokens, completion_tokens, reported, unreported)
SELECT owner_id, COALESCE(%(prompt_tokens)s, 0), COALESCE(%(completion_tokens)s, 0), %(reported)s, %(unreported)s
  FROM run
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
    reported = prompt_tokens is not None or completion_tokens is not None
    with connection.cursor() as cursor:
        cursor.execute(_ADD_SQL, {"run": run_id, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                  "reported": int(reported), "unreported": int(not reported)})
