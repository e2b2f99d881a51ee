"""Per-post time of the full posting protocol against the sandbox (no injected latency): the pipeline's
one reused browser beside a fresh browser per post, in the same run; and browser memory over 300 posts.
Posts with media: bench/posting_media.py.

    .venv/bin/python bench/posting.py [--posts 300] [--fresh-posts 20]

Goals (issue 4): reused at least 3x faster than a fresh browser per post; browser RSS growth under 10 %
from post 50 to post 300.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import markdown_table, start_sandbox, summary_ms, write_result  # noqa: E402
from pipeline import queue  # noqa: E402
from pipeline.browser import BrowserSession, write_secret_file  # noqa: E402
from pipeline.content import make_draft  # noqa: E402
from pipeline.db import get_engine  # noqa: E402
from pipeline.migrate import upgrade  # noqa: E402
from pipeline.posting import run_posting  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402


def descendants_rss_kib(root: int, exclude: int) -> int:
    """Resident memory of every process below `root` (the browser and its renderers), from /proc, leaving
    out the `exclude` subtree (the sandbox server, whose in-memory store grows with every post)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid for pid in children.get(root, []) if pid != exclude]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--fresh-posts", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-posting-"))
    port = 18765
    server, admin = start_sandbox(port)
    try:
        settings = load_settings(env={"PIPELINE_DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
                                      "PIPELINE_X_BASE_URL": admin.url, "PIPELINE_STATE_DIR": str(work / "state"),
                                      "PIPELINE_RUN_BUDGET": "1"})
        engine = get_engine(settings.database_url)
        upgrade(engine)
        session = write_secret_file(work / "state" / "bench.json", admin.create_account("bench"))
        queue.add_account(engine, "bench", str(session))
        total = args.posts + args.fresh_posts
        queue.enqueue(engine, [(make_draft("bench", [f"Benchmark post {n}"]), None) for n in range(total)])

        reused, rss = [], {}
        with BrowserSession() as browser:
            for n in range(1, args.posts + 1):
                start = time.perf_counter()
                assert run_posting(engine, settings, browser).posted == 1
                reused.append(time.perf_counter() - start)
                if n in (1, 50, 100, 200, args.posts):
                    rss[n] = descendants_rss_kib(os.getpid(), exclude=server.pid)
        fresh = []
        for _ in range(args.fresh_posts):
            start = time.perf_counter()
            with BrowserSession() as browser:
                assert run_posting(engine, settings, browser).posted == 1
            fresh.append(time.perf_counter() - start)
        assert len(admin.tweets()) == total
    finally:
        server.terminate()
        server.wait(10)
    ours, base = summary_ms(reused), summary_ms(fresh)
    growth = (rss[args.posts] - rss[50]) / rss[50] * 100 if 50 in rss else float("nan")
    rows = [
        {"strategy": "pipeline: one reused browser", "posts": ours["n"], "median_ms": ours["p50_ms"],
         "p99_ms": ours["p99_ms"], "browser_rss_mib_post50": round(rss.get(50, 0) / 1024, 1),
         "browser_rss_mib_last": round(rss[args.posts] / 1024, 1), "rss_growth_pct": round(growth, 1)},
        {"strategy": "baseline: fresh browser per post", "posts": base["n"], "median_ms": base["p50_ms"],
         "p99_ms": base["p99_ms"]},
    ]
    speedup = base["p50_ms"] / ours["p50_ms"]
    payload = {"benchmark": "posting", "results": rows, "speedup_median": round(speedup, 2),
               "rss_kib_by_post": rss, "goals": {"speedup>=3": speedup >= 3, "rss_growth<10%": growth < 10},
               "mean_reused_ms": round(statistics.fmean(reused) * 1000, 1)}
    write_result("posting", payload, markdown_table(rows, list(rows[0])) +
                 f"\n\nspeedup (median): {speedup:.1f}x; RSS growth post 50 -> {args.posts}: {growth:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
