"""Everything that knows Locust. The packages below it (messages, kafka, http, rate, verify, api,
fanout) never import Locust; the public surface above it (:mod:`ingestload.users`,
:mod:`ingestload.shape`, :mod:`ingestload.testing`) and the web UI build on it.

Modules, one concept each:

* :mod:`~ingestload.locust.process` — the ingestload state of one Locust process, one class per
  role (local, master, worker), and the listeners that create it;
* :mod:`~ingestload.locust.drain` — the drain protocol at stop (master ↔ workers);
* :mod:`~ingestload.locust.rate` — pacers, plans sent to workers, the profile shape, the rate guard;
* :mod:`~ingestload.locust.rate_shape` / :mod:`~ingestload.locust.subscriber_shape` — load shapes;
* :mod:`~ingestload.locust.verification` — the verifier process as seen from Locust: ``E2E`` rows,
  the verdict at stop, files, exit code;
* :mod:`~ingestload.locust.fanout` — subscriber windows per process and the fan-out verdict;
* :mod:`~ingestload.locust.kafka_stats` / :mod:`~ingestload.locust.ws_stats` — Locust statistics
  rows in bulk (``KAFKA``, ``WS``).
"""
