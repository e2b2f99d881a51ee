"""The daemon lock (pipeline/daemons.py): real files, real processes, real flock, killed with SIGKILL.

A heartbeat tells a daemon's death a limit later; the lock tells it at the next look, because the kernel frees
an flock when its process dies however it dies.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.daemons import (
    DaemonAlreadyRunning,
    DaemonProbe,
    DaemonProcess,
    hold_daemon_lock,
    read_daemon_locks,
)
from pipeline.health import OK, UNHEALTHY, check_daemons

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def locked_child(state_dir: Path, name: str, types: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A separate process holding the daemon lock `name` for `types` until killed (a stand-in for
    pipeline-daemon that starts in a tenth of the time)."""
    code = ("import sys, time; from pathlib import Path; from pipeline.daemons import hold_daemon_lock\n"
            f"with hold_daemon_lock(Path({str(state_dir)!r}), {name!r}, {types!r}):\n"
            "    print('locked', flush=True); time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield child
    finally:
        child.kill()
        child.wait(10)


def test_a_live_daemon_reads_alive_and_a_killed_one_reads_down_at_once(tmp_path: Path) -> None:
    with locked_child(tmp_path, "daemon", ["SCHEDULER", "SENSOR"]) as child:
        (found,) = read_daemon_locks(tmp_path)
        assert (found.name, found.types, found.pid, found.alive) == ("daemon", ["SCHEDULER", "SENSOR"], child.pid, True)
        assert stat.S_IMODE(found.path.stat().st_mode) == 0o600
        child.kill()
        child.wait(10)
        started = time.monotonic()
        (found,) = read_daemon_locks(tmp_path, recheck_s=0)
        assert not found.alive and time.monotonic() - started < 1.0


def test_a_restart_within_the_recheck_reads_alive(tmp_path: Path) -> None:
    """`systemctl restart` frees the lock for a moment: the second look, after the new process took it, is alive."""
    with locked_child(tmp_path, "daemon", ["SCHEDULER"]) as child:
        child.kill()
        child.wait(10)
        release = threading.Event()

        def restarted() -> None:
            time.sleep(0.3)
            with hold_daemon_lock(tmp_path, "daemon", ["SCHEDULER"]):
                release.wait(10)

        thread = threading.Thread(target=restarted)
        thread.start()
        try:
            (found,) = read_daemon_locks(tmp_path, recheck_s=1.5)
            assert found.alive and found.pid == os.getpid()
        finally:
            release.set()
            thread.join()


def test_a_second_daemon_under_the_same_name_is_refused_with_the_fix(tmp_path: Path) -> None:
    with locked_child(tmp_path, "daemon", ["SCHEDULER"]):
        with pytest.raises(DaemonAlreadyRunning, match="already holds .*daemon.lock.*stop it first"):
            with hold_daemon_lock(tmp_path, "daemon", ["SCHEDULER"]):
                pass
        with hold_daemon_lock(tmp_path, "sensors", ["SENSOR"]):  # another name is another process
            assert {p.name for p in read_daemon_locks(tmp_path)} == {"daemon", "sensors"}


def test_a_lock_written_on_another_machine_is_left_to_the_heartbeats(tmp_path: Path) -> None:
    path = tmp_path / "daemons" / "daemon.lock"
    path.parent.mkdir()
    path.write_text(json.dumps({"name": "daemon", "types": ["SCHEDULER"], "pid": 1, "host": "elsewhere"}))
    assert read_daemon_locks(tmp_path, recheck_s=0) == []
    path.write_text("")  # a daemon starting this instant: not judged yet
    assert read_daemon_locks(tmp_path, recheck_s=0) == []
    assert socket.gethostname() != "elsewhere"


def test_health_names_the_daemon_whose_process_died_though_its_heartbeat_is_fresh(tmp_path: Path) -> None:
    gone = DaemonProcess("daemon", tmp_path / "daemons" / "daemon.lock", ["SCHEDULER"], 4242, alive=False)
    alive = DaemonProcess("sensors", tmp_path / "daemons" / "sensors.lock", ["SENSOR"], 4343, alive=True)
    probe = DaemonProbe.beating(age_s=2.0).with_processes([gone, alive])
    by_name = {f.name: f for f in check_daemons(probe, max_age_s=90).findings}
    dead = by_name["daemon-process:daemon"]
    assert dead.status == UNHEALTHY and "(pid 4242) is gone" in dead.reason and "scheduler stopped" in dead.reason
    assert "restart `pipeline-daemon`" in dead.reason
    assert "daemon:scheduler" not in by_name  # told once, with its process
    assert by_name["daemon-process:sensors"].status == OK
    assert by_name["daemon:sensor"].status == OK and by_name["daemon:queued_run_coordinator"].status == OK


def test_a_daemon_restarted_after_a_long_outage_is_not_told_dead_before_its_first_beat(tmp_path: Path) -> None:
    """Down for ten minutes, restarted 3 s ago: the last beat (600 s) is the dead process's. Not judged until
    the heartbeat limit has passed since the restart; then a missing beat is a death again."""
    path = tmp_path / "daemons" / "daemon.lock"
    restarted = DaemonProcess("daemon", path, ["SCHEDULER"], 4242, alive=True, started_age_s=3.0)
    probe = DaemonProbe.beating(age_s=600.0, types=("SCHEDULER",)).with_processes([restarted])
    (scheduler,) = probe.daemons
    assert scheduler.starting(90) and not scheduler.down(90)
    by_name = {f.name: f for f in check_daemons(probe, max_age_s=90).findings}
    assert by_name["daemon:scheduler"].status == OK and "first heartbeat pending" in by_name["daemon:scheduler"].reason

    long_ago = DaemonProcess("daemon", path, ["SCHEDULER"], 4242, alive=True, started_age_s=400.0)
    (scheduler,) = DaemonProbe.beating(age_s=600.0, types=("SCHEDULER",)).with_processes([long_ago]).daemons
    assert scheduler.down(90)  # started long ago and still no beat of its own: a hung thread
    (scheduler,) = DaemonProbe.beating(age_s=1.0, types=("SCHEDULER",)).with_processes([restarted]).daemons
    assert not scheduler.starting(90) and not scheduler.down(90)  # it has beaten since the restart
