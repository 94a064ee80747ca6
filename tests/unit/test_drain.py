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


class _Client:
    def __init__(self, id_, state="running"):
        self.id, self.state = id_, state


class _Runner:
    """The part of Locust's MasterRunner the drain uses: its clients and send_message."""

    def __init__(self, accounts, clients, answering):
        self.clients = {c.id: c for c in clients}
        self.accounts, self.answering = accounts, answering

    def send_message(self, kind, data, client_id):
        if client_id in self.answering:
            self.accounts.on_drained(client_id, {"run_id": data["run_id"], "counters": {}, "ledgers": []})


def test_a_worker_killed_before_its_first_report_is_named_missing():
    """Issue 18 item 6: worker-b connected (Locust's worker_connect) and was killed before its first
    stats report, so Locust has already dropped it from its clients; worker-a drains. The master still
    names worker-b as missing (the verdict will be INCONCLUSIVE), instead of knowing nothing of it."""
    from ingestload.locust.drain import WorkerAccounts

    accounts = WorkerAccounts()
    accounts.clear(connected=["worker-a"])
    accounts.on_connect("worker-b")
    runner = _Runner(accounts, [_Client("worker-a")], answering={"worker-a"})
    accounts.drain(runner, "00112233445566ff", timeout=0.0)
    assert accounts.unanswered() == {"worker-b"}


def test_workers_of_a_previous_test_owe_nothing_to_the_next():
    """A new test knows only the workers connected at its start (and those connecting during it)."""
    from ingestload.locust.drain import WorkerAccounts

    accounts = WorkerAccounts()
    accounts.on_connect("gone")
    accounts.clear(connected=["worker-a"])
    runner = _Runner(accounts, [_Client("worker-a")], answering={"worker-a"})
    accounts.drain(runner, "00112233445566ff", timeout=0.0)
    assert accounts.unanswered() == set()


def test_the_verdict_says_how_to_judge_the_run_again_in_one_command():
    """Issue 18 item 7: the verdict block ends with the one command that judges the run again (its
    ledger file named); how long the verifier watched is the report's ``watched for`` line
    (tests/integration/test_no_false_pass.py)."""
    from types import SimpleNamespace

    from ingestload.locust.verification import LocustVerification

    verification = LocustVerification.__new__(LocustVerification)
    verification.settings = SimpleNamespace(verify=SimpleNamespace(ledger_file="reports/r1/ledger.json"))
    hint = verification.rejudge_hint({"watched_s": 5.25})
    assert "`ingestload verify --ledger reports/r1/ledger.json`" in hint
    assert "on a Kafka that outlives the run" in hint
    verification.settings = SimpleNamespace(verify=SimpleNamespace(ledger_file=None))
    assert "write one with --ledger-file" in verification.rejudge_hint({})
