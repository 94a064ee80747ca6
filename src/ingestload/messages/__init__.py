"""What is sent: its options and settings, the message catalogue, the factory that draws the mix,
the envelope every message carries, and the ledger of what became of each message a producer sent."""
