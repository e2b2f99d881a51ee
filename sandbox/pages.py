"""HTML pages with x.com's structure (data-testids, aria-labels, permalinks) and the JS that posts with fetch.

Selectors follow ../shared/reference/x-web-facts.md: composer `tweetTextarea_N` (contenteditable, role=textbox),
post buttons `tweetButtonInline` / `tweetButton`, `addButton`, `primaryColumn`, `SideNav_AccountSwitcher_Button`,
`article[data-testid="tweet"]` with `tweetText` and a status permalink, engagement buttons whose aria-labels carry
the counts, `[data-testid="toast"]` on success and errors in an `[aria-live="assertive"]` region.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

QUERY_ID = "oB-5XsHNAbjvARJEc8CZFw"  # CreateTweet's queryId as the web app sends it (any id is accepted)

_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.4 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
color:#0f1419;background:#fff}a{color:#1d9bf0;text-decoration:none}
#react-root{display:flex;justify-content:center}header[role=banner]{width:260px;padding:12px;border-right:1px solid #eff3f4;
min-height:100vh}nav a{display:block;padding:10px 0;color:#0f1419;font-size:19px}
main[role=main]{width:600px;border-right:1px solid #eff3f4;min-height:100vh}
[data-testid=primaryColumn] h2{padding:12px 16px;margin:0;font-size:20px;border-bottom:1px solid #eff3f4}
.composer{padding:12px 16px;border-bottom:1px solid #eff3f4}
.textbox{min-height:48px;padding:8px;font-size:20px;outline:none;white-space:pre-wrap;border-bottom:1px solid #eff3f4}
.textbox:empty:before{content:attr(data-placeholder);color:#536471}
.row{display:flex;justify-content:flex-end;gap:8px;margin-top:8px}
button{font:inherit;cursor:pointer}.post{background:#0f1419;color:#fff;border:0;border-radius:20px;padding:6px 16px;
font-weight:700}.post:disabled{opacity:.5;cursor:default}.add{background:none;border:1px solid #cfd9de;border-radius:20px}
article{padding:12px 16px;border-bottom:1px solid #eff3f4}[data-testid=User-Name]{color:#536471}
[data-testid=User-Name] b{color:#0f1419}[data-testid=tweetText]{white-space:pre-wrap;margin:4px 0}
[role=group]{display:flex;justify-content:space-between;max-width:425px;color:#536471}
[role=group] button,[role=group] a{background:none;border:0;color:#536471;font-size:13px}
#layers{position:fixed;bottom:24px;left:50%;transform:translateX(-50%)}
[data-testid=toast]{background:#1d9bf0;color:#fff;padding:12px 16px;border-radius:4px}
[data-testid=toast] a{color:#fff;font-weight:700;margin-left:8px}
.alert{color:#f4212e;padding:0 16px}.empty{padding:32px 16px;color:#536471}
.login{max-width:380px;margin:60px auto;padding:24px}.login input{width:100%;font-size:17px;padding:12px;margin:8px 0}
.login button{width:100%;padding:10px;border-radius:20px;border:0;background:#0f1419;color:#fff;font-weight:700}
"""

WEB = Path(__file__).parent / "web"
# The composer script: reads its config, wires every composer, posts through CreateTweet with fetch.
_JS = (WEB / "composer.js").read_text()


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    if n >= 10_000:
        return f"{n / 1000:.0f}K"
    if n >= 1000:
        return f"{n / 1000:.1f}".rstrip("0").rstrip(".") + "K"
    return str(n)


def _label(n: int, singular: str, plural: str, action: str) -> str:
    return f"{n} {singular if n == 1 else plural}. {action}"


def _page(title: str, body: str, config: dict[str, Any] | None = None, extra_js: str = "") -> str:
    script = ""
    if config is not None:
        data = json.dumps(config).replace("</", "<\\/")
        script = (
            f'<script type="application/json" id="sandbox-config">{data}</script>\n<script>{_JS}</script>'
            f"{extra_js}"
        )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en" dir="ltr"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_CSS}</style></head>\n<body>\n{body}\n{script}\n</body></html>"
    )


