"""Loaded at start-up by a process whose PYTHONPATH names this folder: with TEST_CLOCK_SHIFT_SECONDS
set, this process's wall clock (time.time and datetime's now) runs that many seconds off the real
one, as a host whose clock drifted would; monotonic time, and every other process, are left alone.
Loaded before anything imports datetime's class by name, so Django, Celery and kombu all see it."""

import os

_shift = float(os.environ.get("TEST_CLOCK_SHIFT_SECONDS") or 0)
if _shift:
    import datetime as _datetime_module
    import time as _time_module

    _real_time, _real_time_ns = _time_module.time, _time_module.time_ns
    _time_module.time = lambda: _real_time() + _shift
    _time_module.time_ns = lambda: _real_time_ns() + int(_shift * 1e9)

    class _ShiftedDatetime(_datetime_module.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _datetime_module.timedelta(seconds=_shift)

        @classmethod
        def utcnow(cls):
            return super().utcnow() + _datetime_module.timedelta(seconds=_shift)

        @classmethod
        def today(cls):
            return cls.now()

    _datetime_module.datetime = _ShiftedDatetime
