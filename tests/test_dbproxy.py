"""The fault proxy the posting tests and the chaos harness use to take the database away: it must cut and
restore on demand, and (its two fixes) keep a slow answer's connection open and pass a closed side on as EOF."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import sqlalchemy as sa

from sandbox.dbproxy import FaultProxy


def _upstream(behaviour) -> tuple[socket.socket, threading.Thread]:  # noqa: ANN001
    """A one-connection TCP server on loopback that runs `behaviour(conn)`."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            behaviour(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_cut_kills_live_connections_refuses_new_ones_and_restore_lets_them_in(
    pg_proxy: tuple[FaultProxy, str],
) -> None:
    proxy, url = pg_proxy
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3})
    with engine.connect() as live:
        assert live.execute(sa.text("SELECT 1")).scalar_one() == 1
        proxy.cut()
        assert proxy.is_down
        with pytest.raises(sa.exc.OperationalError):
            live.execute(sa.text("SELECT 2"))
    with pytest.raises(sa.exc.OperationalError), engine.connect():
        pass
    proxy.restore()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 3")).scalar_one() == 3


def test_an_answer_slower_than_the_connect_timeout_still_arrives() -> None:
    # The 5 s timeout is for connecting only; a query that takes longer must not end the pair.
    server, thread = _upstream(lambda conn: (conn.recv(16), time.sleep(5.5), conn.sendall(b"late answer")))
    proxy = FaultProxy("127.0.0.1", server.getsockname()[1])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=15)
        client.sendall(b"query")
        assert client.recv(64) == b"late answer"
        client.close()
    finally:
        proxy.close()
        server.close()
        thread.join(5)


def test_upstream_closing_reaches_the_client_as_end_of_stream() -> None:
    # Without a shutdown, the other pipe thread keeps the client socket open in recv() and the client
    # (a database driver without a statement timeout) waits forever.
    server, thread = _upstream(lambda conn: conn.recv(16))  # reads the query, then hangs up
    proxy = FaultProxy("127.0.0.1", server.getsockname()[1])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        client.sendall(b"query")
        assert client.recv(64) == b""  # EOF within the timeout, not socket.timeout
        client.close()
    finally:
        proxy.close()
        server.close()
        thread.join(5)


def test_stall_adds_latency_to_every_chunk(pg_proxy: tuple[FaultProxy, str]) -> None:
    proxy, url = pg_proxy
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        proxy.stall_s = 0.3
        start = time.monotonic()
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert time.monotonic() - start >= 0.6  # the query there and the answer back, each held
        proxy.stall_s = 0.0
