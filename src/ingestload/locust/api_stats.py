"""Locust's statistics in one unit: messages. The HTTP path's per-message ``API`` rows.

A ``KAFKA`` row counts messages (one per acknowledgement); a ``POST`` row counts requests, and a
batch of 20 messages is one request. Locust's ``Aggregated`` row (``stats.total``: the table's
last row, the web UI's RPS and failures in its header, the headless summary) adds every request
it is told of, so with both paths it added messages to requests — 6,967/s for a run that
acknowledged 10,000 msg/s. So the HTTP path counts twice, in two units, and only one goes into
the total:

=========  ========================================  ==========================  ===========
type       one row per                               counts                      Aggregated
=========  ========================================  ==========================  ===========
``POST``   request path (Locust's own row)           requests; failed requests   no
``API``    request path                              messages: each message      yes
                                                     answered 2xx is one, each
                                                     refused or unanswered one
                                                     is a failure
``KAFKA``  topic                                     messages acknowledged       yes
=========  ========================================  ==========================  ===========

``Aggregated`` is then every message sent, whatever its path, per second — the rate the run
was asked for. ``POST`` rows keep what an HTTP tester reads in them (requests/s, response times
per request, the failures' status codes). An ``API`` message's response time is its request's.

Example (inside :class:`~ingestload.users.IngestApiUser`)::

    rows = MessageRows.of(environment)
    rows.request(path)                      # before the POST: its row stays out of the total
    rows.messages(path, ms, acked=18, refused=2, error="HTTP 207: 2 of 20 messages not accepted")
"""

from __future__ import annotations

import time
from typing import Any

#: Request type of the per-message rows of the HTTP path.
API = "API"
#: Request type of the per-request rows (Locust's own, from the HTTP client).
POST = "POST"
_ATTR = "_ingestload_message_rows"


class NotAcknowledgedError(Exception):  # never raised: the error Locust files for the message
    """A message the ingest API did not acknowledge (refused, or no answer): its row's error."""


class MessageRows:
    """One per process: per-message ``API`` rows, and the ``POST`` rows kept out of the total."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.request_rows: set[tuple[str, str]] = set()
        """(name, method) of the rows that count requests: logged in their row, not in the total."""
        self._installed_on: Any = None

    @classmethod
    def of(cls, environment: Any) -> MessageRows:
        """The process's rows (made on first use)."""
        rows = getattr(environment, _ATTR, None)
        if rows is None:
            rows = cls(environment)
            setattr(environment, _ATTR, rows)
        assert isinstance(rows, MessageRows)
        return rows

    def request(self, name: str, method: str = POST) -> None:
        """The request about to be made logs in its own row only (not in ``Aggregated``)."""
        self.request_rows.add((name, method))
        stats = getattr(self.environment, "stats", None)
        if stats is not None and stats is not self._installed_on:
            keep_out_of_total(stats, self.request_rows)
            self._installed_on = stats

    def messages(self, name: str, response_time: float, acked: int, refused: int, error: str = "") -> None:
        """What one ``API`` request event per message of a request would log: ``acked`` successes,
        ``refused`` failures (with ``error``), each with the request's response time. Successes
        reach Locust's own stats listener in bulk (one ``StatsEntry.extend`` per request, as the
        ``KAFKA`` rows do) and every other listener once per message; failures are real events."""
        if acked:
            self._acked(name, response_time, acked)
        if refused:
            exception = NotAcknowledgedError(error or "not acknowledged")
            fire = self.environment.events.request.fire
            for _ in range(refused):
                fire(
                    request_type=API,
                    name=name,
                    response_time=response_time,
                    response_length=0,
                    exception=exception,
                    context={},
                )

    def _acked(self, name: str, response_time: float, count: int) -> None:
        from ingestload.locust.kafka_stats import call_listeners, split_listeners, stats_entry

        own, others = split_listeners(self.environment.events.request)
        stats = getattr(self.environment, "stats", None)
        if own and stats is not None:
            now = time.time()
            entry = stats_entry(stats, name, API, [response_time] * count, 0, now)
            for _ in range(own):  # (one runner, one listener; two would count twice, as Locust does)
                stats.entries[(name, API)].extend(entry)
                stats.total.extend(entry)
        for _ in range(count if others else 0):
            call_listeners(
                others,
                request_type=API,
                name=name,
                response_time=response_time,
                response_length=0,
                exception=None,
                context={},
            )


def keep_out_of_total(stats: Any, rows: set[tuple[str, str]]) -> None:
    """Make Locust's ``RequestStats`` log the ``rows`` (name, method) in their own entries and
    errors only, not in ``stats.total`` (the ``Aggregated`` row). Locust has no hook for it:
    its ``log_request``/``log_error`` are wrapped on this one object."""
    if getattr(stats, "_ingestload_rows", None) is rows:
        return
    log_request, log_error = stats.log_request, stats.log_error

    def log_request_in_row(method: str, name: str, response_time: int, content_length: int) -> None:
        if (name, method) in rows:
            stats.entries[(name, method)].log(response_time, content_length)
        else:
            log_request(method, name, response_time, content_length)

    def log_error_in_row(method: str, name: str, error: Exception | str | None) -> None:
        if (name, method) not in rows:
            log_error(method, name, error)
            return
        from locust.stats import StatsError

        stats.entries[(name, method)].log_error(error)
        key = StatsError.create_key(method, name, error)
        entry = stats.errors.get(key)
        if not entry:
            entry = stats.errors[key] = StatsError(method, name, error)
        entry.occurred()

    stats.log_request, stats.log_error = log_request_in_row, log_error_in_row
    stats._ingestload_rows = rows
