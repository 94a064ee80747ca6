"""What the reference servers (``ingestload api``, ``ingestload fanout``) share: one ``main``, the
embedded broker when no Kafka is named, the listening port, topics at start
(:mod:`~ingestload.serving.main`), and running a server in a subprocess for tests
(:mod:`~ingestload.serving.testing`).
"""
