"""The Kafka locustfile with a fault switch in the web UI's form: "Lose seqs" makes every producer
of the next test report those seqs acknowledged without ever sending them (→ lost)."""

from ingestload.users import KafkaProducerUser  # isort: skip
from typing import Any

from locust import events

from ingestload.locust.process import state_of
from ingestload.testing import FaultyProducer

made: list[FaultyProducer] = []


@events.init_command_line_parser.add_listener
def _lose_seqs_option(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--lose-seqs",
        default="",
        help="Test only: seqs each producer reports acknowledged but never sends (comma-separated).",
    )


@events.init.add_listener
def _wrap_producers(environment: Any, runner: Any = None, **_: Any) -> None:
    def wrap(client: Any) -> FaultyProducer:
        made.append(FaultyProducer(client.producer, topics=client.factory.topics))
        return made[-1]

    if runner is not None:
        state_of(environment).set_producer_wrapper(wrap)


@events.test_start.add_listener
def _arm(environment: Any, **_: Any) -> None:
    text = getattr(environment.parsed_options, "lose_seqs", "") or ""
    lose = {int(item) for item in text.split(",") if item.strip()}
    for faulty in made:
        faulty.lose = lose


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, with the faults the form asks for."""
