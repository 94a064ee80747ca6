"""The periodic status line, in the spirit of seed 000's per-second print.

Example output::

    run 5f3a9c0b | target 2,775/s | sent 2,771/s | acked 2,770/s | total 13,850 | \
in-flight 21 | backpressure 0 | failed 0 | lag max 3 ms

Rates are computed from the change of cumulative totals between two lines, so they are
exact over the interval whatever the reporting cadence of the workers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

COUNTER_KEYS = ("sent", "acked", "failed", "in_flight", "backpressure", "undelivered")


def add_counters(reports: list[Mapping[str, int]]) -> dict[str, int]:
    """Sum counter snapshots from several processes."""
    total = dict.fromkeys(COUNTER_KEYS, 0)
    for report in reports:
        for key in COUNTER_KEYS:
            total[key] += int(report.get(key, 0))
    return total


def format_rate(rate: float | None) -> str:
    """``2,775/s``, or ``unlimited`` for ``None``."""
    return "unlimited" if rate is None else f"{rate:,.0f}/s"


@dataclass
class StatusLine:
    """Turns successive cumulative counter snapshots into status lines."""

    run_id: str
    target: float | None
    """Target msg/s for the run (``None`` = unlimited)."""
    _last: dict[str, int] = field(default_factory=dict)
    _last_t: float | None = None

    def line(
        self,
        counters: Mapping[str, int],
        lag_s: float,
        now: float | None = None,
        verified: Mapping[str, int] | None = None,
    ) -> str:
        """The next status line for ``counters`` (cumulative since the run started).

        ``verified`` adds the verifier's live view: seen, unseen (acked, not seen yet),
        duplicated and corrupted.
        """
        now = time.time() if now is None else now
        elapsed = (now - self._last_t) if self._last_t is not None else 0.0
        sent_rate = acked_rate = 0.0
        if elapsed > 0:
            sent_rate = (counters.get("sent", 0) - self._last.get("sent", 0)) / elapsed
            acked_rate = (counters.get("acked", 0) - self._last.get("acked", 0)) / elapsed
        self._last, self._last_t = dict(counters), now
        parts = [
            f"run {self.run_id[:8]}",
            f"target {format_rate(self.target)}",
            f"sent {sent_rate:,.0f}/s",
            f"acked {acked_rate:,.0f}/s",
            f"total {counters.get('acked', 0):,}",
            f"in-flight {counters.get('in_flight', 0):,}",
            f"backpressure {counters.get('backpressure', 0):,}",
            f"failed {counters.get('failed', 0):,}",
            f"lag max {lag_s * 1000:,.0f} ms",
        ]
        if verified is not None:
            parts += [
                f"seen {verified.get('seen', 0):,}",
                f"unseen {verified.get('unseen', 0):,}",
                f"dup {verified.get('duplicated', 0):,}",
                f"corrupt {verified.get('corrupted', 0):,}",
            ]
        return " | ".join(parts)


def format_summary(counters: Mapping[str, int]) -> str:
    """The one-line account printed when a run stops."""
    return (
        f"sent={counters.get('sent', 0):,} acked={counters.get('acked', 0):,} "
        f"failed={counters.get('failed', 0):,} undelivered={counters.get('undelivered', 0):,} "
        f"backpressure={counters.get('backpressure', 0):,}"
    )
