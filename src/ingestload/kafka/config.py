"""The Kafka client configuration: safe defaults, properties from files and the environment, secrets.

Properties reach librdkafka from, lowest precedence first, a properties file
(``--kafka-config-file``), ``INGESTLOAD_KAFKA_PROP_<KEY>`` environment variables and
``KEY=VALUE`` items (``--kafka-config``); :func:`kafka_properties` merges them. Values of
secret keys (passwords, tokens, key material) are never printed: :func:`redact_config` for
settings lines, :func:`scrub` for client error messages that may quote them.

Example::

    config = {**PRODUCER_DEFAULTS, **kafka_properties("client.properties", ["acks=1"], os.environ)}
    print(redact_config(config))                 # sasl.password=***
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ingestload.errors import ConfigError

#: ``INGESTLOAD_KAFKA_PROP_SASL_PASSWORD=x`` sets the librdkafka property ``sasl.password``.
KAFKA_PROP_ENV_PREFIX = "INGESTLOAD_KAFKA_PROP_"

REDACTED = "***"
#: Keys whose values are secret: passwords and passphrases (sasl.password, ssl.key.password,
#: sasl.oauthbearer.assertion.private.key.passphrase …), secrets and tokens, JAAS and OAUTHBEARER
#: configs, key material given inline (ssl.key.pem …), credentials.
_SECRET_KEY = re.compile(
    r"password|passphrase|secret|token|jaas|oauthbearer\.config|\.pem$|credential|private\.key",
    re.IGNORECASE,
)

#: Consumer defaults for the verifier and read-backs; the user's properties override them.
#: librdkafka pauses a partition's fetches for ``fetch.queue.backoff.ms`` (1 s by default) once
#: its prefetch queue is full, which starves a consumer that does real work per message: at
#: 10 ms the verifier checks about twice as many messages per second. A short fetch wait keeps
#: the measured end-to-end latency from including the verifier's own polling: Kafka answers a
#: fetch as soon as a record is there, but a broker that holds it for ``fetch.wait.max.ms``
#: (measured on the embedded broker at 2,775 msg/s: 50 ms added 12 ms to the E2E p50 of a bare
#: consumer's 10 ms, 5 ms added ~1 ms; ``bench/e2e_latency.py``) makes that wait part of every
#: message's latency. Idle, it costs 200 small fetches a second per broker.
CONSUMER_DEFAULTS: Mapping[str, str] = {
    "fetch.queue.backoff.ms": "10",
    "queued.min.messages": "1000000",
    "fetch.wait.max.ms": "5",
}

#: What every reader that judges a run sets last, over the user's properties: only records of committed
#: transactions (and non-transactional ones) are delivered. With ``read_uncommitted`` a record of an
#: aborted transaction — never delivered to anyone reading committed data — would count as arrived.
COMMITTED_ONLY: Mapping[str, str] = {"isolation.level": "read_committed"}

#: Producer defaults that never trade data for speed; every one can be overridden.
PRODUCER_DEFAULTS: Mapping[str, str] = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "5",
    "batch.num.messages": "10000",
    "queue.buffering.max.messages": "200000",
    # Far below librdkafka's 5 minutes so that a dead broker ends a run in bounded time;
    # the drain at stop waits at least this long before calling a message undelivered.
    "message.timeout.ms": "30000",
}


def is_secret_key(key: str) -> bool:
    """True for librdkafka properties whose values must never be printed.

    Example::

        >>> is_secret_key("sasl.password"), is_secret_key("sasl.username")
        (True, False)
    """
    return bool(_SECRET_KEY.search(key))


def redact_config(config: Mapping[str, str]) -> dict[str, str]:
    """A copy of a librdkafka config that is safe to print."""
    return {k: (REDACTED if is_secret_key(k) else v) for k, v in config.items()}


def scrub(text: str, config: Mapping[str, str]) -> str:
    """Replace every secret value of ``config`` that appears in ``text`` (e.g. a librdkafka error)."""
    for key, value in config.items():
        if value and is_secret_key(key):
            text = text.replace(value, REDACTED)
    return text


def parse_properties(lines: Iterable[str], source: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (``#``/``!`` comments, blank lines allowed).

    Example::

        >>> parse_properties(["# c", "acks = all", ""], "x.properties")
        {'acks': 'all'}
    """
    props: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = line if not is_secret_key(line) else REDACTED
            raise ConfigError(f"{source}:{number}: expected KEY=VALUE, got {shown!r}")
        props[key] = value.strip()
    return props


def kafka_properties(
    config_file: str | None, items: Sequence[str], environ: Mapping[str, str]
) -> dict[str, str]:
    """The user's librdkafka properties: ``config_file``, then ``INGESTLOAD_KAFKA_PROP_*`` from
    ``environ``, then ``items`` (``KEY=VALUE``), later ones winning."""
    props: dict[str, str] = {}
    if config_file:
        path = Path(config_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"--kafka-config-file: cannot read {str(path)!r}: {e.strerror}") from None
        props.update(parse_properties(text.splitlines(), str(path)))
    for name, value in sorted(environ.items()):
        if name.startswith(KAFKA_PROP_ENV_PREFIX) and len(name) > len(KAFKA_PROP_ENV_PREFIX):
            props[name[len(KAFKA_PROP_ENV_PREFIX) :].lower().replace("_", ".")] = value
    props.update(parse_properties(items, "--kafka-config"))
    if "bootstrap.servers" in props:
        raise ConfigError(
            "--kafka-config: set bootstrap servers with --kafka-bootstrap, not bootstrap.servers"
        )
    return props
