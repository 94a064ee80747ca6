"""The gap check of a live consumer (ingestload.kafka.gaps): a gap is read again once, then passed.

The consumer here is a list of what each fetch returns (a broker's log replayed by the test), and
``seek`` moves its position; what the test knows is the log it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import TopicPartition

from ingestload.kafka.gaps import GapGuard


@dataclass(frozen=True)
class Rec:
    t: str
    p: int
    o: int

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def recs(topic: str, partition: int, *offsets: int) -> list[Rec]:
    return [Rec(topic, partition, o) for o in offsets]


class Seeks(list):
    def __call__(self, tp: TopicPartition) -> None:
        self.append((tp.topic, tp.partition, tp.offset))


def offsets(records: list[Rec]) -> list[tuple[str, int, int]]:
    return [(r.t, r.p, r.o) for r in records]


def test_contiguous_offsets_pass_untouched() -> None:
    seeks = Seeks()
    guard = GapGuard(seeks)
    batch = recs("a", 0, 5, 6, 7) + recs("b", 1, 0, 1)
    assert guard.admit(batch) == batch
    assert guard.admit(recs("a", 0, 8)) == recs("a", 0, 8)
    assert seeks == []
    assert guard.line() == ""


def test_a_gap_the_broker_fills_is_read_again_and_nothing_is_skipped() -> None:
    seeks = Seeks()
    guard = GapGuard(seeks)
    # The fetch jumped from 3 to 7 on a/0 (4, 5, 6 not readable yet); b/0 goes on untouched.
    first = guard.admit(recs("a", 0, 1, 2, 3, 7, 8) + recs("b", 0, 10, 11))
    assert offsets(first) == [("a", 0, 1), ("a", 0, 2), ("a", 0, 3), ("b", 0, 10), ("b", 0, 11)]
    assert seeks == [("a", 0, 4)]
    # The fetch after the seek holds the records jumped over.
    second = guard.admit(recs("a", 0, 4, 5, 6, 7, 8, 9))
    assert [r.o for r in second] == [4, 5, 6, 7, 8, 9]
    assert (guard.reread, guard.filled, guard.real) == (1, 1, 0)
    assert guard.line() == "gaps read again 1 (filled 1, real 0)"


def test_a_gap_shown_again_is_real_and_passed_after_one_more_fetch() -> None:
    seeks = Seeks()
    guard = GapGuard(seeks)
    assert [r.o for r in guard.admit(recs("t", 2, 0, 1, 2))] == [0, 1, 2]
    # 3 is a transaction marker: every fetch goes from 2 to 4.
    assert guard.admit(recs("t", 2, 4, 5)) == []
    assert seeks == [("t", 2, 3)]
    assert [r.o for r in guard.admit(recs("t", 2, 4, 5, 6))] == [4, 5, 6]
    assert (guard.reread, guard.filled, guard.real) == (1, 0, 1)
    # The next marker is a gap of its own: read again once too.
    assert guard.admit(recs("t", 2, 8)) == []
    assert seeks[-1] == ("t", 2, 7)


def test_a_gap_partly_filled_is_read_again_until_it_is_filled_or_shown_twice() -> None:
    seeks = Seeks()
    guard = GapGuard(seeks)
    guard.admit(recs("t", 0, 0))
    assert guard.admit(recs("t", 0, 10)) == []  # 1..9 missing
    assert guard.admit(recs("t", 0, 5, 6)) == []  # 1..4 still missing: a smaller gap, again
    assert seeks == [("t", 0, 1), ("t", 0, 1)]
    assert [r.o for r in guard.admit(recs("t", 0, 5, 6))] == [5, 6]  # the same gap twice: real
    assert guard.reread == 2
    assert guard.real == 1


def test_records_before_the_position_after_a_seek_are_not_handled_twice() -> None:
    guard = GapGuard(Seeks())
    guard.admit(recs("t", 0, 0, 1, 2))
    assert guard.admit(recs("t", 0, 1, 2, 3)) == recs("t", 0, 3)


def test_after_a_rebalance_the_first_record_of_a_partition_is_taken_as_it_comes() -> None:
    seeks = Seeks()
    guard = GapGuard(seeks)
    guard.admit(recs("t", 0, 0, 1, 2))
    guard.admit(recs("t", 0, 9))  # a gap read again...
    guard.on_revoke(None, [TopicPartition("t", 0)])
    guard.on_assign(None, [TopicPartition("t", 0)])
    # ...then the partition came back from its committed offset: nothing is known of it.
    assert guard.admit(recs("t", 0, 3, 4)) == recs("t", 0, 3, 4)
    assert seeks == [("t", 0, 3)]
