"""Run the sandbox: `SandboxServer` (a background thread, for tests, the demo and benchmarks) and `serve()`
(blocking, for `pipeline sandbox serve --host 127.0.0.1 --port N [--faults FILE] [--state FILE]`).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn

from sandbox.app import create_app
from sandbox.faults import load_faults_file
from sandbox.state import Store

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _Server(uvicorn.Server):
    """uvicorn.Server that releases held (stalled/slow) responses as soon as shutdown starts."""

    def __init__(self, config: uvicorn.Config, store: Store) -> None:
        super().__init__(config)
        self._store = store

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._store.stopping.set()
        await super().shutdown(sockets)


def build(
    faults_file: str | Path | None = None,
    state_file: str | Path | None = None,
    seed: int = 0,
    realism: str = "realistic",
) -> tuple[Store, Any]:
    """A store (faults from the file applied) and the app over it."""
    store = Store(state_file, seed=seed)
    if faults_file:
        config, file_seed = load_faults_file(faults_file)
        store.set_faults(config, file_seed)
    return store, create_app(store, realism)


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        timeout_keep_alive=30,
    )


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class SandboxServer:
    """The sandbox in a background thread: `url = SandboxServer().start()`, then `.stop()`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults_file: str | Path | None = None,
        state_file: str | Path | None = None,
        seed: int = 0,
        realism: str = "realistic",
    ) -> None:
        self.realism = realism
        self.host = host
        self.port = port
        self.faults_file = faults_file
        self.state_file = state_file
        self.seed = seed
        self.url = ""
        self.store: Store | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 15.0) -> str:
        if self._thread is not None:
            return self.url
        self.store, app = build(self.faults_file, self.state_file, self.seed, self.realism)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            self.store.close()
            raise
        sock.listen(512)
        self.port = sock.getsockname()[1]
        self.url = _url(self.host, self.port)
        self._server = _Server(_config(app, self.host, self.port), self.store)

        def run() -> None:
            try:
                self._server.run(sockets=[sock])  # type: ignore[union-attr]
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server failed to start on {self.url}: {self._error!r}")
            try:
                with _NO_PROXY.open(self.url + "/__sandbox/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not answer on {self.url} within {timeout_s}s")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            if self.store is not None:
                self.store.stopping.set()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout_s)
        if self.store is not None:
            self.store.close()
        self._server = None
        self._thread = None
        self.store = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    faults_file: str | Path | None = None,
    state_file: str | Path | None = None,
    seed: int = 0,
    realism: str = "realistic",
) -> None:
    """Serve the sandbox in the foreground until interrupted (Ctrl-C / SIGTERM)."""
    store, app = build(faults_file, state_file, seed, realism)
    where = f"state in {state_file}" if state_file else "state in memory"
    print(
        f"sandbox listening on {_url(host, port)} ({where}); admin API at /__sandbox/ (loopback only)",
        flush=True,
    )
    try:
        _Server(_config(app, host, port), store).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        pass
    finally:
        store.close()
