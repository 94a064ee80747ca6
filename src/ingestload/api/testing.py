"""Run the reference ingest API in a subprocess and talk to it — for tests, ours and yours.

Example (pytest)::

    from ingestload.api.testing import run_api

    def test_my_user_against_the_api(kafka, prefix):
        with run_api(kafka, "--topic-prefix", prefix, "--fault-drop", "0.1") as api:
            reply = api.post("/v1/messages/alarm", body)
            assert reply.status == 200
            api.get("/debug/faults").json()["counts"]["dropped"]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from ingestload.serving.testing import ServerProcess, run_server


@contextlib.contextmanager
def run_api(
    bootstrap: str,
    *args: str,
    ready: bool = True,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Start ``ingestload api --kafka-bootstrap BOOTSTRAP ARGS…`` on a free port; stop it after.

    With ``ready=True`` the block starts once ``/readyz`` answers 200 (Kafka reachable);
    otherwise once ``/healthz`` does. The server runs in its own process group.
    """
    with run_server("api", bootstrap, *args, ready=ready, timeout=timeout, env=env) as api:
        yield api
