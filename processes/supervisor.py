"""A small process supervisor for `make run` and `start_workers.sh`: starts programs, restarts one
that dies (with a back-off, and a clear message when it keeps crashing) while the rest keep
serving, and stops them so that running work is not lost and nothing is left behind.

A stop is graceful, program by program: each gets its stop signal (a Celery worker's SIGTERM is a
warm shutdown: it takes no new task and finishes the running ones); one still running after
WORKER_STOP_GRACE_SECONDS gets SIGQUIT (a Celery cold shutdown: running tasks are cancelled, their
runs released and their messages returned to the queue, so a restart resumes them at once); and
whatever remains of its process group after that is killed. Only the program's main process is
signalled, never its group, so a worker's pool processes are left to their parent.

A supervisor that dies without a stop (SIGKILL, the OOM killer) takes its programs with it: each
is started to receive its stop signal from the kernel when the supervisor dies (Linux's
PR_SET_PDEATHSIG), a worker its escalation (a cold shutdown, which hands running work back), so
no worker keeps consuming under nobody's watch and a restarted supervisor does not start a second
set beside it.

It reads its settings from the environment, not from Django: it runs before Django is configured.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.configuration import environment

STOP_GRACE_SECONDS = float(environment().get("WORKER_STOP_GRACE_SECONDS", "30"))
# After SIGQUIT, a cold shutdown still returns messages to the broker: this long, then SIGKILL.
COLD_STOP_SECONDS = 10.0
# Restart back-off: 1, 2, 4, ... up to this many seconds between attempts.
RESTART_MAX_DELAY_SECONDS = 30.0
# This many crashes within the window earns a plain message that something is wrong.
CRASH_LOOP_COUNT = 5
CRASH_LOOP_WINDOW_SECONDS = 120.0
POLL_SECONDS = 0.5


# <linux/prctl.h>: ask for a signal when the thread that started this process ends.
_PR_SET_PDEATHSIG = 1


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _dies_with_this_process(signum: int) -> Callable[[], None] | None:
    """What a child runs between fork and exec so that it gets `signum` when this process dies
    (the watch loop that starts programs is this process's main thread); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def request() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the request was made
            os._exit(1)

    return request


@dataclass
class Program:
    name: str
    argv: list[str]
    # Sent once the grace has passed without the program exiting (None: go straight to SIGKILL).
    escalate_signal: int | None = None
    proc: subprocess.Popen | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, env: dict[str, str], cwd: Path) -> None:
        # Its own session: a terminal's Ctrl-C reaches the supervisor only, which then stops each
        # program in order; and the program's group can be cleaned up after it exits.
        self.proc = subprocess.Popen(self.argv, cwd=cwd, env=env, start_new_session=True,
                                     preexec_fn=_dies_with_this_process(self.escalate_signal or signal.SIGTERM))
        self.restart_at = None

    def signal(self, signum: int) -> None:
        if self.alive:
            try:
                os.kill(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the program's process group (its orphans, if it died)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    def __init__(self, programs: list[Program], *, env: dict[str, str], cwd: Path):
        self.programs = programs
        self.env = env
        self.cwd = cwd
        self.stopping = False

    def start(self) -> None:
        for program in self.programs:
            program.start(env=self.env, cwd=self.cwd)

    def watch(self) -> None:
        """Restart programs that exit, until `stopping` is set (by a signal handler)."""
        while not self.stopping:
            now = time.monotonic()
            for program in self.programs:
                if self.stopping:
                    break
                if program.proc is not None and not program.alive and program.restart_at is None:
                    self._schedule_restart(program, now)
                if program.restart_at is not None and now >= program.restart_at:
                    say(f"restarting {program.name}")
                    program.start(env=self.env, cwd=self.cwd)
            time.sleep(POLL_SECONDS)

    def _schedule_restart(self, program: Program, now: float) -> None:
        code = program.proc.returncode
        program.kill_group()  # a main process that died may leave pool processes behind
        program.crashes = [t for t in program.crashes if now - t < CRASH_LOOP_WINDOW_SECONDS] + [now]
        delay = min(2.0 ** (len(program.crashes) - 1), RESTART_MAX_DELAY_SECONDS)
        program.restart_at = now + delay
        say(f"{program.name} exited ({_describe(code)}); restarting in {delay:.0f} s, the rest keep running")
        if len(program.crashes) >= CRASH_LOOP_COUNT:
            say(f"{program.name} has exited {len(program.crashes)} times in {CRASH_LOOP_WINDOW_SECONDS:.0f} s: "
                f"something is wrong with it; read its log lines above. Still retrying every "
                f"{RESTART_MAX_DELAY_SECONDS:.0f} s at most.")

    def stop(self) -> None:
        """Graceful stop of every program; never leaves a process behind."""
        self.stopping = True
        for program in self.programs:
            program.restart_at = None
            program.signal(signal.SIGTERM)
        self._wait_all(STOP_GRACE_SECONDS)
        escalated = [p for p in self.programs if p.alive and p.escalate_signal is not None]
        for program in escalated:
            say(f"{program.name} still busy after {STOP_GRACE_SECONDS:.0f} s; handing its work back to the queue")
            program.signal(program.escalate_signal)
        if escalated:
            self._wait_all(COLD_STOP_SECONDS)
        for program in self.programs:
            if program.alive:
                say(f"{program.name} did not stop; killing it")
            program.kill_group()
            if program.proc is not None:
                try:
                    program.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass

    def _wait_all(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(p.alive for p in self.programs):
            time.sleep(0.1)


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_until_signalled(supervisor: Supervisor) -> int:
    """Start, watch, and stop on SIGINT/SIGTERM/SIGHUP. Returns the exit code."""

    def request_stop(signum, frame):
        supervisor.stopping = True

    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        supervisor.start()
        supervisor.watch()
    finally:
        say("stopping…")
        supervisor.stop()
        say("stopped")
    return 0
