"""Per-message API rows and request rows kept out of Locust's Aggregated row."""

from types import SimpleNamespace

from locust.event import Events
from locust.stats import RequestStats

from ingestload.locust.api_stats import API, MessageRows, keep_out_of_total


def test_request_rows_log_in_their_row_and_errors_but_not_in_the_total():
    """A POST row counts its requests and failures; Aggregated (stats.total) does not see them."""
    stats = RequestStats()
    keep_out_of_total(stats, {("/v1/messages/alarm", "POST")})
    stats.log_request("POST", "/v1/messages/alarm", 12, 0)
    stats.log_error("POST", "/v1/messages/alarm", "HTTP 503")
    stats.log_request("KAFKA", "t-alarm", 3, 10)
    assert stats.entries[("/v1/messages/alarm", "POST")].num_requests == 1
    assert stats.entries[("/v1/messages/alarm", "POST")].num_failures == 1
    assert len(stats.errors) == 1
    assert (stats.total.num_requests, stats.total.num_failures) == (1, 0)


def test_messages_of_a_request_are_one_api_event_each():
    """A batch of 20 with 2 refused: 20 API requests in the row and in the total, 2 of them failed."""
    events = Events()
    stats = RequestStats()

    def on_request(request_type, name, response_time, response_length, exception=None, **_):
        stats.log_request(request_type, name, response_time, response_length)
        if exception:
            stats.log_error(request_type, name, exception)

    events.request.add_listener(on_request)
    rows = MessageRows(SimpleNamespace(events=events, stats=stats))
    rows.request("/v1/messages/alarm:batch")
    stats.log_request("POST", "/v1/messages/alarm:batch", 40, 0)  # Locust's own row
    rows.messages("/v1/messages/alarm:batch", 40.0, acked=18, refused=2, error="HTTP 207: 2 of 20")
    entry = stats.entries[("/v1/messages/alarm:batch", API)]
    assert (entry.num_requests, entry.num_failures) == (20, 2)
    assert (stats.total.num_requests, stats.total.num_failures) == (20, 2)
    assert stats.entries[("/v1/messages/alarm:batch", "POST")].num_requests == 1


def test_with_locusts_own_listener_successes_go_in_bulk_and_other_listeners_see_each():
    """A real runner: its stats get 18 successes in one merge and 2 failures, like 20 events; another
    request listener (an exporter) is still called once per message."""
    from locust.env import Environment

    environment = Environment(events=Events())
    environment.create_local_runner()
    seen = []
    environment.events.request.add_listener(lambda **kw: seen.append(kw["exception"] is None))
    rows = MessageRows(environment)
    rows.messages("/v1/messages/alarm:batch", 40.0, acked=18, refused=2, error="HTTP 207: 2 of 20")
    entry = environment.stats.entries[("/v1/messages/alarm:batch", API)]
    assert (entry.num_requests, entry.num_failures, entry.total_response_time) == (20, 2, 800.0)
    assert (environment.stats.total.num_requests, environment.stats.total.num_failures) == (20, 2)
    assert sorted(seen) == [False] * 2 + [True] * 18
