"""The per-account breaker, walked through every transition with a fake clock (resilience4j / Polly style).

Every test runs on a real SQLite file and on the real PostgreSQL server (the `engine` fixture). Two
`Breaker` instances stand for two processes: all state is in the database, none in the object.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pipeline.breaker import CLOSED, FORCED_OPEN, HALF_OPEN, OPEN, Breaker, BreakerConfig
from pipeline.failures import ErrorClass
from pipeline.schema import accounts, breaker_events, breaker_state

ACCT = "alice"
T0 = datetime(2030, 3, 30, 12, 0, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, td: timedelta | None = None) -> datetime:
        self.now += td if td is not None else timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(engine: sa.Engine, clock: FakeClock) -> Breaker:
    return Breaker(engine, BreakerConfig(), clock=clock)


def trip(b: Breaker, account: str = ACCT, cls: ErrorClass = ErrorClass.TRANSIENT) -> None:
    """Four failures of a counted class: enough calls, 100 % failure rate."""
    for _ in range(b.config.min_calls):
        b.record_failure(account, cls)
    assert b.allow(account).state == OPEN


def state_of(b: Breaker, account: str = ACCT) -> dict:
    (row,) = b.status(account)
    return row


def event_count(engine: sa.Engine, account: str = ACCT) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(breaker_events)
                            .where(breaker_events.c.account == account)).scalar_one()


# ---------------------------------------------------------------------------------------------- closed


def test_missing_row_is_closed_and_allowed(breaker: Breaker, engine: sa.Engine) -> None:
    d = breaker.allow(ACCT)
    assert d.allowed and d.state == CLOSED and d.retry_at is None
    assert state_of(breaker)["state"] == CLOSED
    with engine.connect() as conn:  # allow() on a closed breaker writes nothing
        assert conn.execute(sa.select(sa.func.count()).select_from(breaker_state)).scalar_one() == 0


def test_closed_stays_closed_below_min_calls(breaker: Breaker) -> None:
    for _ in range(breaker.config.min_calls - 1):
        assert breaker.record_failure(ACCT, ErrorClass.UI_CHANGED) == CLOSED  # heaviest class, 100 % failing
    assert breaker.allow(ACCT).allowed
    s = state_of(breaker)
    assert s["recent_calls"] == 3 and s["recent_failures"] == 3 and s["failure_rate"] == 1.0


def test_opens_at_threshold_not_below(breaker: Breaker, clock: FakeClock) -> None:
    # 2 successes + 2 transient (weight 0.5): 1.0 / (2 + 1.0) = 33 % < 50 %
    breaker.record_success(ACCT)
    breaker.record_success(ACCT)
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == CLOSED
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == CLOSED
    assert breaker.allow(ACCT).allowed
    # a third transient: 1.5 / 3.5 = 43 %; a fourth: 2.0 / 4.0 = 50 % -> open
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == CLOSED
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == OPEN
    d = breaker.allow(ACCT)
    assert not d.allowed and d.state == OPEN
    assert d.retry_at == clock.now + timedelta(seconds=60)
    s = state_of(breaker)
    assert s["trips"] == 1 and s["opened_at"] == clock.now and s["open_until"] == clock.now + timedelta(seconds=60)
    assert "failure rate 50%" in s["reason"]


def test_ui_changed_weighs_more_than_transient(engine: sa.Engine, clock: FakeClock) -> None:
    b = Breaker(engine, clock=clock)
    for _ in range(2):
        b.record_success(ACCT)
    b.record_failure(ACCT, ErrorClass.TRANSIENT)
    assert b.record_failure(ACCT, ErrorClass.TRANSIENT) == CLOSED  # 1.0 / 3.0
    b.reset(ACCT)
    for _ in range(2):
        b.record_success(ACCT)
    b.record_failure(ACCT, ErrorClass.UI_CHANGED)
    assert b.record_failure(ACCT, ErrorClass.UI_CHANGED) == OPEN  # 4.0 / 6.0


def test_five_unknown_outcomes_never_open_it(breaker: Breaker, engine: sa.Engine) -> None:
    for _ in range(5):
        assert breaker.record_failure(ACCT, ErrorClass.UNKNOWN) == CLOSED
    assert breaker.allow(ACCT).allowed
    assert event_count(engine) == 0  # ignored classes are not recorded at all
    assert state_of(breaker)["recent_calls"] == 0


@pytest.mark.parametrize("cls", [ErrorClass.REJECTED, ErrorClass.STORAGE, ErrorClass.UNKNOWN])
def test_ignored_classes_never_count(breaker: Breaker, engine: sa.Engine, cls: ErrorClass) -> None:
    for _ in range(20):
        assert breaker.record_failure(ACCT, cls) == CLOSED
    # ...and they do not dilute the rate either: 4 transient failures still open it
    trip(breaker)
    assert event_count(engine) == 4


def test_window_slides_old_failures_out(breaker: Breaker, clock: FakeClock, engine: sa.Engine) -> None:
    for _ in range(3):
        breaker.record_failure(ACCT, ErrorClass.TRANSIENT)
    clock.advance(breaker.config.window_s)  # exactly window_s later: the old events are outside the window
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == CLOSED
    assert breaker.allow(ACCT).allowed
    assert state_of(breaker)["recent_calls"] == 1
    assert event_count(engine) == 1  # pruned on write
    # a failure 1 µs inside the window still counts
    clock.advance(td=breaker.config.window_s * timedelta(seconds=1) - US)
    for _ in range(3):
        breaker.record_failure(ACCT, ErrorClass.TRANSIENT)
    assert breaker.allow(ACCT).state == OPEN


# ------------------------------------------------------------------------------------ open -> half-open


def test_open_becomes_half_open_after_the_break(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(td=timedelta(seconds=60) - US)
    d = breaker.allow(ACCT)
    assert not d.allowed and d.state == OPEN
    clock.advance(td=US)  # exactly at open_until
    d = breaker.allow(ACCT)
    assert d.allowed and d.state == HALF_OPEN
    s = state_of(breaker)
    assert s["state"] == HALF_OPEN and s["probe_deadline"] == clock.now + timedelta(seconds=120)


def test_only_one_probe_across_processes(engine: sa.Engine, clock: FakeClock) -> None:
    one, two = Breaker(engine, clock=clock), Breaker(engine, clock=clock)
    trip(one)
    clock.advance(60)
    assert one.allow(ACCT).allowed
    d = two.allow(ACCT)
    assert not d.allowed and d.state == HALF_OPEN
    assert d.retry_at == clock.now + timedelta(seconds=120)
    assert not one.allow(ACCT).allowed


def test_only_one_probe_under_real_concurrency(engine: sa.Engine, clock: FakeClock) -> None:
    """Eight threads on their own connections race for the probe: exactly one wins."""
    trip(Breaker(engine, clock=clock))
    clock.advance(60)
    n = 8
    barrier = threading.Barrier(n)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        b = Breaker(engine, clock=clock)
        try:
            barrier.wait()
            allowed = b.allow(ACCT).allowed
            with lock:
                results.append(allowed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(results) == [False] * (n - 1) + [True]
    assert [t["to_state"] for t in Breaker(engine, clock=clock).transitions(ACCT)] == [OPEN, HALF_OPEN]


def test_first_write_race_creates_one_row(engine: sa.Engine, clock: FakeClock) -> None:
    n = 6
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            Breaker(engine, clock=clock).record_failure("bob", ErrorClass.TRANSIENT)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    b = Breaker(engine, clock=clock)
    s = state_of(b, "bob")
    assert s["recent_failures"] == n and s["state"] == OPEN and s["trips"] == 1
    assert [t["to_state"] for t in b.transitions("bob")] == [OPEN]


# ------------------------------------------------------------------------------------ half-open -> ...


def test_probe_success_closes(breaker: Breaker, clock: FakeClock, engine: sa.Engine) -> None:
    trip(breaker)
    clock.advance(60)
    assert breaker.allow(ACCT).allowed
    assert breaker.record_success(ACCT) == CLOSED
    s = state_of(breaker)
    assert s["state"] == CLOSED and s["trips"] == 0 and s["open_until"] is None and s["probe_deadline"] is None
    assert s["recent_calls"] == 1 and s["recent_failures"] == 0  # a fresh window: old failures cleared
    assert event_count(engine) == 1
    assert breaker.allow(ACCT).allowed
    # one new failure right after closing does not re-trip on the old failures
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == CLOSED


def test_probe_failure_reopens_with_doubled_break_capped(engine: sa.Engine, clock: FakeClock) -> None:
    b = Breaker(engine, BreakerConfig(open_s=60, max_open_s=200, growth=2), clock=clock)
    trip(b)
    breaks = [(state_of(b)["open_until"] - clock.now).total_seconds()]
    for _ in range(3):
        clock.advance(breaks[-1])
        assert b.allow(ACCT).allowed  # the probe
        assert b.record_failure(ACCT, ErrorClass.TRANSIENT) == OPEN
        s = state_of(b)
        breaks.append((s["open_until"] - clock.now).total_seconds())
        assert not b.allow(ACCT).allowed
    assert breaks == [60, 120, 200, 200]
    assert state_of(b)["trips"] == 4
    # recovery resets the growth: the next trip starts from the base break again
    clock.advance(200)
    assert b.allow(ACCT).allowed
    b.record_success(ACCT)
    trip(b)
    assert (state_of(b)["open_until"] - clock.now).total_seconds() == 60


def test_hung_probe_is_freed_after_its_deadline(breaker: Breaker, clock: FakeClock, caplog) -> None:  # type: ignore[no-untyped-def]
    trip(breaker)
    clock.advance(60)
    assert breaker.allow(ACCT).allowed  # this probe never reports back
    clock.advance(td=timedelta(seconds=120) - US)
    d = breaker.allow(ACCT)
    assert not d.allowed and d.state == HALF_OPEN
    clock.advance(td=US)
    with caplog.at_level(logging.WARNING, logger="pipeline.breaker"):
        d = breaker.allow(ACCT)
    assert d.allowed and d.state == HALF_OPEN
    assert any("probe deadline" in r.message for r in caplog.records)
    assert not breaker.allow(ACCT).allowed  # the new probe holds the slot again
    last = breaker.transitions(ACCT)[-1]
    assert (last["from_state"], last["to_state"]) == (HALF_OPEN, HALF_OPEN) and "deadline" in last["reason"]


@pytest.mark.parametrize("cls", [ErrorClass.UNKNOWN, ErrorClass.REJECTED, ErrorClass.STORAGE])
def test_ignored_probe_outcome_releases_the_slot(breaker: Breaker, clock: FakeClock, cls: ErrorClass) -> None:
    """resilience4j releases the half-open permission on an ignored exception: no wait for the deadline."""
    trip(breaker)
    clock.advance(60)
    assert breaker.allow(ACCT).allowed
    assert breaker.record_failure(ACCT, cls) == HALF_OPEN
    assert breaker.allow(ACCT).allowed
    assert not breaker.allow(ACCT).allowed


def test_unused_probe_is_given_back_and_only_by_its_holder(breaker: Breaker, clock: FakeClock) -> None:
    """A worker that took the probe but found nothing due must not hold the account for the probe deadline
    (the 1,000-post chaos run lost minutes of posting per account this way)."""
    trip(breaker)
    clock.advance(60)
    first = breaker.allow(ACCT)
    assert first.allowed and first.probe is not None
    assert breaker.release_probe(ACCT, first)
    clock.advance(1)
    second = breaker.allow(ACCT)  # a second later, not 120 s later
    assert second.allowed and second.probe is not None
    assert not breaker.release_probe(ACCT, first)  # a stale holder cannot free the new probe
    assert not breaker.allow(ACCT).allowed
    assert not breaker.release_probe(ACCT, breaker.allow(ACCT))  # nothing to give back without a probe
    breaker.record_success(ACCT)
    assert state_of(breaker)["state"] == CLOSED


def test_late_reports_while_open_do_not_move_the_break(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    until = state_of(breaker)["open_until"]
    clock.advance(10)
    assert breaker.record_failure(ACCT, ErrorClass.UI_CHANGED) == OPEN
    assert breaker.record_success(ACCT) == OPEN
    assert state_of(breaker)["open_until"] == until
    assert len(breaker.transitions(ACCT)) == 1


# -------------------------------------------------------------------------- rate limit, auth, automation


def test_rate_limited_opens_until_reset_then_allows(breaker: Breaker, clock: FakeClock, engine: sa.Engine) -> None:
    reset_at = clock.now + timedelta(minutes=15)
    assert breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=reset_at) == OPEN
    d = breaker.allow(ACCT)
    assert not d.allowed and d.state == OPEN and d.retry_at == reset_at
    s = state_of(breaker)
    assert s["trips"] == 0 and "rate limited" in s["reason"]  # a rate limit is not "broken"
    assert event_count(engine) == 0
    clock.now = reset_at - US
    assert not breaker.allow(ACCT).allowed
    clock.now = reset_at
    assert breaker.allow(ACCT).allowed
    assert breaker.record_success(ACCT) == CLOSED
    assert breaker.allow(ACCT).allowed


def test_rate_limited_without_reset_uses_default_and_never_shortens(breaker: Breaker, clock: FakeClock) -> None:
    breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED)
    assert state_of(breaker)["open_until"] == clock.now + timedelta(seconds=900)
    # an earlier reset reported by another process does not shorten the break ...
    breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=clock.now + timedelta(seconds=30))
    assert state_of(breaker)["open_until"] == clock.now + timedelta(seconds=900)
    # ... a later one extends it
    later = clock.now + timedelta(hours=1)
    breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=later)
    assert state_of(breaker)["open_until"] == later
    # a reset already in the past (clock skew) gives a short base break, an absurd one is capped
    breaker.reset(ACCT)
    breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=clock.now - timedelta(seconds=5))
    assert state_of(breaker)["open_until"] == clock.now + timedelta(seconds=60)
    breaker.reset(ACCT)
    breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=clock.now + timedelta(days=400))
    assert state_of(breaker)["open_until"] == clock.now + timedelta(days=1)


def test_rate_limited_probe_reopens_until_the_new_reset(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(60)
    assert breaker.allow(ACCT).allowed
    reset_at = clock.now + timedelta(minutes=5)
    assert breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=reset_at) == OPEN
    s = state_of(breaker)
    assert s["open_until"] == reset_at and s["trips"] == 1


def test_auth_forces_open_until_reset(breaker: Breaker, clock: FakeClock, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="pipeline.breaker"):
        assert breaker.record_failure(ACCT, ErrorClass.AUTH, detail="redirected to /i/flow/login") == FORCED_OPEN
    assert any(r.levelno == logging.WARNING and FORCED_OPEN in r.message for r in caplog.records)
    s = state_of(breaker)
    assert s["state"] == FORCED_OPEN and s["open_until"] is None
    assert "/i/flow/login" in s["reason"] and "pipeline breaker reset" in s["reason"]
    for _ in range(3):
        clock.advance(86400 * 30)
        d = breaker.allow(ACCT)
        assert not d.allowed and d.state == FORCED_OPEN and d.retry_at is None
    # nothing else can shorten or replace a forced open
    assert breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=clock.now) == FORCED_OPEN
    assert breaker.record_failure(ACCT, ErrorClass.AUTOMATION_BLOCK) == FORCED_OPEN
    assert breaker.record_failure(ACCT, ErrorClass.TRANSIENT) == FORCED_OPEN
    assert breaker.record_success(ACCT) == FORCED_OPEN
    assert not breaker.allow(ACCT).allowed
    breaker.reset(ACCT, reason="session check ok")
    d = breaker.allow(ACCT)
    assert d.allowed and d.state == CLOSED
    assert breaker.transitions(ACCT)[-1]["reason"] == "session check ok"


def test_auth_from_half_open_and_open(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    assert breaker.record_failure(ACCT, ErrorClass.AUTH) == FORCED_OPEN
    breaker.reset(ACCT)
    trip(breaker)
    clock.advance(60)
    assert breaker.allow(ACCT).allowed
    assert breaker.record_failure(ACCT, ErrorClass.AUTH) == FORCED_OPEN
    assert not breaker.allow(ACCT).allowed


def test_automation_block_forces_open_until_a_human_resets(breaker: Breaker, clock: FakeClock) -> None:
    assert breaker.record_failure(ACCT, ErrorClass.AUTOMATION_BLOCK, detail="226") == FORCED_OPEN
    s = state_of(breaker)
    assert s["open_until"] is None and "automation_block" in s["reason"]
    clock.advance(td=timedelta(days=30))
    assert not breaker.allow(ACCT).allowed
    # a rate-limit report cannot shorten it either
    breaker.record_failure(ACCT, ErrorClass.RATE_LIMITED, reset_at=clock.now + timedelta(minutes=1))
    assert state_of(breaker)["state"] == FORCED_OPEN
    breaker.reset(ACCT)
    assert breaker.allow(ACCT).allowed


def test_isolate_is_a_manual_forced_open(breaker: Breaker) -> None:
    breaker.isolate(ACCT, reason="maintenance")
    d = breaker.allow(ACCT)
    assert not d.allowed and d.state == FORCED_OPEN and d.reason == "maintenance"
    breaker.reset(ACCT)
    assert breaker.allow(ACCT).allowed


# ---------------------------------------------------------------------------------- records and status


def test_every_transition_is_recorded_with_a_reason(breaker: Breaker, clock: FakeClock, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.INFO, logger="pipeline.breaker"):
        trip(breaker)  # closed -> open
        clock.advance(60)
        breaker.allow(ACCT)  # open -> half_open
        breaker.record_failure(ACCT, ErrorClass.UI_CHANGED)  # half_open -> open (trip 2)
        clock.advance(120)
        breaker.allow(ACCT)  # open -> half_open
        breaker.record_success(ACCT)  # half_open -> closed
        breaker.record_failure(ACCT, ErrorClass.AUTH)  # closed -> forced_open
        breaker.reset(ACCT)  # forced_open -> closed
    ts = breaker.transitions(ACCT)
    assert [(t["from_state"], t["to_state"]) for t in ts] == [
        (CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED), (CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]
    assert all(t["reason"] and t["account"] == ACCT and t["at"].tzinfo is not None for t in ts)
    assert "probe failed (ui_changed)" in ts[2]["reason"] and "break 120s" in ts[2]["reason"]
    assert ts[4]["reason"] == "half-open probe succeeded"
    assert ts[-1]["reason"] == "operator reset"
    assert [t["at"] for t in ts] == sorted(t["at"] for t in ts)
    assert breaker.transitions(ACCT, limit=2) == ts[-2:]
    # opens are logged at WARNING, the rest at INFO
    levels = {r.message.split(": ", 2)[1]: r.levelno for r in caplog.records if r.name == "pipeline.breaker"}
    assert levels["closed -> open"] == logging.WARNING
    assert levels["closed -> forced_open"] == logging.WARNING
    assert levels["half_open -> open"] == logging.WARNING
    assert levels["open -> half_open"] == logging.INFO
    assert levels["half_open -> closed"] == logging.INFO


def test_reset_clears_events_and_trips(breaker: Breaker, engine: sa.Engine, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(60)
    breaker.allow(ACCT)
    breaker.record_failure(ACCT, ErrorClass.TRANSIENT)
    assert state_of(breaker)["trips"] == 2
    breaker.reset(ACCT)
    s = state_of(breaker)
    assert (s["state"], s["trips"], s["open_until"], s["reason"]) == (CLOSED, 0, None, "operator reset")
    assert event_count(engine) == 0


def test_status_lists_registered_accounts_and_breakers(breaker: Breaker, engine: sa.Engine, clock: FakeClock) -> None:
    with engine.begin() as conn:
        conn.execute(accounts.insert().values(handle="carol", storage_state_path="/tmp/carol.json"))
    trip(breaker)
    breaker.record_failure("bob", ErrorClass.UI_CHANGED)
    rows = {r["account"]: r for r in breaker.status()}
    assert set(rows) == {ACCT, "bob", "carol"}
    assert rows["carol"]["state"] == CLOSED and rows["carol"]["recent_calls"] == 0 and rows["carol"]["allowed_now"]
    assert rows["bob"]["state"] == CLOSED and rows["bob"]["failures_by_class"] == {"ui_changed": 1}
    a = rows[ACCT]
    assert a["state"] == OPEN and not a["allowed_now"] and a["recent_failures"] == 4
    assert a["failures_by_class"] == {"transient": 4} and a["failure_rate"] == 1.0
    for key in ("account", "state", "reason", "opened_at", "open_until", "trips", "recent_failures"):
        assert key in a
    clock.advance(60)
    assert state_of(breaker)["allowed_now"]  # a probe is available; status itself changes nothing
    assert state_of(breaker)["state"] == OPEN
    assert breaker.status("nobody")[0]["state"] == CLOSED


def test_accounts_are_independent(breaker: Breaker) -> None:
    trip(breaker, "alice")
    assert breaker.allow("bob").allowed
    breaker.record_failure("bob", ErrorClass.AUTH)
    breaker.reset("alice")
    assert breaker.allow("alice").allowed and not breaker.allow("bob").allowed


def test_default_clock_is_the_database_clock(engine: sa.Engine) -> None:
    b = Breaker(engine)
    before = datetime.now(UTC)
    b.record_failure(ACCT, ErrorClass.RATE_LIMITED)
    until = state_of(b)["open_until"]
    assert until.tzinfo is not None
    assert abs((until - before).total_seconds() - 900) < 60
    assert not b.allow(ACCT).allowed


def test_naive_clock_is_refused(engine: sa.Engine) -> None:
    b = Breaker(engine, clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        b.record_failure(ACCT, ErrorClass.TRANSIENT)


def test_config_validation_and_break_growth() -> None:
    cfg = BreakerConfig()
    assert [cfg.break_s(n) for n in (1, 2, 3, 6, 7, 1000)] == [60, 120, 240, 1920, 3600, 3600]
    with pytest.raises(ValueError):
        BreakerConfig(failure_threshold=0)
    with pytest.raises(ValueError):
        BreakerConfig(min_calls=0)
    with pytest.raises(ValueError):
        BreakerConfig(growth=0.5)
