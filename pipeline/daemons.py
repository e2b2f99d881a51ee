"""Per-daemon liveness for `pipeline health`, without importing Dagster into the core.

The Dagster part (`resources/daemon.py`) runs as a subprocess (`python -m resources.daemon`) and prints each
daemon's status as JSON; this module runs it and reads the answer. A dead scheduler or sensor thread must not
hide behind the run queue's fresh heartbeat, so every daemon is judged on its own.

Heartbeats tell a death late: Dagster writes them every 30 s at best (the scheduler once a minute), so a dead
daemon shows only when its beat is older than the limit. So `pipeline-daemon` (resources/daemon.py) also holds
an flock on `$PIPELINE_STATE_DIR/daemons/<name>.lock` for its whole life. The kernel releases that lock the
moment the process dies, however it dies (SIGKILL, OOM, a crash), so on the daemon's machine a free lock says
"down" at the next look, not a heartbeat limit later. Heartbeats still judge what a lock cannot: a hung daemon
thread, a daemon on another machine, one started by `dagster dev` (which takes no lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBE_TIMEOUT_S = 60.0
# Daemon type (Dagster's name) -> what stops when it is down, for the operator.
WHAT_IT_RUNS = {
    "SCHEDULER": "schedules (plan, post, metrics) do not fire",
    "SENSOR": "sensors (alerts, plan health, empty queue, canary) do not run",
    "QUEUED_RUN_COORDINATOR": "queued runs are never launched",
    "MONITORING": "hung or dead runs are not failed, run retries are not launched",
}
# How often each daemon writes a heartbeat. Dagster beats at most every 30 s, but only when the daemon's loop
# yields: the scheduler's loop sleeps until the next minute boundary, so it beats once a minute. Judging it by
# the 30 s daemons' limit called a healthy scheduler down (the detection bench's false alarm).
DEFAULT_BEAT_S = 30.0
BEAT_INTERVAL_S = {"SCHEDULER": 60.0}
LOCK_DIR = "daemons"
# A free lock is looked at twice this far apart before it reads as down: a `systemctl restart` leaves it free
# for the fraction of a second between the old process's exit and the new one's first line.
LOCK_RECHECK_S = 2.0


def heartbeat_limit_s(daemon_type: str, max_age_s: float) -> float:
    """The age past which `daemon_type` is down: `max_age_s` is set for 30 s beaters; a daemon that beats less
    often gets the same slack beyond its own cadence (the scheduler: max_age_s + 30 s)."""
    return max_age_s + max(0.0, BEAT_INTERVAL_S.get(daemon_type, DEFAULT_BEAT_S) - DEFAULT_BEAT_S)


@dataclass(frozen=True)
class DaemonState:
    """One daemon's status as `dagster-daemon liveness-check` sees it."""

    daemon_type: str
    heartbeat_age_s: float | None
    errors: list[str] = field(default_factory=list)
    process: DaemonProcess | None = None  # the pipeline-daemon process running it on this machine, if any

    @property
    def process_gone(self) -> bool:
        return self.process is not None and not self.process.alive

    def starting(self, max_age_s: float) -> bool:
        """Its process was (re)started less than the heartbeat limit ago and has not beaten since: the last beat
        (or none) is the dead predecessor's, so it is not judged yet (else every restart after an outage longer
        than the limit would be told as a new death)."""
        p = self.process
        if p is None or not p.alive or p.started_age_s is None or p.started_age_s > self.limit_s(max_age_s):
            return False
        return self.heartbeat_age_s is None or self.heartbeat_age_s > p.started_age_s

    def down(self, max_age_s: float) -> bool:
        """Down: its process is gone (a free lock), never beat, or beat too long ago. Errors in a fresh
        heartbeat (a sensor that raised in the last 5 min) do not make it down, as for `dagster-daemon liveness-check`; health reports them as degraded.
        Dagster tolerates 30 min of silence; ours is the daemon_max_heartbeat_age_s setting, stretched for a
        daemon that beats less often than every 30 s (heartbeat_limit_s)."""
        if self.process_gone:
            return True
        if self.starting(max_age_s):
            return False
        return self.heartbeat_age_s is None or self.heartbeat_age_s > self.limit_s(max_age_s)

    def limit_s(self, max_age_s: float) -> float:
        return heartbeat_limit_s(self.daemon_type, max_age_s)


