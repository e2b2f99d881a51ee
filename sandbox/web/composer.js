// The composer: wires every [data-sandbox-composer], posts through CreateTweet with fetch.
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
    170: 'Your post is empty.',
    324: 'Some of your media failed to upload.'
  };
  const API_HEADERS = () => ({
    'x-csrf-token': cookie('ct0'), 'x-twitter-auth-type': 'OAuth2Session', 'x-twitter-active-user': 'yes',
    'authorization': 'Bearer AAAAAAAAAAAAAAAAAAAAANRILgAAAAAAnNwIzUejRCOuH5E6I8xnZz4puTs%3D'
  });
  const CHUNK = 1024 * 1024;  // bytes per APPEND
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  function cookie(name) {
    const m = document.cookie.match('(?:^|; )' + name + '=([^;]*)');
    return m ? decodeURIComponent(m[1]) : '';
  }

  // Like x.com's Draft.js editor, a composer in realistic mode (cfg.draftjs) keeps its own record of the text and
  // takes only what arrives as editing input: a typed key (keydown, then its beforeinput), Enter, deletions after
  // a key, a paste after Ctrl/Cmd+V, and one-character commits without a key (how an IME or `keyboard.type`
  // enters emoji). Anything else
  // (Playwright's `fill`, i.e. select-all + one multi-character insertText; execCommand; a script writing the
  // DOM) is refused or put back, so it never reaches the text that CreateTweet sends.
  function gate(box) {
    box._accepted = box.innerHTML;
    box._pending = false;
  }
  function setBox(box, html) { box.innerHTML = html; box._accepted = box.innerHTML; }
  let lastKey = null;
  if (cfg.draftjs) {
    document.addEventListener('keydown', function (e) { lastKey = e.key; }, true);
    document.addEventListener('beforeinput', function (e) {
      const box = e.target.closest && e.target.closest('[role="textbox"]');
      if (!box) return;
      const kind = e.inputType, key = lastKey;
      lastKey = null;
      let ok = false;
      if (kind === 'insertText') {
        const data = e.data || '';
        ok = key === data || (key === null && Array.from(data).length === 1);
      } else if (kind === 'insertParagraph' || kind === 'insertLineBreak') {
        ok = key === 'Enter';
      } else if (kind.startsWith('delete')) {
        ok = key !== null;
      } else if (kind === 'insertFromPaste') {
        ok = key === 'v' || key === 'V';  // a paste the person made (Ctrl/Cmd+V), as Draft.js takes it
      }
      if (ok) box._pending = true; else e.preventDefault();
    }, true);
    document.addEventListener('input', function (e) {
      const box = e.target.closest && e.target.closest('[role="textbox"]');
      if (box && box._pending) { box._pending = false; box._accepted = box.innerHTML; }
    }, true);
    new MutationObserver(function (records) {
      const seen = new Set();
      records.forEach(function (r) {
        const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        const box = node && node.closest && node.closest('[role="textbox"]');
        if (!box || seen.has(box)) return;
        seen.add(box);
        if (box._accepted === undefined) gate(box);
        if (!box._pending && box.innerHTML !== box._accepted) box.innerHTML = box._accepted;
      });
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
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
  // One file through x.com's chunked upload: INIT, APPEND per chunk, FINALIZE, then STATUS until processed
  // (video and GIF). The attachment's data-media-state says where it is: uploading, processing, ready, failed.
  async function uploadCall(params, body) {
    const resp = await fetch('/i/media/upload.json?' + new URLSearchParams(params), {
      method: params.command === 'STATUS' ? 'GET' : 'POST', credentials: 'include', headers: API_HEADERS(),
      body: body
    });
    if (!resp.ok) throw new Error('upload ' + params.command + ' answered ' + resp.status);
    return resp.status === 204 ? null : resp.json();
  }
  async function upload(file, att) {
    const bar = att.querySelector('[role="progressbar"]');
    const progress = pct => bar.setAttribute('aria-valuenow', String(Math.round(pct)));
    const category = file.type === 'image/gif' ? 'tweet_gif'
      : (file.type.startsWith('video/') ? 'tweet_video' : 'tweet_image');
    try {
      const init = await uploadCall({command: 'INIT', total_bytes: file.size, media_type: file.type,
                                     media_category: category});
      const id = init.media_id_string;
      for (let i = 0, at = 0; at < file.size; i += 1, at += CHUNK) {
        await uploadCall({command: 'APPEND', media_id: id, segment_index: i}, file.slice(at, at + CHUNK));
        progress(90 * Math.min(file.size, at + CHUNK) / file.size);
      }
      let info = (await uploadCall({command: 'FINALIZE', media_id: id})).processing_info;
      att.setAttribute('data-media-state', 'processing');
      while (info && (info.state === 'pending' || info.state === 'in_progress')) {
        await sleep(1000 * (info.check_after_secs || 1));
        info = (await uploadCall({command: 'STATUS', media_id: id})).processing_info;
        if (info && info.progress_percent) progress(90 + info.progress_percent / 10);
      }
      if (info && info.state === 'failed') throw new Error('processing failed');
      att.setAttribute('data-media-id', id);
      att.setAttribute('data-media-state', 'ready');
      progress(100);
    } catch (e) {
      att.setAttribute('data-media-state', 'failed');
      att.setAttribute('data-media-error', String(e.message || e));
      showError('Some of your media failed to upload.');
    }
  }
  // The description (alt text) editor x.com opens from an attachment's "Add description".
  function editAlt(att, done) {
    layers.textContent = '';
    const dialog = document.createElement('div');
    dialog.setAttribute('role', 'dialog');
    dialog.setAttribute('aria-label', 'Edit image description');
    const input = document.createElement('textarea');
    input.setAttribute('data-testid', 'altTextInput');
    input.setAttribute('aria-label', 'Description');
    input.maxLength = 1000;
    input.value = att._alt || '';
    const save = document.createElement('button');
    save.type = 'button';
    save.setAttribute('data-testid', 'endEditingButton');
    save.textContent = 'Save';
    save.addEventListener('click', function () {
      att._alt = input.value;
      att.querySelector('[data-testid="altTextLabel"]').textContent = input.value ? 'ALT' : 'Add description';
      layers.textContent = '';
      done();
    });
    dialog.append(input, save);
    layers.append(dialog);
    input.focus();
  }
  async function saveAlt(att) {
    const resp = await fetch('/i/api/1.1/media/metadata/create.json', {
      method: 'POST', credentials: 'include', headers: {...API_HEADERS(), 'content-type': 'application/json'},
      body: JSON.stringify({media_id: att.getAttribute('data-media-id'), alt_text: {text: att._alt}})
    });
    return resp.ok;
  }
  async function createTweet(text, replyTo, mediaIds) {
    const variables = {
      tweet_text: text, dark_request: false,
      media: {media_entities: (mediaIds || []).map(id => ({media_id: id, tagged_users: []})),
              possibly_sensitive: false},
      semantic_annotation_ids: []
    };
    if (replyTo) variables.reply = {in_reply_to_tweet_id: replyTo, exclude_reply_user_ids: []};
    let resp, body = null;
    try {
      resp = await fetch('/i/api/graphql/' + cfg.queryId + '/CreateTweet', {
        method: 'POST', credentials: 'include',
        headers: {...API_HEADERS(), 'content-type': 'application/json'},
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
    const strip = composer.querySelector('[data-testid="attachments"]');
    const fileInput = composer.querySelector('input[data-testid="fileInput"]');
    const attachments = () => Array.from(strip.children);
    function refresh() {
      const atts = attachments();
      button.disabled = busy || !texts().every((t, i) => t.trim().length > 0 || (i === 0 && atts.length > 0))
        || atts.some(a => a.getAttribute('data-media-state') !== 'ready');
      button.setAttribute('aria-disabled', button.disabled ? 'true' : 'false');
    }
    composer.addEventListener('input', refresh);
    fileInput.addEventListener('change', function () {
      Array.from(fileInput.files).forEach(function (file) {
        const att = document.createElement('div');
        att.setAttribute('role', 'group');
        att.setAttribute('aria-label', 'Media');
        att.setAttribute('data-media-state', 'uploading');
        att.setAttribute('data-media-type', file.type);
        att.innerHTML = '<div role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"></div>'
          + '<button type="button" data-testid="altTextLabel">Add description</button>'
          + '<button type="button" data-testid="removeMedia" aria-label="Remove media">×</button>';
        att.querySelector('[data-testid="altTextLabel"]').addEventListener('click', () => editAlt(att, refresh));
        att.querySelector('[data-testid="removeMedia"]').addEventListener('click', function () {
          att.remove(); refresh();
        });
        strip.append(att);
        upload(file, att).then(refresh);
      });
      fileInput.value = '';
      refresh();
    });
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
      gate(box);
      composer.querySelector('.parts').append(box);
      box.focus();
      refresh();
    });
    button.addEventListener('click', async function () {
      if (button.disabled) return;
      const parts = texts();
      busy = true; refresh(); clearMessages();
      let previous = composer.getAttribute('data-reply-to') || null, first = null, done = 0, failure = null;
      const atts = attachments();
      for (const att of atts) {
        if (att._alt && !(await saveAlt(att))) failure = {message: 'Something went wrong. Try reloading.'};
      }
      for (const text of failure ? [] : parts) {
        const ids = done === 0 ? atts.map(a => a.getAttribute('data-media-id')) : [];  // media go with part 1
        const r = await createTweet(text, previous, ids);
        if (!r.ok) { failure = r; break; }
        if (!first) first = r.id;
        previous = r.id; done += 1;
      }
      busy = false;
      if (failure) {
        if (failure.code === 32) return;
        // keep the parts that were not posted, so nothing is sent twice by a retry
        boxes().slice(0, done).forEach(b => b.remove());
        if (done) strip.textContent = '';
        boxes().forEach((b, i) => b.setAttribute('data-testid', 'tweetTextarea_' + i));
        if (done) composer.setAttribute('data-reply-to', previous);
        showError(failure.message);
      } else {
        const all = boxes();
        all.slice(1).forEach(b => b.remove());
        setBox(all[0], '');
        strip.textContent = '';
        if (originalReplyTo) composer.setAttribute('data-reply-to', originalReplyTo);
        else composer.removeAttribute('data-reply-to');
        showToast(first);
      }
      refresh();
    });
    refresh();
  }
  document.querySelectorAll('[role="textbox"]').forEach(gate);
  document.querySelectorAll('[data-sandbox-composer]').forEach(wire);
})();
