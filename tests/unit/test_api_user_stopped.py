"""An IngestApiUser stopped in the middle of a take leaves no message without an outcome."""

import locust  # noqa: F401  # isort: skip

import gevent
import pytest

from ingestload.http.client import OUTCOME_ACKED, IngestApiClient
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.users import IngestApiUser
from tests.unit.fakes import RUN


class Pacer:
    def take(self, limit: int) -> int:
        return limit


def test_batches_never_posted_are_failed_not_left_in_flight() -> None:
    """A take of 100 becomes one batch per message type; the user is killed during the second
    request (as Locust kills a user it moves to another worker, or stops). The first batch was
    answered, the second is the request in hand (its own handler files it as unknown), and the
    batches not posted yet are failed — certainly not written — instead of waiting forever for an
    answer, which made the verdict INCONCLUSIVE."""
    api = IngestApiClient(MessageFactory(Catalogue.load()))
    api.begin_run(RUN, producer_id=7)
    user = object.__new__(IngestApiUser)  # no Locust environment: only what post_due touches
    user.api, user.pacer, user.batch_size, user.batch_per_type = api, Pacer(), 100, True
    user.batch_path = "/v1/messages/{msgType}:batch"
    posted: list[list[int]] = []

    def post(path: str, body: bytes, seqs: list[int]) -> None:
        posted.append(seqs)
        if len(posted) == 2:
            raise gevent.GreenletExit  # the kill arrives while this request is in hand
        api.resolve(seqs, OUTCOME_ACKED)

    user._post_batch = post
    with pytest.raises(gevent.GreenletExit):
        user.post_due()
    ledger = api.ledger()
    first, in_hand = posted
    assert ledger.sent == 100
    assert ledger.acked_count == len(first)
    assert api.in_flight == len(in_hand)
    assert len(ledger.failed) == 100 - len(first) - len(in_hand) > 0
    assert set(ledger.failed).isdisjoint(first + in_hand)


def test_single_messages_never_posted_are_failed_not_left_in_flight() -> None:
    """The same with one message per request: killed during its third request, the user leaves the
    two answered, the one in hand (its handler files it unknown), and the rest failed."""
    api = IngestApiClient(MessageFactory(Catalogue.load()))
    api.begin_run(RUN, producer_id=8)
    user = object.__new__(IngestApiUser)
    user.api, user.pacer, user.batch_size, user.batch_per_type = api, Pacer(), 10, True
    user.batch_size = 1
    user._single_paths, user.single_path = {}, "/v1/messages/{msgType}"
    posted: list[int] = []

    class Take:  # ten due messages in one take, as a fast pacer gives them
        def take(self, limit: int) -> int:
            return 10

    user.pacer = Take()

    def post(path: str, body: bytes, seq: int) -> None:
        posted.append(seq)
        if len(posted) == 3:
            raise gevent.GreenletExit
        api.resolve((seq,), OUTCOME_ACKED)

    user._post_one = post
    with pytest.raises(gevent.GreenletExit):
        user.post_due()
    ledger = api.ledger()
    assert (ledger.sent, ledger.acked_count, api.in_flight) == (10, 2, 1)
    assert list(ledger.failed) == list(range(3, 10))
