"""The verifier's native bulk reader of consumed records, when it can be trusted here.

:func:`scanner` loads ``ingestload.verify._scan`` (C, built by ``make install``; see ``_scan.c``) once
and checks it against this confluent-kafka before it is used: exactly one librdkafka loaded, with the
header reader, and a ``Message`` built with known fields holding them where ``_scan`` reads them.
When any of that fails — no C compiler at install time, another confluent-kafka layout — the verifier
files every batch through the ``Message`` methods, as fast as that goes, and :func:`unavailable` says
why (logged once per process).

Example::

    scan = scanner()
    if scan is not None:
        scanned = scan(batch, type(batch[0]), run_id, now_us)  # None for another type than Message
"""

from __future__ import annotations

import contextlib
import logging
import sys
from array import array
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ingestload.messages.envelope import HEADER, checksum, topic_tag

log = logging.getLogger("ingestload.verify")


class Scanned(NamedTuple):
    """A batch as the native reader found it (see ``_scan.c``, ``scan``)."""

    runs: list[tuple[str, int, int, int, bool, bool, dict[int, int] | None]]
    """``(topic, partition, start, end, clean, ordered, latency)`` for each stretch of one partition:
    clean, every record has this run's envelope first, with its topic's tag, its value intact and a
    rising offset; ordered, clean and of one producer at rising seqs; latency, ``{ms: count}`` of a
    clean run's ages (``None`` when not asked for, not clean, or spread over 4 s or more)."""
    envelopes: bytes
    """Each clean record's envelope header (41 bytes), end to end."""
    producers: array[int]
    """Each clean record's producer id."""
    seqs: array[int]
    """Each clean record's seq."""
    sent: array[int]
    """Each clean record's send time, µs."""


Scan = Callable[[list[Any], type, bytes, int], Scanned | None]


def _native(code: str, packed: bytes) -> array[int]:
    numbers = array(code)
    numbers.frombytes(packed)
    return numbers


_loaded: tuple[Scan | None, str] | None = None


def _load() -> tuple[Scan | None, str]:
    try:
        from confluent_kafka import Message

        from ingestload.verify import _scan  # type: ignore[attr-defined]
    except ImportError as error:
        return None, f"the native reader is not built ({error})"
    try:
        _scan.attach()
    except RuntimeError as error:
        return None, f"the native reader cannot find librdkafka's header reader: {error}"
    topic, value, partition, offset = "ingestload-probe", b"probe", 7, 1_234_567_890_123
    try:
        probe = Message(topic=topic, partition=partition, offset=offset, value=value)
    except TypeError:
        return None, "this confluent-kafka's Message cannot be built to check its layout"
    if not _scan.probe(probe, Message, topic, value, partition, offset):
        return None, "this confluent-kafka's Message layout is not the one the native reader knows"

    _direct_crc(_scan)

    def scan(batch: list[Any], kind: type, run_id: bytes, now_us: int) -> Scanned | None:
        if kind is not Message:  # a test's stand-in, say: only the Message methods know it
            return None
        runs, envelopes, producers, seqs, sent = _scan.scan(
            batch, kind, HEADER, checksum, run_id, topic_tag, now_us
        )
        return Scanned(runs, envelopes, _native("Q", producers), _native("Q", seqs), _native("q", sent))

    return scan, ""


def _direct_crc(native: Any) -> bool:
    """Let the native reader call ISA-L's CRC-32 itself when :func:`checksum` is ISA-L's (a Python call
    per record saved), after checking that both give the same CRC of a sample."""
    module = sys.modules.get(getattr(checksum, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if path is None or not path.endswith(".so"):
        return False
    sample = bytes(range(256)) * 3
    return bool(native.use_crc(path, sample, checksum(sample)))


def scanner() -> Scan | None:
    """The native reader, or None when it is not there or not trusted (:func:`unavailable` says why)."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
        if _loaded[0] is None:
            log.warning(
                "the verifier reads records through confluent-kafka's Message methods (slower, same "
                "verdicts): %s",
                _loaded[1],
            )
    return _loaded[0]


def unavailable() -> str:
    """Why :func:`scanner` gives None ("" when it does not)."""
    scanner()
    assert _loaded is not None
    return _loaded[1]


@contextlib.contextmanager
def methods_only() -> Iterator[None]:
    """Within it, the verifier reads through the ``Message`` methods only (for benchmarks and tests)."""
    global _loaded
    scanner()
    saved, _loaded = _loaded, (None, "switched off (methods_only)")
    try:
        yield
    finally:
        _loaded = saved


def distrust(reason: str) -> None:
    """Stop using the native reader in this process: it disagreed with the ``Message`` methods."""
    global _loaded
    _loaded = (None, reason)
    log.error("the verifier stops using its native reader: %s", reason)