def _shell(handle: str, title: str, content: str, config: dict[str, Any], extra_js: str = "") -> str:
    h = escape(handle)
    body = f"""<div id="react-root">
<header role="banner"><nav role="navigation" aria-label="Primary">
  <a href="/home" data-testid="AppTabBar_Home_Link" aria-label="Home">Home</a>
  <a href="/{h}" data-testid="AppTabBar_Profile_Link" aria-label="Profile">Profile</a>
  <a href="/compose/post" data-testid="SideNav_NewTweet_Button" aria-label="Post">Post</a>
</nav>
<div data-testid="SideNav_AccountSwitcher_Button" role="button" aria-label="Account menu" tabindex="0">
  <span>@{h}</span></div>
</header>
<main role="main"><div data-testid="primaryColumn">
{content}
</div></main>
</div>
<div aria-live="assertive" role="status" class="alert"></div>
<div id="layers"></div>"""
    return _page(title, body, config, extra_js)


def _config(handle: str, draftjs: bool = False) -> dict[str, Any]:
    """The page script's settings; `draftjs`: the composer takes only typed text, like x.com's Draft.js editor."""
    return {"handle": handle, "queryId": QUERY_ID, "draftjs": draftjs}


def _composer(
    testid: str,
    label: str,
    reply_to: str | None = None,
    thread: bool = False,
    placeholder: str = "What is happening?!",
) -> str:
    reply_attr = f' data-reply-to="{escape(reply_to)}"' if reply_to else ""
    add = (
        '<button type="button" class="add" data-testid="addButton" data-role="add" aria-label="Add post">+</button>'
        if thread
        else ""
    )
    return f"""<div class="composer" data-sandbox-composer{reply_attr}>
  <div class="parts"><div class="textbox" contenteditable="true" role="textbox" aria-multiline="true"
    aria-label="Post text" data-placeholder="{escape(placeholder)}" data-testid="tweetTextarea_0"></div></div>
  <div data-testid="attachments" class="attachments"></div>
  <div class="row"><input type="file" data-testid="fileInput" multiple tabindex="-1" style="display:none"
    accept="image/jpeg,image/png,image/webp,image/gif,video/mp4,video/quicktime"
    aria-label="Add photos or video">{add}<button type="button" class="post" data-testid="{escape(testid)}" data-role="post"
    disabled aria-disabled="true">{escape(label)}</button></div>
</div>"""


def _date(iso_ts: str) -> str:
    return datetime.fromisoformat(iso_ts).strftime("%b %-d")


def article(t: dict[str, Any]) -> str:
    h, tid = escape(t["account"]), escape(t["id"])
    reply_ctx = ""
    if t.get("in_reply_to"):
        parent = t.get("in_reply_to_account")
        who = f'<a href="/{escape(parent)}">@{escape(parent)}</a>' if parent else "a post"
        reply_ctx = f'<div class="reply-context">Replying to {who}</div>'
    views = t["views"]
    return f"""<article data-testid="tweet" role="article" tabindex="0" aria-labelledby="t{tid}">
  <div data-testid="User-Name"><a href="/{h}"><b>{h}</b></a> <a href="/{h}">@{h}</a> ·
    <a href="/{h}/status/{tid}"><time datetime="{escape(t["created_at"])}">{_date(t["created_at"])}</time></a></div>
  {reply_ctx}
  <div data-testid="tweetText" id="t{tid}" lang="en" dir="auto">{escape(t["text"])}</div>
  <div role="group" aria-label="{t["replies"]} replies, {t["retweets"]} reposts, {t["likes"]} likes, {t["bookmarks"]} bookmarks, {views} views">
    <button data-testid="reply" aria-label="{_label(t["replies"], "Reply", "Replies", "Reply")}"><span>{_compact(t["replies"])}</span></button>
    <button data-testid="retweet" aria-label="{_label(t["retweets"], "repost", "reposts", "Repost")}"><span>{_compact(t["retweets"])}</span></button>
    <button data-testid="like" aria-label="{_label(t["likes"], "Like", "Likes", "Like")}"><span>{_compact(t["likes"])}</span></button>
    <a href="/{h}/status/{tid}/analytics" aria-label="{views} {"view" if views == 1 else "views"}"><span>{_compact(views)}</span></a>
    <button data-testid="bookmark" aria-label="{_label(t["bookmarks"], "Bookmark", "Bookmarks", "Bookmark")}"><span>{_compact(t["bookmarks"])}</span></button>
  </div>
</article>"""


