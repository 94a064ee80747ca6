"""Starting `ingestload api`: the listen port is checked before anything starts."""

import socket

import pytest

from ingestload.api.server import listen_port
from ingestload.errors import PortInUseError


def test_port_in_use_is_a_clear_error():
    """A taken port stops startup with the port and how to choose another."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use.*--port N"):
            listen_port("127.0.0.1", port)


def test_port_zero_picks_a_free_port():
    """--port 0 resolves to a concrete free port that is printed and served."""
    port = listen_port("127.0.0.1", 0)
    assert 0 < port < 65536
    assert listen_port("127.0.0.1", port) == port
