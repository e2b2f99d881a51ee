"""Generators: the drafts library (no repeats, ever) and the LLM generator against a local HTTP server."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline import queue as q
from pipeline import schema as s
from pipeline.content import make_draft
from pipeline.db import db_now
from pipeline.generators import (
    DEFAULT_DRAFTS_DIR,
    DraftsLibrary,
    Generator,
    LLMGenerator,
    ShingleIndex,
    jaccard,
    load_drafts,
    make_generator,
    shingles,
)
from pipeline.planning import plan
from pipeline.settings import load_settings

SECRET = "sk-test-SECRET-never-log-me"

# --------------------------------------------------------------------------- drafts library


def test_shipped_library_is_varied_and_valid() -> None:
    drafts, problems = load_drafts(DEFAULT_DRAFTS_DIR)
    assert problems == []
    assert len(drafts) >= 55
    assert len({d.topic for d in drafts}) == 5
    assert len({d.format for d in drafts}) >= 5
    threads = [d for d in drafts if d.kind == "thread"]
    assert 6 <= len(threads) <= 20
    assert len({d.key for d in drafts}) == len(drafts)
    # No two shipped drafts are near-duplicates of each other.
    sets = [shingles(d.text) for d in drafts]
    assert max(jaccard(a, b) for i, a in enumerate(sets) for b in sets[i + 1:]) < 0.3


def test_markdown_and_jsonl_parsing_and_bad_drafts_reported(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Title\n\n## python / tip {#py-1}\nOne tip.\n\n## python / how-to\nFirst.\n---\nSecond.\n---\nThird.\n"
    )
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"topic": "devops", "format": "tip", "text": "Short and fine."}) + "\n\n"
        + json.dumps({"topic": "devops", "format": "tip", "text": "y" * 300}) + "\n"
        + json.dumps({"topic": "devops", "format": "story", "parts": ["One.", "Two."]}) + "\n"
    )
    (tmp_path / "README.md").write_text("## not / a draft\nignored\n")
    drafts, problems = load_drafts(tmp_path)
    by_key = {d.key: d for d in drafts}
    assert by_key["py-1"].parts == ("One tip.",) and by_key["py-1"].format == "tip"
    assert [d.parts for d in drafts if d.format == "how-to"] == [("First.", "Second.", "Third.")]
    assert {d.topic for d in drafts} == {"python", "devops"}
    assert len(drafts) == 4
    assert [r for r, _ in problems] == ["invalid"] and "b.jsonl:3" in problems[0][1]


def test_drafts_library_never_repeats_across_runs(engine: sa.Engine) -> None:
    total = len(load_drafts(DEFAULT_DRAFTS_DIR)[0])
    seen: list[str] = []
    run = 0
    while True:  # every "run" is a fresh process-like instance reading the same database
        library = DraftsLibrary(engine, rng=random.Random(run))
        assert isinstance(library, Generator)
        got = None
        for _ in range(7):
            got = library.generate("alice", rng_topic(run, library), None, "single")
            if got is None:
                break
            seen.append(got.key)
        run += 1
        if got is None:
            break
    assert len(seen) == len(set(seen)) == total
    assert library.exhausted and "used up" in (library.last_reason or "")


def rng_topic(run: int, library: DraftsLibrary) -> str:
    topics = library.topics()
    return topics[run % len(topics)]


def test_drafts_library_prefers_the_asked_topic_format_and_kind(engine: sa.Engine) -> None:
    library = DraftsLibrary(engine, rng=random.Random(1))
    thread = library.generate("alice", "python", "how-to", "thread")
    assert thread is not None and (thread.topic, thread.format, thread.kind) == ("python", "how-to", "thread")
    single = library.generate("alice", "devops", "question", "single")
    assert single is not None and (single.topic, single.format, single.kind) == ("devops", "question", "single")


def test_drafts_library_concurrent_claims_never_share_a_draft(engine: sa.Engine) -> None:
    """Two planners at once: the used_drafts primary key decides who gets each draft."""
    libraries = [DraftsLibrary(engine, rng=random.Random(0)) for _ in range(4)]  # same seed: same first choices

    def take(library: DraftsLibrary) -> list[str]:
        keys = []
        for _ in range(10):
            got = library.generate("alice", "python", "tip", "single")
            if got:
                keys.append(got.key)
        return keys

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(take, libraries))
    keys = [k for r in results for k in r]
    assert len(keys) == 40 and len(set(keys)) == 40


def test_released_draft_returns_and_plan_keeps_library_consistent(engine: sa.Engine) -> None:
    library = DraftsLibrary(engine, rng=random.Random(3))
    before = len(library.unused())
    got = library.generate("alice", None, None, "single")
    assert got is not None and len(library.unused()) == before - 1
    library.release(got)
    assert len(library.unused()) == before

    # Through plan(): every enqueued item used exactly one draft, and nothing else is marked used.
    q.add_account(engine, "alice", "/nonexistent/a.json")
    report = plan(engine, load_settings(env={}), library, rng=random.Random(4))
    with engine.connect() as conn:
        used = conn.execute(sa.select(sa.func.count()).select_from(s.used_drafts)).scalar_one()
    assert report.enqueued == 3 and used == 3 and len(library.unused()) == before - 3


def test_make_generator_picks_by_settings(engine: sa.Engine, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(json.dumps({"topic": "t", "format": "f", "text": "Hello there."}) + "\n")
    lib = make_generator(engine, load_settings(env={}, drafts_dir=str(tmp_path)))
    assert isinstance(lib, DraftsLibrary) and lib.topics() == ["t"]
    assert isinstance(make_generator(engine, load_settings(env={})), DraftsLibrary)
    llm = make_generator(engine, load_settings(env={}, llm_base_url="http://127.0.0.1:9/v1", llm_api_key=SECRET))
    assert isinstance(llm, LLMGenerator) and SECRET not in repr(llm)


def test_shingle_index_thresholds() -> None:
    index = ShingleIndex(["Deploys should be boring: automate the checks and roll back on your own."])
    assert index.most_similar("Deploys should be boring: automate the checks and roll back on their own!") >= 0.6
    assert index.most_similar("A completely different post about Python packaging and wheels.") < 0.1


# --------------------------------------------------------------------------- a local chat-completions server


@dataclass
class Reply:
    status: int = 200
    content: str = ""
    tokens: int = 50
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


class FakeLLM:
    """A real HTTP server on 127.0.0.1 answering POST /v1/chat/completions from a script of replies."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body,
                                       "at": time.monotonic()})
                reply = outer.script.pop(0) if outer.script else Reply(content=json.dumps({"parts": ["fallback"]}))
                if reply.status == 200:
                    payload = reply.body or json.dumps({
                        "choices": [{"message": {"role": "assistant", "content": reply.content}}],
                        "usage": {"total_tokens": reply.tokens},
                    })
                else:
                    payload = reply.body or json.dumps({"error": {"message": "nope"}})
                data = payload.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm_server() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.close()


