"""ingestload: rate-shaped, distributed load for HTTP → Kafka ingest pipelines, verified per message.

The package root stays light (no Locust import, so no gevent monkey patching) — import
the user classes from :mod:`ingestload.users` in a locustfile.
"""

__version__ = "0.1.0"
