"""Chaos harness with a Jepsen-style checker: the pipeline and a model of its predecessor under one fault schedule.

    .venv/bin/python bench/chaos.py --posts 200 --json bench/results/chaos.json --check [--seed N]
        [--accounts 4] [--workers 3] [--sides both|pipeline|baseline] [--runner dagster|python]

Each side (the pipeline, and `bench/naive.py`, a labelled MODEL of the predecessor) gets its own sandbox (an
in-process `SandboxServer`), its own fresh PostgreSQL database behind a `FaultProxy`, the same items, the same
limits (workers, tries) and the same fault EVENTS: one schedule is drawn from the seed (a new seed each run
unless --seed; it is printed) and replayed on both sides (`bench/chaos_faults.py`). The sides run at the same
time, each in its own process.

Faults, phase 1 (until every item has been tried once, or --fault-limit seconds; items not reached by then are
posted in phase 2):
- sandbox faults by request slot, from the table `SANDBOX_FAULTS` (a name the sandbox does not know yet is left
  out and listed). X's own duplicate rule is off (`duplicate_window_hours=0`) so duplicates measure OUR
  protection, not X's;
- the database: the proxy is cut the instant the sandbox stores a post (a hook on the sandbox's store, so the
  cut lands before the CreateTweet response leaves), at least once for longer than the pipeline's confirm
  retries (forcing the journal), plus short cuts and latency windows at scheduled times;
- processes: several workers at once against the same PostgreSQL (all accounts through `dagster job execute
  -m pipeline.definitions -j post_job`, and single/several accounts through `run_posting` directly, since the
  job has no account selector), some killed with SIGKILL, their whole process tree (Chromium included): at a
  random time after their start, and, from a hook on the sandbox's store, the worker whose browser sent the
  CreateTweet at the instant its post is stored (found by the request's TCP socket);
- an expired session: the simulated operator (a webhook receiver set as PIPELINE_ALERT_WEBHOOK_URL) re-logs an
  account only when an alert it received names that account and a session problem; that is counted as a human
  step. It never reads the sandbox. The naive model sends no alerts (the predecessor had none);
- clock skew: what "skew" means here, honestly: there is no faketime on this machine, so a worker's APP clock
  is shifted inside its process: `time.time`/`time.time_ns` and the `datetime` class as seen by the pipeline's
  (and the model's) modules return real time + skew. The database clock, the sandbox clock and Chromium's
  clock are NOT skewed. Workers also get odd `TZ` and `PGTZ` (session time zone) values;
- timing: a share of the items is scheduled at exactly the database's now() at enqueue time, the rest
  spread over the first seconds of the run. Texts carry line breaks, URLs, bare domains, emoji and mentions.

Phase 2: every fault is removed (sandbox faults cleared, proxy restored, no kills, no skew) and workers keep
running until the queue is quiet (nothing queued, claimed, posting or unknown, journal empty) or
--quiet-limit seconds. `seconds_to_quiet` is measured from the moment the faults were removed.

Workers are started the way a deployment would run them, never told what happened: the harness only launches
runs (about one per due item, up to --workers at once) and, after an expired session, writes a new session
file. Every run's output is kept under the work directory (CHAOS_KEEP_DIR=1 keeps it, CHAOS_KEEP_DB=1 keeps
the databases); a run still going after `run_limit_s` is asked for its stacks (SIGUSR1) and killed.

Modules: `chaos_plan` (configuration, items), `chaos_faults` (the schedule, kills, the operator), `chaos_inject`
(the database proxy's and the sandbox's injectors), `chaos_worker` (one worker process), `chaos_side` (one side
through both phases), `chaos_check` (the verdict and the gate); this file runs the sides and writes the report.

Checker (`bench/chaos_check.py`): from the harness's own plan and the sandbox's ground truth, comparing id
sets, not counts. `--check` exits 1 when the pipeline side has any duplicate, lost item, false failure (given up
without a content rejection), missing or wrong tweet id, unexpected post, item left unknown/needs_review, broken
thread chain, or more connections than its bound; and when the run was too gentle to prove anything (under 30 %
of CreateTweet requests faulted while faults were on, no long database cut, or fewer than 3 kills).
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
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from typing import Any  # noqa: E402

from bench.chaos_check import failures_of  # noqa: E402
from bench.chaos_plan import BURST, DEFAULT_RUNNER, METRICS, ChaosConfig, scaled  # noqa: E402
from bench.chaos_side import side_main  # noqa: E402
from bench.chaos_worker import worker_main  # noqa: E402

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
        ("alerts the operator's webhook received", "alerts_received"),
        ("human steps (re-login after an alert about a session)", "human_steps"),
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
            f"{result['elapsed_s']} s wall. One fault schedule (events by request, stored post and time) replayed on "
            f"both sides. Sandbox faults: {', '.join(sorted(result['details'][sides[0]]['fault_schedule_names']))}; "
            "database cut at the instant a post is stored (some past the confirm retries) and at random, database "
            "latency, SIGKILL of a worker's whole process tree (at random times and the poster at the instant its post "
            "is stored), app-clock skew and odd TZ/PGTZ, items due at exactly now(). Texts carry line breaks, URLs, "
            "emoji and mentions. The operator acts only on alerts its webhook receives. The baseline is "
            "`bench/naive.py`, a model of the predecessor (post then save, retry any failure, 5-failure/60 s breaker, "
            "no alerts), not its code.\n\n"
            + head + body + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        return worker_main(argv[1:])
    if argv and argv[0] == "_side":
        return side_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="replay a run's faults (default: a new seed each run)")
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
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    print(f"chaos: seed {seed} (replay this run's fault events with --seed {seed})", flush=True)
    cfg = ChaosConfig(posts=args.posts, seed=seed, accounts=args.accounts, workers=args.workers,
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
    load_at_start = [round(x, 2) for x in os.getloadavg()]
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
    out["load_average"] = {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]}
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
        print("chaos --check passed: the pipeline side has no duplicate, loss, false failure, missing id, unclear "
              "item or broken thread, under enough faults to count")
    return 0


if __name__ == "__main__":
    sys.exit(main())

