"""The HTTP path: :class:`IngestApiClient` (per process) behind :class:`~ingestload.users.IngestApiUser`.

Messages are the catalogue's mock controller messages with the envelope inside the JSON
body (member ``--envelope-field``, default ``_ingestload``), because an ingest API we did
not write will not copy our Kafka headers. The payload is rendered with sorted keys, so the
checksum of the message *without* that member is the CRC-32 of the factory's bytes, and
the verifier's canonical check holds even when the API re-serialises what it forwards.

How a message travels (for ingest APIs of other designs; see docs/your-api.md):

* ``body="json"`` (default): one JSON object per request (a JSON array per batch);
  ``body="form"``: ``application/x-www-form-urlencoded`` fields, one per leaf, named by its
  dotted path (:mod:`ingestload.messages.forms`), as seed 001's ``ab -T`` posted them;
* the identity in the ``envelope_field`` member (default), or — ``envelope_in="Header.MessageId"``,
  for strict schemas — as a UUID inside that existing field (:mod:`ingestload.messages.identity`),
  so that the message has exactly its template's members. The producer id then has 24 bits.

Every message is filed in the ledger from the answer to its request:

==================================  ====================================================
2xx (200/201/202/204)               acknowledged
207 (multi-status, batch)           per item: the ``failures`` entries by ``index`` as
                                    below, the rest acknowledged; an unreadable 207 body
                                    makes every item *unknown*
502, 504                            *unknown* — a gateway gave up; the API may have written
other 4xx / 5xx (503 included)      *failed* — the API said it did not take the message
connection refused                  *failed* — the request never reached the API
timeout, other connection errors    *unknown*
==================================  ====================================================

A failed or unknown message that nevertheless lands in Kafka is reported *recovered*; an
API that answers 2xx before Kafka acknowledged (and then loses it) shows up as *lost*.

Example::

    client = IngestApiClient(factory, envelope_field="_ingestload")
    client.begin_run("00112233445566ff")
    batch = client.take(100)                    # [(msg_type, seq, body bytes), …]
    client.resolve([seq for _, seq, _ in batch], OUTCOME_ACKED)
"""

from __future__ import annotations

import logging
import secrets
import time
import zlib
from binascii import hexlify
from collections.abc import Collection, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import gevent
import orjson

from ingestload.errors import ConfigError
from ingestload.messages import identity
from ingestload.messages.canonical import canonical
from ingestload.messages.catalogue import routed_topic
from ingestload.messages.envelope import checksum
from ingestload.messages.factory import MessageFactory
from ingestload.messages.forms import flatten
from ingestload.messages.sender import EnvelopeSender

log = logging.getLogger("ingestload")

OUTCOME_ACKED, OUTCOME_FAILED, OUTCOME_UNKNOWN = "acked", "failed", "unknown"
#: Statuses after which the fate of the message is unknown (a gateway timed out, not the API).
UNKNOWN_STATUSES = frozenset({502, 504})


def outcome_of(status: int) -> str:
    """What an HTTP status says about the messages of a request (0 = no answer)."""
    if 200 <= status < 300:
        return OUTCOME_ACKED
    if status == 0 or status in UNKNOWN_STATUSES:
        return OUTCOME_UNKNOWN
    return OUTCOME_FAILED


def batch_outcomes(status: int, body: bytes | None, seqs: list[int]) -> dict[str, list[int]]:
    """Per-outcome seqs of a batch request (``seqs`` in item order)."""
    if status != 207:
        return {outcome_of(status): list(seqs)}
    try:
        failures = orjson.loads(body or b"")["failures"]
        failed_at = {int(f["index"]): int(f.get("status", 500)) for f in failures}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return {OUTCOME_UNKNOWN: list(seqs)}
    result: dict[str, list[int]] = {OUTCOME_ACKED: [], OUTCOME_FAILED: [], OUTCOME_UNKNOWN: []}
    for index, seq in enumerate(seqs):
        if index in failed_at:
            item = outcome_of(failed_at[index])
            result[OUTCOME_UNKNOWN if item == OUTCOME_ACKED else item].append(seq)
        else:
            result[OUTCOME_ACKED].append(seq)
    return result


