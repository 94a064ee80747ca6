"""The verdict: the verification's options and settings, the verifier's core (what was seen), the
verdict (acked vs seen), the verifier engine and its own process, the read-back of a finished run."""
