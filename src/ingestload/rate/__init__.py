"""Open-model message rates: durations, rate profiles, the pacer of each path, lateness, the plans the
master sends to workers, the control that runs them in a Locust process, the shape, the rate guard."""
