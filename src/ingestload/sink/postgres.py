"""A throwaway PostgreSQL for one run: the storage hop's embedded default, as Tansu is Kafka's.

It runs Debian's PostgreSQL server binaries (package ``postgresql-15``, or any other version under
``/usr/lib/postgresql/*/bin``; ``$INGESTLOAD_PG_BINDIR`` names another folder) on a new cluster in
a temporary directory, listening on 127.0.0.1 only, with ``trust`` authentication for the one
local user ``ingestload``: nothing to configure, no password anywhere. PostgreSQL refuses to run as
root, so as root the cluster belongs to the ``postgres`` user (which Debian's package creates) and
the server runs as that user. ``fsync`` is off: the data must survive the server's own crash (a
fault the tests inject), not the machine's.

Why Debian's binaries rather than a wheel that ships a server: they are what the project's
machines and CI install from the Debian archive anyway (the one registry reachable for system
parts), they are the same PostgreSQL a user runs in production, and no PyPI wheel that bundles a
server is maintained as well as the distribution's package.

Example::

    with EmbeddedPostgres() as db:              # a free port on 127.0.0.1
        psycopg.connect(db.dsn)
        db.restart()                            # a crash and a restart: the data stays
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ingestload.errors import DatabaseError

HOST = "127.0.0.1"
USER = "ingestload"
DATABASE = "ingestload"
#: The account PostgreSQL runs as when we are root (it refuses root).
SERVER_ACCOUNT = "postgres"


def server_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: ``$INGESTLOAD_PG_BINDIR``, else the newest
    ``/usr/lib/postgresql/<version>/bin``."""
    named = os.environ.get("INGESTLOAD_PG_BINDIR")
    candidates = (
        [Path(named)]
        if named
        else sorted(
            Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True
        )
    )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    where = f"$INGESTLOAD_PG_BINDIR={named}" if named else "/usr/lib/postgresql/*/bin"
    raise DatabaseError(
        f"no PostgreSQL server binaries in {where}: install them (apt-get install -y postgresql-15) "
        "or name your database with --sink postgresql://…"
    )


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """A PostgreSQL server on a fresh cluster in a temporary directory (``port=0``: a free port)."""

    def __init__(
        self, port: int = 0, *, listen: str = HOST, trust: str | None = None, startup_timeout: float = 60.0
    ) -> None:
        self.port = port or free_port()
        self.listen = listen
        """The address the server listens on (loopback unless told: a pod's ``0.0.0.0``)."""
        self.trust = trust
        """A network (CIDR) whose clients are trusted too, beside loopback (a cluster's pods)."""
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._account: dict[str, Any] = {}

    @property
    def dsn(self) -> str:
        """The connection string (no password: the cluster trusts its one local user)."""
        return f"postgresql://{USER}@{HOST}:{self.port}/{DATABASE}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def data(self) -> Path:
        assert self.directory is not None
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "server.log"

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> EmbeddedPostgres:
        """Make the cluster (first time only), start the server, wait until it answers."""
        if self.running:
            return self
        bindir = server_bindir()
        if self.directory is None:
            self._init_cluster(bindir)
        assert self.directory is not None
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self._process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    f"listen_addresses={self.listen}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=100",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server directly
                **self._account,
            )
        except OSError as e:
            raise DatabaseError(f"cannot run PostgreSQL from {bindir}: {e.strerror}") from None
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _init_cluster(self, bindir: Path) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ingestload-pg-"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SERVER_ACCOUNT)
            except KeyError:
                raise DatabaseError(
                    f"PostgreSQL refuses to run as root and there is no {SERVER_ACCOUNT!r} user to run "
                    "it as: install Debian's postgresql package, or name a database with --sink postgresql://…"
                ) from None
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._account = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=self.directory,
            check=False,
            **self._account,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:]
            raise DatabaseError(f"initdb failed in {self.directory}: {' '.join(tail)}")
        if self.trust:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.trust} trust\n")

    def _wait_ready(self) -> None:
        import psycopg

        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DatabaseError(
                    f"PostgreSQL exited with code {self._process.returncode} during startup: "
                    + self.log_tail()
                )
            try:
                with psycopg.connect(
                    f"postgresql://{USER}@{HOST}:{self.port}/postgres", connect_timeout=2, autocommit=True
                ) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if exists is None:
                        conn.execute(f"CREATE DATABASE {DATABASE}")
                return
            except psycopg.OperationalError as e:
                last = str(e).strip().splitlines()[0] if str(e).strip() else "no answer"
                time.sleep(0.1)
        raise DatabaseError(
            f"PostgreSQL on {HOST}:{self.port} did not answer within {self.startup_timeout:g}s ({last})"
        )

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def crash(self) -> None:
        """Kill the server's postmaster (SIGKILL: a crash, for fault tests); :meth:`start` recovers it."""
        if self._process is not None and self._process.poll() is None:
            # The postmaster's children die with it (they watch it); the session holds only them.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._wait_children_gone()
        self._close_log()

    def restart(self) -> None:
        """A crash and a restart on the same port and data: what was committed stays."""
        self.crash()
        self.start()

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (fast shutdown, then a kill) and remove its directory (unless told not to)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._wait_children_gone()
        self._process = None
        self._close_log()
        if remove and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _wait_children_gone(self) -> None:
        """Wait until no process of the server's session is left (a backend outlives a killed
        postmaster briefly)."""
        if self._process is None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self._process.pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                pass
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def main(argv: list[str] | None = None) -> int:
    """``python -m ingestload.sink.postgres``: a throwaway PostgreSQL until SIGTERM — for trying the
    storage hop in a cluster (kube/components/sink-postgres), never for data that matters."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ingestload.sink.postgres", description=main.__doc__)
    parser.add_argument("--listen", default=HOST, help=f"address to listen on (default {HOST})")
    parser.add_argument("--port", type=int, default=5432, help="port (default 5432)")
    parser.add_argument(
        "--trust", default=None, help="a network (CIDR) whose clients are trusted, e.g. 0.0.0.0/0"
    )
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with EmbeddedPostgres(args.port, listen=args.listen, trust=args.trust) as db:
        print(f"PostgreSQL ready on {args.listen}:{db.port}, database {DATABASE}, user {USER}", flush=True)
        while not stop and db.running:
            time.sleep(0.5)
        crashed = not db.running
    return 1 if crashed and not stop else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
