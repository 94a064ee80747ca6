"""KafkaProducerUser.one_per_process: one user of the class in every sending process."""

from ingestload.locust.process import fix_counts_per_process
from ingestload.users import IngestApiUser, KafkaProducerUser


def test_a_class_marked_one_per_process_gets_one_user_per_expected_worker():
    """The master sets fixed_count to the workers it expects (a local run: 1); other classes keep theirs."""

    class Controllers(KafkaProducerUser):
        one_per_process = True

    class Pinned(KafkaProducerUser):
        fixed_count = 3

    class Gateways(IngestApiUser):
        pass

    fix_counts_per_process([Controllers, Pinned, Gateways], 4)
    assert (Controllers.fixed_count, Pinned.fixed_count, Gateways.fixed_count) == (4, 3, 0)
    fix_counts_per_process([Controllers], 0)
    assert Controllers.fixed_count == 1
