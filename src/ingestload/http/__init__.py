"""The HTTP side, as a client of an ingest API: its options and settings, messages with their
envelope in the JSON body, and what each answer means for the ledger."""
