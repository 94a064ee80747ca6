"""A minimal ASGI app for bench/api_user.py: reads each request body and answers 200 at once.

It stands in for an ingest API that is never the bottleneck, so that the benchmark measures the
load generators. Single messages get ``{}``; a JSON array (a batch) gets ``{}`` too — all accepted.

    granian --interface asgi --no-ws bench.http_sink:app
"""

from __future__ import annotations

from typing import Any

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # drain the body
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})