def home_page(handle: str, drift: str = "", draftjs: bool = False) -> str:
    content = "<h2>Home</h2>\n" + _composer("tweetButtonInline" + drift, "Post")
    content += '\n<section aria-label="Timeline: Your Home Timeline"><div class="empty">Welcome to X.</div></section>'
    return _shell(handle, "Home / X", content, _config(handle, draftjs))


def compose_page(handle: str, reply_to: str | None = None, drift: str = "", draftjs: bool = False) -> str:
    content = '<div role="dialog" aria-modal="true" aria-labelledby="compose-title">'
    content += '<h2 id="compose-title"><a href="/home" data-testid="app-bar-close" aria-label="Close">×</a> Post</h2>'
    content += _composer(
        "tweetButton" + drift, "Reply" if reply_to else "Post all", reply_to=reply_to, thread=True
    )
    content += "</div>"
    return _shell(handle, "Compose new post / X", content, _config(handle, draftjs))


def profile_page(viewer: str, handle: str, tweets: list[dict[str, Any]]) -> str:
    h = escape(handle)
    items = (
        "\n".join(article(t) for t in tweets) or '<div class="empty">This account hasn’t posted yet.</div>'
    )
    content = f"""<h2>{h}</h2><div data-testid="UserName"><span>@{h}</span></div>
<section aria-label="Timeline: {h}’s posts" role="region"><div data-testid="cellInnerDiv">
{items}
</div></section>"""
    return _shell(viewer, f"{handle} (@{handle}) / X", content, _config(viewer))


def status_page(viewer: str, tweet: dict[str, Any], drift: str = "") -> str:
    content = "<h2>Post</h2>\n" + article(tweet)
    content += "\n" + _composer(
        "tweetButtonInline" + drift, "Reply", reply_to=tweet["id"], placeholder="Post your reply"
    )
    title = f'{tweet["account"]} on X: "{tweet["text"][:60]}" / X'
    return _shell(viewer, title, content, _config(viewer))


def not_found_page(viewer: str | None, what: str) -> str:
    content = (
        f'<div class="empty" data-testid="error-detail"><h2>Hmm...this page doesn’t exist.</h2>'
        f'<p>{escape(what)}</p><a href="/home">Search for something else.</a></div>'
    )
    if viewer:
        return _shell(viewer, "Page not found / X", content, _config(viewer))
    return _page("Page not found / X", content)


def login_page(redirect: str = "/home", error: str = "") -> str:
    err = (
        f'<div role="alert" aria-live="assertive" class="alert">{escape(error)}</div>'
        if error
        else ('<div aria-live="assertive" class="alert"></div>')
    )
    body = f"""<div class="login" role="dialog" aria-labelledby="login-title">
<h1 id="login-title">Sign in to X</h1>
<form method="post" action="/i/flow/login">
  <input type="hidden" name="redirect_after_login" value="{escape(redirect)}">
  <label>Phone, email, or username
    <input name="text" autocomplete="username" autocapitalize="none" autocorrect="off" spellcheck="false"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button type="submit" data-testid="loginButton" role="button">Log in</button>
</form>
{err}
<p>Don’t have an account? <a href="/i/flow/login">Sign up</a></p>
</div>"""
    return _page("Log in to X", body)
