"""How many posts per second the sandbox sustains, so later benchmarks know it is not the bottleneck.

    .venv/bin/python bench/sandbox.py [--reused 50] [--fresh 10] [--api 500] [--inproc]

Modes (each against a freshly reset sandbox, every post confirmed against the ground truth):
- reused_page: one browser, one context, one page; type + click + wait for the CreateTweet response.
- fresh_browser: a new Chromium per post (launch, context, page, /home, post, close): the predecessor's pattern.
- api_only: CreateTweet over one keep-alive HTTP connection, no browser: the server's own ceiling.

The sandbox runs as its own process (`python -m sandbox`) unless --inproc. Prints a JSON object and a Markdown
table; writes bench/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.browser import CHROMIUM_ARGS, find_executable  # noqa: E402
from sandbox.client import SandboxAdmin  # noqa: E402
from sandbox.server import SandboxServer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sandbox.json"
HANDLE = "bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Subprocess:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        admin = SandboxAdmin(self.url, timeout_s=2)
        deadline = time.monotonic() + 20
        while True:
            try:
                admin.health()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the sandbox subprocess did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _reset(admin: SandboxAdmin) -> None:
    """A clean sandbox whose rate limits do not cap the benchmark."""
    admin.reset()
    admin.set_rules(posts_per_3h=1_000_000, posts_per_day=1_000_000)


def _is_create(resp: Any) -> bool:
    return resp.request.method == "POST" and resp.url.endswith("/CreateTweet")


def _post_on_page(page: Any, text: str) -> str:
    page.locator('[data-testid="tweetTextarea_0"]').click()
    page.keyboard.type(text)  # the composer, like x.com's Draft.js, ignores `fill`
    with page.expect_response(_is_create, timeout=15000) as info:
        page.locator('[data-testid="tweetButtonInline"]').click()
    resp = info.value
    if resp.status != 200:
        raise RuntimeError(f"post failed: HTTP {resp.status} {resp.text()[:200]}")
    return resp.json()["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]


def _summary(name: str, latencies: list[float], total_s: float, note: str) -> dict[str, Any]:
    lat = sorted(latencies)
    return {
        "mode": name,
        "posts": len(lat),
        "seconds": round(total_s, 3),
        "posts_per_s": round(len(lat) / total_s, 2),
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1),
        "note": note,
    }


def bench_reused(pw: Any, admin: SandboxAdmin, n: int) -> dict[str, Any]:
    _reset(admin)
    browser = pw.chromium.launch(executable_path=find_executable(), headless=True, args=CHROMIUM_ARGS)
    context = browser.new_context(storage_state=admin.create_account(HANDLE))
    page = context.new_page()
    page.goto(admin.url + "/home")
    _post_on_page(page, "warm-up")
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        _post_on_page(page, f"reused page post {i}")
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    browser.close()
    assert len(admin.tweets()) == n + 1, "ground truth disagrees with the posts made"
    return _summary("reused_page", latencies, total, "one browser, context and page for every post")


def bench_fresh(pw: Any, admin: SandboxAdmin, n: int) -> dict[str, Any]:
    _reset(admin)
    state = admin.create_account(HANDLE)
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        browser = pw.chromium.launch(executable_path=find_executable(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(storage_state=state).new_page()
        page.goto(admin.url + "/home")
        _post_on_page(page, f"fresh browser post {i}")
        browser.close()
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    assert len(admin.tweets()) == n, "ground truth disagrees with the posts made"
    return _summary("fresh_browser", latencies, total, "launch Chromium, open /home, post, close: per post")


def bench_api(admin: SandboxAdmin, n: int) -> dict[str, Any]:
    _reset(admin)
    state = admin.create_account(HANDLE)
    cookies = {c["name"]: c["value"] for c in state["cookies"]}
    headers = {
        "content-type": "application/json",
        "x-csrf-token": cookies["ct0"],
        "cookie": f"auth_token={cookies['auth_token']}; ct0={cookies['ct0']}",
    }
    host, port = admin.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        body = json.dumps({"variables": {"tweet_text": f"api post {i}"}, "queryId": "bench"})
        t0 = time.perf_counter()
        conn.request("POST", "/i/api/graphql/bench/CreateTweet", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or b"rest_id" not in data:
            raise RuntimeError(f"post failed: HTTP {resp.status} {data[:200]!r}")
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    conn.close()
    assert len(admin.tweets()) == n, "ground truth disagrees with the posts made"
    return _summary("api_only", latencies, total, "CreateTweet over one keep-alive connection, no browser")


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| mode | posts | seconds | posts/s | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["modes"]:
        lines.append(
            f"| {r['mode']} | {r['posts']} | {r['seconds']} | {r['posts_per_s']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['max_ms']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reused", type=int, default=50, help="posts through one reused page")
    parser.add_argument("--fresh", type=int, default=10, help="posts with a fresh browser each")
    parser.add_argument("--api", type=int, default=500, help="posts over HTTP without a browser (0 skips)")
    parser.add_argument("--inproc", action="store_true", help="run the sandbox in this process (a thread)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    server: Any = SandboxServer() if args.inproc else None
    if server is not None:
        server.start()
    else:
        server = _Subprocess()
    admin = SandboxAdmin(server.url)
    try:
        modes = []
        with sync_playwright() as pw:
            version = pw.chromium.launch(executable_path=find_executable(), args=CHROMIUM_ARGS)
            chromium_version = version.version
            version.close()
            for fn, n in ((bench_reused, args.reused), (bench_fresh, args.fresh)):
                if n > 0:
                    modes.append(fn(pw, admin, n))
        if args.api > 0:
            modes.append(bench_api(admin, args.api))
        admin.reset()
    finally:
        server.stop()

    by = {m["mode"]: m for m in modes}
    result: dict[str, Any] = {
        "benchmark": "sandbox",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sandbox": "in-process thread" if args.inproc else "subprocess (python -m sandbox)",
        "environment": {
            "python": platform.python_version(),
            "chromium": chromium_version,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
        "modes": modes,
    }
    if "reused_page" in by and "fresh_browser" in by:
        result["reused_vs_fresh_speedup"] = round(
            by["reused_page"]["posts_per_s"] / by["fresh_browser"]["posts_per_s"], 1
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print()
    print(markdown(result))
    if "reused_vs_fresh_speedup" in result:
        print(f"\nreused page vs fresh browser: {result['reused_vs_fresh_speedup']}x")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
