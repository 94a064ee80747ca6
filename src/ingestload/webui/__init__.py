"""ingestload in Locust's web UI and HTML report (on top of :mod:`ingestload.locust.process`).

Importing :mod:`ingestload.users` installs these listeners after the plugin's, so each runs once
ingestload's own has: at ``init`` a :class:`~ingestload.webui.session.WebSession` on the master
(or local process) — with Locust's web UI, the form check, the **ingestload** tab, our page and
downloads (:mod:`ingestload.webui.routes`); on a worker, its per-path counters in every report.
At each test stop, when ``--report-file`` names one, an HTML report of the test: Locust's report
with ingestload's block (verdict, pacing, verification, the rate chart). At ``quitting``,
the same block goes into Locust's ``--html`` report, headless or not.

=========  ===========================================================================
module     what it holds
=========  ===========================================================================
form       the swarm form's ingestload fields, checked before a test starts
live       rates per path from cumulative samples; the chart's history
sections   the formatted tables (rate, pacing, verification, verdict, a conclusion's own)
session    the per-process view: samples, sections, snapshot
routes     Flask hooks and routes on Locust's web UI
report     the page and the report block (uPlot chart, inline for reports)
=========  ===========================================================================
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from ingestload.errors import ConfigError

log = logging.getLogger("ingestload")

_SESSION_ATTR = "_ingestload_web_session"


def session_of(environment: Any) -> Any:
    """The :class:`~ingestload.webui.session.WebSession` of a master or local process (or ``None``)."""
    return getattr(environment, _SESSION_ATTR, None)


def check_web_port(host: str | None, port: int) -> None:
    """Raise :class:`~ingestload.errors.ConfigError` when Locust's web UI could not listen on
    ``host:port`` (another process has it), before anything starts."""
    address = (host if host not in (None, "", "*") else "0.0.0.0", port)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gevent's server does
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"--web-port {port}: {address[0]}:{port} is already in use (another Locust or "
                    "`ingestload run --ui`?); stop it or choose another port with --web-port"
                ) from None
            raise ConfigError(f"--web-host {address[0]}: cannot listen there ({e.strerror})") from None


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    from ingestload.locust.process import JudgingProcess, fail, state_of
    from ingestload.webui.session import WebSession, add_worker_report

    if runner is None:
        return
    state = state_of(environment)
    events = environment.events
    if not isinstance(state, JudgingProcess):  # a worker: its counters go into its reports
        events.report_to_master.add_listener(lambda client_id, data: add_worker_report(state, data))
        return
    if web_ui is not None:
        try:
            check_web_port(web_ui.host, int(web_ui.port))
        except ConfigError as e:
            fail(e)
    session = WebSession(state)
    setattr(environment, _SESSION_ATTR, session)
    started = time.time()
    events.test_start.add_listener(lambda **_: session.on_test_start())
    events.test_stop.add_listener(lambda **_: _on_test_stop(environment, session))
    events.quitting.add_listener(lambda **_: _on_quitting(environment, session, started))
    if state.role == "master":
        events.worker_report.add_listener(session.on_worker_report)
    if web_ui is not None:
        from ingestload.webui.routes import attach

        attach(web_ui, session)


def _on_test_stop(environment: Any, session: Any) -> None:
    session.on_test_stop()
    report_file = session.report_file()
    if report_file:
        _write_report(environment, session, Path(report_file))


def _write_report(environment: Any, session: Any, path: Path) -> None:
    """Locust's HTML report of the test, with ingestload's block, at ``path``."""
    from locust.html import get_html_report

    from ingestload.webui.report import add_to_report, report_block

    try:
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        report: str = get_html_report(environment, show_download_link=False)  # type: ignore[no-untyped-call]
        path.write_text(add_to_report(report, report_block(session.snapshot())), encoding="utf-8")
        log.info("wrote %s", path)
    except Exception:  # a report must never cost the run its verdict or exit code
        log.exception("ingestload: could not write the HTML report %s", path)


def _on_quitting(environment: Any, session: Any, started: float) -> None:
    """Locust wrote its ``--html`` report just before: add ingestload's block to it. Listeners of
    ``quitting`` run last-registered first, so judge the run here first (once per run) on a Ctrl-C."""
    from ingestload.webui.report import add_to_report_file, report_block

    session.state.conclude_on_quit()
    session.on_test_stop()
    path = getattr(environment.parsed_options, "html_file", None)
    if not path or not os.path.isfile(path) or os.path.getmtime(path) < started:
        return  # not asked for, or not written by this process (Locust skips it on SIGTERM)
    try:
        add_to_report_file(path, report_block(session.snapshot()))
    except Exception:
        log.exception("ingestload: could not add the verdict and rate chart to %s", path)


def install(events: Any = None) -> None:
    """Register the web UI listeners on a Locust ``Events`` (default: ``locust.events``) after
    :func:`ingestload.locust.process.install`'s; idempotent."""
    if events is None:
        from locust import events as default_events

        events = default_events
    if getattr(events, "_ingestload_webui_installed", False):
        return
    events._ingestload_webui_installed = True
    events.init.add_listener(_on_init)
