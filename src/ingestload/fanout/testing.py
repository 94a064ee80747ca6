"""Run the reference fan-out gateway in a subprocess and subscribe to it — for tests, ours and yours.

Example (pytest)::

    from ingestload.fanout.testing import run_gateway

    def test_my_view(kafka, prefix):
        with run_gateway(kafka, "--topics", f"{prefix}alarm") as gateway:
            with Subscriber.connect(gateway.ws_url, "s1", [f"{prefix}alarm"]) as sub:
                …
            gateway.stats()["total"]["deliveries"]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from ingestload.fanout.protocol import PATH
from ingestload.serving.testing import ServerProcess, run_server


def ws_url(server: ServerProcess) -> str:
    """The gateway's WebSocket URL."""
    return f"ws://{server.host}:{server.port}{PATH}"


def stats(server: ServerProcess) -> dict[str, Any]:
    """``GET /stats`` as a dict."""
    reply = server.get("/stats")
    assert reply.status == 200, reply
    data: dict[str, Any] = reply.json()
    return data


@contextlib.contextmanager
def run_gateway(
    bootstrap: str,
    *args: str,
    ready: bool = True,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Start ``ingestload fanout --kafka-bootstrap BOOTSTRAP ARGS…`` on a free port; stop it after
    (SIGTERM, graceful). The block starts once ``/readyz`` answers 200 (``ready=True``)."""
    with run_server("fanout", bootstrap, *args, ready=ready, timeout=timeout, env=env) as server:
        yield server
