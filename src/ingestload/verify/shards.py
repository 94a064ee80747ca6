"""Verification sharded by partition: which reader owns a partition, and the state readers hand over.

Several readers (:class:`~ingestload.verify.readback.Readback` with a :class:`Shard`) each read the
partitions :func:`shard_of` gives them, to their ends, and check their logs; one of them takes in the
others' :func:`export_partitions` (with :func:`import_partitions`) and judges. The partitions of the
readers are disjoint and a partition's state is everything the verdict needs from it (seen sets per
producer, counts, samples), so the merged verifier holds exactly what one reader of every partition
would hold: duplicates across two partitions of a topic owned by two readers are found in the merge,
by the same summary.

Example::

    >>> [shard_of("gov-alarm", p, 2) for p in range(4)]  # a topic's partitions alternate
    [1, 0, 1, 0]
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pyroaring import BitMap64

from ingestload.verify.verifier import MessageId, PartitionState, Verifier, _ProducerInPartition


class Shard(NamedTuple):
    """One reader of several."""

    number: int
    """This reader's number, 0 … ``of`` − 1."""
    of: int
    """How many readers share the partitions."""


#: A partition's counts, as exported.
_COUNTS = (
    "records",
    "misrouted",
    "duplicates",
    "corrupted",
    "reordered",
    "foreign",
    "last_offset",
    "enriched",
)


def shard_of(topic: str, partition: int, count: int) -> int:
    """The reader (0 … ``count`` − 1) that owns ``topic[partition]``: the partitions of a topic go round
    the readers in turn from a place that depends on the topic's name only, so that a topic's
    partitions are spread evenly and a partition that appears later has an owner without asking.
    """
    return (zlib.crc32(topic.encode()) + partition) % count


def _ids(samples: Iterable[MessageId]) -> list[list[Any]]:
    return [list(sample) for sample in samples]


def _bitmap(bitmap: BitMap64) -> str:
    return base64.b64encode(bitmap.serialize()).decode()


def export_partitions(verifier: Verifier) -> list[dict[str, Any]]:
    """Every partition's state in ``verifier``, JSON-able, for :func:`import_partitions` elsewhere."""
    exported = []
    for state in verifier.partitions.values():
        exported.append(
            {
                "topic": state.topic,
                "partition": state.partition,
                "producers": [
                    [producer, _bitmap(e.seen), _bitmap(e.strays), e.duplicates, e.last]
                    for producer, e in state.producers.items()
                ],
                "counts": [getattr(state, name) for name in _COUNTS],
                "log_reset": state.log_reset,
                "duplicate_samples": _ids(state.duplicate_samples),
                "corrupted_samples": _ids(state.corrupted_samples),
                "misrouted_samples": _ids(state.misrouted_samples),
                "enriched_members": state.enriched_members,
                "corrupted_bodies": [
                    [list(i), body, sent] for i, (body, sent) in state.corrupted_bodies.items()
                ],
            }
        )
    return exported


def import_partitions(verifier: Verifier, exported: Iterable[Mapping[str, Any]]) -> None:
    """Put partitions exported by another reader into ``verifier`` (replacing any of the same name)."""
    for item in exported:
        state = PartitionState(item["topic"], int(item["partition"]))
        for producer, seen, strays, duplicates, last in item["producers"]:
            entry = _ProducerInPartition()
            entry.seen = BitMap64.deserialize(base64.b64decode(seen))
            entry.strays = BitMap64.deserialize(base64.b64decode(strays))
            entry.duplicates, entry.last = int(duplicates), int(last)
            state.producers[int(producer)] = entry
        for name, value in zip(_COUNTS, item["counts"], strict=True):
            setattr(state, name, int(value))
        state.log_reset = bool(item["log_reset"])
        state.duplicate_samples = [MessageId(*i) for i in item["duplicate_samples"]]
        state.corrupted_samples = [MessageId(*i) for i in item["corrupted_samples"]]
        state.misrouted_samples = [MessageId(*i) for i in item["misrouted_samples"]]
        state.enriched_members = {str(k): int(v) for k, v in item["enriched_members"].items()}
        state.corrupted_bodies = {MessageId(*i): (body, sent) for i, body, sent in item["corrupted_bodies"]}
        verifier.partitions[(state.topic, state.partition)] = state
