"""Planning: slot placement properties (hypothesis, DST included) and plan() on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import queue as q
from pipeline import schema as s
from pipeline.content import make_draft
from pipeline.db import db_now
from pipeline.generators import DraftsLibrary, GeneratedDraft
from pipeline.planning import SlotRules, buffer_counts, parse_quiet_hours, plan, plan_slots
from pipeline.settings import load_settings

HOUR = timedelta(hours=1)

# DST changes (UTC instants) in the zones the issue names, plus zones with odd offsets.
DST_INSTANTS = [
    datetime(2024, 3, 31, 1, tzinfo=UTC),  # London spring forward: 01:00 GMT -> 02:00 BST
    datetime(2024, 10, 27, 1, tzinfo=UTC),  # London fall back: 02:00 BST -> 01:00 GMT
    datetime(2024, 3, 10, 7, tzinfo=UTC),  # New York spring forward: 02:00 EST -> 03:00 EDT
    datetime(2024, 11, 3, 6, tzinfo=UTC),  # New York fall back: 02:00 EDT -> 01:00 EST
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
]
ZONES = ["Europe/London", "America/New_York", "UTC", "Asia/Kathmandu", "Australia/Lord_Howe"]


# --------------------------------------------------------------------------- property checks


def check_slots(new: list[datetime], existing: list[datetime], now: datetime, rules: SlotRules, tz: str) -> None:
    """Every rule plan_slots promises, checked independently of its implementation."""
    zone = ZoneInfo(tz)
    spacing = timedelta(minutes=rules.min_spacing_min)
    everything = sorted(existing + new)
    assert new == sorted(new)
    for t in new:
        assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
        assert t >= now + timedelta(minutes=rules.lead_min) - timedelta(microseconds=1), "in the past"
        local = t.astimezone(zone)
        assert local.hour not in rules.quiet_hours, f"{local} is in quiet hours {sorted(rules.quiet_hours)}"
        others = list(existing) + [x for x in new if x is not t]
        for x in others:
            assert abs(x - t) >= spacing, f"{x} and {t} are closer than {spacing}"
        # Every half-open 60-minute window that contains t: the fullest one starts at an item <= t.
        for a in everything:
            if t - HOUR < a <= t:
                in_window = sum(1 for x in everything if a <= x < a + HOUR)
                assert in_window <= rules.posts_per_hour, f"{in_window} items in the hour from {a}"
    per_day = Counter(x.astimezone(zone).date() for x in everything)
    for t in new:
        day = t.astimezone(zone).date()
        assert per_day[day] <= rules.posts_per_day, f"{per_day[day]} items on {day}"


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[datetime], datetime, int, SlotRules, str, int]:
    tz = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        base = draw(st.sampled_from(DST_INSTANTS))
        now = base + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 6 * 60)))
    else:
        now = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1))).replace(tzinfo=UTC)
    quiet = frozenset()
    if draw(st.booleans()):
        start = draw(st.integers(0, 23))
        length = draw(st.integers(1, 12))
        quiet = frozenset((start + i) % 24 for i in range(length))
    rules = SlotRules(
        posts_per_hour=draw(st.integers(1, 6)),
        posts_per_day=draw(st.integers(1, 48)),
        min_spacing_min=draw(st.sampled_from([0, 1, 5, 20, 45, 90])),
        quiet_hours=quiet,
        jitter_min=draw(st.sampled_from([0, 3, 10, 30])),
        lead_min=draw(st.sampled_from([0, 1, 5])),
    )
    # Existing items anywhere around now, possibly breaking the rules themselves (operator enqueues).
    offsets = draw(st.lists(st.integers(-2 * 24 * 60, 2 * 24 * 60), max_size=15))
    existing = [now + timedelta(minutes=m, seconds=draw(st.integers(0, 59))) for m in offsets]
    count = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32))
    return existing, now, count, rules, tz, seed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_plan_slots_respects_every_rule(scenario: tuple) -> None:
    existing, now, count, rules, tz, seed = scenario
    new = plan_slots(existing, now, count, rules, tz, random.Random(seed))
    assert len(new) == count
    check_slots(new, existing, now, rules, tz)


@settings(max_examples=150, deadline=None)
@given(
    base=st.sampled_from(DST_INSTANTS),
    minutes=st.integers(-12 * 60, 12 * 60),
    tz=st.sampled_from(["Europe/London", "America/New_York"]),
    quiet_start=st.integers(0, 3),
    seed=st.integers(0, 1000),
)
def test_dst_transitions_quiet_hours_and_local_days(base: datetime, minutes: int, tz: str, quiet_start: int,
                                                    seed: int) -> None:
    """Quiet hours that include the hour which is skipped (spring) or repeated (autumn) stay quiet, and the
    23- and 25-hour local days keep their daily cap."""
    now = base + timedelta(minutes=minutes)
    rules = SlotRules(posts_per_hour=3, posts_per_day=10, min_spacing_min=10,
                      quiet_hours=frozenset({quiet_start, quiet_start + 1}), jitter_min=5)
    new = plan_slots([], now, 40, rules, tz, random.Random(seed))
    assert len(new) == 40  # every slot asked for was made, across the 23- or 25-hour day
    check_slots(new, [], now, rules, tz)
    per_day = Counter(t.astimezone(ZoneInfo(tz)).date() for t in new)
    days = sorted(per_day)
    # Earliest first: every local day between the first and the last is filled to its cap, short or long.
    assert all(per_day[d] == rules.posts_per_day for d in days[1:-1]), per_day


def test_fall_back_repeated_hour_is_quiet_both_times() -> None:
    """01:00-02:00 happens twice in London on 2024-10-27; hour 1 quiet means neither occurrence is used."""
    rules = SlotRules(posts_per_hour=6, posts_per_day=100, min_spacing_min=5, quiet_hours=frozenset({1}),
                      jitter_min=0, lead_min=0)
    now = datetime(2024, 10, 26, 23, 30, tzinfo=UTC)  # 00:30 BST
    new = plan_slots([], now, 30, rules, "Europe/London", random.Random(0))
    local_hours = [t.astimezone(ZoneInfo("Europe/London")).hour for t in new]
    assert 1 not in local_hours
    # 00:30-01:00 BST is usable (00:30 UTC = 01:30 BST is not); the first slot after is 02:00 GMT = 02:00 UTC.
    assert new[0] == now
    assert min(t for t in new if t > datetime(2024, 10, 27, 0, tzinfo=UTC)) == datetime(2024, 10, 27, 2, tzinfo=UTC)


def test_tight_packing_without_jitter() -> None:
    """Without jitter the planner is exact: earliest times the spacing and the rolling-hour cap allow."""
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    rules = SlotRules(posts_per_hour=2, posts_per_day=24, min_spacing_min=20, jitter_min=0, lead_min=0)
    new = plan_slots([], now, 5, rules, "UTC", random.Random(0))
    assert [int((t - now).total_seconds() // 60) for t in new] == [0, 20, 60, 80, 120]


def test_daily_cap_moves_to_the_next_local_day_and_existing_items_count() -> None:
    now = datetime(2024, 6, 1, 20, tzinfo=UTC)  # 16:00 in New York
    rules = SlotRules(posts_per_hour=10, posts_per_day=3, min_spacing_min=5, jitter_min=0, lead_min=0)
    existing = [datetime(2024, 6, 1, 14, tzinfo=UTC), datetime(2024, 6, 1, 15, tzinfo=UTC)]  # same NY day
    new = plan_slots(existing, now, 2, rules, "America/New_York", random.Random(0))
    assert new[0] == now
    assert new[1] == datetime(2024, 6, 2, 4, tzinfo=UTC)  # midnight EDT
    check_slots(new, existing, now, rules, "America/New_York")


def test_never_in_the_past_even_with_overdue_items() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    existing = [now - timedelta(minutes=m) for m in (1, 2, 3)]
    new = plan_slots(existing, now, 3, SlotRules(), "UTC", random.Random(3))
    assert all(t > now for t in new)
    check_slots(new, existing, now, SlotRules(), "UTC")


def test_jitter_varies_times_between_runs() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    a = plan_slots([], now, 6, SlotRules(), "UTC", random.Random(1))
    b = plan_slots([], now, 6, SlotRules(), "UTC", random.Random(2))
    assert a != b
    assert len({t.minute for t in a + b}) > 4  # not always on :00 and :30


def test_rules_from_settings_and_quiet_hours_parsing() -> None:
    settings_ = load_settings(env={}, posts_per_hour=4, posts_per_day=30, min_spacing_min=12, quiet_hours="23-7,13")
    rules = SlotRules.from_settings(settings_)
    assert (rules.posts_per_hour, rules.posts_per_day, rules.min_spacing_min) == (4, 30, 12.0)
    assert rules.quiet_hours == frozenset({23, 0, 1, 2, 3, 4, 5, 6, 13})
    assert rules.jitter_min == 6.0  # half the spacing, so jitter never costs a slot
    assert parse_quiet_hours("") == frozenset()
    assert parse_quiet_hours("22-24") == frozenset({22, 23})
    for bad in ("7-7", "25-3", "x-y", "0-24"):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)
    with pytest.raises(ValueError):
        plan_slots([], datetime.now(UTC), 1, SlotRules(), "Mars/Olympus", random.Random())
    with pytest.raises(ValueError):
        SlotRules(posts_per_hour=0)


# --------------------------------------------------------------------------- plan() against the database


def _queued(engine: sa.Engine, account: str | None = None) -> list[dict]:
    items = s.content_items
    query = sa.select(items).where(items.c.state == s.QUEUED).order_by(items.c.scheduled_at)
    if account:
        query = query.where(items.c.account == account)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _db_now(engine: sa.Engine) -> datetime:
    with engine.connect() as conn:
        return db_now(conn)


def test_plan_fills_each_account_and_a_second_run_adds_nothing(engine: sa.Engine) -> None:
    q.add_account(engine, "alice", "/nonexistent/a.json", timezone="Europe/London")
    q.add_account(engine, "bob", "/nonexistent/b.json", timezone="America/New_York")
    cfg = load_settings(env={})  # the predecessor's defaults: 3 items in 60 min, 2/hour, 20 min apart
    library = DraftsLibrary(engine)
    started = _db_now(engine)

    first = plan(engine, cfg, library, rng=random.Random(7))
    assert first.per_account == {"alice": 3, "bob": 3}
    assert first.enqueued == 6 and first.accounts == 2 and first.dropped == []
    for handle, tz in (("alice", "Europe/London"), ("bob", "America/New_York")):
        rows = _queued(engine, handle)
        assert len(rows) == 3 and {r["source"] for r in rows} == {"planner"}
        assert all(r["scheduled_at"] >= started for r in rows)
        assert all(r["topic"] and r["format"] for r in rows)
        check_slots([r["scheduled_at"] for r in rows], [], started, SlotRules.from_settings(cfg), tz)

    second = plan(engine, cfg, library, rng=random.Random(8))
    assert second.enqueued == 0 and second.per_account == {"alice": 0, "bob": 0}
    assert buffer_counts(engine, cfg) == {"alice": 3, "bob": 3}

    # One item goes out: the next run refills exactly one, spaced from the rest.
    first_item, posted_at = _queued(engine, "alice")[0], _db_now(engine)
    with engine.begin() as conn:
        conn.execute(s.content_items.update().where(s.content_items.c.id == first_item["id"])
                     .values(state=s.POSTED, posted_at=posted_at))
    third = plan(engine, cfg, library, rng=random.Random(9))
    assert third.per_account == {"alice": 1, "bob": 0}
    texts = [tuple(r["parts"]) for r in _queued(engine)] + [tuple(first_item["parts"])]
    assert len(texts) == len(set(texts)) == 7


def test_plan_in_quiet_hours_waits_for_morning_and_does_not_pile_up(engine: sa.Engine) -> None:
    q.add_account(engine, "alice", "/nonexistent/a.json", timezone="UTC")
    now = _db_now(engine)
    quiet = f"{now.hour}-{(now.hour + 8) % 24}"  # quiet from the current hour for 8 hours
    cfg = load_settings(env={}, quiet_hours=quiet)
    library = DraftsLibrary(engine)
    assert plan(engine, cfg, library, rng=random.Random(1)).enqueued == 3
    rows = _queued(engine, "alice")
    assert all(r["scheduled_at"].hour not in parse_quiet_hours(quiet) for r in rows)
    assert min(r["scheduled_at"] for r in rows) > now + timedelta(hours=6)
    for seed in range(3):  # hourly runs through the night add nothing
        assert plan(engine, cfg, library, rng=random.Random(seed)).enqueued == 0


def test_plan_counts_operator_items_due_in_the_window(engine: sa.Engine) -> None:
    q.add_account(engine, "alice", "/nonexistent/a.json")
    now = _db_now(engine)
    q.enqueue(engine, [(make_draft("alice", ["operator post one"]), now + timedelta(minutes=10)),
                       (make_draft("alice", ["operator post two, far away"]), now + timedelta(days=3))])
    report = plan(engine, load_settings(env={}), DraftsLibrary(engine), rng=random.Random(2))
    assert report.per_account == {"alice": 2}  # the far-away operator item does not fill today's buffer
    planned = [r for r in _queued(engine, "alice") if r["source"] == "planner"]
    assert all(abs(r["scheduled_at"] - (now + timedelta(minutes=10))) >= timedelta(minutes=20) for r in planned)


@dataclass
class ScriptedGenerator:
    """A stand-in generator that returns fixed drafts: plan()'s own validation is what is under test."""

    script: list[tuple[str, ...]]
    released: list[str]

    def __post_init__(self) -> None:
        self.last_reason: str | None = None
        self.rejected: list[tuple[str, str]] = []
        self.exhausted = False

    def topics(self) -> list[str]:
        return ["python"]

    def formats(self) -> list[str]:
        return ["tip"]

    def generate(self, account: str, topic: str | None, format: str | None, kind: str) -> GeneratedDraft | None:
        if not self.script:
            self.exhausted, self.last_reason = True, "script finished"
            return None
        parts = self.script.pop(0)
        return GeneratedDraft(parts=parts, topic="python", format="tip", key=f"k{len(self.script)}")

    def release(self, draft: GeneratedDraft) -> None:
        self.released.append(draft.key)


