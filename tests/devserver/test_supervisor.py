"""The supervisor with real processes: restarts with back-off, graceful stop with escalation, no orphans."""

import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from devserver import supervisor
from devserver.supervisor import Program, Supervisor

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
