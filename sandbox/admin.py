"""The sandbox admin API (`/__sandbox/...`): test and harness control, loopback only.

Every request must come from a loopback address; a request carrying an `Origin` (what a browser adds) must come
from a loopback origin, so a web page open in the operator's browser cannot drive it (a client without an Origin,
such as urllib or curl, is fine). POST bodies must be `application/json` objects (empty means `{}`), at most
64 KiB, with finite numbers of at most 1e9 in size; unknown fields are refused. A refused request (403 foreign
client or origin, 415 content type, 413 size, 400 body) changes nothing: every body is checked whole before any
state moves.

  GET  /__sandbox/health                      {"ok": true}
  GET  /__sandbox/tweets[?account=H]          ground truth, oldest first (deleted posts flagged "deleted")
  GET  /__sandbox/state                       rules, faults, clock, counts
  POST /__sandbox/accounts {"handle", "domain"?}   -> {"handle", "storage_state"} (a fresh valid session)
  POST /__sandbox/sessions/expire {"handle"}  invalidate every session of the handle
  POST /__sandbox/faults {name: {"p", ...}, "seed"?}   ({} clears; names and params in faults.py)
  POST /__sandbox/rules {"duplicate_window_hours"?, "posts_per_3h"?, "posts_per_day"?, "max_weighted_length"?,
                         "read_latency_s"?}   (partial updates; defaults 12, 300, 2400, 280, 0.3)
  POST /__sandbox/clock {"offset_s"}
  POST /__sandbox/pin {"handle", "id": "<tweet id>" | null}   (default pin: the account's first post)
  POST /__sandbox/tweets/delete {"id"}        the author deletes a post
  POST /__sandbox/reset
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.faults import FaultConfigError, parse_faults
from sandbox.state import Store, clean_handle

SESSION_DAYS = 365
MAX_BODY = 64 * 1024
MAX_NUMBER = 1e9
_DOMAIN = re.compile(r"^(localhost|[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]+\])$")
Handler = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return host.lower() == "localhost"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def storage_state(domain: str, auth_token: str, ct0: str) -> dict[str, Any]:
    """A Playwright storage_state holding the session cookies for the sandbox host."""
    expires = int(time.time()) + SESSION_DAYS * 86400
    common = {"domain": domain, "path": "/", "expires": expires, "secure": False, "sameSite": "Lax"}
    return {
        "cookies": [
            {"name": "auth_token", "value": auth_token, "httpOnly": True, **common},
            {"name": "ct0", "value": ct0, "httpOnly": False, **common},
        ],
        "origins": [],
    }


def _check_caller(request: Request) -> None:
    host = request.client.host if request.client else None
    if not is_loopback(host):
        raise Refused(403, f"the sandbox admin API only answers loopback clients, not {host}")
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not is_loopback(parts.hostname):
            raise Refused(403, f"the sandbox admin API refuses requests from the web origin {origin!r}")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Refused(403, "the sandbox admin API refuses cross-site browser requests")


def _refuse_constant(name: str) -> None:
    raise Refused(400, f"request body has {name}: only finite numbers are accepted")


def _check_numbers(value: Any, where: str = "body") -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise Refused(400, f"{where} is {value!r}: numbers must be finite and at most {MAX_NUMBER:.0e}")
    elif isinstance(value, dict):
        for key, inner in value.items():
            _check_numbers(inner, f"{where}.{key}" if where != "body" else key)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _check_numbers(inner, f"{where}[{i}]")


async def body_json(request: Request, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The POST body as a checked JSON object (see the module doc); `allowed` lists the accepted fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Refused(415, f"send the body as content-type application/json, not {ctype or 'none'!r}")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Refused(413, f"request body is {len(raw)} bytes; the limit is {MAX_BODY}")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refused(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Refused(400, "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise Refused(400, "request body must be a JSON object")
    _check_numbers(data)
    if allowed is not None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise Refused(400, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return data


def _tweet_id(value: Any) -> str:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 25:
        raise ValueError(f"id must be a tweet id (a string of digits), got {value!r}")
    return value


def routes(store: Store) -> list[Route]:
    def admin(fn: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                _check_caller(request)
                return await fn(request)
            except Refused as exc:
                return JSONResponse({"error": str(exc)}, exc.status)
            except (ValueError, FaultConfigError) as exc:
                return JSONResponse({"error": str(exc)}, 400)

        return wrapped

    @admin
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @admin
    async def tweets(request: Request) -> Response:
        return JSONResponse(store.tweets(request.query_params.get("account")))

    @admin
    async def state(request: Request) -> Response:
        return JSONResponse(store.info())

    @admin
    async def accounts(request: Request) -> Response:
        data = await body_json(request, ("handle", "domain"))
        handle = clean_handle(data.get("handle"))
        domain = data.get("domain") or request.url.hostname or "127.0.0.1"
        if not isinstance(domain, str) or not _DOMAIN.match(domain):
            raise ValueError(f"domain must be a host name, got {domain!r}")
        auth_token, ct0 = store.issue_session(handle)
        return JSONResponse({"handle": handle, "storage_state": storage_state(domain, auth_token, ct0)})

    @admin
    async def expire(request: Request) -> Response:
        handle = clean_handle((await body_json(request, ("handle",))).get("handle"))
        return JSONResponse({"handle": handle, "expired_sessions": store.expire_sessions(handle)})

    @admin
    async def faults(request: Request) -> Response:
        config, seed = parse_faults(await body_json(request))
        store.set_faults(config, seed)
        return JSONResponse(store.info()["faults"])

    @admin
    async def rules(request: Request) -> Response:
        return JSONResponse(store.set_rules(await body_json(request)))

    @admin
    async def clock(request: Request) -> Response:
        data = await body_json(request, ("offset_s",))
        offset = store.set_clock(data.get("offset_s"))
        return JSONResponse({"offset_s": offset, "now": store.info()["now"]})

    @admin
    async def pin(request: Request) -> Response:
        data = await body_json(request, ("handle", "id"))
        handle = clean_handle(data.get("handle"))
        tweet_id = None if data.get("id") is None else _tweet_id(data["id"])
        store.pin(handle, tweet_id)
        return JSONResponse({"handle": handle, "pinned": tweet_id})

    @admin
    async def delete(request: Request) -> Response:
        tweet_id = _tweet_id((await body_json(request, ("id",))).get("id"))
        store.delete(tweet_id)
        return JSONResponse({"deleted": tweet_id})

    @admin
    async def reset(request: Request) -> Response:
        await body_json(request, ())
        store.reset()
        return JSONResponse({"ok": True})

    return [
        Route("/__sandbox/health", health),
        Route("/__sandbox/tweets", tweets),
        Route("/__sandbox/state", state),
        Route("/__sandbox/accounts", accounts, methods=["POST"]),
        Route("/__sandbox/sessions/expire", expire, methods=["POST"]),
        Route("/__sandbox/faults", faults, methods=["POST"]),
        Route("/__sandbox/rules", rules, methods=["POST"]),
        Route("/__sandbox/clock", clock, methods=["POST"]),
        Route("/__sandbox/pin", pin, methods=["POST"]),
        Route("/__sandbox/tweets/delete", delete, methods=["POST"]),
        Route("/__sandbox/reset", reset, methods=["POST"]),
    ]
