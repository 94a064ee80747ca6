"""The gateway's core without I/O: windows, filters, bounded queues, the slow-subscriber policies, faults."""

import orjson
import pytest

from ingestload.fanout import protocol
from ingestload.fanout.errors import ProtocolError
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.hub import DISCONNECT, Hub, PushFaults, Record
from ingestload.fanout.protocol import Subscribe

LCE = FieldFilter(("Header", "ControllerType"), ("LCE",))


def rec(topic, partition, offset, controller="LCE"):
    value = orjson.dumps({"Header": {"ControllerType": controller}, "n": offset})
    fragment = protocol.message_fragment(topic, partition, offset, 0, None, value, True)
    return Record(topic, partition, offset, fragment, orjson.loads(value))


def frames_of(hub, conn, now=0.0):
    frames, reason = hub.take(conn, now)
    return [orjson.loads(f) for f in frames], reason


def offsets(frames):
    return [
        (m["topic"], m["partition"], m["offset"])
        for f in frames
        if f["type"] == "messages"
        for m in f["messages"]
    ]


def test_subscribe_confirms_the_current_positions_of_its_topics():
    """The confirmation names, per partition of the subscribed topics only, the next offset dispatched."""
    hub = Hub("w0", {("a", 0): 10, ("a", 1): 3, ("b", 0): 7})
    hub.dispatch([rec("a", 0, 10), rec("a", 0, 11)])
    confirmation = orjson.loads(hub.subscribe("c1", Subscribe(("a",), None, "v"), now=0))
    assert confirmation["from"] == [["a", 0, 12], ["a", 1, 3]]
    assert confirmation["subscription"] == "w0-1"
    assert confirmation["id"] == "v"


def test_only_messages_after_the_start_and_of_the_filter_are_pushed():
    """Messages dispatched before subscribing are not pushed; a filter keeps only its matches, in order."""
    hub = Hub("w0", {("a", 0): 0, ("b", 0): 0})
    hub.dispatch([rec("a", 0, 0)])
    hub.subscribe("all", Subscribe(("a", "b"), None, None), now=0)
    hub.subscribe("lce", Subscribe(("a",), LCE, None), now=0)
    hub.dispatch([rec("a", 0, 1), rec("a", 0, 2, "GCE"), rec("b", 0, 0), rec("a", 0, 3)])
    assert offsets(frames_of(hub, "all")[0]) == [("a", 0, 1), ("a", 0, 2), ("b", 0, 0), ("a", 0, 3)]
    assert offsets(frames_of(hub, "lce")[0]) == [("a", 0, 1), ("a", 0, 3)]
    assert hub.stats()["counts"]["deliveries"] == 6


def test_progress_vouches_for_positions_once_the_queue_is_empty():
    """Progress follows the queued messages, on request or after the interval, with current positions."""
    hub = Hub("w0", {("a", 0): 0}, progress_interval=1.0)
    hub.subscribe("c", Subscribe(("a",), LCE, None), now=0)
    hub.dispatch([rec("a", 0, 0, "GCE"), rec("a", 0, 1, "GCE")])
    assert not hub.pending("c", now=0.5)  # nothing matched, interval not over
    assert hub.pending("c", now=1.0)
    frames, _ = frames_of(hub, "c", now=1.0)
    assert frames == [{"type": "progress", "positions": [["a", 0, 2]]}]
    assert not hub.pending("c", now=5.0)  # positions unchanged since
    hub.request_progress("c")
    assert frames_of(hub, "c", now=5.0)[0][-1]["type"] == "progress"


def test_requests_that_break_the_rules_are_refused():
    """Unknown topics, a second subscription, or unsubscribing without one raise ProtocolErrors."""
    hub = Hub("w0", {("a", 0): 0})
    with pytest.raises(ProtocolError, match="unknown_topic"):
        hub.subscribe("c", Subscribe(("zz",), None, None), now=0)
    hub.subscribe("c", Subscribe(("a",), None, None), now=0)
    with pytest.raises(ProtocolError, match="already_subscribed"):
        hub.subscribe("c", Subscribe(("a",), None, None), now=0)
    with pytest.raises(ProtocolError, match="not_subscribed"):
        hub.unsubscribe("other")


def test_unsubscribe_sends_what_is_queued_then_a_clean_end():
    """The end frame follows every queued message and names the positions at the unsubscribe."""
    hub = Hub("w0", {("a", 0): 0})
    hub.subscribe("c", Subscribe(("a",), None, None), now=0)
    hub.dispatch([rec("a", 0, 0), rec("a", 0, 1)])
    hub.unsubscribe("c")
    hub.dispatch([rec("a", 0, 2)])  # after the end: not for this subscriber
    frames, reason = frames_of(hub, "c")
    assert reason == "requested"
    assert offsets(frames) == [("a", 0, 0), ("a", 0, 1)]
    assert frames[-1] == {
        "type": "unsubscribed",
        "subscription": "w0-1",
        "reason": "requested",
        "to": [["a", 0, 2]],
        "dropped": 0,
    }
    hub.subscribe("c", Subscribe(("a",), None, None), now=0)  # a new window on the same connection


