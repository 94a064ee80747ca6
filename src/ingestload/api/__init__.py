"""The reference ingest API: HTTP → Kafka without losing an acknowledged message.

``ingestload api`` serves it (:mod:`ingestload.api.server`); the contract is in
:mod:`ingestload.api.app`. Modules, one concept each:

    config      ApiSettings: its options (INGESTLOAD_API_* variables), validation, producer config
    schema      message shapes derived from the catalogue's templates (422 on a mismatch)
    delivery    KafkaGateway: producer + poll thread + asyncio futures, readiness probe
    faults      fault injection plan, its seeded dice and exact counts
    app         the Falcon ASGI application (endpoints, status codes, problem+json errors)
    server      Granian, workers, embedded broker, graceful shutdown
"""