def _single(text: str) -> str:
    return json.dumps({"parts": [text]})


def _gen(engine: sa.Engine, server: FakeLLM, budget: int = 10_000, **kw: Any) -> LLMGenerator:
    return LLMGenerator(engine, server.base_url, "test-model", SECRET, budget, timeout=5,
                        rng=random.Random(0), **kw)


def _spent(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        day = db_now(conn).strftime("%Y-%m-%d")
        return int(conn.execute(sa.select(s.llm_spend.c.tokens).where(s.llm_spend.c.day == day)).scalar() or 0)


def test_llm_generates_with_prompt_per_topic_and_format_and_counts_tokens(engine: sa.Engine, llm_server: FakeLLM) -> None:
    gen = _gen(engine, llm_server)
    llm_server.script = [Reply(content=_single("Name tests after behaviour, not functions."), tokens=42),
                         Reply(content="```json\n" + json.dumps({"parts": ["1/ One.", "2/ Two.", "3/ Three."]}) + "\n```",
                               tokens=58)]
    single = gen.generate("alice", "python", "tip", "single")
    thread = gen.generate("alice", "devops", "how-to", "thread")
    assert single is not None and single.parts == ("Name tests after behaviour, not functions.",)
    assert (single.topic, single.format) == ("python", "tip")
    assert thread is not None and thread.parts == ("1/ One.", "2/ Two.", "3/ Three.") and thread.kind == "thread"
    first, second = llm_server.requests
    assert first["path"] == "/v1/chat/completions" and first["auth"] == f"Bearer {SECRET}"
    assert first["body"]["model"] == "test-model"
    assert "python" in first["body"]["messages"][1]["content"] and "tip" in first["body"]["messages"][1]["content"]
    assert "thread" in second["body"]["messages"][1]["content"]
    assert _spent(engine) == 100


def test_llm_budget_stops_generation(engine: sa.Engine, llm_server: FakeLLM) -> None:
    gen = _gen(engine, llm_server, budget=100)
    llm_server.script = [Reply(content=_single(f"Post number {i} about something new entirely {i * 7}."), tokens=60)
                         for i in range(5)]
    assert gen.generate("alice", "python", "tip", "single") is not None  # 60 spent
    assert gen.generate("alice", "python", "tip", "single") is not None  # 120 spent: past the budget now
    assert gen.generate("alice", "python", "tip", "single") is None
    assert gen.exhausted and "budget" in (gen.last_reason or "")
    assert len(llm_server.requests) == 2 and _spent(engine) == 120
    # A second generator (another process) sees the same spend in the database.
    other = _gen(engine, llm_server, budget=100)
    assert other.generate("alice", "python", "tip", "single") is None and len(llm_server.requests) == 2


def test_llm_429_is_retried_honouring_retry_after(engine: sa.Engine, llm_server: FakeLLM) -> None:
    gen = _gen(engine, llm_server)
    llm_server.script = [Reply(status=429, headers={"Retry-After": "1.5"}), Reply(status=503),
                         Reply(content=_single("Made it after a rate limit."))]
    got = gen.generate("alice", "python", "tip", "single")
    assert got is not None and got.parts == ("Made it after a rate limit.",)
    assert len(llm_server.requests) == 3
    at = [r["at"] for r in llm_server.requests]
    assert at[1] - at[0] >= 1.5  # the client waited as long as Retry-After asked


def test_llm_gives_up_after_retries_and_never_logs_the_key(engine: sa.Engine, llm_server: FakeLLM,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gen = _gen(engine, llm_server, max_retries=2)
    llm_server.script = [Reply(status=500, body=f"internal error, key was {SECRET}")] * 3
    assert gen.generate("alice", "python", "tip", "single") is None
    assert "LLM unavailable" in (gen.last_reason or "") and "HTTP 500" in (gen.last_reason or "")
    assert len(llm_server.requests) == 3  # one call and two retries
    llm_server.script = [Reply(status=401, body=f"bad key {SECRET}")]
    assert gen.generate("alice", "python", "tip", "single") is None
    assert len(llm_server.requests) == 4  # a 401 is not retried
    assert SECRET not in caplog.text and SECRET not in (gen.last_reason or "") and SECRET not in repr(gen)


def test_llm_over_long_and_near_duplicate_outputs_are_regenerated_then_dropped(engine: sa.Engine,
                                                                             llm_server: FakeLLM) -> None:
    q.add_account(engine, "alice", "/nonexistent/a.json")
    posted = "Set a timeout on every outbound HTTP call; the default in most clients is to wait forever."
    q.enqueue(engine, [(make_draft("alice", [posted]), None)])
    gen = _gen(engine, llm_server, max_regenerations=2)
    near = posted.replace("forever.", "forever, really.")
    good = "Log the request id in every line; grep beats dashboards at 3 a.m."
    llm_server.script = [Reply(content=_single("z" * 300)), Reply(content=_single(near)), Reply(content=_single(good))]
    got = gen.generate("alice", "devops", "tip", "single")
    assert got is not None and got.parts == (good,)
    assert [r for r, _ in gen.rejected] == ["llm_invalid", "llm_near_duplicate"]
    # The feedback tells the model why its last answer was refused.
    assert "too close" in llm_server.requests[2]["body"]["messages"][1]["content"]

    gen.rejected.clear()
    llm_server.script = [Reply(content=_single("z" * 300)), Reply(content=_single(near)), Reply(content=_single(good))]
    assert gen.generate("alice", "devops", "tip", "single") is None  # `good` is now recent too
    assert "all rejected" in (gen.last_reason or "")


def test_plan_with_llm_never_enqueues_bad_outputs(engine: sa.Engine, llm_server: FakeLLM) -> None:
    q.add_account(engine, "alice", "/nonexistent/a.json")
    posted = "Alert on symptoms users feel, page on those, and keep cause-based alerts as dashboards."
    with engine.connect() as conn:
        now = db_now(conn)
    q.enqueue(engine, [(make_draft("alice", [posted]), now + timedelta(minutes=5))])
    gen = _gen(engine, llm_server, max_regenerations=1)
    too_long = "w " * 200
    near = posted.replace("dashboards.", "dashboards only.")
    good = [f"Fresh idea {i}: write the runbook while fixing the incident, step {i} of {i + 3}." for i in range(2)]
    llm_server.script = [Reply(content=_single(too_long)), Reply(content=_single(near)),  # slot 1: both refused
                         Reply(content=_single(good[0])), Reply(content=_single(good[1]))]
    cfg = load_settings(env={}, plan_min_items=3, thread_ratio=0.0)
    report = plan(engine, cfg, gen, rng=random.Random(0))
    reasons = [r for r, _ in report.dropped]
    assert "llm_invalid" in reasons and "llm_near_duplicate" in reasons and "generator_empty" in reasons
    with engine.connect() as conn:
        texts = [r[0][0] for r in conn.execute(sa.select(s.content_items.c.parts))]
    assert sorted(texts) == sorted([posted, *good])
    assert report.per_account == {"alice": 2}


def test_llm_server_down_is_reported_not_raised(engine: sa.Engine) -> None:
    server = FakeLLM()
    url = server.base_url
    server.close()  # nothing listens on that port now: a real connection refusal
    gen = LLMGenerator(engine, url, "test-model", SECRET, 10_000, timeout=2, max_retries=1)
    assert gen.generate("alice", "python", "tip", "single") is None
    assert "LLM unavailable: APIConnectionError" in (gen.last_reason or "") and SECRET not in (gen.last_reason or "")
    assert _spent(engine) == 0
