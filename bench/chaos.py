"""Chaos harness with a Jepsen-style checker: the pipeline and a model of its predecessor under one fault schedule.

    .venv/bin/python bench/chaos.py --posts 200 --seed 7 --json bench/results/chaos.json --check
        [--accounts 4] [--workers 3] [--sides both|pipeline|baseline] [--runner dagster|python]

Each side (the pipeline, and `bench/naive.py`, a labelled MODEL of the predecessor) gets its own sandbox (an
in-process `SandboxServer`), its own fresh PostgreSQL database behind a `FaultProxy`, the same items and the
same seeded schedule. The two sides run at the same time, each in its own process.

Faults, phase 1 (until every item has been tried once, or --fault-limit seconds; items not reached by then are
posted in phase 2):
- sandbox faults, seeded: `post_commit_stall` (the tweet is stored, the response held past
  PIPELINE_POST_TIMEOUT_S), `post_error_5xx`, `rate_limit` (short reset), `session_expired` (rare: the harness
  then plays the operator, issues a new session and writes the session file; that is counted as a human step
  and is the only thing the harness ever does for a side), `slow_page`. X's own duplicate rule is off
  (`duplicate_window_hours=0`) so duplicates measure OUR protection, not X's;
- the database: the proxy is cut the instant the sandbox stores a post (a hook on the sandbox's store, so the
  cut lands before the CreateTweet response leaves), sometimes for longer than the pipeline's confirm retries
  (forcing the journal), plus random short cuts and latency windows;
- processes: several workers at once against the same PostgreSQL (all accounts through `dagster job execute
  -m pipeline.definitions -j post_job`, and single/several accounts through `run_posting` directly, since the
  job has no account selector), some killed with SIGKILL (the whole process group, Chromium included): at a
  random time after their start, and, from a hook on the sandbox's store, at the instant a post is stored
  (before its response leaves; the victim is any running worker, since the poster is not known);
- clock skew: what "skew" means here, honestly: there is no faketime on this machine, so a worker's APP clock
  is shifted inside its process: `time.time`/`time.time_ns` and the `datetime` class as seen by the pipeline's
  (and the model's) modules return real time + skew. The database clock, the sandbox clock and Chromium's
  clock are NOT skewed. Workers also get odd `TZ` and `PGTZ` (session time zone) values;
- timing: a share of the items is scheduled at exactly the database's now() at enqueue time, the rest
  spread over the first seconds of the run.

Phase 2: every fault is removed (sandbox faults cleared, proxy restored, no kills, no skew) and workers keep
running until the queue is quiet (nothing queued, claimed, posting or unknown, journal empty) or
--quiet-limit seconds. `seconds_to_quiet` is measured from the moment the faults were removed.

Workers are started the way a deployment would run them, never told what happened: the harness only launches
runs (about one per due item, up to --workers at once) and, after an expired session, writes a new session
file. Every run's output is kept under the work directory (CHAOS_KEEP_DIR=1 keeps it, CHAOS_KEEP_DB=1 keeps
the databases); a run still going after `run_limit_s` is asked for its stacks (SIGUSR1) and killed.

Checker (see `check`), from the sandbox's ground truth and the side's database, comparing id sets, not
counts. `--check` exits 1 when the pipeline side has any duplicate, lost item, false failure, missing or
wrong tweet id, unexpected post, item left unknown/needs_review, or more connections than its bound.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Running as `python bench/chaos.py` puts bench/ first on the path, where bench/queue.py and bench/sandbox.py
# would shadow the standard library's queue and the sandbox package.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from dataclasses import asdict, dataclass, field, fields  # noqa: E402
from datetime import timedelta  # noqa: E402
from typing import Any  # noqa: E402

PIPELINE_APP = "x-posting-pipeline"  # pipeline.db.APPLICATION_NAME (not imported: keep this module light)
HARNESS_APP = "chaos-harness"
# "dagster": all-accounts workers run post_job through `dagster job execute`; "python": run_posting directly.
# Switching every all-accounts worker is this one line (or --runner).
DEFAULT_RUNNER = "dagster"
METRICS = ("posts", "faults", "duplicates", "lost", "false_failures", "missing_tweet_ids", "unexpected",
           "unknown_left", "seconds_to_quiet", "max_connections")
ODD_ZONES = ("UTC", "Pacific/Chatham", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe",
             "Pacific/Kiritimati", "Etc/GMT+12", "America/Caracas")
SKEWS_S = (-300.0, -90.0, -7.0, 7.0, 90.0, 3600.0)
FOREIGN_MARK = "[another client]"  # posts the harness makes itself (timeline bursts); the checker ignores them
BURST = 210
WORDS = ("queue", "lease", "breaker", "journal", "fingerprint", "timeline", "sandbox", "postgres", "retry",
         "reconcile", "intent", "outage", "probe", "window", "settle", "jitter", "replay", "skew")


# =============================================================================================== configuration


@dataclass
class ChaosConfig:
    posts: int = 200
    seed: int = 7
    accounts: int = 4
    workers: int = 3
    runner: str = DEFAULT_RUNNER
    thread_share: float = 0.2  # items that are 2-3 part threads
    exact_now_share: float = 0.4  # items scheduled at exactly the database's now()
    spread_s: float = 0.0  # the rest are spread over this many seconds (0: derived from posts)
    # pipeline settings for every worker (both sides read the same PIPELINE_* values)
    post_timeout_s: float = 2.0
    nav_timeout_s: float = 5.0
    reconcile_timeout_s: float = 10.0
    settle_s: float = 3.0
    lease_s: int = 40  # above the worst case of one attempt: 3 x nav timeout + 2 x 5 s + post timeout
    run_budget: int = 20
    # sandbox faults (probabilities per CreateTweet request / page load)
    p_stall: float = 0.2
    stall_s: float = 3.0  # a bit above post_timeout_s: the outcome becomes unknown
    p_5xx: float = 0.12
    p_rate_limit: float = 0.05
    rate_reset_s: float = 2.0
    p_session_expired: float = 0.004
    p_slow_page: float = 0.15
    slow_page_s: float = 1.5
    # database faults
    p_cut_after_post: float = 0.04
    p_long_cut: float = 0.15  # of those: longer than the pipeline's confirm retries (about 7.7 s): the journal
    random_cut_every_s: float = 20.0
    p_stall_window: float = 0.3
    # processes
    p_kill: float = 0.15  # a run is SIGKILLed at a random time after its start...
    kill_window_s: tuple[float, float] = (3.0, 40.0)
    p_kill_on_post: float = 0.03  # ...and, per stored post, a random running worker is SIGKILLed at that instant
    p_subset_worker: float = 0.35
    p_skew: float = 0.4
    operator_delay_s: float = 3.0
    # opt-in (not in the fault list): when a worker is killed at the instant a post is stored, bury that
    # post under BURST newer posts from "another client" of the account, past what reconciliation reads
    p_timeline_burst: float = 0.0
    # limits
    fault_limit_s: float = 0.0  # 0: derived from posts
    quiet_limit_s: float = 180.0
    time_budget_s: float = 275.0  # each side stops this long after it started, setup included (0: no budget)
    run_limit_s: float = 300.0  # a worker running longer is killed (counted as watchdog kill, not a fault)

    def __post_init__(self) -> None:
        if not self.spread_s:
            self.spread_s = max(10.0, self.posts * 0.15)
        if not self.fault_limit_s:
            self.fault_limit_s = max(60.0, self.posts * 0.45)

    def sandbox_faults(self) -> dict[str, dict[str, Any]]:
        return {
            "post_commit_stall": {"p": self.p_stall, "seconds": self.stall_s},
            "post_error_5xx": {"p": self.p_5xx},
            "rate_limit": {"p": self.p_rate_limit, "reset_s": self.rate_reset_s},
            "session_expired": {"p": self.p_session_expired},
            "slow_page": {"p": self.p_slow_page, "seconds": self.slow_page_s},
        }

    def worker_env(self) -> dict[str, str]:
        return {
            "PIPELINE_POST_TIMEOUT_S": str(self.post_timeout_s),
            "PIPELINE_NAV_TIMEOUT_S": str(self.nav_timeout_s),
            "PIPELINE_RECONCILE_TIMEOUT_S": str(self.reconcile_timeout_s),
            "PIPELINE_RECONCILE_SETTLE_S": str(self.settle_s),
            "PIPELINE_LEASE_S": str(self.lease_s),
            "PIPELINE_RUN_BUDGET": str(self.run_budget),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChaosConfig:
        names = {f.name for f in fields(cls)}
        clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**clean)


PROBABILITIES = ("p_stall", "p_5xx", "p_rate_limit", "p_session_expired", "p_slow_page", "p_cut_after_post",
                 "p_stall_window", "p_kill", "p_kill_on_post", "p_skew")


def scaled(cfg: ChaosConfig, intensity: float) -> ChaosConfig:
    """The same schedule with every fault probability (and the random cut rate) multiplied by `intensity`."""
    data = asdict(cfg)
    for name in PROBABILITIES:
        data[name] = min(1.0, data[name] * intensity)
    data["random_cut_every_s"] = cfg.random_cut_every_s / intensity if intensity > 0 else 1e9
    return ChaosConfig.from_dict(data)


@dataclass(frozen=True)
class PlanItem:
    key: int
    account: str
    parts: list[str]
    offset_s: float | None  # None: exactly the database's now() at enqueue


def handles(count: int) -> list[str]:
    return [f"chaos_{chr(ord('a') + i)}" if i < 26 else f"chaos_{i}" for i in range(count)]


def make_plan(cfg: ChaosConfig) -> list[PlanItem]:
    """N items over the accounts: singles and some threads, unique text per account, seeded."""
    rng = random.Random(f"{cfg.seed}:plan")
    accounts = handles(cfg.accounts)
    plan = []
    for key in range(1, cfg.posts + 1):
        account = accounts[(key - 1) % len(accounts)]
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        head = f"chaos s{cfg.seed} #{key}"
        if rng.random() < cfg.thread_share:
            n = rng.randint(2, 3)
            parts = [f"{head} part {i}/{n}: {words} {rng.choice(WORDS)}" for i in range(1, n + 1)]
        else:
            parts = [f"{head}: {words}"]
        offset = None if rng.random() < cfg.exact_now_share else round(rng.uniform(0, cfg.spread_s), 6)
        plan.append(PlanItem(key, account, parts, offset))
    return plan


# =============================================================================================== the checker

TERMINAL_WITH_REASON = ("failed", "cancelled", "needs_review")
UNCLEAR = ("unknown", "needs_review")
NOT_QUIET = ("queued", "claimed", "posting", "unknown", "pending")
def norm(text: str) -> str:
    """How the platform compares texts: the sandbox's own rule, so the checker and X's stand-in never disagree."""
    from sandbox.state import normalise

    return normalise(text)


@dataclass
class Verdict:
    posts: int = 0
    duplicates: int = 0
    lost: int = 0
    false_failures: int = 0
    missing_tweet_ids: int = 0
    unexpected: int = 0
    unknown_left: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def check(items: list[dict[str, Any]], truth: list[dict[str, Any]], sample: int = 20) -> Verdict:
    """Jepsen-style verdict from id sets.

    `items`: {id, account, parts, state, tweet_ids (by part), reason}; `truth`: the sandbox's tweets
    ({id, account, text, in_reply_to}). Elements are (account, normalised text) keys; an item is present
    when every part's key is on the platform.
    - duplicates: keys present more than once (an element duplicated); `duplicate_copies` counts the extras
    - lost: items not present and not terminal with a reason (this includes "acknowledged but absent":
      recorded `posted` while the platform lacks a part)
    - false_failures: `failed` items with any part on the platform
    - missing_tweet_ids: items present (or recorded posted) without one recorded id per part, or with a
      recorded id that is not in the ground truth or is not that part's tweet
    - unexpected: platform tweets whose key no item explains
    - unknown_left: items in unknown / needs_review
    """
    by_id = {str(t["id"]): t for t in truth}
    copies: dict[tuple[str, str], list[str]] = {}
    for t in truth:
        copies.setdefault((t["account"], norm(t["text"])), []).append(str(t["id"]))
    explained: set[tuple[str, str]] = set()
    ids: dict[str, set[Any]] = {name: set() for name in (
        "lost", "false_failures", "missing_tweet_ids", "unknown_left", "present", "recorded_posted",
        "broken_threads", "terminal", "not_quiet")}
    for item in items:
        keys = [(item["account"], norm(p)) for p in item["parts"]]
        explained.update(keys)
        present = all(k in copies for k in keys)
        any_present = any(k in copies for k in keys)
        state = item["state"]
        recorded = [str(t) for t in (item.get("tweet_ids") or [])]
        if present:
            ids["present"].add(item["id"])
        if state == "posted":
            ids["recorded_posted"].add(item["id"])
        terminal = state in TERMINAL_WITH_REASON and bool(item.get("reason"))
        if terminal:
            ids["terminal"].add(item["id"])
        if not present and not terminal:
            ids["lost"].add(item["id"])
        if state == "failed" and any_present:
            ids["false_failures"].add(item["id"])
        wrong = any(t not in by_id or (by_id[t]["account"], norm(by_id[t]["text"])) != keys[i]
                    for i, t in enumerate(recorded[: len(keys)])) or len(recorded) > len(keys)
        if wrong or ((present or state == "posted") and len(recorded) < len(keys)):
            ids["missing_tweet_ids"].add(item["id"])
        if state in UNCLEAR:
            ids["unknown_left"].add(item["id"])
        if state in NOT_QUIET:
            ids["not_quiet"].add(item["id"])
        if present and len(keys) > 1 and len(recorded) == len(keys) and not wrong:
            chain_ok = all(str(by_id[recorded[i]].get("in_reply_to")) == recorded[i - 1] for i in range(1, len(keys)))
            if not chain_ok:
                ids["broken_threads"].add(item["id"])
    duplicated = {k: v for k, v in copies.items() if len(v) > 1}
    unexpected = [tid for k, v in copies.items() if k not in explained for tid in v]
    all_ids = {i["id"] for i in items}

    def show(values: Iterable[Any]) -> list[Any]:
        return sorted(values, key=str)[:sample]

    details = {
        "items": len(items),
        "tweets_on_platform": len(truth),
        "tweets_expected": sum(len(i["parts"]) for i in items),
        "duplicate_copies": sum(len(v) - 1 for v in duplicated.values()),
        "duplicated_texts": [{"account": k[0], "text": k[1][:80], "tweet_ids": v} for k, v in list(duplicated.items())[:sample]],
        "unexpected_tweet_ids": show(unexpected),
        "states": dict(Counter(i["state"] for i in items)),
        "present_but_not_recorded_posted": show(ids["present"] - ids["recorded_posted"]),
        "recorded_posted_but_absent": show(ids["recorded_posted"] - ids["present"]),
        "terminal_not_on_platform": len(ids["terminal"] - ids["present"]),
        "never_present": show(all_ids - ids["present"]),
        "broken_threads": show(ids["broken_threads"]),
        "not_quiet": len(ids["not_quiet"]),
        **{f"{name}_ids": show(ids[name]) for name in ("lost", "false_failures", "missing_tweet_ids", "unknown_left")},
    }
    return Verdict(posts=len(items), duplicates=len(duplicated), lost=len(ids["lost"]),
                   false_failures=len(ids["false_failures"]), missing_tweet_ids=len(ids["missing_tweet_ids"]),
                   unexpected=len(unexpected), unknown_left=len(ids["unknown_left"]), details=details)


# =============================================================================================== workers


def install_skew(offset_s: float, module_prefixes: tuple[str, ...] = ("pipeline.", "bench.naive")) -> None:
    """Shift this process's APP clock by offset_s: time.time/time_ns everywhere, and `datetime` as the
    pipeline's (and the model's) modules see it. Databases, the sandbox and Chromium keep real time."""
    import datetime as dt

    import pipeline.breaker  # noqa: F401 - import the modules that read the clock, then patch their names
    import pipeline.failures  # noqa: F401
    import pipeline.journal  # noqa: F401
    import pipeline.posting  # noqa: F401
    import pipeline.queue  # noqa: F401

    if not offset_s:
        return
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset_s  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() + int(offset_s * 1e9)  # type: ignore[assignment]
    real = dt.datetime
    shift = timedelta(seconds=offset_s)

    class _Meta(type):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, real)

    class SkewedDatetime(real, metaclass=_Meta):  # type: ignore[misc]
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return real.now(tz) + shift

        @classmethod
        def utcnow(cls) -> Any:  # type: ignore[override]
            return real.utcnow() + shift

        @classmethod
        def today(cls) -> Any:  # type: ignore[override]
            return real.today() + shift

    if "bench.naive" in module_prefixes:
        import bench.naive  # noqa: F401
    for name, module in list(sys.modules.items()):
        if name.startswith(module_prefixes) and getattr(module, "datetime", None) is real:
            module.datetime = SkewedDatetime  # type: ignore[attr-defined]


def worker_main(argv: list[str]) -> int:
    """`python -m bench.chaos _worker ...`: one posting run (a subprocess of the harness)."""
    parser = argparse.ArgumentParser(prog="bench.chaos _worker")
    parser.add_argument("--side", choices=("pipeline", "baseline"), default="pipeline")
    parser.add_argument("--runner", choices=("dagster", "python"), default=DEFAULT_RUNNER)
    parser.add_argument("--accounts", default="")
    parser.add_argument("--skew", type=float, default=0.0)
    args = parser.parse_args(argv)
    accounts = [a for a in args.accounts.split(",") if a] or None
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the harness's watchdog asks for stacks first
    from pipeline.logs import configure_logging

    configure_logging("text")
    install_skew(args.skew)
    if args.side == "baseline":
        from bench.naive import run_worker

        print(json.dumps({"naive": run_worker(accounts)}), flush=True)
        return 0
    if args.runner == "dagster":
        from importlib.metadata import entry_points

        dagster_main = next(ep for ep in entry_points(group="console_scripts") if ep.name == "dagster").load()
        sys.argv = ["dagster", "job", "execute", "-m", "pipeline.definitions", "-j", "post_job"]
        return int(dagster_main() or 0)
    from pipeline.alerts import AlertSink
    from pipeline.browser import BrowserSession
    from pipeline.db import get_engine
    from pipeline.posting import run_posting
    from pipeline.settings import load_settings

    settings = load_settings()
    engine = get_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
    alerts = AlertSink(engine, cooldown_s=settings.alert_cooldown_s)
    with BrowserSession(executable=settings.browser_executable, headless=True,
                        nav_timeout_s=settings.nav_timeout_s) as browser:
        report = run_posting(engine, settings, browser, accounts=accounts, alerts=alerts)
    print(json.dumps({"report": asdict(report)}, default=str), flush=True)
    return 0


def worker_argv(side: str, runner: str, accounts: list[str] | None, skew: float) -> list[str]:
    """The one place a worker's command line is decided. All-accounts pipeline workers use `runner`;
    account subsets always use run_posting directly (post_job has no account selector)."""
    if side == "baseline" or accounts:
        runner = "python"  # the model has no Dagster job; post_job has no account selector
    argv = [sys.executable, "-m", "bench.chaos", "_worker", "--side", side, "--runner", runner,
            "--skew", repr(skew)]
    if accounts:
        argv += ["--accounts", ",".join(accounts)]
    return argv


@dataclass
class WorkerSpec:
    accounts: list[str] | None
    skew: float
    tz: str
    pgtz: str
    kill_after_s: float | None


class SpecSource:
    """The seeded sequence of worker specs; both sides draw the same sequence."""

    def __init__(self, cfg: ChaosConfig, accounts: list[str]) -> None:
        self.cfg, self.accounts = cfg, accounts
        self.rng = random.Random(f"{cfg.seed}:workers")

    def next(self, chaos: bool) -> WorkerSpec:
        r, cfg = self.rng, self.cfg
        subset = r.random() < cfg.p_subset_worker
        accounts = sorted(r.sample(self.accounts, r.randint(1, max(1, len(self.accounts) // 2)))) if subset else None
        skew = r.choice(SKEWS_S) if r.random() < cfg.p_skew else 0.0
        tz, pgtz = r.choice(ODD_ZONES), r.choice(ODD_ZONES)
        kill = r.uniform(*cfg.kill_window_s) if r.random() < cfg.p_kill else None
        if not chaos:  # phase 2: no faults of any kind
            skew, kill = 0.0, None
        return WorkerSpec(accounts, skew, tz, pgtz, kill)


@dataclass
class Worker:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes]
    started: float
    log_path: Path
    killed: str = ""


# =============================================================================================== fault injectors


class DbChaos:
    """Owns the FaultProxy: cuts (after a post, at random), restores, latency windows. Thread-safe."""

    def __init__(self, proxy: Any, cfg: ChaosConfig, seed: int) -> None:
        self.proxy, self.cfg = proxy, cfg
        self.rng = random.Random(f"{seed}:db")
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.stall_until = 0.0
        self.counts: Counter[str] = Counter()
        self.active = True
        self.next_random = time.monotonic() + self.rng.uniform(1, cfg.random_cut_every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="db-chaos")
        self._thread.start()

    def cut(self, seconds: float, reason: str) -> None:
        with self.lock:
            if not self.active:
                return
            self.counts[reason] += 1
            self.down_until = max(self.down_until, time.monotonic() + seconds)
            self.proxy.cut()

    def after_post(self) -> bool:
        """Called by the sandbox hook the instant a tweet is stored; True when it cut the database."""
        with self.lock:
            if not self.active or self.rng.random() >= self.cfg.p_cut_after_post:
                return False
            long = self.rng.random() < self.cfg.p_long_cut
            seconds = self.rng.uniform(9.0, 12.0) if long else self.rng.uniform(0.3, 2.0)
        self.cut(seconds, "cut_after_post_long" if long else "cut_after_post")
        return True

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self.lock:
                if self.proxy.is_down and now >= self.down_until:
                    self.proxy.restore()
                if self.proxy.stall_s and now >= self.stall_until:
                    self.proxy.stall_s = 0.0
                random_due = self.active and now >= self.next_random
                if random_due:
                    self.next_random = now + self.rng.uniform(0.5, 1.5) * self.cfg.random_cut_every_s
                    stall = self.rng.random() < self.cfg.p_stall_window
                    seconds = self.rng.uniform(0.2, 2.0)
                    stall_s = self.rng.uniform(0.02, 0.15)
            if random_due:
                if stall:
                    with self.lock:
                        self.counts["db_latency_window"] += 1
                        self.proxy.stall_s = stall_s
                        self.stall_until = now + self.rng.uniform(1.0, 3.0)
                else:
                    self.cut(seconds, "cut_random")

    def calm(self) -> None:
        """Phase 2: no more database faults."""
        with self.lock:
            self.active = False
            self.down_until = 0.0
            self.proxy.stall_s = 0.0
            self.proxy.restore()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class Operator:
    """The human: when a session expires, issue a new one and write the session file (after a delay)."""

    def __init__(self, admin: Any, session_paths: dict[str, Path], delay_s: float) -> None:
        self.admin, self.paths, self.delay_s = admin, session_paths, delay_s
        self.lock = threading.Lock()
        self.pending: dict[str, float] = {}
        self.steps: list[dict[str, Any]] = []
        self.t0 = time.monotonic()  # the side's start of faults (set by the runner): at_s counts from it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="operator")
        self._thread.start()

    def notify(self, handle: str) -> None:
        with self.lock:
            self.pending.setdefault(handle, time.monotonic() + self.delay_s)

    def _loop(self) -> None:
        from pipeline.browser import write_secret_file

        while not self._stop.wait(0.1):
            now = time.monotonic()
            with self.lock:
                due = [h for h, at in self.pending.items() if at <= now]
                for h in due:
                    del self.pending[h]
            for handle in due:
                write_secret_file(self.paths[handle], self.admin.create_account(handle))
                self.steps.append({"account": handle, "action": "re-login: new session file written",
                                   "at_s": round(now - self.t0, 1)})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class SandboxTap:
    """Wraps the in-process store: counts operations and injected faults per request, cuts the database the
    instant a tweet is stored, and tells the operator when a session expired."""

    def __init__(self, store: Any, db: DbChaos, operator: Operator, on_stored: Callable[[], bool],
                 cfg: ChaosConfig) -> None:
        self.store, self.db, self.operator, self.on_stored, self.cfg = store, db, operator, on_stored, cfg
        self.rng = random.Random(f"{cfg.seed}:burst")
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._post, self._page = store.post, store.page_faults
        store.post = self.post
        store.page_faults = self.page_faults

    def _fired(self, before: dict[str, int]) -> list[str]:
        return [k for k, v in self.store.faults.fired.items() if v > before.get(k, 0)]

    def post(self, handle: str, text: Any, reply_to: Any) -> Any:
        before = dict(self.store.faults.fired)
        result = self._post(handle, text, reply_to)
        fired = self._fired(before)
        cut = result.tweet is not None and self.db.after_post()
        if result.tweet is not None and self.on_stored() and self.rng.random() < self.cfg.p_timeline_burst:
            self.bury(handle)
        with self.lock:
            self.counts["post_ops"] += 1
            self.counts["stored"] += result.tweet is not None
            if fired or cut:
                self.counts["post_ops_faulted"] += 1
            if result.status == 429 and "rate_limit" not in fired:
                self.counts["rate_limited_responses"] += 1
        if "session_expired" in fired:
            self.operator.notify(handle)
        return result

    def bury(self, handle: str) -> None:
        """BURST newer posts on the account, unfaulted (this runs inside the CreateTweet handler, on the
        server's one event-loop thread, so no other request interleaves)."""
        from sandbox.faults import FaultBox

        box, self.store.faults = self.store.faults, FaultBox()
        try:
            n = self.counts["timeline_bursts"]
            for i in range(BURST):
                self._post(handle, f"{FOREIGN_MARK} {handle} burst {n} post {i}", None)
        finally:
            self.store.faults = box
        with self.lock:
            self.counts["timeline_bursts"] += 1

    def page_faults(self, handle: str | None) -> Any:
        before = dict(self.store.faults.fired)
        result = self._page(handle)
        with self.lock:
            self.counts["page_ops"] += 1
            self.counts["page_ops_faulted"] += bool(self._fired(before))
        return result


# =============================================================================================== one side


class SideRunner:
    """Runs one side (pipeline or baseline) through both phases and returns its metrics and details."""

    side = "pipeline"
    app_name = PIPELINE_APP

    def __init__(self, cfg: ChaosConfig, plan: list[PlanItem], workdir: Path, log: Callable[[str], None] = print) -> None:
        self.cfg, self.plan, self.workdir = cfg, plan, workdir
        self.accounts = handles(cfg.accounts)
        self.log = log
        self.state_dir = workdir / "state"
        self.logs_dir = workdir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.session_paths = {h: self.state_dir / "sessions" / f"{h}.json" for h in self.accounts}
        self.workers: list[Worker] = []
        self.runs: Counter[str] = Counter()
        self.max_connections = 0
        self.skewed_runs = 0
        self.run_log: list[dict[str, Any]] = []
        self.workers_lock = threading.Lock()
        self.chaos = True
        self.t0 = time.monotonic()

    # ---------------------------------------------------------------- hooks for the two sides

    def create_schema(self) -> None:
        from pipeline.migrate import upgrade

        upgrade(self.engine)

    def register(self, handle: str, path: Path) -> None:
        from pipeline import queue

        queue.add_account(self.engine, handle, str(path))

    def enqueue(self) -> None:
        from pipeline import queue
        from pipeline.content import make_draft
        from pipeline.db import db_now

        with self.engine.connect() as conn:
            now = db_now(conn)
        entries = [(make_draft(p.account, p.parts), None if p.offset_s is None else now + timedelta(seconds=p.offset_s))
                   for p in self.plan]
        ids = queue.enqueue(self.engine, entries, source="chaos")
        self.item_keys = dict(zip(ids, (p.key for p in self.plan), strict=True))

    def counts_sql(self) -> str:
        """(unattempted, due work, not quiet, progress: any change means workers are getting somewhere)."""
        return ("SELECT count(*) FILTER (WHERE attempts = 0 AND state IN ('queued', 'claimed')), "
                "count(*) FILTER (WHERE (state = 'queued' AND scheduled_at <= now()) OR state = 'unknown' "
                "  OR (state IN ('claimed', 'posting') AND lease_expires_at < now())), "
                "count(*) FILTER (WHERE state IN ('queued', 'claimed', 'posting', 'unknown')), "
                "coalesce(sum(attempts), 0) + count(*) FILTER (WHERE state = 'posted') "
                "  + coalesce(sum(unknown_checks), 0) FROM content_items")

    def journal_pending(self) -> int:
        from pipeline.journal import Journal

        return len(Journal(self.state_dir / "journal.jsonl").pending())

    def snapshot(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, account, parts, state, last_error FROM content_items ORDER BY id")).mappings().all()
            recorded: dict[int, dict[int, str]] = {}
            for item_id, part, tweet_id in conn.execute(sa.text("SELECT item_id, part_index, tweet_id FROM tweets")):
                recorded.setdefault(item_id, {})[part] = tweet_id
        out = []
        for r in rows:
            parts = recorded.get(r["id"], {})
            ids = [parts[i] for i in range(len(parts)) if i in parts]  # stop at the first gap
            out.append({"id": self.item_keys.get(r["id"], r["id"]), "account": r["account"], "parts": list(r["parts"]),
                        "state": r["state"], "tweet_ids": ids, "reason": r["last_error"]})
        return out

    def extra_details(self) -> dict[str, Any]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            via = dict(conn.execute(sa.text("SELECT recorded_via, count(*) FROM tweets GROUP BY recorded_via")).all())
            alerts = [r[0] for r in conn.execute(sa.text("SELECT key FROM alerts ORDER BY id"))]
            outcomes = dict(conn.execute(sa.text("SELECT outcome, count(*) FROM post_attempts GROUP BY outcome")).all())
            trips = dict(conn.execute(sa.text(
                "SELECT to_state, count(*) FROM breaker_transitions GROUP BY to_state")).all())
        return {"recorded_via": via, "attempt_outcomes": outcomes, "breaker_transitions": trips,
                "auth_alerts": sum(1 for k in alerts if k.startswith("breaker-forced:") and ":auth:" in k), "alerts": len(alerts),
                "journal_pending_at_end": self.journal_pending()}

    def connection_bound(self) -> int:
        return self.cfg.workers * (5 + 10)  # PIPELINE_DB_POOL_SIZE + PIPELINE_DB_MAX_OVERFLOW per process

    # ---------------------------------------------------------------- the run

    def setup(self) -> None:
        import sqlalchemy as sa

        from pipeline.browser import write_secret_file
        from pipeline.db import get_engine
        from sandbox.client import SandboxAdmin
        from sandbox.dbproxy import FaultProxy
        from sandbox.server import SandboxServer
        from tests import pg

        self._dagster_init = self.start_dagster_home()
        self.pg_admin = pg.admin_url()
        self.db_url = pg.create_database(self.pg_admin, prefix=f"chaos_{self.side}")
        self.db_name = self.db_url.rsplit("/", 1)[1]
        self.engine = get_engine(self.db_url, application_name=HARNESS_APP)
        self.create_schema()
        self.server = SandboxServer(host="127.0.0.1", port=0, seed=self.cfg.seed)
        self.server.start()
        self.admin = SandboxAdmin(self.server.url)
        self.admin.set_rules(duplicate_window_hours=0, posts_per_3h=1_000_000, posts_per_day=1_000_000)
        for handle, path in self.session_paths.items():
            write_secret_file(path, self.admin.create_account(handle))
            self.register(handle, path)
        url = sa.make_url(self.db_url)
        self.proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
        self.proxied_url = url.set(port=self.proxy.port).render_as_string(hide_password=False)
        self.db_chaos = DbChaos(self.proxy, self.cfg, self.cfg.seed)
        self.operator = Operator(self.admin, self.session_paths, self.cfg.operator_delay_s)
        self.tap = SandboxTap(self.server.store, self.db_chaos, self.operator, self.kill_on_post, self.cfg)
        _track_fired(self)
        self.dagster_home = self.workdir / "dagster_home"
        self.init_dagster_home()  # (started first thing in setup; waited for here)
        self.specs = SpecSource(self.cfg, self.accounts)
        self.kill_rng = random.Random(f"{self.cfg.seed}:kills")

    def start_dagster_home(self) -> subprocess.Popen[bytes] | None:
        """Create the Dagster instance's storage once, before workers start: concurrent first runs on an empty
        DAGSTER_HOME race on Dagster's own SQLite schema stamp (two alembic heads) and every later run fails."""
        self.dagster_home = self.workdir / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        if self.side != "pipeline":
            return None
        shutil.copy(ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        return subprocess.Popen([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"],
                                env={**os.environ, "DAGSTER_HOME": str(self.dagster_home)}, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init_dagster_home(self) -> None:
        if self._dagster_init is not None and self._dagster_init.wait() != 0:
            raise RuntimeError(f"could not create the Dagster instance in {self.dagster_home}")

    def env_for(self, spec: WorkerSpec) -> dict[str, str]:
        from pipeline.browser import find_executable

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_HOME", "PGTZ"))}
        env.update(self.cfg.worker_env())
        env.update({
            "PIPELINE_DATABASE_URL": self.proxied_url,
            "PIPELINE_X_BASE_URL": self.server.url,
            "PIPELINE_STATE_DIR": str(self.state_dir),
            "PIPELINE_BROWSER_EXECUTABLE": find_executable() or "",
            "DAGSTER_HOME": str(self.dagster_home),
            "TZ": spec.tz,
            "PGTZ": spec.pgtz,
            "PYTHONPATH": str(ROOT),
            "NO_PROXY": "127.0.0.1,localhost",
        })
        return env

    def launch(self, chaos: bool) -> None:
        spec = self.specs.next(chaos)
        n = sum(self.runs.values()) + len(self.workers)
        log_path = self.logs_dir / f"run_{n:04d}.log"
        argv = worker_argv(self.side, self.cfg.runner, spec.accounts, spec.skew)
        with open(log_path, "wb") as fh:
            fh.write((json.dumps(asdict(spec)) + "\n").encode())
            fh.flush()
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env_for(spec), stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.skewed_runs += bool(spec.skew)
        with self.workers_lock:
            self.workers.append(Worker(spec, proc, time.monotonic(), log_path))

    def kill(self, w: Worker, why: str) -> None:
        """SIGKILL the worker's whole process group (Chromium included); `why` is counted when it is reaped."""
        if w.killed:
            return
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        w.killed = why

    def kill_on_post(self) -> bool:
        """Sandbox hook, called the instant a tweet is stored (before its response leaves): maybe SIGKILL a
        running worker right now. The poster is not known, so the victim is any running worker."""
        if not self.chaos or self.kill_rng.random() >= self.cfg.p_kill_on_post:
            return False
        with self.workers_lock:
            live = [w for w in self.workers if not w.killed and w.proc.poll() is None]
            if live:
                self.kill(self.kill_rng.choice(live), "sigkill_after_post")
        return bool(live)

    def diagnose(self, w: Worker) -> None:
        """Before the watchdog kills a run: its threads' stacks (faulthandler, SIGUSR1) and the database's view
        of every session, appended to the run's log."""
        import sqlalchemy as sa

        try:
            os.kill(w.proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return
        time.sleep(1.0)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT pid, application_name, state, wait_event_type, wait_event, now() - xact_start, "
                    "left(query, 120) FROM pg_stat_activity WHERE datname = :d"), {"d": self.db_name}).all()
            with open(w.log_path, "a") as fh:
                fh.write("\n[watchdog] pg_stat_activity:\n" + "\n".join(map(str, rows)) + "\n")
        except Exception:  # noqa: BLE001 - diagnostics must never stop the run
            pass

    def reap(self) -> None:
        now = time.monotonic()
        for w in list(self.workers):
            rc = w.proc.poll()
            if rc is None:
                if self.chaos and w.spec.kill_after_s is not None and now - w.started >= w.spec.kill_after_s:
                    self.kill(w, "sigkill")
                elif now - w.started >= self.cfg.run_limit_s and not w.killed:
                    self.diagnose(w)
                    self.kill(w, "watchdog_kill")
                continue
            self.runs[w.killed or ("exit_0" if rc == 0 else f"exit_{rc}")] += 1
            try:  # Chromium left behind by a crashed run
                os.killpg(w.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            with self.workers_lock:
                self.workers.remove(w)
            self.run_log.append({"log": w.log_path.name, "start_s": round(w.started - self.t0, 1),
                                 "duration_s": round(now - w.started, 1), "rc": rc, "ended": w.killed or "exit",
                                 "accounts": w.spec.accounts, "skew": w.spec.skew})

    def sample(self) -> tuple[int, int, int, int]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            unattempted, due, not_quiet, progress = conn.execute(sa.text(self.counts_sql())).one()
        return int(unattempted), int(due), int(not_quiet), int(progress)

    def _sampler(self) -> None:
        import sqlalchemy as sa

        while not self._stop_sampling.wait(0.25):
            try:
                with self.engine.connect() as conn:
                    n = conn.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND application_name = :a"),
                        {"d": self.db_name, "a": self.app_name}).scalar_one()
                self.max_connections = max(self.max_connections, int(n))
            except Exception:  # noqa: BLE001 - sampling must never stop the run
                pass

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        t_setup = time.monotonic()
        deadline = t_setup + cfg.time_budget_s if cfg.time_budget_s else math.inf
        self.setup()
        try:
            self.enqueue()
            self.admin.set_faults(cfg.sandbox_faults(), seed=cfg.seed)
            self._stop_sampling = threading.Event()
            sampler = threading.Thread(target=self._sampler, daemon=True, name="pg-sampler")
            sampler.start()
            t0 = self.t0 = self.operator.t0 = time.monotonic()
            self.log(f"[{self.side}] {len(self.plan)} items enqueued; faults on (setup {t0 - t_setup:.1f}s)")
            chaos, t_calm, quiet_at, last_report, tap_at_calm = True, None, None, t0, None
            last_progress, progressed_at, launched_at = -1, t0, 0.0
            while True:
                now = time.monotonic()
                self.reap()
                unattempted, due, not_quiet, progress = self.sample()
                if progress != last_progress:
                    last_progress, progressed_at = progress, now
                not_quiet += self.journal_pending()
                if chaos and (unattempted == 0 or now - t0 >= cfg.fault_limit_s or now >= deadline - 60):
                    chaos, t_calm = False, now
                    self.chaos = False
                    tap_at_calm = dict(self.tap.counts)
                    self.admin.clear_faults()
                    self.db_chaos.calm()
                    self.log(f"[{self.side}] faults off after {now - t0:.0f}s "
                             f"({'every item tried' if unattempted == 0 else 'time limit'})")
                if not chaos:
                    if not_quiet == 0 and not self.workers:
                        quiet_at = now
                        break
                    if now - t_calm >= cfg.quiet_limit_s or now >= deadline:
                        self.log(f"[{self.side}] NOT quiet {now - t_calm:.0f}s after the faults: {not_quiet} items left")
                        break
                # Roughly one worker per due item, up to --workers; while nothing moves (every account's breaker
                # holds), start a run only every few seconds instead of burning CPU on start-ups.
                gap = 1.0 if now - progressed_at < 10 else 5.0
                wanted = due > len(self.workers) or (not self.workers and self.journal_pending())
                if len(self.workers) < cfg.workers and wanted and now - launched_at >= gap:
                    self.launch(chaos)
                    launched_at = now
                if now - last_report >= 15:
                    last_report = now
                    self.log(f"[{self.side}] t={now - t0:.0f}s {'faults' if chaos else 'calm'} unattempted={unattempted} "
                             f"due={due} active={not_quiet} workers={len(self.workers)} runs={dict(self.runs)}")
                time.sleep(0.2)
            for w in self.workers:
                self.kill(w, "end")
                w.proc.wait()
            self.workers.clear()
            self._stop_sampling.set()
            sampler.join(2)
            everything = self.admin.tweets()
            truth = [t for t in everything if not t["text"].startswith(FOREIGN_MARK)]
            verdict = check(self.snapshot(), truth)
            faults = self.fault_counts()
            metrics = {
                "posts": verdict.posts, "faults": sum(faults.values()), "duplicates": verdict.duplicates,
                "lost": verdict.lost, "false_failures": verdict.false_failures,
                "missing_tweet_ids": verdict.missing_tweet_ids, "unexpected": verdict.unexpected,
                "unknown_left": verdict.unknown_left,
                "seconds_to_quiet": None if quiet_at is None else round(quiet_at - t_calm, 1),
                "max_connections": self.max_connections,
            }
            tap = dict(self.tap.counts)
            during = tap_at_calm or tap
            details = {
                **verdict.details,
                "faults_by_kind": faults,
                "foreign_posts_ignored": len(everything) - len(truth),
                "fault_phase_s": round((t_calm or time.monotonic()) - t0, 1),
                "total_s": round((quiet_at or time.monotonic()) - t0, 1),
                "quiet": quiet_at is not None,
                "operations": tap,
                "post_ops_faulted_share": round(tap.get("post_ops_faulted", 0) / max(1, tap.get("post_ops", 0)), 3),
                "post_ops_faulted_share_while_faults_on": round(
                    during.get("post_ops_faulted", 0) / max(1, during.get("post_ops", 0)), 3),
                "post_ops_while_faults_on": during.get("post_ops", 0),
                "all_ops_faulted_share": round(
                    (tap.get("post_ops_faulted", 0) + tap.get("page_ops_faulted", 0))
                    / max(1, tap.get("post_ops", 0) + tap.get("page_ops", 0)), 3),
                "runs": dict(self.runs),
                "run_log": self.run_log,
                "skewed_runs": self.skewed_runs,
                "human_steps": len(self.operator.steps),
                "human_step_log": self.operator.steps,
                "connection_bound": self.connection_bound(),
                **self.extra_details(),
            }
            return {"metrics": metrics, "details": details}
        finally:
            self.teardown()

    def fault_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        counts.update({f"sandbox_{k}": v for k, v in self.fired_total.items()})
        counts.update(self.db_chaos.counts)
        counts["sigkill"] = self.runs.get("sigkill", 0) + self.runs.get("sigkill_after_post", 0)
        if self.tap.counts.get("timeline_bursts"):
            counts["timeline_burst"] = self.tap.counts["timeline_bursts"]
        return dict(counts)

    def teardown(self) -> None:
        for w in getattr(self, "workers", []):
            self.kill(w, "end")
        for name in ("operator", "db_chaos"):
            if hasattr(self, name):
                getattr(self, name).close()
        if hasattr(self, "proxy"):
            self.proxy.close()
        if hasattr(self, "server"):
            self.server.stop()
        from pipeline.db import dispose_engines
        from tests import pg

        dispose_engines()
        if hasattr(self, "db_url") and not os.environ.get("CHAOS_KEEP_DB"):
            pg.drop_database(self.pg_admin, self.db_url)


class PipelineRunner(SideRunner):
    side = "pipeline"


class BaselineRunner(SideRunner):
    side = "baseline"
    app_name = "naive-baseline"

    def create_schema(self) -> None:
        from bench import naive

        naive.create_schema(self.engine)

    def register(self, handle: str, path: Path) -> None:
        from bench import naive

        naive.add_account(self.engine, handle, str(path))

    def enqueue(self) -> None:
        from bench import naive

        naive.enqueue(self.engine, [(p.key, p.account, p.parts, p.offset_s) for p in self.plan])
        self.item_keys = {p.key: p.key for p in self.plan}

    def counts_sql(self) -> str:
        lease = float(self.cfg.lease_s)
        return ("SELECT count(*) FILTER (WHERE attempts = 0 AND state = 'pending'), "
                "count(*) FILTER (WHERE (state = 'pending' AND scheduled_at <= now()) "
                f"  OR (state = 'posting' AND updated_at < now() - interval '{lease} seconds')), "
                "count(*) FILTER (WHERE state IN ('pending', 'posting')), "
                "coalesce(sum(attempts), 0) + count(*) FILTER (WHERE state = 'posted') FROM naive_items")

    def journal_pending(self) -> int:
        return 0

    def snapshot(self) -> list[dict[str, Any]]:
        from bench import naive

        return naive.snapshot(self.engine)

    def extra_details(self) -> dict[str, Any]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            attempts = conn.execute(sa.text("SELECT coalesce(sum(attempts), 0) FROM naive_items")).scalar_one()
        return {"item_claims": int(attempts), "model": "bench/naive.py: a MODEL of the predecessor, not its code"}


def _track_fired(runner: SideRunner) -> None:
    """Count every fault the sandbox fires (its own counters reset when the faults are cleared)."""
    runner.fired_total = Counter()
    store = runner.server.store
    original = store.faults.roll

    def roll(name: str, account: str | None = None) -> Any:
        result = original(name, account)
        if result is not None:
            runner.fired_total[name] += 1
        return result

    store.faults.roll = roll


RUNNERS: dict[str, type[SideRunner]] = {"pipeline": PipelineRunner, "baseline": BaselineRunner}


def run_side(side: str, cfg: ChaosConfig, workdir: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one side in this process and return {"metrics": ..., "details": ...}."""
    own = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{side}-"))
    try:
        return RUNNERS[side](cfg, make_plan(cfg), workdir, log).run()
    finally:
        if own and not os.environ.get("CHAOS_KEEP_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)


def side_main(argv: list[str]) -> int:
    """`python -m bench.chaos _side --side S --config FILE --out FILE`: one side in its own process."""
    parser = argparse.ArgumentParser(prog="bench.chaos _side")
    parser.add_argument("--side", choices=sorted(RUNNERS), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    cfg = ChaosConfig.from_dict(json.loads(Path(args.config).read_text()))
    result = run_side(args.side, cfg, Path(args.workdir), log=lambda m: print(m, flush=True))
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0


# =============================================================================================== the report


def markdown(result: dict[str, Any]) -> str:
    sides = [s for s in ("pipeline", "baseline") if s in result]
    label = {"pipeline": "pipeline", "baseline": "baseline (naive MODEL of the predecessor)"}
    rows = [(m, [result[s][m] for s in sides]) for m in METRICS]
    extra = [
        ("share of CreateTweet requests faulted (whole run)", "post_ops_faulted_share"),
        ("share of CreateTweet requests faulted while faults were on", "post_ops_faulted_share_while_faults_on"),
        ("share of all operations faulted (posts + page loads)", "all_ops_faulted_share"),
        ("extra copies behind the duplicates", "duplicate_copies"),
        ("given up with a reason and never posted (not counted as lost)", "terminal_not_on_platform"),
        ("human steps (re-login after an expired session)", "human_steps"),
        ("connection bound (workers x pool)", "connection_bound"),
        ("quiet reached", "quiet"),
        ("seconds with faults on", "fault_phase_s"),
        ("tweets on platform / expected", None),
        ("runs (exit codes, SIGKILLs)", "runs"),
    ]
    for title, key in extra:
        values = []
        for s in sides:
            d = result["details"][s]
            values.append(f"{d['tweets_on_platform']} / {d['tweets_expected']}" if key is None else d.get(key))
        rows.append((title, values))
    head = "| metric | " + " | ".join(label[s] for s in sides) + " |\n|---|" + "---|" * len(sides) + "\n"

    def cell(v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k} {n}" for k, n in sorted(v.items()))
        return "n/a (not quiet)" if v is None else str(v)

    body = "\n".join(f"| {name} | " + " | ".join(cell(v) for v in values) + " |" for name, values in rows)
    cfg = result["config"]
    return (f"Chaos run: {cfg['posts']} items, seed {result['seed']}, {cfg['accounts']} accounts, "
            f"{cfg['workers']} concurrent workers per side (all-accounts runs through `{cfg['runner']}`), "
            f"{result['elapsed_s']} s wall. Faults: post_commit_stall, post_error_5xx, rate_limit, session_expired, "
            "slow_page, database cut at the instant a post is stored and at random, database latency, SIGKILL, "
            "app-clock skew and odd TZ/PGTZ, items due at exactly now(). The baseline is `bench/naive.py`, a model of "
            "the predecessor (post then save, retry any failure, 5-failure/60 s breaker), not its code.\n\n"
            + head + body + "\n")


def failures_of(metrics: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """What --check rejects on the pipeline side."""
    bad = [f"{k}={metrics[k]}" for k in ("duplicates", "lost", "false_failures", "missing_tweet_ids", "unexpected",
                                         "unknown_left") if metrics[k]]
    if metrics["max_connections"] > details.get("connection_bound", math.inf):
        bad.append(f"max_connections={metrics['max_connections']} > bound {details['connection_bound']}")
    if not details.get("quiet", True):
        bad.append("queue not quiet before the limit")
    return bad


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        return worker_main(argv[1:])
    if argv and argv[0] == "_side":
        return side_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "chaos.json"))
    parser.add_argument("--check", action="store_true", help="exit 1 on any correctness failure of the pipeline side")
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--runner", choices=("dagster", "python"), default=DEFAULT_RUNNER)
    parser.add_argument("--sides", choices=("both", "pipeline", "baseline"), default="both")
    parser.add_argument("--quiet-limit", type=float, default=None, help="seconds to wait for quiet after the faults")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="each side stops this many seconds after it started (default 275; 0: no budget)")
    parser.add_argument("--fault-limit", type=float, default=None, help="most seconds with faults on")
    parser.add_argument("--intensity", type=float, default=1.0, help="multiply every fault probability (0: none)")
    parser.add_argument("--timeline-burst", type=float, default=0.0, metavar="P",
                        help=f"opt-in fault: after a kill at a stored post, bury it under {BURST} newer posts (prob.)")
    args = parser.parse_args(argv)
    cfg = ChaosConfig(posts=args.posts, seed=args.seed, accounts=args.accounts, workers=args.workers,
                      runner=args.runner)
    if args.quiet_limit:
        cfg.quiet_limit_s = args.quiet_limit
    if args.fault_limit:
        cfg.fault_limit_s = args.fault_limit
    if args.time_budget is not None:
        cfg.time_budget_s = args.time_budget
    cfg.p_timeline_burst = args.timeline_burst
    if args.intensity != 1.0:
        cfg = scaled(cfg, args.intensity)
    sides = ["pipeline", "baseline"] if args.sides == "both" else [args.sides]
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    (work / "config.json").write_text(json.dumps(asdict(cfg)))
    procs = {}
    for side in sides:
        procs[side] = subprocess.Popen(
            [sys.executable, "-m", "bench.chaos", "_side", "--side", side, "--config", str(work / "config.json"),
             "--out", str(work / f"{side}.json"), "--workdir", str(work / side)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    codes = {side: p.wait() for side, p in procs.items()}
    if any(codes.values()):
        print(f"chaos: a side failed to run: {codes} (work dir {work})", file=sys.stderr)
        return 2
    results = {side: json.loads((work / f"{side}.json").read_text()) for side in sides}
    out: dict[str, Any] = {side: results[side]["metrics"] for side in sides}
    out["seed"] = cfg.seed
    out["config"] = asdict(cfg)
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    out["details"] = {side: results[side]["details"] for side in sides}
    table = markdown(out)
    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    json_path.with_suffix(".md").write_text(table)
    print()
    print(table)
    if not os.environ.get("CHAOS_KEEP_DIR"):
        shutil.rmtree(work, ignore_errors=True)
    if args.check and "pipeline" in out:
        bad = failures_of(out["pipeline"], out["details"]["pipeline"])
        if bad:
            print("chaos --check FAILED (pipeline): " + ", ".join(bad), file=sys.stderr)
            return 1
        print("chaos --check passed: the pipeline side has no duplicate, loss, false failure or missing id")
    return 0


if __name__ == "__main__":
    sys.exit(main())
