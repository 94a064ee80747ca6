"""ingestload's page and its block in Locust's HTML report: the same renderer, live or frozen.

The live page (``…/ingestload/``) links its scripts and polls ``state.json``; the report block
inlines them with the test's snapshot, so a report file opens anywhere, offline. The chart is
drawn by uPlot (installed by ``make install`` from the npm registry into ``static/vendor/``);
without it the page says how to get it and shows the tables.

Example::

    html = get_html_report(environment)                    # Locust's report
    html = add_to_report(html, report_block(session.snapshot()))
"""

from __future__ import annotations

import html
import os
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

#: Files served under ``…/ingestload/assets/`` (and inlined into reports).
ASSETS = {
    "ingestload.js": "application/javascript",
    "ingestload.css": "text/css",
    "vendor/uPlot.iife.min.js": "application/javascript",
    "vendor/uPlot.min.css": "text/css",
}
MARK_BEGIN = "<!-- ingestload report block -->"
MARK_END = "<!-- /ingestload report block -->"
_ROOT = '<div id="root"></div>'


def asset(name: str) -> bytes | None:
    """A file of ``static/`` (``None`` when it is not there, e.g. uPlot before ``make install``)."""
    if name not in ASSETS:
        return None
    path = resources.files("ingestload.webui").joinpath("static", *name.split("/"))
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _inline_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    return orjson.dumps(data).decode().replace("</", "<\\/")


def _inline(name: str) -> str:
    body = asset(name)
    return "" if body is None else body.decode().replace("</script", "<\\/script")


def page_html(title: str = "ingestload") -> str:
    """The live page: tables and chart of the test running (or the last one), refreshed every 2 s."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="assets/vendor/uPlot.min.css">
<link rel="stylesheet" href="assets/ingestload.css">
</head>
<body class="ingestload-page">
<div id="ingestload" class="ingestload" data-mode="live" data-state-url="state.json"></div>
<script src="assets/vendor/uPlot.iife.min.js"></script>
<script src="assets/ingestload.js"></script>
</body>
</html>
"""


def report_block(snapshot: dict[str, Any]) -> str:
    """ingestload's part of an HTML report: verdict, pacing, verification and the rate chart,
    with everything it needs inline."""
    return (
        f"{MARK_BEGIN}\n<style>{_inline('vendor/uPlot.min.css')}\n{_inline('ingestload.css')}</style>\n"
        f'<div id="ingestload" class="ingestload ingestload-report" data-mode="report"></div>\n'
        f"<script>window.INGESTLOAD_SNAPSHOT = {_inline_json(snapshot)};</script>\n"
        f"<script>{_inline('vendor/uPlot.iife.min.js')}</script>\n"
        f"<script>{_inline('ingestload.js')}</script>\n{MARK_END}\n"
    )


def add_to_report(report: str, block: str) -> str:
    """Locust's report with ``block`` above its own content (replacing an earlier block)."""
    begin, end = report.find(MARK_BEGIN), report.find(MARK_END)
    if begin >= 0 and end > begin:
        report = report[:begin] + report[end + len(MARK_END) :].lstrip("\n")
    at = report.rfind(_ROOT)
    if at < 0:
        at = report.rfind("</body>")
    if at < 0:
        return report + block
    return report[:at] + block + report[at:]


def add_to_report_file(path: str | os.PathLike[str], block: str) -> None:
    """Rewrite the report file at ``path`` with ``block`` in it."""
    target = Path(path)
    target.write_text(add_to_report(target.read_text(encoding="utf-8"), block), encoding="utf-8")
