"""Errors of the fan-out hop, each saying what the peer (or the operator) did.

    IngestloadError                  (ingestload.errors)
     ├── ConfigError                 a bad ``ingestload fanout`` option (exit code 2 before anything starts)
     └── FanoutError                 base of the fan-out protocol's errors
          └── ProtocolError          a frame that breaks the protocol; ``code`` is the wire's ``error``

A :class:`ProtocolError` raised while reading a subscriber's frame is sent back to it as
``{"type": "error", "error": code, "detail": …}``; the connection stays open.
"""

from __future__ import annotations

from ingestload.errors import IngestloadError


class FanoutError(IngestloadError):
    """Something went wrong on the Kafka → WebSocket hop."""


class ProtocolError(FanoutError, ValueError):
    """A frame breaks the fan-out protocol; the message says what the peer sent and what is expected."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        """Machine-readable reason, sent as the ``error`` member of an error frame."""
        self.detail = detail
        """What the peer did and what is expected instead."""
