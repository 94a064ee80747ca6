"""Draining at stop: every sender of a process drains at once, within one deadline."""

import gevent

from ingestload.locust.drain import drain_all


class SlowSender:
    """Takes its whole timeout to drain (its acknowledgements never come) and logs when."""

    def __init__(self, name, log):
        self.name, self.log, self.in_flight = name, log, 3

    def drain(self, timeout):
        self.log.append(("start", self.name, timeout))
        gevent.sleep(min(timeout, 0.05))
        self.log.append(("end", self.name))
        return self.in_flight


def test_senders_drain_concurrently_within_one_deadline():
    """Both paths start draining before either ends, each with at most the one drain timeout, and what
    each still had in flight is reported."""
    log = []
    left = drain_all([SlowSender("kafka", log), SlowSender("api", log)], timeout=5.0)
    assert left == [3, 3]
    assert [entry[0] for entry in log] == ["start", "start", "end", "end"]
    assert all(0 < entry[2] <= 5.0 for entry in log if entry[0] == "start")


def test_a_sender_whose_drain_raises_reports_what_it_still_holds():
    """A drain that fails is not fatal: the sender's in-flight count stands for it."""

    class Broken(SlowSender):
        def drain(self, timeout):
            raise RuntimeError("boom")

    assert drain_all([Broken("x", [])], timeout=1.0) == [3]
