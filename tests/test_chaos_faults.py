"""The chaos harness's fault schedule (one set of events, replayed on both sides), its process-tree kills on real
processes, and its operator, who learns of trouble only through the alert webhook (a real AlertSink posting to
it, a real sandbox issuing the new session)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from bench.chaos_check import MIN_KILLS
from bench.chaos_faults import (
    SANDBOX_FAULTS,
    ScheduledFaults,
    WebhookOperator,
    draw_schedule,
    kill_tree,
    process_tree,
)
from bench.chaos_plan import ChaosConfig, scaled
from tests.waiting import wait_until


def test_one_schedule_per_seed_and_each_fault_has_its_own_stream() -> None:
    cfg = ChaosConfig(posts=100, seed=11)
    a, b = draw_schedule(cfg, cfg.sandbox_faults), draw_schedule(cfg, cfg.sandbox_faults)
    assert a == b  # both sides replay the same events
    fewer = {k: v for k, v in cfg.sandbox_faults.items() if k != "rate_limit"}
    c = draw_schedule(cfg, fewer)
    stalls = [("post_commit_stall" in s) for s in a.posts]
    assert stalls == [("post_commit_stall" in s) for s in c.posts]  # removing one fault shifts no other
    assert any(stalls) and not any("rate_limit" in s for s in c.posts)
    assert a != draw_schedule(ChaosConfig(posts=100, seed=12), cfg.sandbox_faults)


def test_every_schedule_has_a_long_cut_and_enough_kills_early() -> None:
    # A loaded CI run with media stored only 9 posts while the faults were on: the forced events fit in 6.
    for seed in range(20):
        cfg = ChaosConfig(posts=200, seed=seed, p_cut_after_post=0.0, p_kill_on_post=0.0)
        early = draw_schedule(cfg, cfg.sandbox_faults).stored[:6]
        assert sum(e.long for e in early) >= 1 and sum(e.kill_poster for e in early) >= MIN_KILLS
    calm = scaled(ChaosConfig(posts=40, seed=1), 0)  # --intensity 0 asks for no faults at all
    assert draw_schedule(calm, calm.sandbox_faults).summary() == {"stored_cut": 0, "stored_cut_long": 0,
                                                                  "stored_kill": 0}


def test_unknown_faults_are_left_out_until_the_sandbox_knows_them() -> None:
    from sandbox.faults import FAULTS

    cfg = ChaosConfig(posts=20, seed=1)
    faults = ScheduledFaults(draw_schedule(cfg, cfg.sandbox_faults), cfg.sandbox_faults)
    assert set(faults.params) == set(SANDBOX_FAULTS) & set(FAULTS)
    assert faults.params["post_commit_stall"]["seconds"] == 3.0


def test_scheduled_faults_fire_by_request_slot_and_stop_when_calm() -> None:
    cfg = ChaosConfig(posts=20, seed=5)
    schedule = draw_schedule(cfg, cfg.sandbox_faults)
    faults = ScheduledFaults(schedule, cfg.sandbox_faults)
    k = next(i for i, s in enumerate(schedule.posts) if "post_error_5xx" in s)
    for _ in range(k + 1):
        faults.next_post()
    assert faults.roll("post_error_5xx", "a") is not None and faults.now == {"post_error_5xx"}
    assert faults.roll("slow_page", "a") is None  # page faults follow page slots, not post slots
    faults.active = False
    faults.post_slot = k - 1
    faults.next_post()
    assert faults.roll("post_error_5xx", "a") is None


def test_kill_tree_reaches_a_grandchild_in_its_own_session() -> None:
    # Like Chromium under Playwright: a descendant in another process group, which killpg alone misses.
    proc = subprocess.Popen([sys.executable, "-c",
                             "import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
                             "start_new_session=True); time.sleep(60)"], start_new_session=True)
    wait_until(lambda: len(process_tree(proc.pid)) == 2, 10, "the grandchild to start")
    grandchild = process_tree(proc.pid)[1]
    assert os.getpgid(grandchild) != os.getpgid(proc.pid)
    assert kill_tree(proc.pid) == 2
    proc.wait(10)

    def gone() -> bool:
        try:
            return Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    wait_until(gone, 10, "the grandchild to die")


def test_operator_relogs_only_the_account_an_alert_names(tmp_path: Path, sqlite_url: str) -> None:
    from pipeline.alerts import AlertSink
    from pipeline.db import get_engine
    from pipeline.migrate import upgrade
    from sandbox.client import SandboxAdmin
    from sandbox.server import SandboxServer

    engine = get_engine(sqlite_url)
    upgrade(engine)
    paths = {h: tmp_path / f"{h}.json" for h in ("chaos_a", "chaos_b")}
    with SandboxServer(host="127.0.0.1", port=0) as server:
        operator = WebhookOperator(SandboxAdmin(server.url), paths, delay_s=0.0)
        try:
            sink = AlertSink(engine, webhook_url=operator.url, cooldown_s=0)
            assert sink.send("rate_limited:chaos_a", "@chaos_a: rate_limited, posting paused", "wait for reset")
            assert sink.send("auth:chaos_b", "@chaos_b: auth, posting paused",
                             "session expired (code 32). To resume: log in again.")
            wait_until(lambda: len(operator.steps) == 1, 10, "the operator's re-login")
            assert operator.steps[0]["account"] == "chaos_b" and len(operator.received) == 2
            assert paths["chaos_b"].exists() and not paths["chaos_a"].exists()
            assert (paths["chaos_b"].stat().st_mode & 0o777) == 0o600
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM alerts WHERE delivered")).scalar_one() == 2
        finally:
            operator.close()


def test_the_poster_is_found_by_the_socket_its_request_came_from() -> None:
    # Two processes connected to one server: the request's client port names exactly one of them.
    from bench.chaos_faults import owns_socket, socket_inodes

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    hold = "import socket, sys, time; s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); time.sleep(60)"
    procs = [subprocess.Popen([sys.executable, "-c", hold, str(port)]) for _ in range(2)]
    peers: list[tuple[socket.socket, int]] = []
    try:
        for _ in procs:
            conn, (_, peer_port) = server.accept()
            peers.append((conn, peer_port))
        owners = [[owns_socket(process_tree(p.pid), socket_inodes(peer_port, port)) for p in procs]
                  for _, peer_port in peers]
        assert sorted(owners) == [[False, True], [True, False]]  # each connection has one owner, a different one
        assert socket_inodes(1, port) == set()
    finally:
        for p in procs:
            kill_tree(p.pid)
            p.wait(10)
        for conn, _ in peers:
            conn.close()
        server.close()


def test_scheduled_faults_take_effect_in_a_real_sandbox() -> None:
    # What is counted as fired must have happened: a 5xx answers 503, an expired session 401 from then on.
    from sandbox.client import SandboxAdmin
    from sandbox.server import SandboxServer
    from tests.test_sandbox import _raw_post

    cfg = ChaosConfig(posts=4, seed=2)
    chosen = {"post_error_5xx": {"p": 1.0}}
    with SandboxServer(host="127.0.0.1", port=0) as server:
        state = SandboxAdmin(server.url).create_account("chaos_a")
        for faults_on, expected in ((chosen, 503), ({"session_expired": {"p": 1.0}}, 401)):
            faults = ScheduledFaults(draw_schedule(cfg, faults_on), faults_on)
            server.store.faults.roll = faults.roll
            faults.next_post()
            assert _raw_post(server.url, state, f"faulted {expected}")[0] == expected
            assert sum(faults.fired.values()) == 1
        assert SandboxAdmin(server.url).tweets() == []
