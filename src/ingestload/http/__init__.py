"""The HTTP side, as a client of an ingest API: messages with their envelope in the JSON body, and what
each answer means for the ledger."""
