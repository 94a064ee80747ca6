"""How the reference API answers for a message Kafka did not take."""

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from ingestload.api.app import IngestService


def answer(error: object) -> tuple[int, str]:
    status, code, _ = IngestService.kafka_failure(SimpleNamespace(scrub=str), error)  # type: ignore[arg-type]
    return status, code


@pytest.mark.parametrize(
    "name",
    [
        "PRODUCER_FENCED",  # Tansu, after a restart lost the producer's state
        "UNKNOWN_PRODUCER_ID",
        "OUT_OF_ORDER_SEQUENCE_NUMBER",
        "INVALID_PRODUCER_EPOCH",
        "_MSG_TIMED_OUT",
        "_ALL_BROKERS_DOWN",
    ],
)
def test_a_refused_producer_or_an_unreachable_kafka_is_retry_later(name):
    """The producer (replaced by the API), not the message, was refused: 503, so a client retries."""
    assert answer(KafkaError(getattr(KafkaError, name))) == (503, "kafka_unavailable")


def test_a_refused_message_is_a_bad_gateway_and_too_large_is_413():
    assert answer(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)) == (502, "kafka_rejected")
    assert answer(KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))) == (413, "message_too_large")
    assert answer(BufferError()) == (503, "backpressure")
