"""The embedded Tansu broker: start, answer, stop, restart empty, clear errors."""

import socket

import pytest
from confluent_kafka import Producer

from ingestload.errors import BrokerError, PortInUseError
from ingestload.kafka.admin import count_run, ensure_topics
from ingestload.kafka.broker import EmbeddedBroker, wait_for_kafka
from ingestload.testing import read_run

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(topic, str(i).encode())
    assert producer.flush(10) == 0


def test_start_answer_and_stop():
    """The broker answers metadata requests while running and its port is free again after stop."""
    broker = EmbeddedBroker()
    with broker:
        assert broker.running
        wait_for_kafka(broker.bootstrap, timeout=5)
        port = broker.port
    assert not broker.running
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_port_in_use_is_a_clear_error():
    """Asking for a port that something else holds raises PortInUseError naming the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            EmbeddedBroker(port=port).start()


def test_binary_that_cannot_run_is_a_clear_error(tmp_path):
    """A broken broker binary gives a BrokerError, not a hang."""
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerError, match="exited with code 3 during startup: boom: cannot start"):
        EmbeddedBroker(binary=str(fake)).start()


def test_restart_comes_back_empty():
    """Memory storage: after a restart on the same port every message is gone."""
    with EmbeddedBroker() as broker:
        config = {"bootstrap.servers": broker.bootstrap}
        ensure_topics(config, ["r"], partitions=1)
        produce(broker.bootstrap, "r", 50)
        assert len(read_run(config, ["r"], "0" * 16).messages) == 0  # no envelopes: all foreign
        assert read_run(config, ["r"], "0" * 16).foreign == 50
        port = broker.port
        broker.restart()
        assert broker.port == port
        ensure_topics(config, ["r"], partitions=1)
        assert read_run(config, ["r"], "0" * 16).foreign == 0
        assert count_run(config, ["r"], None, "0" * 16) == {"r": 0}


def test_restart_while_a_client_is_connected():
    """A restart succeeds although a connected producer leaves the old broker's sockets in TIME_WAIT."""
    with EmbeddedBroker() as broker:
        ensure_topics({"bootstrap.servers": broker.bootstrap}, ["c"], partitions=1)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce("c", b"x")
        assert producer.flush(10) == 0
        broker.restart()
        assert broker.running
        wait_for_kafka(broker.bootstrap, timeout=5)
