"""Plain HTTP helpers for the sandbox tests: raw CreateTweet and GraphQL reads with a session's cookies, and
admin requests with arbitrary headers (urllib and http.client, no proxies: the sandbox is local)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _cookies(state: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["value"] for c in state["cookies"]}


def _headers(state: dict[str, Any]) -> dict[str, str]:
    c = _cookies(state)
    return {
        "content-type": "application/json",
        "x-csrf-token": c["ct0"],
        "cookie": f"auth_token={c['auth_token']}; ct0={c['ct0']}",
    }


def _open(req: urllib.request.Request, timeout: float) -> tuple[int, str, bytes]:
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


def create_tweet(
    url: str, state: dict[str, Any], text: str, reply_to: str | None = None, timeout: float = 10
) -> tuple[int, str, bytes]:
    """POST CreateTweet as the page does: (status, content type, raw body)."""
    variables: dict[str, Any] = {"tweet_text": text}
    if reply_to:
        variables["reply"] = {"in_reply_to_tweet_id": reply_to}
    body = json.dumps({"variables": variables, "queryId": "q"}).encode()
    req = urllib.request.Request(
        url + "/i/api/graphql/q/CreateTweet", data=body, method="POST", headers=_headers(state)
    )
    return _open(req, timeout)


def graphql_get(url: str, state: dict[str, Any], name: str, variables: dict[str, Any]) -> dict[str, Any]:
    query = urllib.parse.urlencode({"variables": json.dumps(variables), "features": "{}"})
    req = urllib.request.Request(f"{url}/i/api/graphql/q/{name}?{query}", headers=_headers(state))
    status, _, raw = _open(req, 10)
    assert status == 200, f"{name} answered {status}: {raw[:200]!r}"
    return json.loads(raw)


def admin_request(
    url: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """An admin request with exactly these headers: (status, JSON body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, f"/__sandbox/{path}", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()
