"""Dispatch by due time: which accounts need a posting run now, and the per-account posting lease.

    sensor (every 15 s) -> accounts_to_dispatch(): due within the horizon, on the database clock
                        -> pack_accounts(): the accounts due together share post_job runs of at most
                           PIPELINE_DISPATCH_ACCOUNTS_PER_RUN (tag pipeline/account=<handle> for one,
                           pipeline/accounts=<a,b,c> for several); each account posts on its own thread
    run                 -> AccountLease: only one posting run per account, whatever launched it
                        -> linger_step(): wait for the item's minute, post, then linger (keep the browser,
                           poll the account's queue) until nothing was due for PIPELINE_DISPATCH_LINGER_S
                           or the run is PIPELINE_DISPATCH_RUN_MAX_S old

Each account posts on its own thread with its own browser, so one account's stall, rate limit or unknown
outcome never delays another's; packing saves a process start per account (50 accounts due together would
otherwise be 50 Python processes on two cores). The run queue's per-unique-value tag limit keeps two runs of one account from starting; the
lease here also covers the launch paths that bypass the queue (`dagster job execute`, a UI materialization
without the tag, an asset backfill).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.db import db_now, transaction

items = s.content_items
leases = s.account_leases


@dataclass(frozen=True)
class DueAccount:
    account: str
    first_due: datetime  # the earliest queued item's time, or now when only reconciliation is pending
    due: int  # queued items due within the horizon
    unknown: int  # unknown outcomes (or dead runs' items): the run reconciles them first


def accounts_to_dispatch(engine: Engine, horizon_s: float) -> tuple[datetime, list[DueAccount]]:
    """(database now, accounts with queued items due within `horizon_s` or unknown items to reconcile).

    Accounts whose breaker holds beyond the horizon (open until later, or forced open) are left out: a run
    for them would only find the breaker closed to it."""
    with engine.connect() as conn:
        now = db_now(conn)
        horizon = now + timedelta(seconds=horizon_s)
        queued = sa.and_(items.c.state == s.QUEUED, items.c.scheduled_at <= horizon)
        # Unknown outcomes, and in-flight items whose run died (their expired lease makes them unknown).
        unsettled = sa.or_(items.c.state == s.UNKNOWN,
                           sa.and_(items.c.state.in_((s.CLAIMED, s.POSTING)), items.c.lease_expires_at <= now))
        rows = conn.execute(
            sa.select(
                items.c.account,
                sa.func.min(sa.case((queued, items.c.scheduled_at))),
                sa.func.count().filter(queued),
                sa.func.count().filter(unsettled),
            )
            .where(sa.or_(queued, unsettled))
            .group_by(items.c.account)
            .order_by(items.c.account)
        ).all()
        held = set(conn.execute(
            sa.select(s.breaker_state.c.account).where(sa.or_(
                s.breaker_state.c.state == "forced_open",
                sa.and_(s.breaker_state.c.state == "open", s.breaker_state.c.open_until > horizon),
            ))
        ).scalars())
    due = [DueAccount(account, _aware(first) or now, int(n_due), int(n_unknown))
           for account, first, n_due, n_unknown in rows if account not in held]
    return now, due


def pack_accounts(accounts: list[str], per_run: int) -> list[list[str]]:
    """Split accounts due together into as few runs as `per_run` allows, of even size (7 runs of 7-8, not 6
    of 8 and one of 2), keeping their order."""
    if not accounts:
        return []
    runs = math.ceil(len(accounts) / per_run)
    size, extra = divmod(len(accounts), runs)
    packs, start = [], 0
    for n in range(runs):
        end = start + size + (1 if n < extra else 0)
        packs.append(accounts[start:end])
        start = end
    return packs


def leased_accounts(engine: Engine) -> set[str]:
    """Accounts some run is posting for right now (an unexpired lease, database clock)."""
    with engine.connect() as conn:
        now = db_now(conn)
        return set(conn.execute(sa.select(leases.c.account).where(leases.c.expires_at > now)).scalars())


def _aware(value: datetime | str | None) -> datetime | None:
    """min() over a CASE loses the column type on SQLite; read it back as the UTC datetime it is."""
    if value is None or isinstance(value, datetime):
        return s.UtcDateTime().process_result_value(value, None)
    return s.UtcDateTime().process_result_value(datetime.fromisoformat(value), None)


def seconds_until_due(engine: Engine, account: str) -> float | None:
    """Seconds (database clock) until the account's next queued item is due; 0 when one is due now."""
    with engine.connect() as conn:
        now = db_now(conn)
        first = conn.execute(
            sa.select(sa.func.min(items.c.scheduled_at)).where(items.c.account == account, items.c.state == s.QUEUED)
        ).scalar()
    if first is None:
        return None
    return max(0.0, (first - now).total_seconds())


@dataclass(frozen=True)
class NextDue:
    now: datetime  # the database clock when asked
    seconds: float | None  # until the account's next queued item is due (0: due now); None: nothing queued
    held: bool  # the account's breaker holds it (open until later, or forced open)