def test_drop_oldest_keeps_the_newest_and_announces_the_count():
    """Beyond the queue limit the oldest messages go; a dropped frame with the count precedes the rest."""
    hub = Hub("w0", {("a", 0): 0}, queue_limit=3)
    hub.subscribe("slow", Subscribe(("a",), None, None), now=0)
    hub.subscribe("fast", Subscribe(("a",), None, None), now=0)
    hub.dispatch([rec("a", 0, i) for i in range(3)])
    frames_of(hub, "fast")
    hub.dispatch([rec("a", 0, i) for i in range(3, 5)])
    frames_of(hub, "fast")  # the fast one's socket takes its queue before the policy looks
    assert hub.enforce(hub.subscribers) == []
    frames, _ = frames_of(hub, "slow")
    assert frames[0] == {"type": "dropped", "count": 2, "total": 2}
    assert offsets(frames) == [("a", 0, 2), ("a", 0, 3), ("a", 0, 4)]
    assert hub.stats()["counts"]["dropped"] == 2


def test_disconnect_policy_ends_the_slow_subscriber_with_its_window():
    """Over the limit, the queue is dropped and counted, and the end frame says slow_subscriber."""
    hub = Hub("w0", {("a", 0): 0}, queue_limit=2, policy=DISCONNECT)
    hub.subscribe("slow", Subscribe(("a",), None, None), now=0)
    hub.dispatch([rec("a", 0, 0), rec("a", 0, 1)])
    assert hub.enforce(["slow"]) == []
    hub.dispatch([rec("a", 0, 2)])
    assert hub.enforce(["slow"]) == ["slow"]
    frames, reason = frames_of(hub, "slow")
    assert reason == "slow_subscriber"
    assert offsets(frames) == []
    assert frames[-1]["to"] == [["a", 0, 3]]
    assert frames[-1]["dropped"] == 3
    assert hub.stats()["counts"]["slow_disconnects"] == 1


def test_shutdown_ends_every_subscription_cleanly():
    """SIGTERM's path: every subscriber gets its queue and an end with reason shutting_down."""
    hub = Hub("w0", {("a", 0): 0})
    for conn in ("x", "y"):
        hub.subscribe(conn, Subscribe(("a",), None, None), now=0)
    hub.dispatch([rec("a", 0, 0)])
    hub.shutdown()
    for conn in ("x", "y"):
        frames, reason = frames_of(hub, conn)
        assert (reason, offsets(frames)) == ("shutting_down", [("a", 0, 0)])


def test_skip_fault_hits_only_the_chosen_subscriber():
    """skip_every=3 for id 'victim' drops exactly every third push to it; others get everything."""
    hub = Hub("w0", {("a", 0): 0}, faults=PushFaults(skip_every=3, label="victim"))
    hub.subscribe("v", Subscribe(("a",), None, "victim"), now=0)
    hub.subscribe("o", Subscribe(("a",), None, "other"), now=0)
    hub.dispatch([rec("a", 0, i) for i in range(10)])
    assert [o for _, _, o in offsets(frames_of(hub, "v")[0])] == [0, 1, 3, 4, 6, 7, 9]
    assert len(offsets(frames_of(hub, "o")[0])) == 10
    assert hub.stats()["counts"]["fault_skipped"] == 3


def test_new_partitions_are_announced_before_their_messages():
    """A partition added later is confirmed with its start before any of its messages."""
    hub = Hub("w0", {("a", 0): 0})
    hub.subscribe("c", Subscribe(("a",), None, None), now=0)
    hub.add_partitions({("a", 1): 0})
    hub.dispatch([rec("a", 1, 0)])
    frames, _ = frames_of(hub, "c")
    assert frames[0] == {"type": "partitions", "from": [["a", 1, 0]]}
    assert offsets(frames) == [("a", 1, 0)]


def test_large_queues_are_split_into_frames():
    """No frame carries more than frame_messages messages."""
    hub = Hub("w0", {("a", 0): 0}, frame_messages=4)
    hub.subscribe("c", Subscribe(("a",), None, None), now=0)
    hub.dispatch([rec("a", 0, i) for i in range(10)])
    frames, _ = frames_of(hub, "c")
    assert [len(f["messages"]) for f in frames if f["type"] == "messages"] == [4, 4, 2]


def test_a_log_that_goes_back_breaks_the_windows_on_it():
    """An offset below one dispatched (the broker lost its log) drops those subscriptions without an end."""
    hub = Hub("w0", {("a", 0): 0, ("b", 0): 0})
    hub.subscribe("on-a", Subscribe(("a",), None, None), now=0)
    hub.subscribe("on-b", Subscribe(("b",), None, None), now=0)
    hub.dispatch([rec("a", 0, 5)])
    result = hub.dispatch([rec("a", 0, 0)])
    assert result.broken == ["on-a"]
    assert "on-a" not in hub.subscribers
    assert "on-b" in hub.subscribers
    assert hub.take("on-a", 0) == ([], None)
    assert hub.stats()["counts"]["log_resets"] == 1
