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

# The page script: reads its config, wires every composer, posts through CreateTweet with fetch.
_JS = r"""
(function () {
  const cfg = JSON.parse(document.getElementById('sandbox-config').textContent);
  const live = document.querySelector('[aria-live="assertive"]');
  const layers = document.getElementById('layers');
  const MESSAGES = {
    186: 'Your post is over the character limit.',
    187: 'Whoops! You already said that.',
    88: 'You are over the limit for sending posts. Please try again later.',
    226: "This request looks like it might be automated. To protect our users from spam and other malicious activity, we can't complete this action right now. Please try again later.",
    385: 'You attempted to reply to a post that is deleted or not visible to you.',
    353: 'Something went wrong. Please reload the page.',
    170: 'Your post is empty.'
  };
  function cookie(name) {
    const m = document.cookie.match('(?:^|; )' + name + '=([^;]*)');
    return m ? decodeURIComponent(m[1]) : '';
  }
  function clearMessages() { live.textContent = ''; layers.textContent = ''; }
  function showError(msg) { live.textContent = msg; }
  function showToast(id) {
    layers.textContent = '';
    const toast = document.createElement('div');
    toast.setAttribute('data-testid', 'toast');
    toast.setAttribute('role', 'alert');
    toast.append(document.createTextNode('Your post was sent.'));
    const link = document.createElement('a');
    link.href = '/' + cfg.handle + '/status/' + id;
    link.textContent = 'View';
    toast.append(link);
    layers.append(toast);
  }
  // The text of a contenteditable composer: the first line is loose text, every further line a <div>
  // (an empty line is <div><br></div>); innerText is not reliable for this, so walk the nodes.
  function boxText(box) {
    const lines = [];
    let cur = null;
    function inline(node) {
      if (node.nodeType === 3) return node.nodeValue;
      if (node.nodeName === 'BR') return '\n';
      let s = '';
      node.childNodes.forEach(function (c) { s += inline(c); });
      return s;
    }
    box.childNodes.forEach(function (node) {
      if (node.nodeType === 1 && (node.nodeName === 'DIV' || node.nodeName === 'P')) {
        if (cur !== null) { lines.push(cur); cur = null; }
        lines.push(inline(node).replace(/\n$/, ''));
      } else {
        cur = (cur === null ? '' : cur) + inline(node);
      }
    });
    if (cur !== null) lines.push(cur.replace(/\n$/, ''));
    return lines.join('\n').replace(/\u00a0/g, ' ');
  }
  async function createTweet(text, replyTo) {
    const variables = {
      tweet_text: text, dark_request: false,
      media: {media_entities: [], possibly_sensitive: false}, semantic_annotation_ids: []
    };
    if (replyTo) variables.reply = {in_reply_to_tweet_id: replyTo, exclude_reply_user_ids: []};
    let resp, body = null;
    try {
      resp = await fetch('/i/api/graphql/' + cfg.queryId + '/CreateTweet', {
        method: 'POST', credentials: 'include',
        headers: {
          'content-type': 'application/json', 'x-csrf-token': cookie('ct0'),
          'x-twitter-auth-type': 'OAuth2Session', 'x-twitter-active-user': 'yes',
          'authorization': 'Bearer AAAAAAAAAAAAAAAAAAAAANRILgAAAAAAnNwIzUejRCOuH5E6I8xnZz4puTs%3D'
        },
        body: JSON.stringify({variables: variables, features: {}, queryId: cfg.queryId})
      });
    } catch (e) {
      return {ok: false, message: 'Something went wrong. Try reloading.'};
    }
    try { body = await resp.json(); } catch (e) { body = null; }
    const result = body && body.data && body.data.create_tweet && body.data.create_tweet.tweet_results
      && body.data.create_tweet.tweet_results.result;
    if (resp.ok && result && result.rest_id) return {ok: true, id: result.rest_id};
    const err = body && body.errors && body.errors[0];
    const code = err ? err.code : null;
    if (resp.status === 401 || code === 32) {
      showError('Could not authenticate you.');
      // like x.com: the session is gone, so the app leaves for the login flow (after a moment, so a client
      // watching the network can still read the response body)
      setTimeout(function () {
        location.href = '/i/flow/login?redirect_after_login=' + encodeURIComponent(location.pathname);
      }, 1000);
      return {ok: false, code: 32, message: 'Could not authenticate you.'};
    }
    let message = MESSAGES[code];
    if (!message) message = resp.status >= 500 ? 'Something went wrong. Try reloading.'
      : ((err && err.message) || 'Something went wrong. Try reloading.');
    return {ok: false, code: code, status: resp.status, message: message};
  }
  function wire(composer) {
    const button = composer.querySelector('[data-role="post"]');
    const add = composer.querySelector('[data-role="add"]');
    const originalReplyTo = composer.getAttribute('data-reply-to') || '';
    let busy = false;
    const boxes = () => Array.from(composer.querySelectorAll('[role="textbox"]'));
    const texts = () => boxes().map(boxText);
    function refresh() {
      button.disabled = busy || !texts().every(t => t.trim().length > 0);
      button.setAttribute('aria-disabled', button.disabled ? 'true' : 'false');
    }
    composer.addEventListener('input', refresh);
    if (add) add.addEventListener('click', function () {
      const n = boxes().length;
      const box = document.createElement('div');
      box.className = 'textbox';
      box.setAttribute('contenteditable', 'true');
      box.setAttribute('role', 'textbox');
      box.setAttribute('aria-multiline', 'true');
      box.setAttribute('aria-label', 'Post text');
      box.setAttribute('data-placeholder', 'Add another post');
      box.setAttribute('data-testid', 'tweetTextarea_' + n);
      composer.querySelector('.parts').append(box);
      box.focus();
      refresh();
    });
    button.addEventListener('click', async function () {
      if (button.disabled) return;
      const parts = texts();
      busy = true; refresh(); clearMessages();
      let previous = composer.getAttribute('data-reply-to') || null, first = null, done = 0, failure = null;
      for (const text of parts) {
        const r = await createTweet(text, previous);
        if (!r.ok) { failure = r; break; }
        if (!first) first = r.id;
        previous = r.id; done += 1;
      }
      busy = false;
      if (failure) {
        if (failure.code === 32) return;
        // keep the parts that were not posted, so nothing is sent twice by a retry
        boxes().slice(0, done).forEach(b => b.remove());
        boxes().forEach((b, i) => b.setAttribute('data-testid', 'tweetTextarea_' + i));
        if (done) composer.setAttribute('data-reply-to', previous);
        showError(failure.message);
      } else {
        const all = boxes();
        all.slice(1).forEach(b => b.remove());
        all[0].textContent = '';
        if (originalReplyTo) composer.setAttribute('data-reply-to', originalReplyTo);
        else composer.removeAttribute('data-reply-to');
        showToast(first);
      }
      refresh();
    });
    refresh();
  }
  document.querySelectorAll('[data-sandbox-composer]').forEach(wire);
})();
"""


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


