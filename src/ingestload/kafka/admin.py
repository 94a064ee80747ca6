"""Small, blocking Kafka helpers: create topics, read start offsets, read a run back.

These block the calling thread; inside a Locust process call them only at ``init``
(before any load), never from a user or a greenlet that runs during the test.

Why :func:`count_run` consumes instead of subtracting watermarks: the embedded Tansu
broker answers ListOffsets(latest) with the base offset of the last record batch plus
one, not the true end (seen: 201 for a partition holding 300 records in batches of
100), while fetch responses and end-of-partition events are right. A start offset read
that way can only be too low — harmless, as older messages carry another run id — but
an end offset would undercount. So the end of a partition is taken from
``enable.partition.eof``.

Example::

    ensure_topics(config, ["gov-alarm", "gov-fault"], partitions=3)
    start = high_watermarks(config, topics)
    …
    count_run(config, topics, start, run_id)      # {"gov-alarm": 1234, …}
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ingestload.errors import ConfigError, IngestloadError
from ingestload.kafka.config import COMMITTED_ONLY, CONSUMER_DEFAULTS, scrub
from ingestload.messages.envelope import header_of, is_of_run

Offsets = dict[tuple[str, int], int]


def _admin(config: Mapping[str, str]) -> object:
    from confluent_kafka.admin import AdminClient

    try:
        return AdminClient(dict(config))
    except Exception as e:  # KafkaException for an unknown or invalid property
        raise ConfigError(f"Kafka client configuration rejected: {scrub(str(e), config)}") from None


def ensure_topics(
    config: Mapping[str, str], topics: Iterable[str], partitions: int, timeout: float = 15.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = _admin(config)
    wanted = sorted(set(topics))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)  # type: ignore[attr-defined]
    except KafkaException as e:
        raise IngestloadError(
            f"cannot reach Kafka at {config.get('bootstrap.servers')}: {scrub(str(e), config)}; "
            "is the broker running (ingestload broker) and --kafka-bootstrap right?"
        ) from None
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(  # type: ignore[attr-defined]
        [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise IngestloadError(f"cannot create topic {topic!r}: {scrub(str(e), config)}") from None
    return sorted(created)


def reader(config: Mapping[str, str], purpose: str, **extra: Any) -> Any:
    """A consumer that reads by assignment: a group id of its own (never joined: no rebalance
    wait, no commits), end-of-partition events on, reading from the beginning where no offset is
    given, committed records only whatever ``config`` says (:data:`~ingestload.kafka.config.COMMITTED_ONLY`;
    ``extra`` may still ask otherwise), the fast-fetch :data:`~ingestload.kafka.config.CONSUMER_DEFAULTS`
    under ``config``."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            **CONSUMER_DEFAULTS,
            **config,
            **COMMITTED_ONLY,
            "group.id": f"ingestload-{purpose}-{uuid.uuid4().hex}",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "auto.offset.reset": "earliest",
            **extra,
        }
    )


def _know_leaders(consumer: Any, timeout: float) -> None:
    """Fetch the cluster's metadata before ``assign``: a new consumer that is assigned partitions
    first learns their leaders ~0.5 s later (measured with librdkafka 2.x), which every short read
    at the end of a verification paid once or twice. Kafka's not answering is found out later."""
    with contextlib.suppress(Exception):
        consumer.list_topics(timeout=timeout)


def topic_partitions(client: Any, topics: Iterable[str], timeout: float) -> list[tuple[str, int]]:
    """Every (topic, partition) of ``topics`` that exists now, in order (missing topics are skipped)."""
    metadata = client.list_topics(timeout=timeout)
    found = []
    for topic in sorted(set(topics)):
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            continue
        found += [(topic, partition) for partition in sorted(info.partitions)]
    return found


def high_watermarks(config: Mapping[str, str], topics: Iterable[str], timeout: float = 10.0) -> Offsets:
    """The high watermark (next offset) of every partition of ``topics``; missing topics are skipped."""
    from confluent_kafka import TopicPartition

    consumer = reader(config, "watermarks")
    try:
        offsets: Offsets = {}
        for topic, partition in topic_partitions(consumer, topics, timeout):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            offsets[(topic, partition)] = int(high)
        return offsets
    finally:
        consumer.close()


