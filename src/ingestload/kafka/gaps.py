"""Read each gap in a live consumer's offsets again once before moving past it.

A partition's offsets rise one by one, but for the gaps Kafka leaves on purpose: a transaction's
commit or abort marker, records compacted away. A live consumer cannot tell those from a gap a
broker should never show: a later record batch fetched before an earlier one is readable. Tansu,
the embedded broker, does that now and then with several producers writing to one partition (seen:
18 records of one partition jumped over by a live consumer, found by a read made afterwards). A
sink that commits past such a gap has lost those records for good.

So a :class:`GapGuard` holds a partition at its first unexplained gap: the records from the gap on
are left for now and the consumer is sent back (``seek``) to the first offset missing. The fetch
that follows either fills the gap (it was the broker's) or shows the same gap again, which is then
real and passed. A real gap costs one fetch more; nothing is written twice and nothing is skipped.

Example::

    guard = GapGuard(consumer.seek)
    consumer.subscribe(topics, on_assign=guard.on_assign, on_revoke=guard.on_revoke)
    records = guard.admit([r for r in consumer.consume(1000, 0.1) if r.error() is None])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

Key = tuple[str, int]


class GapGuard:
    """Which consumed records may be handled now (see the module's docstring). Not thread-safe:
    use it from the thread that consumes."""

    def __init__(self, seek: Callable[[Any], None]) -> None:
        self._seek = seek
        self._next: dict[Key, int] = {}
        """Per partition: the offset after the last record admitted (none: not known yet)."""
        self._held: dict[Key, tuple[int, int]] = {}
        """Per partition: the gap read again (first offset missing, first offset after it)."""
        self.reread = 0
        """Gaps read again."""
        self.filled = 0
        """Of those, gaps the fetch after filled (records the consumer had jumped over)."""
        self.real = 0
        """Gaps shown again by the fetch after (markers, compaction): passed."""

    def admit(self, records: Sequence[Any]) -> list[Any]:
        """The records of ``records`` (error-free, as consumed) to handle now, in order."""
        admitted: list[Any] = []
        sent_back: set[Key] = set()
        expected, held = self._next, self._held
        for record in records:
            key = (record.topic(), record.partition())
            if key in sent_back:
                continue  # read again after the seek
            offset = record.offset()
            want = expected.get(key)
            if want is not None and offset != want:
                if offset < want:
                    continue  # a record admitted before (the fetch after a seek may start earlier)
                if held.get(key) == (want, offset):
                    self.real += 1
                    del held[key]
                else:
                    held[key] = (want, offset)
                    self.reread += 1
                    self._seek(_partition(key, want))
                    sent_back.add(key)
                    continue
            elif want is not None and key in held:
                del held[key]
                self.filled += 1
            admitted.append(record)
            expected[key] = offset + 1
        return admitted

    def forget(self, partitions: Iterable[Any]) -> None:
        """Start again for ``partitions`` (assigned or revoked: the position is the committed offset)."""
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._next.pop(key, None)
            self._held.pop(key, None)

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """For ``subscribe(on_assign=…)``."""
        self.forget(partitions)

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """For ``subscribe(on_revoke=…)`` and ``on_lost``."""
        self.forget(partitions)

    def line(self) -> str:
        """For a status line: ``""`` while no gap was seen."""
        if not self.reread:
            return ""
        return f"gaps read again {self.reread:,} (filled {self.filled:,}, real {self.real:,})"


def _partition(key: Key, offset: int) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(key[0], key[1], offset)