@dataclass(frozen=True)
class DaemonProbe:
    """The answer of the probe: each required daemon, or why the probe itself failed."""

    daemons: list[DaemonState] = field(default_factory=list)
    error: str | None = None
    processes: list[DaemonProcess] = field(default_factory=list)  # this machine's pipeline-daemon processes

    @classmethod
    def beating(cls, age_s: float = 5.0, types: tuple[str, ...] = tuple(WHAT_IT_RUNS)) -> DaemonProbe:
        """Every daemon with a clean heartbeat `age_s` old (for tests)."""
        return cls([DaemonState(t, age_s) for t in types])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonProbe:
        if data.get("error"):
            return cls(error=str(data["error"]))
        return cls([DaemonState(d["daemon_type"], d.get("heartbeat_age_s"),
                                list(d.get("errors") or [])) for d in data.get("daemons", [])])

    def with_processes(self, processes: Sequence[DaemonProcess]) -> DaemonProbe:
        """Each daemon joined with the local process that runs it (read_daemon_locks)."""
        by_type = {t: p for p in processes for t in p.types}
        return replace(self, daemons=[replace(d, process=by_type.get(d.daemon_type)) for d in self.daemons],
                       processes=list(processes))


@dataclass(frozen=True)
class DaemonProcess:
    """A `pipeline-daemon` process registered on this machine by its lock file."""

    name: str
    path: Path
    types: list[str]
    pid: int
    alive: bool
    started_age_s: float | None = None  # seconds since it took the lock


class DaemonAlreadyRunning(RuntimeError):
    pass


def _lock_path(state_dir: Path, name: str) -> Path:
    return state_dir / LOCK_DIR / f"{name}.lock"


@contextmanager
def hold_daemon_lock(state_dir: Path, name: str, types: Sequence[str]) -> Iterator[Path]:
    """Hold `<state_dir>/daemons/<name>.lock` until the block ends or the process dies, recording the daemon
    types this process runs. Refuses a second process under the same name (two schedulers would launch every
    scheduled run twice)."""
    path = _lock_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DaemonAlreadyRunning(
                f"another daemon process already holds {path} (its pid is in the file): stop it first "
                "(systemctl stop pipeline-daemon), or run this one under another PIPELINE_STATE_DIR") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"name": name, "types": list(types), "pid": os.getpid(),
                                 "host": socket.gethostname(), "started_at": time.time()}).encode())
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays, so a stopped daemon reads as down


def _lock_held(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases our own probe lock when we got it
    return False


def read_daemon_locks(state_dir: Path, recheck_s: float = LOCK_RECHECK_S) -> list[DaemonProcess]:
    """Every daemon process registered on this machine and whether it lives now. Locks written on another
    host (a shared state folder) are skipped: only heartbeats can judge those."""
    found: list[DaemonProcess] = []
    for path in sorted((state_dir / LOCK_DIR).glob("*.lock")):
        info = _lock_info(path)
        if not info.get("types") or info.get("host") != socket.gethostname():
            continue  # being written by a starting daemon, or another machine's
        alive = _lock_held(path)
        if not alive and recheck_s > 0:
            time.sleep(recheck_s)
            alive = _lock_held(path)
            info = _lock_info(path) or info  # a restarted daemon wrote its own pid
        started = info.get("started_at")
        found.append(DaemonProcess(str(info.get("name", path.stem)), path, list(info["types"]),
                                   int(info.get("pid", 0)), alive,
                                   max(0.0, time.time() - started) if isinstance(started, int | float) else None))
    return found


def _lock_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def probe_daemons(state_dir: Path, timeout_s: float = PROBE_TIMEOUT_S) -> DaemonProbe:
    """Run the Dagster-side probe in a subprocess and parse its JSON, joined with this machine's daemon locks;
    failures become `error`."""
    return _heartbeats(timeout_s).with_processes(read_daemon_locks(state_dir))


def _heartbeats(timeout_s: float) -> DaemonProbe:
    try:
        out = subprocess.run([sys.executable, "-m", "resources.daemon"], cwd=PROJECT_ROOT, env=os.environ.copy(),
                             capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return DaemonProbe(error=f"the daemon probe did not answer within {timeout_s:.0f} s "
                                 "(is the Dagster instance storage reachable?)")
    try:
        return DaemonProbe.from_json(json.loads(out.stdout))
    except (ValueError, KeyError, TypeError):
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return DaemonProbe(error=f"the daemon probe failed (exit {out.returncode}): {tail}")
