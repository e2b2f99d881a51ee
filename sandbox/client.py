"""A small client for the sandbox admin API (`/__sandbox/`), over urllib (no proxies: the sandbox is local)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SandboxAdminError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox admin API answered {status}: {message}")
        self.status = status


class SandboxAdmin:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/__sandbox/{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with _OPENER.open(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read().decode("utf-8", "replace")
            try:
                message = json.loads(raw).get("error", raw)
            except (ValueError, AttributeError):
                message = raw
            raise SandboxAdminError(exc.code, message) from None

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def create_account(self, handle: str) -> dict[str, Any]:
        """A fresh logged-in Playwright storage_state for `handle` (creating the account if needed)."""
        return self._call("POST", "accounts", {"handle": handle})["storage_state"]

    def expire_session(self, handle: str) -> int:
        """Invalidate every session of `handle` (pages then redirect to login, CreateTweet answers 401/32)."""
        return int(self._call("POST", "sessions/expire", {"handle": handle})["expired_sessions"])

    def tweets(self, account: str | None = None) -> list[dict[str, Any]]:
        """Ground truth: every stored tweet, oldest first (id, account, text, in_reply_to, created_at, counts)."""
        path = "tweets" if account is None else f"tweets?account={urllib.request.quote(account)}"
        return self._call("GET", path)

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def set_faults(self, faults: dict[str, dict[str, Any]], seed: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = dict(faults)
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "faults", body)

    def clear_faults(self) -> None:
        self._call("POST", "faults", {})

    def set_rules(self, **rules: float) -> dict[str, float]:
        return self._call("POST", "rules", rules)

    def set_clock(self, offset_s: float) -> float:
        """Shift the sandbox's now to real time + offset_s (tweets age; engagement and rate windows follow)."""
        return float(self._call("POST", "clock", {"offset_s": offset_s})["offset_s"])

    def pin(self, handle: str, tweet_id: str | None) -> None:
        """Pin one of the account's posts on its profile (None: none; by default its first post is pinned)."""
        self._call("POST", "pin", {"handle": handle, "id": tweet_id})

    def delete_tweet(self, tweet_id: str) -> None:
        """Delete a post as its author would (pages say it does not exist; the ground truth flags it)."""
        self._call("POST", "tweets/delete", {"id": tweet_id})

    def reset(self) -> None:
        self._call("POST", "reset", {})
