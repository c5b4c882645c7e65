"""Outage behaviour of the library: a private TCP proxy in front of the real PostgreSQL.

The proxy listens on 127.0.0.1 and forwards to the shared server; the tests switch it
between forwarding, refusing (listener closed, live connections reset) and black-holing
(connections accepted, nothing forwarded). The shared server itself is never touched.
The time bounds below check that the timeouts fire at all; they are not speed targets.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from reportlib.config import Settings
from reportlib.db import make_engine, make_sessionmaker
from reportlib.errors import DatabaseUnavailableError
from reportlib.health import (
    TIMEOUT_MESSAGE,
    UNREACHABLE_MESSAGE,
    check_database,
    is_database_unavailable,
    translate_db_errors,
)

CONNECT_TIMEOUT_S = 2  # libpq's smallest sensible connect_timeout
OUTAGE_BOUND_S = 10.0  # "a clear message within seconds"
SECRET = "Erika Mustermann AZ-2026-0001"  # stands for a personal value in a query


class TcpProxy:
    """A loopback TCP forwarder that can refuse or black-hole connections on demand."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        probe = socket.create_server(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self.mode = "forward"
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0

    # -- switching -------------------------------------------------------------------
    def start(self, mode: str = "forward") -> None:
        """Listen (again) on the same port, forwarding or black-holing new connections."""
        self.mode = mode
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(listener,))
        self._accept_thread.daemon = True
        self._accept_thread.start()

    def stop(self) -> None:
        """Close the listener (new connections are refused) and reset live connections."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None
        self.cut_connections()

    def blackhole(self) -> None:
        """Accept new connections but never forward a byte; reset the live ones."""
        self.start("blackhole")
        self.cut_connections()

    def forward(self) -> None:
        self.start("forward")

    def cut_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _reset(sock)

    # -- plumbing --------------------------------------------------------------------
    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            client.settimeout(None)
            with self._lock:
                self._sockets.add(client)
            if self.mode == "blackhole":
                continue  # held open, never answered
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.add(upstream)
            for source, target in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=_pump, args=(source, target), daemon=True)
                pump.start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        _reset(source)
        _reset(target)


def _reset(sock: socket.socket) -> None:
    # An RST rather than a FIN: the peer sees the connection die as in a server crash.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
    with contextlib.suppress(OSError):
        sock.close()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_url)
    tcp_proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    tcp_proxy.start()
    yield tcp_proxy
    tcp_proxy.stop()


def proxied_engine(
    pg_url: str, proxy: TcpProxy, *, statement_timeout_ms: int | None = None
) -> Engine:
    settings = Settings(db_connect_timeout_s=CONNECT_TIMEOUT_S)
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    return make_engine(
        url.render_as_string(hide_password=False),
        settings=settings,
        statement_timeout_ms=statement_timeout_ms,
    )


def assert_clean(error: DatabaseUnavailableError, expected_message: str, proxy: TcpProxy) -> None:
    """The message is fixed text, and nothing of the driver error is chained to it."""
    assert str(error) == expected_message
    assert error.__cause__ is None
    assert error.__suppress_context__ is True
    for leak in (str(proxy.port), "127.0.0.1", "postgres", "SELECT", "pg_sleep", SECRET):
        assert leak not in str(error)


@contextlib.contextmanager
def elapsed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - started)


def current_database(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SELECT current_database()")).scalar_one())


@pytest.mark.postgres
def test_refused_connections_fail_fast_and_the_same_engine_recovers(
    pg_url: str, proxy: TcpProxy
) -> None:
    engine = proxied_engine(pg_url, proxy)
    expected_db = make_url(pg_url).database
    try:
        # Fill the pool with several live connections, all of which the outage will kill.
        with engine.connect() as a, engine.connect() as b, engine.connect() as c:
            for connection in (a, b, c):
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
        assert engine.pool.checkedin() == 3  # type: ignore[attr-defined]

        proxy.stop()
        for _ in range(2):  # every call fails the same clean way, not only the first
            with elapsed() as took, pytest.raises(DatabaseUnavailableError) as caught:
                check_database(engine)
            assert took[0] < OUTAGE_BOUND_S
            assert_clean(caught.value, UNREACHABLE_MESSAGE, proxy)

        proxy.forward()
        check_database(engine)  # the first call after the outage already works
        assert current_database(engine) == expected_db
        # Every stale pooled connection is replaced on checkout, none reaches a caller.
        with engine.connect() as a, engine.connect() as b, engine.connect() as c:
            for connection in (a, b, c):
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_restart_between_calls_is_invisible_to_callers(pg_url: str, proxy: TcpProxy) -> None:
    """A server restart that no call witnessed: every pooled connection is dead."""
    engine = proxied_engine(pg_url, proxy)
    try:
        with engine.connect() as a, engine.connect() as b:
            for connection in (a, b):
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
        proxy.stop()
        proxy.forward()
        check_database(engine)
        with engine.connect() as a, engine.connect() as b:
            for connection in (a, b):
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_black_holed_server_hits_the_connect_timeout_then_recovers(
    pg_url: str, proxy: TcpProxy
) -> None:
    engine = proxied_engine(pg_url, proxy)
    try:
        check_database(engine)
        proxy.blackhole()
        accepted_before = proxy.accepted
        with elapsed() as took, pytest.raises(DatabaseUnavailableError) as caught:
            check_database(engine)
        # The connection was accepted and then waited on: only the connect timeout ends it.
        assert proxy.accepted > accepted_before
        assert CONNECT_TIMEOUT_S - 0.5 <= took[0] < OUTAGE_BOUND_S
        assert_clean(caught.value, UNREACHABLE_MESSAGE, proxy)

        proxy.forward()
        check_database(engine)
        assert current_database(engine) == make_url(pg_url).database
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_slow_statement_is_cancelled_and_translated_without_leaking(
    pg_url: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    engine = proxied_engine(pg_url, proxy, statement_timeout_ms=300)
    caplog.set_level(logging.DEBUG)
    try:
        with elapsed() as took, pytest.raises(DatabaseUnavailableError) as caught:
            with translate_db_errors(), make_sessionmaker(engine)() as session:
                session.execute(text("SELECT pg_sleep(5), :secret"), {"secret": SECRET})
        assert took[0] < 4.0  # well before pg_sleep(5) would have finished
        assert_clean(caught.value, TIMEOUT_MESSAGE, proxy)
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "QueryCanceled (sqlstate 57014)" in logged
        assert SECRET not in logged and "pg_sleep" not in logged

        # The timeout cancelled one statement, not the connection: the engine goes on.
        check_database(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_sleep(0.05), 7")).one() == ("", 7)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_other_database_errors_pass_through_untranslated(pg_url: str, proxy: TcpProxy) -> None:
    engine = proxied_engine(pg_url, proxy)
    try:
        with pytest.raises(ProgrammingError), translate_db_errors(), engine.connect() as c:
            c.execute(text("SELECT * FROM no_such_table_here"))
        with pytest.raises(IntegrityError), translate_db_errors(), engine.begin() as c:
            c.execute(text("CREATE TEMPORARY TABLE not_null_probe (x integer NOT NULL)"))
            c.execute(text("INSERT INTO not_null_probe (x) VALUES (NULL)"))
        with pytest.raises(ZeroDivisionError), translate_db_errors():
            _ = 1 / 0
        check_database(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_raw_driver_errors_are_recognised_too(proxy: TcpProxy, pg_url: str) -> None:
    proxy.stop()
    url = make_url(pg_url)
    with pytest.raises(DatabaseUnavailableError) as caught, translate_db_errors():
        psycopg2.connect(
            host="127.0.0.1",
            port=proxy.port,
            dbname=url.database,
            user=url.username,
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    assert_clean(caught.value, UNREACHABLE_MESSAGE, proxy)


def test_sqlite_busy_is_unavailable_but_missing_table_is_not(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as busy:
            waiter.execute("SELECT * FROM t").fetchall()
        assert is_database_unavailable(busy.value)
        with pytest.raises(DatabaseUnavailableError) as caught, translate_db_errors():
            raise busy.value
        assert str(caught.value) == UNREACHABLE_MESSAGE

        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        with pytest.raises(OperationalError) as missing:
            with translate_db_errors(), engine.connect() as connection:
                connection.execute(text("SELECT * FROM processing_reports"))
        assert "no such table" in str(missing.value)
        assert not is_database_unavailable(missing.value)
        check_database(engine)
        engine.dispose()
    finally:
        holder.close()
        waiter.close()
