"""A chaos worker: one posting run in its own process (`python -m bench.chaos _worker ...`), app clock skewed."""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.chaos_plan import DEFAULT_RUNNER, ODD_ZONES, SKEWS_S, ChaosConfig

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
    alerts = AlertSink(engine, webhook_url=settings.alert_webhook_url, cooldown_s=settings.alert_cooldown_s)
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