def _page(title: str, body: str, config: dict[str, Any] | None = None) -> str:
    script = ""
    if config is not None:
        data = json.dumps(config).replace("</", "<\\/")
        script = (
            f'<script type="application/json" id="sandbox-config">{data}</script>\n<script>{_JS}</script>'
        )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en" dir="ltr"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_CSS}</style></head>\n<body>\n{body}\n{script}\n</body></html>"
    )


def _shell(handle: str, title: str, content: str, config: dict[str, Any]) -> str:
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
    return _page(title, body, config)


def _config(handle: str) -> dict[str, Any]:
    return {"handle": handle, "queryId": QUERY_ID}


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
  <div class="row">{add}<button type="button" class="post" data-testid="{escape(testid)}" data-role="post"
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


def home_page(handle: str, drift: str = "") -> str:
    content = "<h2>Home</h2>\n" + _composer("tweetButtonInline" + drift, "Post")
    content += '\n<section aria-label="Timeline: Your Home Timeline"><div class="empty">Welcome to X.</div></section>'
    return _shell(handle, "Home / X", content, _config(handle))


def compose_page(handle: str, reply_to: str | None = None, drift: str = "") -> str:
    content = '<div role="dialog" aria-modal="true" aria-labelledby="compose-title">'
    content += '<h2 id="compose-title"><a href="/home" data-testid="app-bar-close" aria-label="Close">×</a> Post</h2>'
    content += _composer(
        "tweetButton" + drift, "Reply" if reply_to else "Post all", reply_to=reply_to, thread=True
    )
    content += "</div>"
    return _shell(handle, "Compose new post / X", content, _config(handle))


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
