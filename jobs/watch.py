"""Following a run from the command line: a progress line until it finishes."""

from __future__ import annotations

import time

from jobs.models import FINISHED_STATUSES, JobRun

BAR_WIDTH = 30
POLL_SECONDS = 0.5
# Carriage return, then erase the line (ANSI "EL2"): the next draw replaces the last.
CLEAR_LINE = "\r\x1b[2K"


def run_progress_line(run: JobRun) -> str:
    percent = run.percent
    filled = int(BAR_WIDTH * (percent or 0) / 100)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    parts = [f"[{bar}]", f"{percent:5.1f}%" if percent is not None else "   ?  ", run.status]
    if run.step_shown:
        parts.append(run.step_shown)
    if run.progress_message:
        parts.append(run.progress_message)
    if run.eta_seconds is not None and not run.is_finished:
        parts.append(f"ETA {run.eta_seconds:.0f}s")
    return " ".join(parts)


def run_watch(*, run_id, out, timeout: float | None = None, prefix: str = "") -> JobRun:
    """Show the run's progress until it finishes (or `timeout`), and return it.

    `out` is a management command's stdout (Django's OutputWrapper, or one around sys.stdout). On a
    terminal the line redraws in place; elsewhere (a log, a pipe) each change is a line of its own."""
    in_place = out.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    try:
        while True:
            run = JobRun.objects.get(id=run_id)
            line = prefix + run_progress_line(run)
            if line != last:
                if in_place:
                    out.write(CLEAR_LINE + line, ending="")
                    out.flush()
                else:
                    out.write(line)
                last = line
            if run.status in FINISHED_STATUSES or (deadline and time.monotonic() > deadline):
                return run
            time.sleep(POLL_SECONDS)
    finally:
        if in_place:
            out.write("")  # end the redrawn line
