"""When a sink has written everything: its consumer group's committed offsets, then a still table.

A sink runs behind Kafka. Before anything missing from its table may be called lost, the sink must
have caught up: the committed offsets of its consumer group reach Kafka's end offsets (taken after
every producer drained), and — for a sink that commits before it writes, as seed 001's did — the
table stops changing for a moment. A sink that does not get there within ``--sink-wait`` leaves
the missing rows *missing* (INCONCLUSIVE), not lost; so does a sink whose group is unknown.

Example::

    caught_up, how = wait_caught_up(target, config, topics, "ingestload-sink", run_id, wait=60)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ingestload.errors import IngestloadError
from ingestload.kafka.admin import topic_end_offsets
from ingestload.sink.table import SinkTarget
from ingestload.sink.verdict import SinkVerdict, TableTally, judge, unjudged

log = logging.getLogger("ingestload")
#: Seconds the table must stay unchanged (after the group caught up) before it is read.
SETTLE = 1.0


def committed_offsets(
    config: Mapping[str, str], group: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed for ``partitions`` (−1: none), without joining the group."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": "false"})
    try:
        answer = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else -1) for tp in answer}


def behind(end: Mapping[tuple[str, int], int], committed: Mapping[tuple[str, int], int]) -> int:
    """Messages between the group's committed offsets and Kafka's end offsets (all partitions).

    Example::

        >>> behind({("t", 0): 10, ("t", 1): 0}, {("t", 0): 7, ("t", 1): -1})
        3
    """
    total = 0
    for key, last in end.items():
        total += max(0, last - max(committed.get(key, -1), 0))
    return total


def wait_caught_up(
    target: SinkTarget,
    config: Mapping[str, str],
    topics: Sequence[str],
    group: str | None,
    run_id: str | None,
    *,
    wait: float,
    settle: float = SETTLE,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[bool | None, str]:
    """(True, how) once the sink caught up; (False, why) when it did not within ``wait``;
    (None, why) when its progress cannot be known (no group) — the table then merely settled."""
    deadline = time.monotonic() + wait
    say = on_wait or log.info
    if group:
        end = topic_end_offsets(config, topics)
        last_said = 0.0
        while True:
            left = behind(end, committed_offsets(config, group, list(end)))
            if left == 0:
                break
            if time.monotonic() >= deadline:
                return False, (
                    f"the sink's consumer group {group!r} was still {left:,} messages behind Kafka's end "
                    f"after --sink-wait {wait:g}s"
                )
            if time.monotonic() - last_said >= 5:
                say(f"waiting for the sink: group {group!r} is {left:,} messages behind Kafka's end")
                last_said = time.monotonic()
            time.sleep(0.2)
    settled = _settle(target, run_id, deadline, settle)
    if not group:
        return None, (
            "the sink's progress is unknown (no --sink-group): name its consumer group to judge missing rows"
            + ("" if settled else f"; the table was still changing after --sink-wait {wait:g}s")
        )
    if not settled:
        return False, f"the table was still changing after --sink-wait {wait:g}s"
    return True, f"the sink's group {group!r} had committed Kafka's end offsets and the table was still"


def _settle(target: SinkTarget, run_id: str | None, deadline: float, settle: float) -> bool:
    """Wait until the table's row count is the same ``settle`` seconds apart (False: not by ``deadline``)."""
    count = target.count(run_id)
    while True:
        time.sleep(settle)
        now = target.count(run_id)
        if now == count:
            return True
        if time.monotonic() >= deadline:
            return False
        count = now


def read_table(target: SinkTarget, tally: Any, run_id: str | None) -> None:
    """Every row and dead letter of ``target`` into ``tally`` (a
    :class:`~ingestload.sink.verdict.TableTally`)."""
    for value, written_at, kafka_at in target.rows(run_id):
        tally.add_row(value, written_at, kafka_at)
    for value, reason in target.dead_rows(run_id):
        tally.add_dead_letter(value, reason)


def judge_table(
    target: SinkTarget,
    config: Mapping[str, str],
    topics: Sequence[str],
    *,
    group: str | None,
    run_id: str,
    ledger: Any,
    spec: Any,
    thresholds: Any,
    wait: float,
    missing_workers: Sequence[str] = (),
    on_wait: Callable[[str], None] | None = None,
) -> SinkVerdict:
    """The storage hop's verdict on ``target``: wait for the sink, read the table, judge
    (:func:`~ingestload.sink.verdict.judge`). A database or Kafka that cannot answer makes it
    INCONCLUSIVE with the reason — never PASS, never an invented loss."""
    try:
        caught_up, how = wait_caught_up(target, config, topics, group, run_id, wait=wait, on_wait=on_wait)
        tally = TableTally(spec, run_id)
        read_table(target, tally, run_id if target.reference else None)
    except IngestloadError as e:
        return unjudged(target.name, ledger, f"the table could not be judged: {e}")
    return judge(
        target.name,
        ledger,
        tally,
        thresholds,
        caught_up=caught_up,
        progress=how,
        missing_workers=missing_workers,
    )
