"""ingestload in Locust's web UI: the form check, the tab, the page, the downloads, the report.

Locust 2.47's React UI is extended only through what it reads (see ``shared/docs/webui.md``):

* ``extended_tabs`` / ``extended_tables``: an **ingestload** tab with one table, filled from
  ``extended_stats``, which :func:`attach` adds to every ``stats/requests`` answer (the UI polls it
  every 2 s while a test runs). The verdict is made inside ``test_stopping``, while Locust still
  says *running*, so the answer that first says *stopped* — the last one the UI fetches — already
  carries the verdict; it stays in the tab until the next test starts.
* ``extended_csv_files``: links in "Download Data" to our page, the verdict and the ledger.
* routes of our own under ``<web base path>/ingestload/``: the page (chart and tables, refreshed
  every 2 s whatever the state, so it also shows the verdict after a reload), ``state.json``,
  ``verdict.json``, ``ledger.json``, ``assets/…``. A small link to the page is added to Locust's
  page itself.
* a ``before_request`` hook on ``/swarm`` refuses a form with a bad value the way Locust's own
  handler refuses a bad user count: ``{"success": false, "message": …}``, which the form shows.
* an ``after_request`` hook on ``/stats/report`` adds our block to "Download Report".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from ingestload.webui.form import check_swarm_form
from ingestload.webui.report import ASSETS, add_to_report, asset, page_html, report_block
from ingestload.webui.sections import TAB_COLUMNS, Section, tab_rows
from ingestload.webui.session import WebSession

log = logging.getLogger("ingestload")

TAB = "ingestload"
# Locust's endpoints (its blueprint is named "locust"), whatever --web-base-path is.
_SWARM, _STATS = "locust.swarm", "locust.request_stats"
_REPORT, _INDEX = "locust.stats_report", "locust.index"
_LINK = (
    '<a id="ingestload-link" href="./ingestload/" target="_blank" rel="noopener" '
    'style="position:fixed;right:14px;bottom:10px;z-index:2000;padding:6px 12px;border-radius:16px;'
    "background:#1b5e20;color:#fff;font:13px/1.4 sans-serif;text-decoration:none;"
    'box-shadow:0 1px 4px rgba(0,0,0,.4)">ingestload: rate chart &amp; verdict ↗</a>'
)


def template_args() -> dict[str, Any]:
    """What Locust's page reads to show our tab and our downloads."""
    return {
        "extended_tabs": [{"title": TAB, "key": TAB}],
        "extended_tables": [
            {
                "key": TAB,
                "structure": [{"key": "what", "title": "ingestload"}]
                + [{"key": f"c{i}", "title": ""} for i in range(1, TAB_COLUMNS + 1)],
            }
        ],
        "extended_csv_files": [
            {"href": "./ingestload/", "title": "ingestload: live rate chart, verification, verdict (page)"},
            {"href": "./ingestload/verdict.json", "title": "ingestload: verdict of the last test (JSON)"},
            {"href": "./ingestload/ledger.json", "title": "ingestload: ack ledger of the last test (JSON)"},
        ],
    }


def tab_data(session: WebSession) -> list[dict[str, str]]:
    """The tab's rows: a status line, then every section."""
    snap_phase = session.phase
    if session.run_id is None:
        return []
    status = {
        "running": "running",
        "concluding": "stopping: draining the senders and reading to the end…",
        "stopped": "stopped",
        "ready": "ready",
    }[snap_phase]
    head = Section("test", f"run {session.run_id}", ("",), (("state", status),))
    return tab_rows([head, *session.sections()])


def attach(web_ui: Any, session: WebSession) -> None:
    """Register ingestload's hooks and routes on Locust's web UI (before it starts serving)."""
    from flask import Response, jsonify, make_response, redirect, request, send_file

    app = web_ui.app
    environment = session.state.environment
    options = environment.parsed_options
    base = (getattr(options, "web_base_path", None) or "").rstrip("/")
    prefix = f"{base}/{TAB}"
    web_ui.template_args.update(template_args())

    def check_swarm() -> Any:
        if request.endpoint != _SWARM or request.method != "POST":
            return None
        rates = session.state.rates
        error = check_swarm_form(environment.parsed_options, request.form, also=rates.check)
        if error is None:
            return None
        log.error("ingestload: refused to start the test: %s", error)
        return jsonify({"success": False, "message": f"ingestload: {error}", "host": environment.host})

    def extend(response: Any) -> Any:
        endpoint = request.endpoint
        if endpoint == _STATS and response.status_code == 200:
            try:
                data = orjson.loads(response.get_data())
                data["extended_stats"] = [{"key": TAB, "data": tab_data(session)}]
                response.set_data(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
            except Exception:  # the UI must keep working even if our part fails
                log.exception("ingestload: could not add the ingestload tab's data")
        elif endpoint == _REPORT and response.status_code == 200:
            text = response.get_data(as_text=True)
            response.set_data(add_to_report(text, report_block(session.snapshot())))
        elif endpoint == _INDEX and response.status_code == 200 and response.mimetype == "text/html":
            text = response.get_data(as_text=True)
            at = text.rfind("</body>")
            if at >= 0:
                response.set_data(text[:at] + _LINK + text[at:])
        return response

    def page() -> Any:
        return make_response(page_html(f"ingestload — {environment.locustfile or 'Locust'}"))

    def page_redirect() -> Any:
        return redirect(f"{prefix}/")

    def state() -> Any:
        return Response(orjson.dumps(session.snapshot()), mimetype="application/json")

    def download(name: str) -> Any:
        path = session.files().get(name)
        if path is not None:
            return send_file(Path(path).resolve(), mimetype="application/json", as_attachment=True)
        if name == "verdict" and session.state.verdict is not None:
            response = Response(orjson.dumps(session.state.verdict), mimetype="application/json")
            response.headers["Content-Disposition"] = f"attachment; filename=verdict-{session.run_id}.json"
            return response
        why = (
            "no test has a verdict yet"
            if session.state.verdict is None
            else f"this test wrote no {name} file (start with --{name}-file PATH; ingestload run does)"
        )
        return make_response(f"ingestload: {why}\n", 404)

    def verdict_file() -> Any:
        return download("verdict")

    def ledger_file() -> Any:
        return download("ledger")

    def assets(name: str) -> Any:
        body = asset(name)
        if body is None:
            hint = " (the chart library: make install installs it with npm)" if "vendor" in name else ""
            return make_response(f"ingestload: no asset {name!r}{hint}\n", 404)
        return Response(body, mimetype=ASSETS[name])

    app.before_request(check_swarm)
    app.after_request(extend)
    guard = web_ui.auth_required_if_enabled
    for rule, endpoint, view in (
        (f"{prefix}/", "ingestload_page", page),
        (prefix, "ingestload_page_redirect", page_redirect),
        (f"{prefix}/state.json", "ingestload_state", state),
        (f"{prefix}/verdict.json", "ingestload_verdict", verdict_file),
        (f"{prefix}/ledger.json", "ingestload_ledger", ledger_file),
        (f"{prefix}/assets/<path:name>", "ingestload_asset", assets),
    ):
        app.add_url_rule(rule, endpoint, guard(view))
