"""The verifier's bulk filing of clean runs: the same result as filing message by message.

The reference is the per-message path (``Verifier._file_each``, the verifier as it was before the
bulk path, checked by test_verifier.py); the anomalies are injected here with known counts."""

import random

from ingestload.verify.verifier import Verifier
from tests.unit.fakes import RUN, Msg, http_msg, kafka_msg

TOPICS = ("a", "b")


def state_of(verifier):
    """Everything the verdict and the read-back checks take from a verifier, comparable with ==."""
    summary = verifier.summary()
    partitions = {
        key: (
            s.records,
            s.misrouted,
            s.duplicates,
            s.corrupted,
            s.reordered,
            s.foreign,
            s.last_offset,
            s.log_reset,
            id(s.first_message),
            id(s.last_message),
            s.duplicate_samples,
            s.corrupted_samples,
            s.misrouted_samples,
            {p: (sorted(e.seen), sorted(e.strays), e.duplicates, e.last) for p, e in s.producers.items()},
        )
        for key, s in verifier.partitions.items()
    }
    seen = {p: sorted(b) for p, b in summary.seen.items()}
    counts = (summary.records, summary.duplicated, summary.corrupted, summary.misrouted, summary.reordered)
    return partitions, seen, counts, summary.foreign, verifier.seen_records, verifier.latency


def random_batches(rng, anomalies):
    """Batches as a fetch delivers them (runs per partition), with anomalies at rate ``anomalies``."""
    offsets = {(t, p): 0 for t in TOPICS for p in range(2)}
    seqs = {}
    batches = []
    for _ in range(rng.randint(1, 6)):
        batch = []
        for _ in range(rng.randint(1, 5)):
            topic, partition = rng.choice(sorted(offsets))
            producers = rng.sample(range(1, 12), rng.randint(1, 10))
            for _ in range(rng.randint(1, 40)):
                producer = rng.choice(producers)
                seq = seqs.get(producer, 0)
                seqs[producer] = seq + 1
                offset = offsets[(topic, partition)]
                offsets[(topic, partition)] = offset + 1
                kwargs = {"topic": topic, "partition": partition, "offset": offset, "sent_at_us": seq * 997}
                roll = rng.random()
                if roll < anomalies:
                    kind = rng.choice(["dup", "back", "crc", "misrouted", "foreign", "http", "reset", "bare"])
                    if kind == "dup":
                        seq = max(seq - rng.randint(1, 3), 0)
                    elif kind == "back":
                        seq = max(seq - rng.randint(1, 5), 0)
                        seqs[producer] = seq + 2
                    elif kind == "crc":
                        kwargs["crc"] = 12345
                    elif kind == "misrouted":
                        kwargs["meant_for"] = "elsewhere"
                    elif kind == "foreign":
                        kwargs["run"] = "ffffffffffffffff"
                    elif kind == "reset":
                        kwargs["offset"] = max(offset - 3, 0)
                    if kind == "http":
                        msg = http_msg(producer, seq, {"n": seq}, **kwargs)
                    elif kind == "bare":
                        msg = Msg(topic, partition, offset, b"not ours")
                    else:
                        msg = kafka_msg(producer, seq, **kwargs)
                else:
                    msg = kafka_msg(producer, seq, **kwargs)
                batch.append(msg)
        batches.append(batch)
    return batches


def test_bulk_and_message_by_message_agree_on_random_batches():
    """On 400 random streams (clean ones, and ones with duplicates, reordering, corruption, misrouting,
    foreign and HTTP-path records, offsets going back) the verifier files exactly what the
    per-message path files: counts, seen sets, samples, first and last records, latency."""
    for seed in range(400):
        rng = random.Random(seed)
        batches = random_batches(rng, anomalies=rng.choice([0.0, 0.0, 0.01, 0.05, 0.3]))
        bulk, each = Verifier(RUN), Verifier(RUN)
        for batch in batches:
            bulk.process(batch, now_us=10_000_000)
            each._file_each(batch, True, 10_000_000)
        assert state_of(bulk) == state_of(each), f"seed {seed}"


def test_injected_anomalies_are_counted_exactly_around_clean_runs():
    """Clean runs of 1,000 records with one duplicate, one corrupted and one misrouted record injected
    in a second batch: the verifier counts exactly those three, and sees every message."""
    v = Verifier(RUN)
    clean = [kafka_msg(1, s, offset=s, sent_at_us=9_000_000) for s in range(1000)]
    v.process(clean, now_us=10_000_000)
    anomalies = [
        kafka_msg(1, 1000, offset=1000),
        kafka_msg(1, 500, offset=1001),  # a duplicate
        kafka_msg(1, 1001, offset=1002, crc=1),  # corrupted
        kafka_msg(1, 1002, offset=1003, meant_for="other"),  # misrouted
        *(kafka_msg(1, s, offset=s + 1) for s in range(1003, 2000)),
    ]
    v.process(anomalies, now_us=10_000_000)
    summary = v.summary()
    assert (summary.duplicated, summary.corrupted, summary.misrouted) == (1, 1, 1)
    assert len(summary.seen[1]) == 2000
    assert v.latency["t"][1000] == 1000  # the clean run: 1 s each, in the 1,000 ms bucket


def test_latency_counts_match_a_count_per_message_whatever_the_spread():
    """Latency buckets (ms old at a moment) equal a plain per-message count, for batches whose send
    times span a few milliseconds (counted by bisection) and many (counted one by one), unordered."""
    from array import array

    from ingestload.verify.verifier import _latencies

    rng = random.Random(7)
    now = 1_800_000_000_000_000
    for spread_us in (0, 999, 1_000, 40_000, 5_000_000):
        sent = [now - rng.randint(0, spread_us) for _ in range(5_000)]
        expected: dict[int, int] = {}
        for t in sent:
            expected[(now - t) // 1000] = expected.get((now - t) // 1000, 0) + 1
        counted = dict(_latencies(now, array("q", sent)))
        assert counted == expected, spread_us
        assert sum(counted.values()) == len(sent)
