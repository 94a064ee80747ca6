"""Open-model message rates: the rate's options and settings, rate profiles, the pacer of each path,
lateness, the plans the master sends to workers, the rate guard."""