def history_missing(
    config: Mapping[str, str],
    topics: Iterable[str],
    start: Offsets,
    cluster_id: str | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Why this Kafka cannot be the one that held a run that started at ``start`` (empty when it can
    be): another cluster id, a topic of the run that does not exist, a partition that ends before
    the run's start offset. A run judged there would call everything lost."""
    from confluent_kafka import TopicPartition

    consumer = reader(config, "history")
    try:
        metadata = consumer.list_topics(timeout=timeout)
        if cluster_id and metadata.cluster_id and metadata.cluster_id != cluster_id:
            return [f"this Kafka is cluster {metadata.cluster_id}; the run's was {cluster_id}"]
        reasons = [f"topic {t} does not exist here" for t in sorted(set(topics)) if t not in metadata.topics]
        for (topic, partition), offset in sorted(start.items()):
            if topic not in metadata.topics:
                continue
            if partition not in metadata.topics[topic].partitions:
                reasons.append(f"{topic}[{partition}] does not exist here")
                continue
            tp = TopicPartition(topic, partition)
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high < offset:
                reasons.append(
                    f"{topic}[{partition}] ends at offset {high:,}, before the run's start {offset:,}"
                )
        return reasons
    finally:
        consumer.close()


def topic_end_offsets(config: Mapping[str, str], topics: Iterable[str], *, timeout: float = 15.0) -> Offsets:
    """:func:`end_offsets` of every partition of ``topics`` now; missing topics are skipped.

    Raises :class:`~ingestload.errors.IngestloadError` when a partition gives no end within ``timeout``.
    """
    consumer = reader(config, "end-offsets")
    try:
        partitions = topic_partitions(consumer, topics, timeout)
    finally:
        consumer.close()
    return end_offsets(config, partitions, timeout)


def read_to_end(
    config: Mapping[str, str],
    topics: Iterable[str],
    start: Offsets | None = None,
    *,
    idle_timeout: float = 10.0,
    batch: int = 10_000,
) -> Iterator[list[Any]]:
    """Yield batches of messages of every partition of ``topics``, from ``start`` (default:
    the beginning) until each partition reports its end; gives up after ``idle_timeout``
    seconds without progress (raising :class:`~ingestload.errors.IngestloadError`).
    """
    from confluent_kafka import OFFSET_BEGINNING

    consumer = reader(config, "readback")
    try:
        where = {
            key: (start or {}).get(key, OFFSET_BEGINNING) for key in topic_partitions(consumer, topics, 10.0)
        }
    finally:
        consumer.close()
    yield from read_partitions(config, where, idle_timeout=idle_timeout, batch=batch)


def read_partitions(
    config: Mapping[str, str], where: Offsets, *, idle_timeout: float = 10.0, batch: int = 10_000
) -> Iterator[list[Any]]:
    """Yield batches of messages of exactly the partitions in ``where`` (``(topic, partition) →
    offset``, or ``OFFSET_BEGINNING``) until each reports its end; raises
    :class:`~ingestload.errors.IngestloadError` after ``idle_timeout`` seconds without progress."""
    from confluent_kafka import KafkaError, TopicPartition

    if not where:
        return
    consumer = reader(config, "readback")
    try:
        _know_leaders(consumer, idle_timeout)
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in sorted(where.items())])
        pending = set(where)
        last_progress = time.monotonic()
        while pending and time.monotonic() - last_progress < idle_timeout:
            messages = consumer.consume(batch, 0.5)
            data = []
            for message in messages:
                error = message.error()
                if error is None:
                    data.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard((message.topic(), message.partition()))
                else:
                    raise IngestloadError(f"reading back {message.topic()}: {scrub(str(error), config)}")
            if messages:
                last_progress = time.monotonic()
            if data:
                yield data
        if pending:
            raise IngestloadError(
                f"reading back stalled for {idle_timeout:g}s before the end of "
                + ", ".join(f"{t}[{p}]" for t, p in sorted(pending))
            )
    finally:
        consumer.close()


