"""The sandbox admin API refuses what a careless or hostile caller sends, and a refused request changes nothing
(issue 16): a web page's Origin, a non-JSON content type, NaN / Infinity / huge numbers, unknown fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.client import SandboxAdmin
from tests.sandbox_http import admin_request

JSON = {"content-type": "application/json"}

# (name, path, raw body, headers, expected status, a word the error must contain)
REFUSED: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    (
        "foreign origin",
        "faults",
        b'{"silent_drop": {"p": 1}}',
        {**JSON, "origin": "https://evil.example"},
        403,
        "origin",
    ),
    ("null origin", "faults", b'{"silent_drop": {"p": 1}}', {**JSON, "origin": "null"}, 403, "origin"),
    ("lookalike origin", "reset", b"{}", {**JSON, "origin": "http://127.0.0.1.evil.example"}, 403, "origin"),
    ("cross-site fetch", "reset", b"{}", {**JSON, "sec-fetch-site": "cross-site"}, 403, "cross-site"),
    (
        "text/plain",
        "faults",
        b'{"silent_drop": {"p": 1}}',
        {"content-type": "text/plain"},
        415,
        "application/json",
    ),
    ("form", "reset", b"a=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ("no content type", "rules", b'{"posts_per_day": 1}', {}, 415, "application/json"),
    ("NaN p", "faults", b'{"silent_drop": {"p": NaN}}', JSON, 400, "finite"),
    ("Infinity seconds", "faults", b'{"timeline_lag": {"p": 1, "seconds": Infinity}}', JSON, 400, "finite"),
    ("-Infinity seconds", "faults", b'{"post_commit_stall": {"seconds": -Infinity}}', JSON, 400, "finite"),
    ("1e300 seconds", "faults", b'{"slow_page": {"seconds": 1e300}}', JSON, 400, "finite"),
    ("1e400 overflows to inf", "faults", b'{"slow_page": {"seconds": 1e400}}', JSON, 400, "finite"),
    (
        "huge integer",
        "faults",
        b'{"rate_limit": {"reset_s": 1000000000000000000000000}}',
        JSON,
        400,
        "finite",
    ),
    ("huge seed", "faults", b'{"seed": 1e300}', JSON, 400, "finite"),
    ("after_store_p over 1", "faults", b'{"load_shed": {"after_store_p": 1.5}}', JSON, 400, "after_store_p"),
    ("unknown fault", "faults", b'{"silently_drop": {"p": 1}}', JSON, 400, "unknown fault"),
    (
        "a good and a bad fault",
        "faults",
        b'{"silent_drop": {"p": 1}, "bare_403": {"p": 2}}',
        JSON,
        400,
        "bare_403.p",
    ),
    ("NaN rule", "rules", b'{"posts_per_day": NaN}', JSON, 400, "finite"),
    ("1e300 rule", "rules", b'{"duplicate_window_hours": 1e300}', JSON, 400, "finite"),
    ("good then bad rule", "rules", b'{"posts_per_day": 5, "posts_per_3h": -1}', JSON, 400, "posts_per_3h"),
    ("Infinity clock", "clock", b'{"offset_s": Infinity}', JSON, 400, "finite"),
    ("1e300 clock", "clock", b'{"offset_s": 1e300}', JSON, 400, "finite"),
    ("clock unknown field", "clock", b'{"offset": 60}', JSON, 400, "unknown field"),
    (
        "account unknown field",
        "accounts",
        b'{"handle": "mallory", "admin": true}',
        JSON,
        400,
        "unknown field",
    ),
    ("account bad domain", "accounts", b'{"handle": "mallory", "domain": "a b/c"}', JSON, 400, "domain"),
    ("account bad handle", "accounts", b'{"handle": "../../x"}', JSON, 400, "handle"),
    ("body is a list", "faults", b"[1, 2]", JSON, 400, "object"),
    ("not JSON", "rules", b"{posts_per_day: 1}", JSON, 400, "not valid JSON"),
    ("too big", "faults", b'{"seed": 1, "x": "' + b"a" * 70000 + b'"}', JSON, 413, "limit"),
    ("pin a missing post", "pin", b'{"handle": "alice", "id": "123"}', JSON, 400, "123"),
    ("delete a non-id", "tweets/delete", b'{"id": "abc"}', JSON, 400, "id"),
    ("reset with a body", "reset", b'{"everything": true}', JSON, 400, "unknown field"),
]


def _snapshot(sandbox: SandboxAdmin) -> dict[str, Any]:
    state = sandbox.state()
    state.pop("now")
    return {"state": state, "tweets": sandbox.tweets()}


@pytest.fixture
def seeded(sandbox: SandboxAdmin) -> SandboxAdmin:
    """A sandbox with something to lose: an account, a post, faults, rules and a clock offset."""
    from tests.sandbox_http import create_tweet

    state = sandbox.create_account("alice")
    status, _, _ = create_tweet(sandbox.url, state, "a post that must survive")
    assert status == 200
    sandbox.set_faults({"slow_page": {"p": 0.0}}, seed=3)
    sandbox.set_rules(posts_per_day=100)
    sandbox.set_clock(60)
    return sandbox


@pytest.mark.parametrize(
    ("name", "path", "body", "headers", "status", "word"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_refused_requests_change_nothing(
    seeded: SandboxAdmin, name: str, path: str, body: bytes, headers: dict[str, str], status: int, word: str
) -> None:
    before = _snapshot(seeded)
    got, answer = admin_request(seeded.url, "POST", path, body, headers)
    assert got == status, answer
    assert word.lower() in answer["error"].lower(), answer
    assert _snapshot(seeded) == before


def test_a_nan_fault_is_not_applied_and_the_server_keeps_working(seeded: SandboxAdmin) -> None:
    got, _ = admin_request(seeded.url, "POST", "faults", b'{"silent_drop": {"p": NaN}}', JSON)
    assert got == 400
    assert "silent_drop" not in seeded.state()["faults"]
    got, _ = admin_request(seeded.url, "POST", "faults", b'{"slow_page": {"seconds": Infinity}}', JSON)
    assert got == 400
    assert seeded.health() and seeded.state()["faults"] == {"slow_page": {"p": 0.0, "seconds": 2.0}}


@pytest.mark.parametrize(
    "origin", [None, "http://127.0.0.1:8765", "http://localhost:3000", "http://[::1]:9", "https://127.0.0.2"]
)
def test_local_callers_are_served(seeded: SandboxAdmin, origin: str | None) -> None:
    headers = dict(JSON) | ({"origin": origin} if origin else {})
    body = json.dumps({"timeline_lag": {"p": 1, "seconds": 5}}).encode()
    got, answer = admin_request(seeded.url, "POST", "faults", body, headers)
    assert got == 200, answer
    assert answer["timeline_lag"]["seconds"] == 5.0
    got, answer = admin_request(seeded.url, "GET", "state", None, headers)
    assert got == 200 and answer["faults"]["timeline_lag"]["p"] == 1.0


def test_a_foreign_origin_cannot_read_the_ground_truth(seeded: SandboxAdmin) -> None:
    got, answer = admin_request(seeded.url, "GET", "tweets", None, {"origin": "https://evil.example"})
    assert got == 403 and "origin" in answer["error"]
