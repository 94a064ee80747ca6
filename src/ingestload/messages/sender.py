"""What every sender of enveloped messages shares: its identity in a run and the outcomes it files.

A sender (the Kafka producer client, the ingest API client) hands out seqs ``0, 1, 2 …`` per run
(from ``first_seq`` when a test asks, e.g. near 2**32) under one producer id, stamps each message's
envelope with them and with the tag of the topic the message is meant for, and files what became of each
message as the answers arrive: acknowledged (a count: successes cost nothing), failed (certainly
not written) or unknown (maybe written). :meth:`EnvelopeSender.ledger` turns that into the run's
:class:`~ingestload.messages.ledger.ProducerLedger`.

Example::

    class MySender(EnvelopeSender):
        path = "mqtt"

    sender = MySender(factory)
    sender.begin_run("00112233445566ff")
    … sender.seq += n; sender.outcomes.acked += n …
    sender.outcomes.file_failure([7], definite=False)
    sender.ledger()        # ProducerLedger(producer_id=…, sent=…, acked_count=…, unknown=BitMap64([7]))
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from pyroaring import BitMap64

from ingestload.messages.envelope import EnvelopeWriter, topic_tag
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import ProducerLedger


class Outcomes:
    """The fate of one sender's messages in one run, filed as the answers arrive.

    A fresh object per run: a late answer to an earlier run's message lands in that run's
    object and cannot disturb the current counts, with no check per message.
    """

    __slots__ = ("acked", "failed", "failed_seqs", "unknown_seqs")

    def __init__(self) -> None:
        self.acked = 0
        """Messages acknowledged (counted, not listed: the acked set is derived)."""
        self.failed = 0
        """Messages reported as not acknowledged (definite or not)."""
        self.failed_seqs = BitMap64()
        """Seqs certainly not written."""
        self.unknown_seqs = BitMap64()
        """Seqs that may or may not have been written."""

    def file_failure(self, seqs: Collection[int], definite: bool) -> None:
        """File messages that were not acknowledged: ``definite`` when certainly not written."""
        self.failed += len(seqs)
        (self.failed_seqs if definite else self.unknown_seqs).update(seqs)


class EnvelopeSender:
    """Base of the senders of one process: identity per run, seq counter, outcomes, ledger."""

    path: ClassVar[str]
    """The path its messages take (``kafka``, ``api``), recorded in the ledger's meta."""

    def __init__(self, factory: MessageFactory, meant_for: Mapping[str, str] | None = None) -> None:
        self.factory = factory
        self.writer: EnvelopeWriter | None = None
        self.meta: dict[str, Any] = {}
        self.accepting = False
        self.first_seq = 0
        """The run's first seq (0 unless :meth:`begin_run` was told otherwise)."""
        self.seq = 0
        """Next seq: ``first_seq`` + the number of messages handed out this run."""
        meant_for = meant_for or {}
        self.routed = {t: meant_for[t] for t in set(factory.topics) if meant_for.get(t, t) != t}
        """Factory topics whose messages are meant for another topic (an ingest API's routing), kept in
        the ledger's meta (``meant_for``): a verdict names the topic a missing message was meant for."""
        self.tags = {topic: topic_tag(meant_for.get(topic, topic)) for topic in set(factory.topics)}
        """Factory topic → the envelope tag of the topic its messages are meant for (``meant_for``
        maps a factory topic elsewhere, e.g. where an ingest API routes its type)."""
        self.new_run()

    @property
    def producer_id(self) -> int | None:
        return self.writer.producer_id if self.writer else None

    @property
    def acked(self) -> int:
        return self.outcomes.acked

    @property
    def failed(self) -> int:
        return self.outcomes.failed

    def begin_run(
        self,
        run_id: str,
        producer_id: int | None = None,
        meta: Mapping[str, Any] | None = None,
        first_seq: int = 0,
    ) -> None:
        """Start a new run: new envelope identity, seq from ``first_seq`` (0), counters and outcomes cleared.

        ``meta`` describes the producer in the ledger (host, worker…); the factory's own
        parameters are added so that a seq can later be traced back to its topic.
        """
        self.writer = EnvelopeWriter(run_id, producer_id if producer_id is not None else secrets.randbits(64))
        self.meta = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "path": self.path,
            **self.factory.describe(),
            **({"meant_for": dict(sorted(self.routed.items()))} if self.routed else {}),
            **(meta or {}),
        }
        self.first_seq = self.seq = first_seq
        self.new_run()
        self.factory.seek(first_seq)
        self.accepting = True

    def new_run(self) -> None:
        """Reset this sender's own counters and outcomes for a new run (override, call super)."""
        self.outcomes = Outcomes()
        self.backpressure = 0
        """How many times the sender's local queue was full."""
        self.undelivered = 0
        """Messages still unanswered when the drain timed out (then filed failed or unknown)."""

    @property
    def in_flight(self) -> int:
        """Messages handed over whose answer has not arrived yet."""
        raise NotImplementedError

    def counters(self) -> dict[str, int]:
        """A snapshot for status lines and worker reports."""
        return {
            "sent": self.seq - self.first_seq,
            "acked": self.acked,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "backpressure": self.backpressure,
            "undelivered": self.undelivered,
        }

    def ledger(self) -> ProducerLedger:
        """This run's ledger as of now (complete once every message was answered)."""
        outcomes = self.outcomes
        return ProducerLedger(
            producer_id=self.producer_id or 0,
            first=self.first_seq,
            sent=self.seq - self.first_seq,
            acked_count=outcomes.acked,
            failed=BitMap64(outcomes.failed_seqs),
            unknown=BitMap64(outcomes.unknown_seqs),
            meta=dict(self.meta),
        )
