"""The sandbox web app (Starlette): x.com-shaped pages, the GraphQL endpoints, and the admin API (admin.py)."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox import admin, pages, spa
from sandbox.admin import SESSION_DAYS
from sandbox.media import UploadRefused
from sandbox.state import Store, clean_handle
from sandbox.x_rules import error_body

NO_STORE = {"cache-control": "no-store"}


async def hold(request: Request, store: Store, seconds: float) -> None:
    """Sleep up to `seconds` (inf: forever), returning early if the client disconnects or the server stops."""
    deadline = time.monotonic() + seconds if seconds != float("inf") else float("inf")
    while not store.stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(0.05, left))
        if await request.is_disconnected():
            return


REALISMS = ("realistic", "friendly")


def create_app(store: Store, realism: str = "realistic") -> Starlette:
    """The app over `store`. `realism="realistic"` (default) behaves like x.com as far as the reference knows:
    timelines and status pages rendered by the page's script from GraphQL JSON, a Draft.js-like composer.
    `"friendly"` keeps the old server-rendered pages (all posts as plain text) for unit tests that need them."""
    if realism not in REALISMS:
        raise ValueError(f"realism must be one of {', '.join(REALISMS)}, got {realism!r}")
    realistic = realism == "realistic"
    # -- the X API --------------------------------------------------------------------------------------------------

    def session_of(request: Request) -> str | Response:
        """The handle of an API call's session, or the 401/403 x.com answers."""
        auth_token, ct0 = request.cookies.get("auth_token"), request.cookies.get("ct0")
        if not auth_token or not ct0:
            return JSONResponse(error_body(32), 401)
        if request.headers.get("x-csrf-token") != ct0:
            return JSONResponse(error_body(353), 403)
        handle = store.session_handle(auth_token, ct0)
        return JSONResponse(error_body(32), 401) if handle is None else handle

    async def create_tweet(request: Request) -> Response:
        handle = session_of(request)
        if isinstance(handle, Response):
            return handle
        try:
            payload = json.loads(await request.body())
            variables = payload["variables"]
            if isinstance(variables, str):
                variables = json.loads(variables)
            text = variables.get("tweet_text")
            reply = variables.get("reply") or {}
            reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
            media = variables.get("media")
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse(
                error_body(170, 'Bad request: expected {"variables": {"tweet_text": ...}}'), 400
            )
        result = store.post(handle, text, reply_to, media)
        if result.stall_s:
            await hold(request, store, result.stall_s)
        if result.raw is not None:
            return Response(result.raw, result.status, headers=result.headers, media_type=result.content_type)
        return JSONResponse(result.body, result.status, headers=result.headers)

    async def media_upload(request: Request) -> Response:
        """upload.x.com's /i/media/upload.json (sandbox/media.py)."""
        handle = session_of(request)
        if isinstance(handle, Response):
            return handle
        try:
            status, body = store.uploads.command(handle, dict(request.query_params), await request.body())
        except UploadRefused as exc:
            return JSONResponse(exc.body, exc.status)
        return Response(status_code=204) if body is None else JSONResponse(body, status)

    async def media_metadata(request: Request) -> Response:
        handle = session_of(request)
        if isinstance(handle, Response):
            return handle
        try:
            payload = json.loads(await request.body())
            store.uploads.set_alt(handle, payload["media_id"], (payload.get("alt_text") or {}).get("text"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            refused = exc if isinstance(exc, UploadRefused) else UploadRefused(400, 38, "Bad request: media_id, alt_text.text")
            return JSONResponse(refused.body, refused.status)
        return Response(status_code=200)

    async def media_file(request: Request) -> Response:
        found = store.uploads.image(request.path_params["key"].split(".")[0])
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1], headers={"cache-control": "max-age=86400"})

    # -- pages ------------------------------------------------------------------------------------------------------

    def viewer_of(request: Request) -> str | None:
        return store.session_handle(request.cookies.get("auth_token"), request.cookies.get("ct0"))

    async def page_start(request: Request) -> tuple[str | None, str]:
        viewer = viewer_of(request)
        delay, drift = store.page_faults(viewer)
        if delay:
            await hold(request, store, delay)
        return viewer, drift

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"/i/flow/login?redirect_after_login={quote(target, safe='')}", 302, headers=NO_STORE
        )

    def html(content: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(content, status, headers=NO_STORE)

    async def root(request: Request) -> Response:
        return RedirectResponse("/home" if viewer_of(request) else "/i/flow/login", 302, headers=NO_STORE)

    async def login_get(request: Request) -> Response:
        await page_start(request)
        return html(pages.login_page(_safe_redirect(request.query_params.get("redirect_after_login"))))

    async def login_post(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        redirect = _safe_redirect(form.get("redirect_after_login"))
        try:
            handle = clean_handle(form.get("text", ""))
        except ValueError:
            return html(pages.login_page(redirect, "Sorry, we could not find your account."), 400)
        auth_token, ct0 = store.issue_session(handle)
        response = RedirectResponse(redirect, 302, headers=NO_STORE)
        age = SESSION_DAYS * 86400
        response.set_cookie("auth_token", auth_token, max_age=age, path="/", httponly=True, samesite="lax")
        response.set_cookie("ct0", ct0, max_age=age, path="/", httponly=False, samesite="lax")
        return response

    async def home(request: Request) -> Response:
        viewer, drift = await page_start(request)
        if viewer is None:
            return to_login(request)
        return html(pages.home_page(viewer, drift, draftjs=realistic))

    async def compose(request: Request) -> Response:
        viewer, drift = await page_start(request)
        if viewer is None:
            return to_login(request)
        reply_to = request.query_params.get("in_reply_to") or None
        if reply_to is not None and not reply_to.isdigit():
            reply_to = None
        return html(pages.compose_page(viewer, reply_to, drift, draftjs=realistic))

    async def profile(request: Request) -> Response:
        viewer, _ = await page_start(request)
        if viewer is None:
            return to_login(request)
        handle = request.path_params["handle"]
        if not store.account_exists(handle):
            # x.com's single-page app answers 200 and says so; the friendly pages keep a 404
            missing = pages.not_found_page(viewer, f"This account doesn’t exist: @{handle}")
            return html(missing, 200 if realistic else 404)
        if realistic:
            return html(spa.profile_page(viewer, handle, request.url.path.endswith("/with_replies")))
        try:
            limit = max(1, min(int(request.query_params.get("count", 200)), 1000))
        except ValueError:
            limit = 200
        return html(pages.profile_page(viewer, handle, store.timeline(handle, limit)))

    async def status(request: Request) -> Response:
        viewer, drift = await page_start(request)
        if viewer is None:
            return to_login(request)
        handle, tweet_id = request.path_params["handle"], request.path_params["tweet_id"]
        tweet = store.tweet(tweet_id, visible_only=True) if tweet_id.isdigit() else None
        if realistic:
            if tweet is not None and tweet["account"] != handle:
                return RedirectResponse(f"/{tweet['account']}/status/{tweet_id}", 302, headers=NO_STORE)
            return html(spa.status_page(viewer, tweet_id if tweet_id.isdigit() else "0", drift))
        if tweet is None:
            return html(pages.not_found_page(viewer, "This post doesn’t exist or was deleted."), 404)
        if tweet["account"] != handle:
            # /i/status/<id> and wrong handles go to the canonical /<author>/status/<id>, as on x.com
            return RedirectResponse(f"/{tweet['account']}/status/{tweet_id}", 302, headers=NO_STORE)
        return html(pages.status_page(viewer, tweet, drift))

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def slow_read(request: Request) -> None:
        delay = store.read_delay(viewer_of(request))
        if delay:
            await hold(request, store, delay)

    async def user_tweets(request: Request) -> Response:
        await slow_read(request)
        return spa.user_timeline(store, request, with_replies=False)

    async def user_tweets_and_replies(request: Request) -> Response:
        await slow_read(request)
        return spa.user_timeline(store, request, with_replies=True)

    async def tweet_detail(request: Request) -> Response:
        await slow_read(request)
        return spa.tweet_detail(store, request)

    routes = [
        *admin.routes(store),
        Route("/i/api/graphql/{query_id}/CreateTweet", create_tweet, methods=["POST"]),
        Route("/i/media/upload.json", media_upload, methods=["GET", "POST"]),
        Route("/i/api/1.1/media/metadata/create.json", media_metadata, methods=["POST"]),
        Route("/pbs/media/{key}", media_file),
        Route("/i/api/graphql/{query_id}/UserTweets", user_tweets),
        Route("/i/api/graphql/{query_id}/UserTweetsAndReplies", user_tweets_and_replies),
        Route("/i/api/graphql/{query_id}/TweetDetail", tweet_detail),
        Route("/emoji/{path:path}", favicon),
        Route("/i/flow/login", login_get, methods=["GET"]),
        Route("/i/flow/login", login_post, methods=["POST"]),
        Route("/", root),
        Route("/favicon.ico", favicon),
        Route("/home", home),
        Route("/compose/post", compose),
        Route("/compose/tweet", compose),
        Route("/{handle}/status/{tweet_id}", status),
        Route("/{handle}/with_replies", profile),
        Route("/{handle}", profile),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app


def _safe_redirect(target: str | None) -> str:
    """Only same-site paths (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/home"
    return target
