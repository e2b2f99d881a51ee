// The profile timeline and the status page, rendered from GraphQL JSON like x.com's client: the HTML is a shell,
// posts arrive from UserTweets / UserTweetsAndReplies (cursor paging) or TweetDetail, and only about five
// cellInnerDiv rows exist in the DOM at once (absolutely placed with translateY inside a tall list).
//
// Profile (/h, /h/with_replies): section[role=region] > #timeline-root > div(tall) > div[data-testid=cellInnerDiv]
//   > article; the pinned post first, then newest first; each post of a conversation module is its own row.
//   Scrolling the window draws the next rows and asks the next page (variables.cursor = the Bottom cursor).
//   An account with no posts: [data-testid=emptyState]. A failed read: div[role=alert] "Something went wrong".
// Status (/h/status/<id>, always HTTP 200): #timeline-root > cellInnerDiv > article for each ancestor (oldest
//   first), the focal post (its permalink is the id), then replies. Deleted or unknown: [data-testid=error-detail]
//   "Hmm...this page doesn’t exist. Try searching for something else."
(function () {
  const cfg = JSON.parse(document.getElementById('sandbox-config').textContent);
  const X = window.XArticle;
  const ROW_H = 240, WINDOW = 5, PAGE = 20;

  function timeline(root) {
    const rows = [];  // {result, context}
    const list = X.el('div', {style: 'position:relative;min-height:' + ROW_H + 'px'});
    const cells = new Map();
    let cursor = null, loading = false, done = false;
    root.textContent = '';
    root.append(list);
    function entryRows(entry, pinned) {
      const c = entry.content;
      if (c.entryType === 'TimelineTimelineItem') {
        rows.push({result: c.itemContent.tweet_results.result, context: pinned ? 'Pinned' : null});
        return 1;
      }
      if (c.entryType === 'TimelineTimelineModule') {
        c.items.forEach(i => rows.push({result: i.item.itemContent.tweet_results.result, context: null}));
        return c.items.length;
      }
      if (c.entryType === 'TimelineTimelineCursor' && c.cursorType === 'Bottom') cursor = c.value;
      return 0;
    }
    async function load() {
      if (loading || done) return;
      loading = true;
      const variables = {userId: cfg.userId, count: PAGE, includePromotedContent: true, withVoice: true};
      if (cursor) variables.cursor = cursor;
      try {
        const body = await X.graphql(cfg.timelineQueryId, cfg.timeline, variables);
        const instructions = body.data.user.result.timeline.timeline.instructions;
        let added = 0;
        instructions.forEach(function (ins) {
          if (ins.type === 'TimelinePinEntry') added += entryRows(ins.entry, true);
          if (ins.type === 'TimelineAddEntries') ins.entries.forEach(e => { added += entryRows(e, false); });
        });
        if (!added) done = true;
      } catch (e) {
        done = true;
        root.append(X.el('div', {class: 'empty', role: 'alert'}, ['Something went wrong. Try reloading.']));
      }
      loading = false;
      if (!rows.length && done) {
        root.append(X.el('div', {class: 'empty', 'data-testid': 'emptyState'}, ['This account hasn’t posted yet.']));
      }
      draw();
    }
    function draw() {
      list.style.height = (rows.length * ROW_H + (done ? 0 : ROW_H)) + 'px';
      const top = list.getBoundingClientRect().top + window.scrollY;
      const first = Math.max(0, Math.min(rows.length - WINDOW, Math.floor((window.scrollY - top) / ROW_H) - 1));
      const last = Math.min(rows.length, Math.max(0, first) + WINDOW);
      cells.forEach(function (cell, i) { if (i < first || i >= last) { cell.remove(); cells.delete(i); } });
      for (let i = Math.max(0, first); i < last; i++) {
        if (cells.has(i)) continue;
        const cell = X.el('div', {'data-testid': 'cellInnerDiv',
          style: 'position:absolute;left:0;right:0;height:' + ROW_H + 'px;overflow:hidden;transform:translateY(' + (i * ROW_H) + 'px)'});
        cell.append(X.article(rows[i].result, rows[i].context));
        list.append(cell);
        cells.set(i, cell);
      }
      if (last >= rows.length - 1 && !done) load();
    }
    window.addEventListener('scroll', draw, {passive: true});
    window.addEventListener('resize', draw);
    load();
  }

  async function status(root) {
    let body;
    try {
      body = await X.graphql(cfg.detailQueryId, 'TweetDetail', {focalTweetId: cfg.tweetId, with_rux_injections: false});
    } catch (e) {
      root.textContent = 'Something went wrong. Try reloading.';
      return;
    }
    root.textContent = '';
    const entries = body.data.threaded_conversation_with_injections_v2.instructions[0].entries;
    const results = [];
    entries.forEach(function (e) {
      if (e.content.itemContent) results.push(e.content.itemContent.tweet_results.result);
      else (e.content.items || []).forEach(i => results.push(i.item.itemContent.tweet_results.result));
    });
    const focal = results.find(r => r.__typename === 'TweetTombstone' || X.unwrap(r).rest_id === cfg.tweetId);
    if (!focal || focal.__typename === 'TweetTombstone') {
      root.append(X.el('div', {'data-testid': 'error-detail', class: 'empty'}, [
        X.el('span', {}, ['Hmm...this page doesn’t exist. Try searching for something else.'])]));
      return;
    }
    results.forEach(function (r) {
      root.append(X.el('div', {'data-testid': 'cellInnerDiv'}, [X.article(r, null)]));
    });
  }

  const root = document.getElementById('timeline-root');
  if (root && cfg.page === 'profile') timeline(root);
  if (root && cfg.page === 'status') status(root);
})();