def next_due(engine: Engine, account: str) -> NextDue:
    """One cheap look for a lingering run: the database time, the next due item and the breaker, together."""
    with engine.connect() as conn:
        now = db_now(conn)
        first = conn.execute(
            sa.select(sa.func.min(items.c.scheduled_at)).where(items.c.account == account, items.c.state == s.QUEUED)
        ).scalar()
        held = conn.execute(
            sa.select(sa.func.count()).select_from(s.breaker_state).where(
                s.breaker_state.c.account == account,
                sa.or_(s.breaker_state.c.state == "forced_open",
                       sa.and_(s.breaker_state.c.state == "open", s.breaker_state.c.open_until > now)))
        ).scalar()
    seconds = None if first is None else max(0.0, (_aware(first) - now).total_seconds())
    return NextDue(now, seconds, bool(held))


LINGER_POLL_S = 1.0  # a lingering run looks at its queue this often: a post added while it lingers waits <= 1 s


@dataclass(frozen=True)
class LingerStep:
    action: str  # "post" (something is due now), "wait" (sleep `seconds`, then look again) or "stop"
    seconds: float = 0.0
    reason: str = ""


def linger_step(elapsed_s: float, idle_s: float, due: NextDue, horizon_s: float, linger_s: float,
                run_max_s: float, poll_s: float = LINGER_POLL_S) -> LingerStep:
    """What a dispatched run does next, after a posting pass (pure; all times on the database clock).

    `elapsed_s` is the run's age, `idle_s` the time since its last pass that had something due. The run
    posts what is due; waits for an item due within the horizon (it was started early for it) or, within
    the linger time, polls for new work so a later post needs no new run (process, Chromium, login); and
    stops at the run's maximum age (new code, bounded memory), when its account's breaker holds, or when
    the linger time has passed with nothing due."""
    remaining = run_max_s - elapsed_s
    if remaining <= 0:
        return LingerStep("stop", reason="run_max")
    if due.held:
        return LingerStep("stop", reason="breaker")
    if due.seconds is not None and due.seconds <= 0:
        return LingerStep("post")
    awaited = due.seconds is not None and due.seconds <= horizon_s and due.seconds < remaining
    linger_left = linger_s - idle_s
    if not awaited and linger_left <= 0:
        return LingerStep("stop", reason="linger" if linger_s > 0 else "nothing_due")
    wait = min(poll_s, remaining) if awaited else min(poll_s, linger_left, remaining)
    if due.seconds is not None:
        wait = min(wait, due.seconds + 0.05)  # due at exactly its time on the database clock (inclusive)
    return LingerStep("wait", max(wait, 0.01))


ACCOUNT_LEASE_MAX_S = 120.0


def account_lease_s(item_lease_s: float) -> float:
    """The account lease's lifetime: renewed before every claim and reconciliation, so it only has to outlast
    one post; short, so a killed run holds its account for two minutes at most, not an item lease's five.
    Losing it early is safe: item claims still keep two runs off one item."""
    return min(item_lease_s, ACCOUNT_LEASE_MAX_S)


class AccountBusy(RuntimeError):
    """Another run holds the account's posting lease."""


class AccountLease:
    """A row per account in `account_leases`; a run posts for the account only while it holds the row.

    Taken when the row is absent, expired (a dead run) or already ours; renewed between posts; released at
    the end. The expiry is on the database clock, like every other lease in the pipeline."""

    def __init__(self, engine: Engine, account: str, owner: str, ttl_s: float) -> None:
        self.engine, self.account, self.owner, self.ttl_s = engine, account, owner, ttl_s
        self.held = False

    def acquire(self) -> bool:
        with transaction(self.engine) as conn:
            now = db_now(conn)
            until = now + timedelta(seconds=self.ttl_s)
            taken = conn.execute(
                leases.update()
                .where(leases.c.account == self.account,
                       sa.or_(leases.c.owner == self.owner, leases.c.expires_at <= now))
                .values(owner=self.owner, acquired_at=now, expires_at=until)
            ).rowcount
            if not taken:
                exists = conn.execute(sa.select(leases.c.owner).where(leases.c.account == self.account)).first()
                if exists is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(leases.insert().values(account=self.account, owner=self.owner,
                                                                acquired_at=now, expires_at=until))
                        taken = 1
                    except sa.exc.IntegrityError:  # another run inserted it first
                        taken = 0
        self.held = bool(taken)
        return self.held

    def renew(self) -> None:
        """Extend the lease; raises AccountBusy if it was lost (expired and taken by another run)."""
        with transaction(self.engine) as conn:
            now = db_now(conn)
            renewed = conn.execute(
                leases.update().where(leases.c.account == self.account, leases.c.owner == self.owner)
                .values(expires_at=now + timedelta(seconds=self.ttl_s))
            ).rowcount
        if not renewed:
            self.held = False
            raise AccountBusy(f"@{self.account}: the posting lease was taken by another run")

    def release(self) -> None:
        if not self.held:
            return
        with transaction(self.engine) as conn:
            conn.execute(leases.delete().where(leases.c.account == self.account, leases.c.owner == self.owner))
        self.held = False

    def holder(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(leases.c.owner).where(leases.c.account == self.account)).scalar()
