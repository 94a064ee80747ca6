"""The run's verdict, published once: every hop's block, one overall status, one exit code, one file.

The Kafka verdict (:mod:`~ingestload.locust.verification`) is the document's top level, as it has
always been; every other hop (fan-out, load, storage) adds a section of its own
(:class:`~ingestload.verdicts.HopVerdict`), and ``overall`` combines them all
(:func:`~ingestload.verdicts.overall`: FAIL over INCONCLUSIVE over PASS). The exit code follows
``overall``, except that a PASS keeps a failure set during the run (the rate guard's 5).

Example (a judging process at stop)::

    document = publish_run(environment, run_id, settings.verdict_file, kafka_verdict, [load, fanout])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gevent
import orjson

from ingestload.verdicts import PASS, HopVerdict, overall

log = logging.getLogger("ingestload")


def publish_run(
    environment: Any,
    run_id: str | None,
    verdict_file: str | None,
    kafka: Mapping[str, Any] | None,
    hops: Sequence[HopVerdict],
) -> dict[str, Any]:
    """Log each hop's block, set the exit code, write the verdict file; returns the run's document."""
    for hop in hops:
        for line in hop.report.splitlines():
            (log.info if hop.status == PASS else log.error)("%s", line)
    combined = overall(kafka, hops)
    code = int(combined["exit_code"])
    if code != 0 or not environment.process_exit_code:
        environment.process_exit_code = code
    if getattr(environment.parsed_options, "csv_prefix", None):
        # Locust's CSV writer rewrites its files once a second and does not write again on close:
        # give it one more turn so the verdicts' rows (E2E, WS failures) reach the CSV files.
        from locust.stats import CSV_STATS_INTERVAL_SEC

        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)
    document: dict[str, Any] = dict(kafka) if kafka is not None else {"run_id": run_id, **combined}
    for hop in hops:
        document[hop.section] = hop.to_dict()
    document["overall"] = combined
    if verdict_file:
        write_json(verdict_file, document)
    return document


def write_json(path: str, document: Mapping[str, Any]) -> None:
    """Write ``document`` as indented JSON, making the folder if needed."""
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    log.info("wrote %s", target)
