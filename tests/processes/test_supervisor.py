"""The supervisor with real processes: restarts with back-off, graceful stop with escalation, no orphans."""

import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from processes import supervisor
from processes.supervisor import Program, Supervisor

BASE_DIR = Path(__file__).resolve().parents[2]
# Real processes, signals and back-off delays.
pytestmark = pytest.mark.integration

# Ignores SIGTERM (like a worker busy past its grace), exits on SIGQUIT; starts a grandchild meanwhile.
STUBBORN = """
import signal, subprocess, sys, time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGQUIT, lambda *a: sys.exit(0))
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
print('ready', flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_program_that_keeps_dying_is_restarted_with_growing_delays_and_the_rest_keep_running(capsys):
    dying = Program("dying", [sys.executable, "-c", "raise SystemExit(3)"])
    steady = Program("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    sup = Supervisor([dying, steady], env={}, cwd=BASE_DIR)
    sup.start()
    steady_pid = steady.proc.pid
    watcher = threading.Thread(target=sup.watch)
    watcher.start()
    time.sleep(4.5)
    sup.stopping = True
    watcher.join()
    sup.stop()
    out = capsys.readouterr().out
    assert "dying exited (exit code 3); restarting in 1 s" in out
    assert "restarting in 2 s" in out
    assert steady.proc.pid == steady_pid  # never touched by the other's crashes
    assert not steady.alive and not dying.alive


def test_a_stop_escalates_after_the_grace_and_leaves_no_process(monkeypatch, capsys):
    monkeypatch.setattr(supervisor, "STOP_GRACE_SECONDS", 1.0)
    busy = Program("busy", [sys.executable, "-c", STUBBORN], escalate_signal=signal.SIGQUIT)
    sup = Supervisor([busy], env={}, cwd=BASE_DIR)
    sup.start()
    time.sleep(1.0)
    grandchildren = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                     and _parent(int(p.name)) == busy.proc.pid]
    assert grandchildren
    started = time.monotonic()
    sup.stop()
    assert time.monotonic() - started < 1.0 + supervisor.COLD_STOP_SECONDS
    assert "busy still busy after 1 s" in capsys.readouterr().out
    assert busy.proc.returncode == 0  # it took the SIGQUIT, as a Celery cold shutdown does
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in grandchildren)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


# A supervisor of two programs: a worker-like one that records the signal it stops on, and a plain one.
SUPERVISOR = """
import os, signal, sys
from pathlib import Path
from processes.supervisor import Program, Supervisor, run_until_signalled

worker = ("import signal, sys, time; "
          "signal.signal(signal.SIGQUIT, lambda *a: (open(sys.argv[1], 'w').write('SIGQUIT'), sys.exit(0))); "
          "open(sys.argv[1], 'w').write('ready'); time.sleep(120)")
programs = [Program("worker", [sys.executable, "-c", worker, sys.argv[1]], escalate_signal=signal.SIGQUIT),
            Program("web", [sys.executable, "-c", "import time; time.sleep(120)"])]
run_until_signalled(Supervisor(programs, env=dict(os.environ), cwd=Path.cwd()))
"""


def _children_of(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="only Linux can ask for a signal on the parent's death (PR_SET_PDEATHSIG); "
                           "elsewhere the supervisor does not offer it")
def test_a_supervisor_killed_outright_takes_its_programs_with_it_and_a_worker_hands_its_work_back(tmp_path):
    import subprocess

    from tests.support.worker import wait_until

    record = tmp_path / "stopped-by"
    supervisor_proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(record)], cwd=BASE_DIR,
                                       stdout=subprocess.DEVNULL)
    try:
        programs = wait_until(lambda: len(_children_of(supervisor_proc.pid)) == 2 and _children_of(supervisor_proc.pid),
                              timeout=10, interval=0.1, message="both programs to start")
        wait_until(lambda: record.exists() and record.read_text() == "ready", timeout=10, interval=0.1,
                   message="the worker's stop handler to be in place")
        supervisor_proc.kill()
        supervisor_proc.wait()
        wait_until(lambda: not any(_alive(pid) for pid in programs), timeout=10, interval=0.1,
                   message="the programs to die with their supervisor")
        assert record.read_text() == "SIGQUIT"  # a worker's cold shutdown: its running work goes back to the queue
    finally:
        supervisor_proc.kill()
