"""Verification by two readers that share the partitions: the same exact counts as one reader."""

import orjson
import pytest

from ingestload.verify.readback import Readback
from ingestload.verify.shards import Shard
from tests.integration.test_verification import RUN, Producing

pytestmark = pytest.mark.integration


def test_two_shards_merged_count_exactly_what_was_injected(kafka, prefix):
    """Two readers, each owning half the partitions, read to the end; the second's state goes to the
    first through JSON and the first judges: lost, duplicated, corrupted and failed exactly as injected,
    and the same verdict as one reader of every partition."""
    p = Producing(
        kafka, prefix, lose={5, 17, 4000}, duplicate={30, 31, 2500}, corrupt={40}, fail={50, 51, 52}
    )
    try:
        config = p.settings.kafka.consumer_config()
        shards = [Readback(config, p.topics, RUN, shard=Shard(n, 2)) for n in range(2)]
        whole = Readback(config, p.topics, RUN, start=dict(shards[0].start))
        assert shards[0].assigned.isdisjoint(shards[1].assigned)
        assert shards[0].assigned | shards[1].assigned == whole.assigned
        assert all(s.assigned for s in shards)
        p.send(5000)
        ledger = p.ledger()
        for shard in shards:
            assert shard.read_to_end(drain_timeout=20, late_grace=1.0)
        shards[0].merge(orjson.loads(orjson.dumps(shards[1].export())))
        verdict = shards[0].judge(ledger)
        alone = whole.finish(ledger, drain_timeout=20, late_grace=1.0)
    finally:
        p.close()
    assert verdict.status == "FAIL"
    assert (verdict.lost, verdict.duplicated, verdict.corrupted, verdict.failed) == (3, 3, 1, 3)
    assert (verdict.acked, verdict.seen) == (5000 - 3, 5000 - 3 - 3)
    assert sorted(i.seq for i in verdict.lost_samples) == [5, 17, 4000]
    assert sorted(i.seq for i in verdict.duplicated_samples) == [30, 31, 2500]
    for field in ("status", "acked", "seen", "lost", "duplicated", "corrupted", "misrouted", "failed"):
        assert getattr(verdict, field) == getattr(alone, field), field
    assert verdict.lost_by_topic == alone.lost_by_topic
    assert verdict.anomalies_by_topic == alone.anomalies_by_topic
    assert sum(int(s["count"]) for s in verdict.latency_ms.values()) == verdict.seen + verdict.duplicated
