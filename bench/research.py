"""Fan-out overhead of a research digest: its wall time against the sum of its children's run times.

A digest over N documents (N = 10 and 50 by default) runs on a real research worker against a
fake OpenAI-compatible server that takes `--llm-delay` seconds per answer. The baseline, side by
side, is the children's own work: the sum of their run times (what one worker process would
spend reading the documents one after another) and that sum spread over the worker's processes
(the best wall time fan-out could reach). What is left is the cost of choosing the documents,
queueing, the roll-up and the compose step.

    python bench/research.py [--sizes 10,50] [--llm-delay 0.2] [--concurrency 2]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from bench.support import bench_options, django_with_fake_llm  # noqa: E402

FAKE = django_with_fake_llm()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.support import ingest_here, start_worker, stop_worker  # noqa: E402
from documents.models import Document  # noqa: E402
from jobs.models import JobRun  # noqa: E402
from jobs.services.runs import run_enqueue  # noqa: E402
from tests.support.fake_llm import Step  # noqa: E402

TOPIC = "how the harbour handles cargo, ships and storms"


def documents_for(user, n: int) -> list[str]:
    have = list(Document.objects.filter(owner=user, status="ready").order_by("created_at").values_list("id", flat=True))
    for i in range(len(have), n):
        text = (f"Report {i} on the harbour. Ship {i} unloaded {i * 37 % 900} containers of cargo at berth {i % 12}. "
                f"A storm of force {i % 9 + 3} closed the outer quay for {i % 5 + 1} hours; cranes were secured "
                f"and pilots waited. Customs inspected {i % 40} boxes; the harbour master logged the tides.").encode()
        document, _ = ingest_here(owner=user, name=f"harbour-{i}.txt", data=text, title=f"Harbour report {i}")
        have.append(document.id)
    return [str(pk) for pk in have[:n]]


def digest_once(user, document_ids: list[str]) -> dict:
    with transaction.atomic():
        run = run_enqueue(kind="research.digest", owner=user,
                          args={"topic": TOPIC, "documents": document_ids, "max_documents": len(document_ids),
                                "force_reprocess": True})
    while not (run := JobRun.objects.get(id=run.id)).is_finished:
        time.sleep(0.05)
    if run.status != "SUCCESS":
        raise SystemExit(f"digest run ended {run.status}: {run.error}")
    children = list(JobRun.objects.filter(parent=run))
    return {"wall": (run.finished_at - run.created_at).total_seconds(),
            "children": sum((c.finished_at - c.started_at).total_seconds() for c in children),
            "n": len(children)}


def main() -> None:
    options = bench_options(sizes="10,50", llm_delay=0.2, concurrency=2)
    sizes = [int(s) for s in options.sizes.split(",")]
    FAKE.default = Step(delay=options.llm_delay, content="The report says the harbour coped [1].")
    user, _ = get_user_model().objects.get_or_create(username="bench-research")
    ids = documents_for(user, max(sizes))
    worker = start_worker(queues="research", concurrency=options.concurrency, include="research.tasks",
                          name="bench-research", env={"AI_SERVER_URL": FAKE.url})
    try:
        digest_once(user, ids[:2])  # warm the worker (model load, connections)
        results = {n: digest_once(user, ids[:n]) for n in sizes}
    finally:
        stop_worker(worker)
        FAKE.stop()
    print(f"research digest fan-out: fake LLM delay {options.llm_delay * 1000:.0f} ms, "
          f"{options.concurrency} worker processes, RESEARCH_MAX_CHILDREN_IN_FLIGHT from settings")
    print(f"{'N':>4} {'children':>9} {'sum of children':>16} {'sum / processes':>16} {'digest wall':>12} "
          f"{'wall / sum':>11} {'wall / ideal':>13}")
    for n, r in results.items():
        ideal = r["children"] / options.concurrency
        print(f"{n:>4} {r['n']:>9} {r['children']:>14.2f} s {ideal:>14.2f} s {r['wall']:>10.2f} s "
              f"{r['wall'] / r['children']:>11.2f} {r['wall'] / ideal:>13.2f}")


if __name__ == "__main__":
    main()
