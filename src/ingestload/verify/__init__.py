"""The verdict: the verifier's core (what was seen), the verdict (acked vs seen), the verifier engine
and its own process, and the conclusion of a run as the Locust master sees it."""
