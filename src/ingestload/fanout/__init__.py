"""Kafka → WebSocket fan-out (seed 003): the reference gateway, its protocol, and the per-subscriber verdict.

Modules, one concept each:

* :mod:`~ingestload.fanout.protocol` — the frames and the exactness contract (sans I/O);
* :mod:`~ingestload.fanout.filters` — subscription filters on a message field;
* :mod:`~ingestload.fanout.hub` — the gateway's core: subscriptions, bounded queues, policy (sans I/O);
* :mod:`~ingestload.fanout.config` / :mod:`~ingestload.fanout.server` — ``ingestload fanout``;
* :mod:`~ingestload.fanout.settings` — the subscribers' options and the fan-out verdict's thresholds;
* :mod:`~ingestload.fanout.ledger` — what one subscriber received, in which window;
* :mod:`~ingestload.fanout.expected` — one Kafka read for what every subscription should receive;
* :mod:`~ingestload.fanout.verdict` — missed, duplicated, out of order, latency; PASS/FAIL/INCONCLUSIVE;
* :mod:`~ingestload.fanout.client` — a gevent-friendly subscriber client;
* :mod:`~ingestload.fanout.testing` — run a gateway process in tests.
"""
