"""The other side of the verdict: pipelines that lose nothing must PASS, whatever else they do —
a broker that stalls (acknowledgements come late, some after the stop), a broker restart that keeps
its log (every connection cut). Each fault is timed by what the broker holds, not by the clock."""

import json
import os
import signal
import subprocess

import gevent
import pytest

from ingestload.kafka.broker import EmbeddedBroker, free_port
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, locust_command
from tests.bouncer import bouncer
from tests.oracle import read_copies, tally, wait_for_records

pytestmark = pytest.mark.e2e


def kafka_run(root, bootstrap, prefix, verdict_file):
    args = (
        f"--headless --only-summary -u 1 -r 1 -t 6s --rate 1500 --kafka-bootstrap {bootstrap} "
        f"--topic-prefix {prefix} --verdict-file {verdict_file}"
    )
    return subprocess.run(
        locust_command(root / "locustfiles" / "kafka.py", *args.split()),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=root,
        env=dict(os.environ),
    )


def assert_clean_pass(done, verdict_file, bootstrap, prefix):
    assert done.returncode == 0, describe_output(done)
    v = json.loads(verdict_file.read_text())
    counted = tally(read_copies(bootstrap, Catalogue.load().topics(prefix), v["run_id"]))
    assert (v["status"], v["lost"], v["duplicated"], v["misrouted"]) == ("PASS", 0, 0, 0)
    assert v["acked"] == v["seen"] == counted["seen"] == counted["records"]


def test_a_broker_that_stalls_is_no_false_alarm(prefix, root, tmp_path):
    """The broker freezes for 1.5 s three times (the last one near the stop, so acknowledgements
    arrive during the drain): nothing is lost, so PASS, and every acknowledged message is in Kafka."""
    verdict_file = tmp_path / "v.json"
    topics = Catalogue.load().topics(prefix)
    with EmbeddedBroker() as broker:

        def stall() -> None:
            for held in (1_500, 4_500, 7_500):
                wait_for_records(broker.bootstrap, topics, held)
                os.kill(broker.pid, signal.SIGSTOP)
                gevent.sleep(1.5)
                os.kill(broker.pid, signal.SIGCONT)

        staller = gevent.spawn(stall)
        try:
            done = kafka_run(root, broker.bootstrap, prefix, verdict_file)
        finally:
            staller.join(30)
            if broker.pid:
                os.kill(broker.pid, signal.SIGCONT)
        assert staller.successful(), staller.exception
        assert_clean_pass(done, verdict_file, broker.bootstrap, prefix)


def test_a_clean_broker_restart_is_no_false_alarm(prefix, root, tmp_path):
    """Every connection to the broker is cut twice mid-run while it keeps its log (to its clients, a
    broker restart that loses nothing): the verifier finds every partition intact — PASS."""
    verdict_file = tmp_path / "v.json"
    topics = Catalogue.load().topics(prefix)
    port = free_port()
    with bouncer(port) as proxy, EmbeddedBroker(port=port, advertised=proxy.address):

        def cut() -> None:
            for held in (2_000, 5_000):
                wait_for_records(proxy.address, topics, held)
                proxy.bounce()

        cutter = gevent.spawn(cut)
        try:
            done = kafka_run(root, proxy.address, prefix, verdict_file)
        finally:
            cutter.join(70)
        assert cutter.successful(), (cutter.exception, describe_output(done))
        assert_clean_pass(done, verdict_file, proxy.address, prefix)