def end_offsets(
    config: Mapping[str, str],
    partitions: Iterable[tuple[str, int]],
    timeout: float = 10.0,
    *,
    committed: bool = True,
    highs: dict[tuple[str, int], int] | None = None,
) -> Offsets:
    """The end of each partition now, as a fetch at its end reports it: for a committed reader its
    last stable offset (the high watermark unless a transaction is open), with ``committed=False``
    its high watermark. ``highs``, when given, gets each partition's high watermark as the same
    consumer last saw it, at or after its end was reported (``-1`` where not known).

    A ListOffsets answer is not enough (the embedded broker answers it with the start of its last
    record batch), and a busy consumer's last fetch response may be old. So a consumer of its own
    reads from the end of each partition until each reports its end: that end-of-partition event
    carries the high watermark of a fetch made now. Raises
    :class:`~ingestload.errors.IngestloadError` when Kafka does not answer within ``timeout``.
    """
    from confluent_kafka import OFFSET_END, KafkaError, TopicPartition

    wanted = sorted(set(partitions))
    ends: Offsets = {}
    if not wanted:
        return ends
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = reader(
        config, "ends", **{"fetch.min.bytes": "1", "fetch.wait.max.ms": "10", "isolation.level": isolation}
    )
    try:
        _know_leaders(consumer, timeout)
        consumer.assign([TopicPartition(t, p, OFFSET_END) for t, p in wanted])
        deadline = time.monotonic() + timeout
        while len(ends) < len(wanted):
            if time.monotonic() > deadline:
                missing = ", ".join(f"{t}[{p}]" for t, p in wanted if (t, p) not in ends)
                raise IngestloadError(f"no end reported within {timeout:g}s for {missing}")
            for message in consumer.consume(1000, 0.1):
                error = message.error()
                if error is None:
                    continue  # records written since the end was looked up: its end comes next
                key = (message.topic(), message.partition())
                if error.code() == KafkaError._PARTITION_EOF:
                    ends[key] = int(message.offset())
                    if highs is not None:
                        high = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)[1]
                        highs[key] = int(high) if high is not None and high >= 0 else -1
                else:
                    raise IngestloadError(
                        f"reading the end of {key[0]}[{key[1]}]: {scrub(str(error), config)}"
                    )
        return ends
    finally:
        consumer.close()


def records_at(
    config: Mapping[str, str], wanted: Iterable[tuple[tuple[str, int], int]], timeout: float = 10.0
) -> dict[tuple[tuple[str, int], int], Any]:
    """The record at each ``((topic, partition), offset)`` of ``wanted``, or ``None`` where the log no
    longer holds that offset (it ends before it, or its first record after it is another offset).

    One consumer, one round per offset of a partition; small fetches (one record is wanted). Raises
    :class:`~ingestload.errors.IngestloadError` when Kafka does not answer within ``timeout``.
    """
    from confluent_kafka import KafkaError, TopicPartition

    rounds: list[dict[tuple[str, int], int]] = []
    for key, offset in wanted:
        free = next((r for r in rounds if key not in r), None)
        if free is None:
            free = {}
            rounds.append(free)
        free[key] = offset
    found: dict[tuple[tuple[str, int], int], Any] = {}
    if not rounds:
        return found
    consumer = reader(config, "check", **{"fetch.min.bytes": "1", "fetch.wait.max.ms": "10"})
    deadline = time.monotonic() + timeout
    try:
        _know_leaders(consumer, timeout)
        for where in rounds:
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in sorted(where.items())])
            decided: set[tuple[str, int]] = set()
            while len(decided) < len(where):
                if time.monotonic() > deadline:
                    undecided = ", ".join(f"{t}[{p}]" for t, p in sorted(set(where) - decided))
                    raise IngestloadError(f"no answer within {timeout:g}s when reading back {undecided}")
                # The first answer waited for, the rest taken as they are: consume(n, timeout) would
                # wait the whole timeout for n records that a round of single records never has.
                answers = consumer.consume(1, 0.1)
                for message in answers + consumer.consume(100, 0) if answers else ():
                    key = (message.topic(), message.partition())
                    if key in decided or key not in where:
                        continue
                    error = message.error()
                    if error is None:
                        found[(key, where[key])] = message if message.offset() == where[key] else None
                    elif error.code() == KafkaError._PARTITION_EOF:
                        found[(key, where[key])] = None
                    else:
                        raise IngestloadError(f"reading back {message.topic()}: {scrub(str(error), config)}")
                    decided.add(key)
        return found
    finally:
        consumer.close()


def run_messages(
    config: Mapping[str, str], topics: Iterable[str], start: Offsets | None, run_id: str
) -> Iterator[Any]:
    """Every message on ``topics`` (from ``start``) whose envelope header carries ``run_id``."""
    run = bytes.fromhex(run_id)
    for batch in read_to_end(config, topics, start):
        for message in batch:
            if is_of_run(header_of(message.headers()), run):
                yield message


def count_run(
    config: Mapping[str, str], topics: Iterable[str], start: Offsets | None, run_id: str
) -> dict[str, int]:
    """Messages per topic that carry ``run_id`` in their envelope."""
    counts = dict.fromkeys(sorted(set(topics)), 0)
    for message in run_messages(config, topics, start, run_id):
        counts[message.topic()] += 1
    return counts