class IngestApiClient(EnvelopeSender):
    """Seqs, envelopes and the ledger of one process's HTTP-path messages (shared by its users)."""

    path = "api"

    def __init__(
        self,
        factory: MessageFactory,
        *,
        envelope_field: str = "_ingestload",
        topic_map: Mapping[str, str] | None = None,
        body: str = "json",
        envelope_in: str | None = None,
    ) -> None:
        prefix = factory.topic_prefix if factory.topic_prefix is not None else factory.catalogue.topic_prefix
        msg_types = {topic: topic[len(prefix) :] for topic in factory.topics}
        super().__init__(
            factory, {topic: routed_topic(topic_map, t, topic) for topic, t in msg_types.items()}
        )
        self.envelope_field = envelope_field
        self._member = b'{"' + envelope_field.encode() + b'":"'
        self._msg_type = msg_types
        if body not in ("json", "form"):
            raise ValueError(f"body must be json or form, not {body!r}")
        self.form = body == "form"
        self.envelope_in = envelope_in
        self._in_parts = tuple(envelope_in.split(".")) if envelope_in else ()
        self.content_type = "application/x-www-form-urlencoded" if self.form else "application/json"
        """The Content-Type of a request."""
        if envelope_in:
            lacking = sorted({c.msg_type for c in factory.cells if envelope_in not in c.template.paths()})
            if not identity.tags_distinct(set(self.tags.values())):
                log.warning(
                    "ingestload: two of the run's topics share the 10-bit tag of --envelope-in's identity: "
                    "a message written to the other one of them is not told misrouted (rename a topic to "
                    "make it exact)"
                )
            if lacking:
                raise ConfigError(
                    f"--envelope-in: {envelope_in!r} is not a field of the template of "
                    f"{', '.join(lacking)}; name a string field every template has (e.g. Header.MessageId)"
                )

    def begin_run(
        self,
        run_id: str,
        producer_id: int | None = None,
        meta: Mapping[str, Any] | None = None,
        first_seq: int = 0,
    ) -> None:
        if self.envelope_in and producer_id is None:  # it travels in 24 bits of the identity UUID
            producer_id = secrets.randbits(identity.PRODUCER_BITS)
        super().begin_run(run_id, producer_id, meta, first_seq)

    def new_run(self) -> None:
        super().new_run()
        self.unanswered = 0
        """Messages in requests that have not been answered yet."""

    @property
    def in_flight(self) -> int:
        return self.unanswered

    def _render(self, count: int) -> Iterator[tuple[str, int, bytes]]:
        """The next ``count`` messages as (topic, seq, JSON body with the envelope).

        They go out together, so they share one send time (read once, as for the Kafka path).
        """
        writer = self.writer
        if not self.accepting or writer is None:
            return
        if self.form or self.envelope_in:
            yield from self._render_reshaped(count)
            return
        head = self._member + hexlify(writer.prefix)
        pack_tail, next_message, tags = writer.pack_tail, self.factory.next, self.tags
        now_ns = time.time_ns()
        sent_at_us = now_ns // 1000
        first = self.seq
        self.seq += count
        self.unanswered += count
        for seq in range(first, first + count):
            topic, value = next_message(now_ns)
            tail = pack_tail(seq, sent_at_us, checksum(value), tags[topic])
            yield topic, seq, head + hexlify(tail) + b'",' + value[1:]

    def _render_reshaped(self, count: int) -> Iterator[tuple[str, int, bytes]]:
        """:meth:`_render` for forms and strict schemas: the message is reshaped, then checksummed in
        canonical form (RFC 8785) — of the flat object of strings for a form."""
        writer = self.writer
        assert writer is not None
        next_message, tags, run_id = self.factory.next, self.tags, writer.run_id
        producer, field, where = writer.producer_id, self.envelope_in, self._in_parts
        now_ns = time.time_ns()
        sent_at_us = now_ns // 1000
        first = self.seq
        self.seq += count
        self.unanswered += count
        for seq in range(first, first + count):
            topic, value = next_message(now_ns)
            message: dict[str, Any] = orjson.loads(value)
            if self.form:
                message = flatten(message)
            if field is None:
                crc = zlib.crc32(canonical(message))
                tail = writer.pack_tail(seq, sent_at_us, crc, tags[topic])
                message[self.envelope_field] = (writer.prefix + tail).hex()
            else:
                holder, key = message, field
                if not self.form:
                    for part in where[:-1]:
                        holder = holder[part]
                    key = where[-1]
                holder[key] = ""
                crc = zlib.crc32(canonical(message))
                holder[key] = identity.pack(run_id, producer, seq, tags[topic], crc)
            yield topic, seq, urlencode(message).encode() if self.form else orjson.dumps(message)

    def take(self, count: int) -> list[tuple[str, int, bytes]]:
        """The next ``count`` messages as (message type, seq, JSON body with the envelope)."""
        msg_type = self._msg_type
        return [(msg_type[topic], seq, body) for topic, seq, body in self._render(count)]

    def take_batches(self, count: int, per_type: bool = True) -> dict[str, tuple[list[int], bytes]]:
        """The next ``count`` messages as one JSON array per message type: {type: (seqs, body)};
        with ``per_type=False`` one array of every type, under the key ``""``."""
        groups: dict[str, tuple[list[int], list[bytes]]] = {}
        for topic, seq, body in self._render(count):
            if not per_type:
                topic = ""
            group = groups.get(topic)
            if group is None:
                group = groups[topic] = ([], [])
            group[0].append(seq)
            group[1].append(body)
        msg_type = self._msg_type
        return {
            msg_type.get(t, t): (seqs, b"[" + b",".join(items) + b"]") for t, (seqs, items) in groups.items()
        }

    def resolve(self, seqs: Collection[int], outcome: str) -> None:
        """File the messages of an answered (or failed) request."""
        self.unanswered -= len(seqs)
        if outcome == OUTCOME_ACKED:
            self.outcomes.acked += len(seqs)
        else:
            self.outcomes.file_failure(seqs, definite=outcome == OUTCOME_FAILED)

    def drain(self, timeout: float) -> int:
        """Stop taking messages; wait (cooperatively) for requests under way. Returns those left."""
        self.accepting = False
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.01)
        return self.in_flight

    def abandon(self, seqs: Collection[int]) -> None:
        """Requests that will never be answered (their user was stopped): outcome unknown."""
        self.resolve(seqs, OUTCOME_UNKNOWN)

    def close(self) -> None:
        self.accepting = False
