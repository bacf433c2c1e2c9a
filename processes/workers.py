"""The Celery processes of a deployment: one worker per queue group, beat, and Flower on request.

`python -m processes.workers [--flower] [--no-beat]` (what start_workers.sh runs) supervises them;
`make run` adds the web server to the same list. See processes.supervisor for how they are stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from core.configuration import environment
from core.queues import Queue
from processes.supervisor import Program, Supervisor, run_until_signalled

BASE_DIR = Path(__file__).resolve().parent.parent
# The documents worker's pool processes are replaced by their memory cap. Celery's command line has
# no "never" for the task count (0 is refused), so a count no process lives to reach.
DOCUMENTS_MAX_TASKS_PER_CHILD = 1_000_000
# KiB. Celery replaces a pool process whose *peak* RSS (ru_maxrss) passed this after its task. With
# the model loaded a process is about 370 MiB at rest and peaks near 555 MiB while it embeds
# (bench/ingest_api.py); a cap below that peak would replace it after most documents, so this one
# leaves it 80 MiB and replaces only a process that really grew (a new one is ready in about a second).
DOCUMENTS_MAX_MEMORY_KB = 650_000
# The workers a deployment starts, by the queues each consumes: every queue has one
# (tests/processes/test_workers.py checks it), so nothing published waits for a worker that never comes.
WORKER_GROUPS = {
    "documents": (Queue.DOCUMENTS,),
    "default": (Queue.CHAT, Queue.JOBS),
    # Digests' children (search, an LLM) apart from chat, so a large digest never delays a reply.
    "research": (Queue.RESEARCH,),
    "maintenance": (Queue.MAINTENANCE,),
}


def worker_programs(*, beat: bool = True, flower: bool = False) -> list[Program]:
    celery = [sys.executable, "-m", "celery", "-A", "project"]
    env = environment()
    loglevel = env.get("CELERY_LOGLEVEL", "info")

    def worker(name: str, concurrency: str, *extra: str) -> Program:
        queues = ",".join(WORKER_GROUPS[name])
        return Program(f"worker {name}", [*celery, "worker", "-n", f"{name}@%h", "-Q", queues, "-c", concurrency,
                                          "-l", loglevel, *extra],
                       escalate_signal=signal.SIGQUIT)

    programs = [
        # Embedding is memory-heavy: a pool process that grew past the cap is replaced after its task;
        # not after CELERY_WORKER_MAX_TASKS_PER_CHILD tasks, which would reload the model for nothing.
        worker("documents", env.get("DOCUMENTS_CONCURRENCY", "1"),
               "--max-memory-per-child", env.get("DOCUMENTS_MAX_MEMORY_KB", str(DOCUMENTS_MAX_MEMORY_KB)),
               "--max-tasks-per-child", str(DOCUMENTS_MAX_TASKS_PER_CHILD)),
        worker("default", env.get("DEFAULT_CONCURRENCY", "2")),
        worker("research", env.get("RESEARCH_CONCURRENCY", "2")),
        worker("maintenance", "1"),
    ]
    if beat:
        programs.append(Program("beat", [*celery, "beat", "-l", loglevel, "--pidfile="]))
    if flower:
        address = env.get("FLOWER_ADDRESS", "127.0.0.1")
        # Flower can terminate tasks and shows their arguments: beyond loopback only behind a login
        # (Flower reads FLOWER_BASIC_AUTH, "user:password[,user2:password2]", from the environment).
        if not _is_loopback(address) and not env.get("FLOWER_BASIC_AUTH"):
            raise SystemExit(f"Flower on {address} needs FLOWER_BASIC_AUTH=user:password; "
                             "or leave FLOWER_ADDRESS at 127.0.0.1.")
        programs.append(Program("flower", [*celery, "flower", f"--port={env.get('FLOWER_PORT', '5555')}",
                                           f"--address={address}"]))
    return programs


def _is_loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def worker_env(env: dict[str, str]) -> dict[str, str]:
    # Fewer malloc arenas: embedding allocates from many threads, and arenas are what grows.
    return {"MALLOC_ARENA_MAX": "2", **env}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="start_workers.sh", description=(
        "Starts the Celery workers (documents; chat and jobs; research; maintenance), beat, and Flower with --flower. "
        "A worker that dies is restarted; Ctrl-C or SIGTERM stops them gracefully (running tasks finish "
        "within WORKER_STOP_GRACE_SECONDS, or go back to the queue)."))
    parser.add_argument("--flower", action="store_true", help="also run Flower (FLOWER_PORT, FLOWER_ADDRESS)")
    parser.add_argument("--no-beat", action="store_true", help="do not run beat (it runs elsewhere)")
    args = parser.parse_args(argv)
    supervisor = Supervisor(worker_programs(beat=not args.no_beat, flower=args.flower),
                            env=worker_env(environment()), cwd=BASE_DIR)
    return run_until_signalled(supervisor)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
