"""Python's garbage collector, tuned for a process that sends 100,000+ messages a second.

Each message allocates a few GC-tracked objects (the delivery callback's ``partial``, the
header list, confluent-kafka's ``Message`` in the delivery report). With Python's default
generation-0 threshold of 700, that is hundreds of collections a second, each walking the
young objects and promoting the ones in flight — measured at ~15% of a sending process's
throughput (`bench/kafka_produce.py`). Before the first message we therefore

* freeze what exists (imports, Locust, the catalogue): it is never walked again, and
* raise the generation-0 threshold (``--gc-threshold``, default 50,000), so that a young
  collection runs ~100× less often and costs a millisecond or two when it does.

Reference cycles are still collected; a process just holds at most that many more young
objects. ``--gc-threshold 0`` leaves the collector as Python set it.

Example::

    tune(50_000)      # at test start, in every process that sends
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("ingestload")

_PYTHON_DEFAULT = gc.get_threshold()


def tune(threshold: int) -> None:
    """Freeze the current heap and set the generation-0 threshold (``0``: Python's defaults)."""
    if threshold <= 0:
        gc.set_threshold(*_PYTHON_DEFAULT)
        return
    gc.freeze()
    gc.set_threshold(threshold, *_PYTHON_DEFAULT[1:])
    log.debug("gc: froze %d objects, generation-0 threshold %d", gc.get_freeze_count(), threshold)
