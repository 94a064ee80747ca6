"""The browser layer: headless Debian Chromium driven by Playwright, and `ingestload run --ui` sessions.

Without a Chromium the layer is skipped — unless ``INGESTLOAD_REQUIRE_BROWSER=1`` (set by
``.ci/run``), which turns the missing browser into a failure, so CI never skips it. A failed
test leaves a screenshot of every page it had open under its pytest temp dir; with
``INGESTLOAD_UI_SHOTS=DIR`` the tests also keep the screenshots they take along the way there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ingestload.testing import free_port

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REQUIRE_ENV = "INGESTLOAD_REQUIRE_BROWSER"
SHOTS_ENV = "INGESTLOAD_UI_SHOTS"


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install -y chromium``), or ``$INGESTLOAD_CHROMIUM``."""
    given = os.environ.get("INGESTLOAD_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the layer (Playwright's own browser download does not work here)."""
    path = chromium_path()
    if path is None:
        message = "no Chromium for the browser tests: apt-get install -y chromium"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1: the web UI layer must run)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    from ingestload.webui.report import asset

    if asset("vendor/uPlot.iife.min.js") is None:
        pytest.fail("the rate chart's library is missing: apt-get install -y npm, then make install")

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A browser context (a person's window); on failure, a screenshot of each of its pages."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    ctx.set_default_timeout(20_000)
    yield ctx
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for i, page in enumerate(ctx.pages):
            try:
                page.screenshot(path=str(tmp_path / f"failure-{i}.png"), full_page=True)
            except Exception as e:  # a crashed page: note it, keep the other screenshots
                (tmp_path / f"failure-{i}.txt").write_text(repr(e))
        sys.stderr.write(f"screenshots of the failure: {tmp_path}\n")
    ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


def shot(page: Any, name: str) -> None:
    """Keep a screenshot of ``page`` in ``$INGESTLOAD_UI_SHOTS`` (when set)."""
    folder = os.environ.get(SHOTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@dataclass
class UiSession:
    """An ``ingestload run --ui`` process and where it serves."""

    url: str
    process: subprocess.Popen[str]
    log: Path
    reports: Path
    output: str = ""
    exit_code: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 120) -> int:
        """Ctrl-C as a person would (SIGTERM to `ingestload run`, which passes it to Locust)."""
        if self.exit_code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.exit_code = self.process.wait()
            self.output = self.log.read_text()
        return self.exit_code


def start_ui(root: Path, kafka: str, prefix: str, tmp_path: Path, *args: str) -> UiSession:
    """``ingestload run --ui`` on a free port against ``kafka`` (no reference API), ready to use."""
    port = free_port()
    log = tmp_path / "ingestload-run.log"
    reports = tmp_path / "reports"
    command = [sys.executable, "-m", "ingestload.cli", "run", "--ui", "--no-api"]
    command += ["--web-port", str(port), "--kafka-bootstrap", kafka, "--topic-prefix", prefix]
    command += ["--reports", str(reports), *args]
    out = log.open("w")
    process = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.STDOUT, text=True)
    out.close()
    session = UiSession(f"http://127.0.0.1:{port}", process, log, reports)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(session.url + "/", timeout=2):
                return session
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                session.stop()
                raise AssertionError(f"the web UI never answered:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)


@pytest.fixture
def ui_session_factory(root: Path, kafka: str, prefix: str, tmp_path: Path) -> Iterator[Any]:
    """Starts UI sessions; each is stopped (and waited for) at the end of the test."""
    sessions: list[UiSession] = []

    def start(*args: str) -> UiSession:
        session = start_ui(root, kafka, prefix, tmp_path, *args)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.stop()
