// Renders a GraphQL tweet result the way x.com's page does (../shared/reference/x-real-rendering.md, section 1):
// t.co links with a hidden scheme span, the visible display part, a hidden tail span and an "…" span; emoji as
// <img alt>; mentions and hashtags inside inline-flex wrappers; counts only in the action bar's role=group label.
//
// DOM of one post:
//   article[data-testid=tweet][role=article]
//     div[data-testid=socialContext] "Pinned"                      (the pinned post only)
//     div[data-testid=User-Name]: a[href=/h] > span name, a[href=/h] > span "@h",
//                                 a[href=/h/status/<id>] > time[datetime=<ISO>]   (the post's permalink)
//     div.reply-context "Replying to @p"                          (replies only)
//     div[data-testid=tweetText]: span text runs (line breaks kept), img[alt=<emoji>],
//        a[href=https://t.co/..] > span(hidden scheme) span(visible part) span(hidden tail) [span "…"]
//          (hidden = position:absolute; opacity:0, still in innerText),
//        div[style=display:inline-flex] > span > a[href=/h] "@h"  |  a[href=/hashtag/x?src=hashtag_click] "#x"
//     div[role=group][aria-label="4 replies, 2 reposts, 30 likes, 1 bookmark, 2909 views"]  (zeros left out)
//        button[data-testid=reply|retweet|unretweet|like|unlike][aria-label="30 Likes. Like"],
//        a[aria-label="2909 views. View post analytics"], button[data-testid=bookmark][aria-label=Bookmark]
window.XArticle = (function () {
  const EMOJI = /(\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier}|\u200D\p{Extended_Pictographic}\uFE0F?)*|[\u{1F1E6}-\u{1F1FF}]{2}|[#*0-9]\uFE0F\u20E3)/gu;
  const OFFSCREEN = 'position:absolute;opacity:0;pointer-events:none;width:1px;height:1px;overflow:hidden';
  function el(tag, attrs, kids) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([k, v]) { node.setAttribute(k, v); });
    (kids || []).forEach(function (k) { node.append(k); });
    return node;
  }
  function unescape(s) {
    return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  }
  function plain(text) {
    // loose text: emoji become images, the rest sits in spans (line breaks kept by white-space:pre-wrap)
    const out = [];
    let last = 0;
    for (const m of text.matchAll(EMOJI)) {
      if (m.index > last) out.push(el('span', {class: 'css-1jxf684'}, [text.slice(last, m.index)]));
      const hex = Array.from(m[0]).map(c => c.codePointAt(0).toString(16)).filter(h => h !== 'fe0f').join('-');
      out.push(el('img', {alt: m[0], draggable: 'false', title: m[0], class: 'r-4qtqp9 emoji',
                          src: '/emoji/v2/svg/' + hex + '.svg'}));
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push(el('span', {class: 'css-1jxf684'}, [text.slice(last)]));
    return out;
  }
  function link(entity) {
    const expanded = entity.expanded_url, display = entity.display_url;
    const visible = display.endsWith('…') ? display.slice(0, -1) : display;
    const at = expanded.indexOf(visible);
    const head = at >= 0 ? expanded.slice(0, at) : '';
    const tail = at >= 0 ? expanded.slice(at + visible.length) : '';
    const a = el('a', {dir: 'ltr', href: entity.url, rel: 'noopener noreferrer nofollow', target: '_blank',
                       role: 'link', class: 'css-1jxf684 r-bcqeeo'});
    a.append(el('span', {'aria-hidden': 'true', class: 'r-qlhcfr', style: OFFSCREEN}, [head]));
    a.append(el('span', {'aria-hidden': 'true'}, [visible]));
    a.append(el('span', {'aria-hidden': 'true', class: 'r-qlhcfr', style: OFFSCREEN}, [tail]));
    if (display.endsWith('…')) a.append(el('span', {'aria-hidden': 'true'}, ['…']));
    return a;
  }
  function wrapped(href, text) {
    const a = el('a', {href: href, role: 'link', dir: 'ltr', class: 'css-1jxf684 r-bcqeeo'}, [text]);
    return el('div', {class: 'css-175oi2r r-xoduu5', style: 'display:inline-flex'},
              [el('span', {class: 'r-18u37iz'}, [a])]);
  }
  function textNodes(legacy) {
    // legacy.full_text is HTML-escaped; a long post's note_tweet text (passed with escaped: false) is not
    const chars = Array.from(legacy.escaped === false ? legacy.full_text : unescape(legacy.full_text));
    const range = legacy.display_text_range || [0, chars.length];
    const ents = [];
    const e = legacy.entities || {};
    (e.urls || []).forEach(u => ents.push({kind: 'url', start: u.indices[0], end: u.indices[1], data: u}));
    (e.user_mentions || []).forEach(u => ents.push({kind: 'mention', start: u.indices[0], end: u.indices[1], data: u}));
    (e.hashtags || []).forEach(u => ents.push({kind: 'hashtag', start: u.indices[0], end: u.indices[1], data: u}));
    ents.sort((a, b) => a.start - b.start);
    const out = [];
    let pos = range[0];
    ents.forEach(function (ent) {
      if (ent.start < pos || ent.end > range[1]) return;
      out.push(...plain(chars.slice(pos, ent.start).join('')));
      if (ent.kind === 'url') out.push(link(ent.data));
      else if (ent.kind === 'mention') out.push(wrapped('/' + ent.data.screen_name, '@' + ent.data.screen_name));
      else out.push(wrapped('/hashtag/' + ent.data.text + '?src=hashtag_click', '#' + ent.data.text));
      pos = ent.end;
    });
    out.push(...plain(chars.slice(pos, range[1]).join('')));
    return out;
  }
  function unwrap(result) {
    return result && result.__typename === 'TweetWithVisibilityResults' ? result.tweet : result;
  }
  function compact(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
    if (n >= 1e4) return Math.round(n / 1e3) + 'K';
    if (n >= 1e3) return (n / 1e3).toFixed(1).replace(/\.0$/, '') + 'K';
    return String(n);
  }
  function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }
  function actionBar(legacy, views) {
    const parts = [];
    if (legacy.reply_count) parts.push(plural(legacy.reply_count, 'reply', 'replies'));
    if (legacy.retweet_count) parts.push(plural(legacy.retweet_count, 'repost', 'reposts'));
    if (legacy.favorite_count) parts.push(plural(legacy.favorite_count, 'like', 'likes'));
    if (legacy.bookmark_count) parts.push(plural(legacy.bookmark_count, 'bookmark', 'bookmarks'));
    if (views) parts.push(plural(views, 'view', 'views'));
    function button(testid, n, one, many, verb) {
      const label = n ? plural(n, one, many) + '. ' + verb : verb;
      return el('button', {'data-testid': testid, 'aria-label': label, role: 'button'},
                [el('span', {}, [n ? compact(n) : ''])]);
    }
    return el('div', {role: 'group', 'aria-label': parts.join(', '), class: 'actions'}, [
      button('reply', legacy.reply_count, 'Reply', 'Replies', 'Reply'),
      button(legacy.retweeted ? 'unretweet' : 'retweet', legacy.retweet_count, 'repost', 'reposts',
             legacy.retweeted ? 'Reposted' : 'Repost'),
      button(legacy.favorited ? 'unlike' : 'like', legacy.favorite_count, 'Like', 'Likes',
             legacy.favorited ? 'Liked' : 'Like'),
      el('a', {href: '#', 'aria-label': plural(views, 'view', 'views') + '. View post analytics'},
         [el('span', {}, [compact(views)])]),
      el('button', {'data-testid': 'bookmark', 'aria-label': 'Bookmark', role: 'button'}, [])
    ]);
  }
  function ago(createdAt) {
    const d = new Date(createdAt);
    return d.toLocaleDateString('en-US', {month: 'short', day: 'numeric', timeZone: 'UTC'});
  }
  // Media as x.com shows them: photos as <img> with their alt text ("Image" without one), video and GIF as a
  // player labelled the same way. The sandbox serves photos itself (/pbs/media/<key>), never from pbs.twimg.com.
  function mediaBlock(media) {
    const box = el('div', {class: 'media', 'aria-labelledby': ''});
    media.forEach(function (m) {
      const label = m.ext_alt_text || (m.type === 'photo' ? 'Image' : 'Embedded video');
      const key = m.media_url_https.split('/').pop().split('.')[0];
      if (m.type === 'photo') {
        box.append(el('div', {'data-testid': 'tweetPhoto'},
                      [el('img', {alt: label, src: '/pbs/media/' + key, draggable: 'true'})]));
      } else {
        box.append(el('div', {'data-testid': 'videoPlayer'},
                      [el('video', {'aria-label': label, preload: 'none', playsinline: '', muted: ''})]));
      }
    });
    return box;
  }
  function article(result, context) {
    const post = unwrap(result);
    const legacy = post.legacy;
    const user = post.core.user_results.result;
    const handle = (user.core && user.core.screen_name) || (user.legacy && user.legacy.screen_name);
    const name = (user.core && user.core.name) || handle;
    const created = new Date(legacy.created_at);
    const permalink = '/' + handle + '/status/' + post.rest_id;
    const art = el('article', {'data-testid': 'tweet', role: 'article', tabindex: '0'});
    if (context) art.append(el('div', {'data-testid': 'socialContext'}, [context]));
    art.append(el('div', {'data-testid': 'User-Name'}, [
      el('a', {href: '/' + handle, role: 'link'}, [el('span', {}, [name])]), ' ',
      el('a', {href: '/' + handle, role: 'link', tabindex: '-1'}, [el('span', {}, ['@' + handle])]), ' · ',
      el('a', {href: permalink, role: 'link'}, [el('time', {datetime: created.toISOString()}, [ago(created)])])
    ]));
    if (legacy.in_reply_to_screen_name) {
      art.append(el('div', {class: 'reply-context'}, ['Replying to ',
        el('a', {href: '/' + legacy.in_reply_to_screen_name}, ['@' + legacy.in_reply_to_screen_name])]));
    }
    const note = post.note_tweet && post.note_tweet.note_tweet_results.result;
    const source = note ? {full_text: note.text, entities: note.entity_set, escaped: false} : legacy;
    art.append(el('div', {'data-testid': 'tweetText', lang: legacy.lang || 'en', dir: 'auto', class: 'tweet-text'},
                  textNodes(source)));
    const media = (legacy.extended_entities && legacy.extended_entities.media) || [];
    if (media.length) art.append(mediaBlock(media));
    art.append(actionBar(legacy, parseInt((post.views && post.views.count) || '0', 10)));
    return art;
  }
  function headers() {
    const m = document.cookie.match('(?:^|; )ct0=([^;]*)');
    return {'x-csrf-token': m ? decodeURIComponent(m[1]) : '', 'x-twitter-auth-type': 'OAuth2Session',
            'x-twitter-active-user': 'yes', 'content-type': 'application/json',
            'authorization': 'Bearer AAAAAAAAAAAAAAAAAAAAANRILgAAAAAAnNwIzUejRCOuH5E6I8xnZz4puTs%3D'};
  }
  async function graphql(queryId, name, variables) {
    const url = '/i/api/graphql/' + queryId + '/' + name + '?variables=' + encodeURIComponent(JSON.stringify(variables))
      + '&features=' + encodeURIComponent('{}');
    const resp = await fetch(url, {credentials: 'include', headers: headers()});
    if (!resp.ok) throw new Error(name + ' answered ' + resp.status);
    return resp.json();
  }
  return {article: article, graphql: graphql, unwrap: unwrap, el: el};
})();
