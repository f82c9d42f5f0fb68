// The DNS setup widget. Opened as /widget#token=<widget token>: the fragment
// never leaves the browser. The token goes to this edge only, as a bearer
// token; every text from the API is put in with textContent.
'use strict';

(() => {
  const el = (id) => document.getElementById(id);

  // What each DNS status means, in plain words: [badge class, label].
  const STATUS = {
    valid: ['ok', '\u2713 Correct'],
    missing: ['todo', 'Not found yet'],
    wrong: ['bad', '\u2717 Wrong value'],
    duplicate: ['bad', '\u2717 Conflicting records'],
    proxied: ['bad', '\u2717 Proxied by a CDN'],
    lookup_failed: ['wait', 'Could not check yet'],
    pending: ['wait', 'Not checked yet'],
  };
  const PURPOSE = {
    ownership: 'Proves that you control this domain.',
    ownership_txt: 'Proves that you control this domain.',
    acme_delegation: 'Lets us renew your certificate automatically.',
    routing: 'Sends your visitors to us.',
  };
  const STATE = {
    pending_ownership: 'Waiting for your DNS records.',
    verified: 'Domain verified \u2014 your certificate is being issued.',
    issuing_cert: 'Domain verified \u2014 your certificate is being issued.',
    live: 'All set \u2014 your domain is live with HTTPS.',
    drifted: 'A record changed since your domain was verified: please fix it below.',
  };

  // Say so this long before the session ends.
  const WARN_BEFORE_MS = 5 * 60 * 1000;

  class SessionEnded extends Error {}

  const s = {
    token: '',
    id: '',
    ended: false,
    busy: false,
    refreshSecs: 30,
    expiryTimer: 0,
    warningTimer: 0,
    refreshTimer: 0,
    rows: new Map(), // record key -> {li, badge, fix, observed, status}
  };

  const clock = (date) => date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  function announce(text) {
    const region = el('announce');
    region.textContent = '';
    // A fresh node, so the same sentence twice is still read out.
    window.setTimeout(() => { region.textContent = text; }, 50);
  }

  function setState(name) {
    document.body.dataset.state = name;
  }

  // The session is over (expired token, or none): forget everything shown,
  // stop every timer, and never call the API again.
  function end(kind) {
    if (s.ended) return;
    s.ended = true;
    s.token = '';
    window.clearTimeout(s.expiryTimer);
    window.clearTimeout(s.warningTimer);
    window.clearTimeout(s.refreshTimer);
    s.rows.clear();
    for (const id of ['widget', 'loading']) {
      const node = el(id);
      if (node) node.remove();
    }
    const title = el('ended-title');
    if (kind === 'missing') {
      title.textContent = 'No session';
      el('ended-text').textContent = 'This page opens from your dashboard. Reopen it from your dashboard to continue.';
    } else if (kind === 'gone') {
      title.textContent = 'Domain removed';
      el('ended-text').textContent = 'This domain is no longer set up. Reopen your dashboard to see your domains.';
    }
    el('expired').hidden = false;
    setState('expired');
    announce(`${title.textContent}. ${el('ended-text').textContent}`);
    if (document.hasFocus()) title.focus({ preventScroll: true });
  }

  async function call(method, path) {
    if (s.ended) throw new SessionEnded();
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${s.token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    if (response.status === 401) {
      end('expired');
      throw new SessionEnded();
    }
    // The token is valid but its connection is gone (archived): nothing to show, ever.
    if (response.status === 404 && path.startsWith('/v1/connections/')) {
      end('gone');
      throw new SessionEnded();
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (s.ended) throw new SessionEnded();
    if (!response.ok) {
      throw new Error((body && body.message) || `The server answered ${response.status}.`);
    }
    return body;
  }

  function showError(error) {
    if (error instanceof SessionEnded || s.ended) return;
    const box = el('error');
    box.textContent = `Could not check right now: ${error.message} We will try again shortly.`;
    box.hidden = false;
  }

  function clearError() {
    el('error').hidden = true;
    el('error').textContent = '';
  }

  function badge(node, status) {
    const [kind, label] = STATUS[status] || ['wait', status];
    node.className = `badge ${kind}`;
    node.textContent = label;
  }

  // Copies `text`; when the browser refuses (an iframe without
  // allow="clipboard-write"), selects it so Ctrl+C works.
  async function copy(text, what, button, code) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (_) {
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'offscreen';
      document.body.append(area);
      area.select();
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
      area.remove();
      button.focus();
    }
    if (!ok) {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    button.textContent = ok ? 'Copied' : 'Selected';
    announce(ok ? `${what} copied.` : `${what} selected: press Control C to copy it.`);
    window.setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  }

  function field(label, value, what) {
    const row = document.createElement('div');
    row.className = 'field';
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    const code = document.createElement('code');
    code.textContent = value;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'copy';
    button.textContent = 'Copy';
    button.setAttribute('aria-label', `Copy ${what}`);
    button.addEventListener('click', () => copy(value, what, button, code));
    dd.append(code, button);
    row.append(dt, dd);
    return row;
  }

  function recordRow(r) {
    const li = document.createElement('li');
    li.className = 'record';
    const head = document.createElement('div');
    head.className = 'record-head';
    const title = document.createElement('h3');
    title.textContent = `${r.type} record`;
    if (!r.required) {
      const optional = document.createElement('span');
      optional.className = 'optional';
      optional.textContent = 'optional';
      title.append(' ', optional);
    }
    const purpose = document.createElement('span');
    purpose.className = 'purpose';
    purpose.textContent = PURPOSE[r.purpose] || '';
    title.append(purpose);
    const status = document.createElement('span');
    head.append(title, status);
    const fields = document.createElement('dl');
    fields.className = 'fields';
    const of = `the ${r.type} record at ${r.name}`;
    fields.append(
      field('Type', r.type, `the type of ${of}`),
      field('Name', r.name, `the name of ${of}`),
      field('Value', r.expected_value, `the value of ${of}`),
    );
    const fix = document.createElement('p');
    fix.className = 'fix';
    const observed = document.createElement('p');
    observed.className = 'observed';
    const note = document.createElement('p');
    note.className = 'observed';
    li.append(head, fields, fix, observed, note);
    return { li, badge: status, fix, observed, note, status: null };
  }

  function renderRecords(records) {
    const list = el('records');
    const seen = new Set();
    const changes = [];
    records.forEach((r, index) => {
      const key = `${r.type} ${r.name} ${r.expected_value}`;
      seen.add(key);
      let row = s.rows.get(key);
      if (!row) {
        row = recordRow(r);
        s.rows.set(key, row);
      }
      // Kept in the API's order; an existing row is moved, not rebuilt, so focus stays put.
      if (list.children[index] !== row.li) list.insertBefore(row.li, list.children[index] || null);
      if (row.status !== null && row.status !== r.status) {
        changes.push(`${r.type} record at ${r.name}: ${(STATUS[r.status] || ['', r.status])[1]}`);
      }
      row.status = r.status;
      row.li.dataset.status = r.status;
      badge(row.badge, r.status);
      row.fix.textContent = r.status === 'valid' ? '' : r.fix;
      row.fix.hidden = r.status === 'valid';
      const found = (r.observed_value || []).join(', ');
      row.observed.textContent = r.status === 'wrong' || r.status === 'proxied' || r.status === 'duplicate'
        ? `Found now: ${found || 'nothing'}` : '';
      row.observed.hidden = !row.observed.textContent;
      row.note.textContent = r.applied_by_edge ? 'We set this record at your DNS provider for you.' : '';
      row.note.hidden = !r.applied_by_edge;
    });
    for (const [key, row] of s.rows) {
      if (!seen.has(key)) {
        row.li.remove();
        s.rows.delete(key);
      }
    }
    return changes;
  }

  function renderSans(connection) {
    const sans = connection && connection.ssl && Array.isArray(connection.ssl.sans) ? connection.ssl.sans : [];
    const section = el('sans-section');
    const list = el('sans');
    list.replaceChildren();
    section.hidden = sans.length === 0;
    for (const san of sans) {
      const li = document.createElement('li');
      li.className = 'san';
      li.dataset.status = san.dns_status;
      const head = document.createElement('div');
      head.className = 'record-head';
      const name = document.createElement('span');
      name.className = 'san-name';
      name.textContent = san.name;
      const status = document.createElement('span');
      badge(status, san.dns_status);
      head.append(name, status);
      li.append(head);
      if (san.dns_status !== 'valid' && san.fix) {
        const fix = document.createElement('p');
        fix.className = 'fix';
        fix.textContent = san.fix;
        li.append(fix);
      }
      if (san.dns_status !== 'valid' && san.expected) {
        const expected = document.createElement('p');
        expected.className = 'observed';
        const observed = Array.isArray(san.observed) ? san.observed.join(', ') : (san.observed || '');
        expected.textContent = `Expected: ${san.expected}. Found now: ${observed || 'nothing'}.`;
        li.append(expected);
      }
      const times = [];
      if (san.last_checked_at) times.push(`checked at ${clock(new Date(san.last_checked_at))}`);
      if (san.next_check_at) times.push(`next check at ${clock(new Date(san.next_check_at))}`);
      if (times.length) {
        const when = document.createElement('p');
        when.className = 'observed';
        when.textContent = `Automatically ${times.join(', ')}.`;
        li.append(when);
      }
      list.append(li);
    }
  }

  function summary(check) {
    const required = check.records.filter((r) => r.required);
    const ok = required.filter((r) => r.status === 'valid').length;
    const records = ok === required.length
      ? 'Every required record is correct.'
      : `${ok} of ${required.length} required records are correct.`;
    return `${records} ${STATE[check.state] || ''}`.trim();
  }

  async function refresh() {
    const id = encodeURIComponent(s.id);
    const [check, connection] = await Promise.all([
      call('GET', `/v1/connections/${id}/records:check`),
      call('GET', `/v1/connections/${id}`),
    ]);
    if (s.ended) return [];
    if (check.state === 'archived') {
      end('gone');
      return [];
    }
    clearError();
    el('domain').textContent = check.hostname;
    // Required records first (in the API's order), optional ones after.
    const records = (check.records || []).slice().sort((x, y) => Number(!x.required) - Number(!y.required));
    const changes = renderRecords(records);
    renderSans(connection);
    const text = summary(check);
    if (el('summary').textContent !== text) el('summary').textContent = text;
    el('checked').textContent = `Last checked at ${clock(new Date())}.`;
    return changes;
  }

  function schedule() {
    if (s.ended) return;
    window.clearTimeout(s.refreshTimer);
    s.refreshTimer = window.setTimeout(async () => {
      if (!s.busy && !document.hidden) {
        try {
          const changes = await refresh();
          if (changes.length) announce(changes.join('. '));
        } catch (e) {
          showError(e);
        }
      }
      schedule();
    }, s.refreshSecs * 1000);
  }

  async function checkNow() {
    const button = el('check');
    if (s.busy || s.ended) return;
    s.busy = true;
    // aria-disabled, not disabled: the button keeps keyboard focus.
    button.setAttribute('aria-disabled', 'true');
    button.textContent = 'Checking\u2026';
    el('widget').setAttribute('aria-busy', 'true');
    announce('Checking your DNS records\u2026');
    try {
      await call('POST', `/v1/connections/${encodeURIComponent(s.id)}/verify`);
      const changes = await refresh();
      // Said once, in one go: what changed, then where things stand.
      announce([...changes, el('summary').textContent].join('. '));
    } catch (e) {
      showError(e);
    } finally {
      s.busy = false;
      if (!s.ended) {
        button.removeAttribute('aria-disabled');
        button.textContent = 'Check now';
        el('widget').setAttribute('aria-busy', 'false');
        schedule();
      }
    }
  }

  async function start() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    s.token = params.get('token') || '';
    if (!s.token) {
      end('missing');
      return;
    }
    try {
      const session = await call('GET', '/widget/session');
      s.id = session.connection_id;
      s.refreshSecs = Math.max(1, Number(session.refresh_secs) || 30);
      const left = Math.max(0, Number(session.expires_in_secs) || 0) * 1000;
      const until = clock(new Date(Date.now() + left));
      window.clearTimeout(s.expiryTimer);
      window.clearTimeout(s.warningTimer);
      s.expiryTimer = window.setTimeout(() => end('expired'), left);
      s.warningTimer = window.setTimeout(() => {
        const text = `This page disconnects at ${until}; reopen it from your dashboard to continue after that.`;
        el('session').textContent = text;
        announce(text);
      }, Math.max(0, left - WARN_BEFORE_MS));
      el('session').textContent = `This page stays connected until ${until}.`;
      await refresh();
      el('loading').remove();
      el('widget').hidden = false;
      el('widget').setAttribute('aria-busy', 'false');
      setState('ready');
    } catch (e) {
      if (s.ended) return;
      el('loading').firstElementChild.textContent = `Could not load: ${e.message} Retrying\u2026`;
      window.setTimeout(start, 5000);
      return;
    }
    schedule();
  }

  document.addEventListener('DOMContentLoaded', () => {
    el('check').addEventListener('click', checkNow);
    start();
  });
  // A dashboard that hands the frame a new token (a new #token=) gets a fresh page.
  window.addEventListener('hashchange', () => window.location.reload());
})();
