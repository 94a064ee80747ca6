"""The verification's options and settings: on or off, thresholds, late grace, where the files go.

Example::

    verify = VerifySettings.from_values(read(OPTIONS, namespace, os.environ)).for_run(run_id)
    judge(..., thresholds=verify.thresholds)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ingestload.messages.settings import dotted_path
from ingestload.options import (
    Option,
    Values,
    boolean,
    build,
    declared,
    duration,
    number,
    option,
    optional_text,
    settings_class,
)
from ingestload.verify.verdict import Thresholds

_COUNT = number(int, minimum=0, what="an integer ≥ 0")


@settings_class
class VerifySettings:
    """Whether and how a run is judged, and where its verdict and ledger go."""

    enabled: bool = option(
        "--verify",
        "true",
        boolean,
        "Verify every acknowledged message end to end; end with a verdict (true/false).",
        "BOOL",
        web_ui=True,
    )
    """Run the verifier and end with a verdict."""
    max_lost: int = option(
        "--max-lost", "0", _COUNT, "Lost messages tolerated before the verdict is FAIL.", "N", web_ui=True
    )
    """Lost messages tolerated."""
    max_duplicated: int = option(
        "--max-duplicated",
        "0",
        _COUNT,
        "Duplicate copies tolerated before the verdict is FAIL.",
        "N",
        web_ui=True,
    )
    """Duplicate copies tolerated."""
    max_corrupted: int = option(
        "--max-corrupted",
        "0",
        _COUNT,
        "Corrupted messages tolerated before the verdict is FAIL.",
        "N",
        web_ui=True,
    )
    """Corrupted messages tolerated."""
    max_misrouted: int = option(
        "--max-misrouted",
        "0",
        _COUNT,
        "Copies on a topic other than their own tolerated before the verdict is FAIL.",
        "N",
        web_ui=True,
    )
    """Copies on a wrong topic tolerated."""
    late_grace: float = option(
        "--late-grace",
        "5s",
        duration,
        "How long the verifier keeps reading after the drain before it takes the topics' end offsets, "
        "so that late copies (a pipeline's retries, delayed duplicates) count in the verdict.",
        "DURATION",
    )
    """Seconds the verifier reads on after the drain before it takes the end offsets."""
    verifier_processes: int = option(
        "--verifier-processes",
        "1",
        number(int, minimum=1, maximum=64, what="an integer from 1 to 64"),
        "Verifier processes beside the master (or the local process), each reading its share of the "
        "topics' partitions; one verdict. More than 1 where one cannot keep up with the load and "
        "the master has cores to spare.",
        "N",
    )
    """How many processes verify the run, each owning the partitions ``shard_of`` gives it."""
    verdict_file: str | None = option(
        "--verdict-file",
        None,
        optional_text,
        "Write the verdict as JSON to this file ({run_id} in it: the test's run id).",
        "PATH",
    )
    """Where to write the verdict JSON (may hold ``{run_id}``)."""
    ledger_file: str | None = option(
        "--ledger-file",
        None,
        optional_text,
        "Write the run's ack ledger as JSON (for `ingestload verify --ledger`; {run_id} in it: "
        "the test's run id).",
        "PATH",
    )
    """Where to write the ledger JSON (may hold ``{run_id}``)."""
    report_file: str | None = option(
        "--report-file",
        None,
        optional_text,
        "Write the test's HTML report (Locust's report with the verdict, pacing account and rate "
        "chart) to this file when the test stops ({run_id} in it: the test's run id); for every "
        "test of a web UI session, unlike --html.",
        "PATH",
    )
    """Where to write the HTML report when each test stops (may hold ``{run_id}``)."""

    message_path: str | None = option(
        "--message-path",
        None,
        dotted_path,
        "Where the ingest API puts the message in its Kafka record, as a dotted path (e.g. data for "
        '{"meta": …, "data": <message>}); there may be one message or an array. Default: the record '
        "itself or an array of messages, else the wrapper is found by looking.",
        "PATH",
    )
    """Where the API puts the message in its record (dotted path); ``None``: found by looking."""

    @classmethod
    def from_values(cls, values: Values) -> VerifySettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`OPTIONS`."""
        return build(cls, values)

    @property
    def thresholds(self) -> Thresholds:
        """Lost, duplicated, corrupted and misrouted messages tolerated, as the verdict takes them."""
        return Thresholds(self.max_lost, self.max_duplicated, self.max_corrupted, self.max_misrouted)

    def for_run(self, run_id: str) -> VerifySettings:
        """These settings for one test run: ``{run_id}`` in the verdict, ledger and report files
        replaced, so that every test of a web UI session writes its own files.

        Example::

            >>> verify.verdict_file, verify.for_run("5f3a9c0b12d4e6f7").verdict_file
            ('reports/{run_id}/verdict.json', 'reports/5f3a9c0b12d4e6f7/verdict.json')
        """
        verdict, ledger, report = (
            None if path is None else path.replace("{run_id}", run_id)
            for path in (self.verdict_file, self.ledger_file, self.report_file)
        )
        return replace(self, verdict_file=verdict, ledger_file=ledger, report_file=report)


#: The verification's options, in the order ``--help`` shows them.
OPTIONS: tuple[Option[Any], ...] = tuple(declared(VerifySettings).values())
_BY_NAME = declared(VerifySettings)
MAX_LOST, MAX_DUPLICATED, MAX_CORRUPTED, MAX_MISROUTED = (
    _BY_NAME[name] for name in ("max_lost", "max_duplicated", "max_corrupted", "max_misrouted")
)
VERDICT_FILE = _BY_NAME["verdict_file"]
