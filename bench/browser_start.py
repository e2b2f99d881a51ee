"""Benchmark: one account's browser start, on Chromium's headless shell against the full browser's --headless.

Each launch is what a posting thread does first: a Playwright driver, Chromium, a context with the account's
session, the home timeline and the composer of the local sandbox, then close. Measured per launch: wall time,
the CPU time of the whole process tree (the driver and Chromium, children reaped), and the processes below
the benchmark while the composer is open (the driver, Chromium and its helpers).
Both executables run in the same process, alternating, under the same flags (pipeline.browser.CHROMIUM_ARGS).

    .venv/bin/python -m bench.browser_start [--launches 5]

Results: bench/results/browser_start.json and .md. No goal of its own: it explains the scale figure of
bench/ontime.py (each account starts a browser).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path
from typing import Any

from bench.common import markdown_table, percentile, write_result
from pipeline.browser import CHROMIUM_ARGS, HEADLESS_SHELLS, SYSTEM_CHROMIUMS


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _descendants() -> int:
    """Processes below this one (the Playwright driver, Chromium and its helpers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    count, todo = 0, [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            count += 1
            todo.append(child)
    return count


def launch_once(executable: str, base_url: str, storage_state: dict[str, Any]) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    cpu, started = _children_cpu_s(), time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(storage_state=storage_state).new_page()
        page.goto(base_url + "/home", wait_until="load")
        page.goto(base_url + "/compose/post", wait_until="load")
        to_composer = time.perf_counter() - started
        processes = _descendants()
        browser.close()
    return {"to_composer_s": to_composer, "cpu_s": _children_cpu_s() - cpu, "processes": processes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=5)
    args = parser.parse_args()
    from sandbox.client import SandboxAdmin
    from sandbox.server import SandboxServer

    candidates = {"headless shell (this)": next((p for p in HEADLESS_SHELLS if Path(p).exists()), None),
                  "full browser --headless (baseline)": next((p for p in SYSTEM_CHROMIUMS if Path(p).exists()), None)}
    missing = [name for name, path in candidates.items() if path is None]
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)} (apt-get install -y chromium chromium-headless-shell)")
    server = SandboxServer(port=0, seed=1)
    server.start()
    try:
        state = SandboxAdmin(server.url).create_account("alice")
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in candidates}
        for _ in range(args.launches):  # alternating, so both see the same machine
            for name, path in candidates.items():
                samples[name].append(launch_once(str(path), server.url, state))
    finally:
        server.stop()
    result: dict[str, Any] = {"launches": args.launches, "cpus": os.cpu_count(),
                              "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "scenarios": {}}
    rows = []
    for name, runs in samples.items():
        walls = [r["to_composer_s"] for r in runs]
        cpus = [r["cpu_s"] for r in runs]
        entry = {"executable": candidates[name], "to_composer_p50_s": round(percentile(walls, 50), 2),
                 "to_composer_max_s": round(max(walls), 2), "cpu_p50_s": round(percentile(cpus, 50), 2),
                 "processes": max(r["processes"] for r in runs), "samples": runs}
        result["scenarios"][name] = entry
        rows.append({"browser": f"{name}: {candidates[name]}", "to composer p50 s": entry["to_composer_p50_s"],
                     "max s": entry["to_composer_max_s"], "CPU p50 s": entry["cpu_p50_s"],
                     "processes": entry["processes"]})
    table = (f"browser start to the composer, {args.launches} launches each, alternating, {os.cpu_count()} CPUs\n\n"
             + markdown_table(rows, ["browser", "to composer p50 s", "max s", "CPU p50 s", "processes"]))
    write_result("browser_start", result, table)


if __name__ == "__main__":
    main()
