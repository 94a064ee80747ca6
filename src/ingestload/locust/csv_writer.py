"""Locust's CSV writer at exit: stopped before Locust closes its files.

Locust (2.47) runs ``StatsCSVFileWriter.stats_writer`` in a greenlet of its own that rewrites the
CSV files every second, and at exit closes the files (after the ``quit`` event) without stopping
it. A master of ``--processes`` then still yields while it exits (its ``kill_workers`` sleeps and
waits for the worker processes), and the writer, waking up, writes to closed files:
``CRITICAL … ValueError: I/O operation on closed file`` after the verdict. The files already hold
the run's last rows (the verdict's publisher gives the writer a turn after the verdict).

Example (a ``quit`` listener)::

    stop_csv_writer()
"""

from __future__ import annotations

import gc

import gevent


def stop_csv_writer(timeout: float = 1.0) -> int:
    """Kill Locust's CSV writer greenlets (between two writes; none: nothing happens); returns how
    many there were. Locust keeps no reference to them, so they are found among live objects."""
    from locust.stats import StatsCSVFileWriter

    writers = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, gevent.Greenlet)
        and not obj.dead
        and getattr(getattr(obj, "_run", None), "__func__", None) is StatsCSVFileWriter.stats_writer
    ]
    for writer in writers:
        writer.kill(block=True, timeout=timeout)
    return len(writers)