def test_plan_drops_invalid_and_duplicate_drafts_with_reasons(engine: sa.Engine) -> None:
    q.add_account(engine, "alice", "/nonexistent/a.json")
    live = "Use zoneinfo from the standard library for time zones; pytz is no longer needed in modern Python."
    q.enqueue(engine, [(make_draft("alice", [live]), _db_now(engine) + timedelta(minutes=5))])
    good = "A fresh tip that nobody has seen: name your tests after the behaviour, not the function."
    gen = ScriptedGenerator(script=[
        ("x" * 281,),  # too long
        (live,),  # exact duplicate of a live item
        (live.replace("modern Python", "modern Python code"),),  # near-duplicate
        (good,),
    ], released=[])
    cfg = load_settings(env={}, plan_min_items=3, thread_ratio=0.0)  # 1 live + 2 slots
    report = plan(engine, cfg, gen, rng=random.Random(0))
    reasons = [r for r, _ in report.dropped]
    assert reasons[:3] == ["invalid", "duplicate", "near_duplicate"]
    assert "generator_exhausted" in reasons  # the script ran dry: the account got what could be made
    assert report.per_account == {"alice": 1}
    texts = {r["parts"][0] for r in _queued(engine, "alice")}
    assert texts == {live, good}


def test_overlapping_plan_runs_do_not_both_fill_an_account(engine: sa.Engine) -> None:
    """PostgreSQL: a second planner finds the account's advisory lock taken and leaves it alone.
    SQLite (single host) has no such lock: the same call simply plans."""
    import hashlib

    q.add_account(engine, "alice", "/nonexistent/a.json")
    cfg = load_settings(env={})
    if engine.dialect.name != "postgresql":
        assert plan(engine, cfg, DraftsLibrary(engine), rng=random.Random(0)).enqueued == 3
        return
    key = int.from_bytes(hashlib.sha256(b"pipeline.plan:alice").digest()[:8], "big", signed=True)
    with engine.connect() as other:
        assert other.exec_driver_sql("SELECT pg_try_advisory_lock(%(k)s)", {"k": key}).scalar_one()
        other.commit()
        report = plan(engine, cfg, DraftsLibrary(engine), rng=random.Random(0))
        assert report.enqueued == 0 and [r for r, _ in report.dropped] == ["locked"]
        other.exec_driver_sql("SELECT pg_advisory_unlock(%(k)s)", {"k": key})
        other.commit()
    assert plan(engine, cfg, DraftsLibrary(engine), rng=random.Random(0)).enqueued == 3
