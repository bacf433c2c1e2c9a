"""Counts that cost the same in a table of ten rows and of ten million: exact while counting is
cheap, PostgreSQL's estimate above. Lists (API and admin) and the run stats count this way."""

from __future__ import annotations

import json

# Counting stops here: up to this many matching rows a count is exact (a count over at most this
# many index entries, a few milliseconds); above, the planner's estimate.
COUNT_EXACT_UP_TO = 10_000


def count_bounded(queryset) -> int:
    """How many rows `queryset` has: exact up to COUNT_EXACT_UP_TO, PostgreSQL's estimate above."""
    rows = queryset.order_by().values("pk")
    counted = rows[:COUNT_EXACT_UP_TO + 1].count()
    if counted <= COUNT_EXACT_UP_TO:
        return counted
    return max(count_estimated(rows), counted)


def count_estimated(queryset) -> int:
    """The planner's row estimate for `queryset` (statistics kept by autovacuum's ANALYZE)."""
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])
