"""The Kafka side: the connection's options and settings, client configuration and secrets, the
embedded broker, topic and offset helpers, the shared producer client of a Locust process and its
acknowledgements in Locust's statistics."""
