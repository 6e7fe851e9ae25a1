// The logrelay log explorer. Plain JavaScript, no dependencies, served by the http-api
// connector under a Content-Security-Policy that allows no inline script and no eval.
//
// Log content is data: it reaches the page only through textContent, createElement and
// setAttribute on attributes that are not URLs or handlers. Nothing here writes markup.
'use strict';

(() => {
  const LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical'];
  const PRESETS = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '30d': 2592000 };
  const PAGE = 100;
  /** Rows the table keeps at most (search pages and live records alike). */
  const MAX_ROWS = 5000;
  /** Live records held while the tail is paused (older ones are dropped and counted). */
  const MAX_PENDING = 2000;
  /** Characters of a message shown in a table cell; the detail shows it whole. */
  const CELL_CHARS = 400;
  /** Characters of a message shown in the detail before "Show the whole message". */
  const DETAIL_CHARS = 20000;
  const BUCKETS = 60;
  const TOKEN_KEY = 'logrelay.token';
  // Characters that reorder or hide text: shown as visible marks in the table.
  const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const SVG = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  };

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    query: {},
    gen: 0,
    next: null,
    loading: false,
    rows: [], // records shown, newest first
    selected: -1,
    detail: null,
    live: null, // { abort, count, times }
    pending: [],
    dropped: 0,
    highlight: null,
  };

  class AuthNeeded extends Error {}

  // --- the API ---------------------------------------------------------------------------------

  function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    if (state.token) h.Authorization = 'Bearer ' + state.token;
    return h;
  }

  async function api(path, options) {
    const opts = options || {};
    const res = await fetch(path, {
      method: opts.method || 'GET',
      headers: headers(opts.body ? { 'Content-Type': 'application/json' } : null),
      body: opts.body ? JSON.stringify(opts.body) : undefined,
      signal: opts.signal,
      cache: 'no-store',
    });
    if (res.status === 401) {
      askToken(state.token ? 'The token was refused (401). Enter the right one.' : '');
      throw new AuthNeeded('a token is needed');
    }
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      const why = body && typeof body.error === 'string' ? body.error : res.statusText;
      throw new Error(res.status + ': ' + why);
    }
    return body;
  }

  // --- the query and the URL -------------------------------------------------------------------

  const FIELDS = ['range', 'from', 'to', 'project', 'module', 'min_level', 'text', 'attrs'];

  function readForm() {
    const q = {
      range: $('range').value,
      project: $('project').value.trim(),
      module: $('module').value.trim(),
      min_level: $('min-level').value,
      text: $('text').value,
      attrs: $('attrs').value.trim(),
    };
    if (q.range === 'custom') {
      q.from = fromLocalInput($('from').value);
      q.to = fromLocalInput($('to').value);
    }
    return q;
  }

  function writeForm(q) {
    $('range').value = q.range || '1h';
    $('project').value = q.project || '';
    $('module').value = q.module || '';
    $('min-level').value = q.min_level || '';
    $('text').value = q.text || '';
    $('attrs').value = q.attrs || '';
    $('from').value = toLocalInput(q.from);
    $('to').value = toLocalInput(q.to);
    $('custom-range').hidden = $('range').value !== 'custom';
  }

  function queryFromUrl() {
    const p = new URLSearchParams(location.search);
    const q = {};
    for (const f of FIELDS) {
      const v = p.get(f);
      if (v !== null && v !== '') q[f] = v;
    }
    if (!q.range) q.range = q.from || q.to ? 'custom' : '1h';
    if (!(q.range in PRESETS) && q.range !== 'all' && q.range !== 'custom') q.range = '1h';
    return q;
  }

  function urlOf(q) {
    const p = new URLSearchParams();
    for (const f of FIELDS) {
      if (q[f]) p.set(f, q[f]);
    }
    const s = p.toString();
    return location.pathname + (s ? '?' + s : '');
  }

  /** The API's filter parameters for a query; `now` fixes a preset's end. */
  function filterParams(q, now, forStream) {
    const p = new URLSearchParams();
    if (!forStream) {
      if (q.range in PRESETS) {
        p.set('from', new Date(now - PRESETS[q.range] * 1000).toISOString());
        p.set('to', new Date(now + 1000).toISOString());
      } else if (q.range === 'custom') {
        if (q.from) p.set('from', q.from);
        if (q.to) p.set('to', q.to);
      }
    }
    for (const name of ['project', 'module']) {
      for (const v of (q[name] || '').split(',').map((s) => s.trim()).filter(Boolean)) {
        p.append(name, v);
      }
    }
    if (q.min_level) p.set('min_level', q.min_level);
    if (q.text) p.set('text', q.text);
    for (const token of (q.attrs || '').split(/\s+/).filter(Boolean)) {
      if (token.startsWith('has:')) {
        if (token.length > 4) p.append('has', token.slice(4));
      } else {
        const eq = token.indexOf('=');
        if (eq > 0) p.set('attr[' + token.slice(0, eq) + ']', token.slice(eq + 1));
      }
    }
    return p;
  }

  function fromLocalInput(v) {
    if (!v) return '';
    const d = new Date(v);
    return isNaN(d.getTime()) ? '' : d.toISOString();
  }

  function toLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    const pad = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function formatTime(ns, withMillis) {
    const d = new Date(Math.floor(ns / 1e6));
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    let s = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    if (withMillis !== false) s += '.' + pad(d.getMilliseconds(), 3);
    return s;
  }

  /** Text with its control and bidi characters shown as marks, cut to `max` characters. */
  function visible(text, max) {
    const s = String(text);
    const cut = s.length > max ? s.slice(0, max) : s;
    return cut.replace(CONTROL, (c) => '\u2039U+' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0') + '\u203a') +
      (s.length > max ? ' \u2026 (' + s.length.toLocaleString() + ' characters)' : '');
  }

  function go(q, push) {
    state.query = q;
    writeForm(q);
    const url = urlOf(q);
    if (push && url !== location.pathname + location.search) history.pushState(null, '', url);
    else if (!push) history.replaceState(null, '', url);
    search();
  }

  // --- search, pages, the table ----------------------------------------------------------------

  function status(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = cls || 'muted';
  }

  async function search() {
    const gen = ++state.gen;
    const q = state.query;
    const now = Date.now();
    const params = filterParams(q, now, false);
    state.params = params;
    state.next = null;
    state.rows = [];
    state.selected = -1;
    // Live records held for the previous query are not this one's.
    state.pending = [];
    state.dropped = 0;
    state.loading = true;
    document.body.dataset.busy = '1';
    $('rows').replaceChildren();
    $('more').textContent = '';
    status('Searching\u2026');
    // The previous search's requests are of no use any more.
    if (state.abort) state.abort.abort();
    state.abort = new AbortController();
    const signal = state.abort.signal;
    const started = performance.now();
    try {
      const body = await loadPage(params, null, gen, signal);
      if (gen !== state.gen || !body) return;
      // The chart and the facets count every matching row of the range: asked for once the
      // first page is shown, so that they never delay it.
      requestOverview({ q: q, now: now, params: params, gen: gen });
      const ms = performance.now() - started;
      state.lastSearchMs = ms;
      status(countText() + ' in ' + Math.round(ms) + ' ms');
      if (state.highlight) selectById(state.highlight);
      state.highlight = null;
    } finally {
      if (gen === state.gen) {
        state.loading = false;
        delete document.body.dataset.busy;
        document.body.dataset.gen = String(gen);
      }
    }
    if (state.live) restartLive();
    fillViewport();
  }

  /**
   * The chart and the facets, one pair of requests at a time per page: each reads every row of
   * its range, and the store goes on with a read the page no longer wants (aborting the fetch
   * does not stop it), so searches in quick succession would pile such reads up and take the
   * store's connections from the result pages. Only the newest waiting search is drawn.
   */
  const overview = { running: false, pending: null };

  function requestOverview(o) {
    overview.pending = o;
    if (!overview.running) runOverview();
  }

  async function runOverview() {
    overview.running = true;
    try {
      while (overview.pending) {
        const o = overview.pending;
        overview.pending = null;
        if (o.gen !== state.gen) continue;
        await Promise.all([loadChart(o.q, o.now, o.gen), loadFacets(o.params, o.gen)]);
      }
    } finally {
      overview.running = false;
    }
  }

  function countText() {
    const n = state.rows.length;
    return n.toLocaleString() + (state.next ? '+' : '') + (n === 1 ? ' record' : ' records');
  }

  async function loadPage(params, cursor, gen, signal) {
    const p = new URLSearchParams(params);
    p.set('limit', String(PAGE));
    if (cursor) p.set('cursor', cursor);
    let body;
    try {
      body = await api('/logs?' + p.toString(), { signal: signal });
    } catch (e) {
      if (gen === state.gen) status(e instanceof AuthNeeded ? 'Sign in to read the logs.' : 'Search failed: ' + e.message, 'error');
      return null;
    }
    if (gen !== state.gen) return null;
    appendRows(body.records || []);
    state.next = body.next || null;
    if (state.rows.length >= MAX_ROWS && state.next) {
      state.next = null;
      $('more').textContent = 'Showing the newest ' + MAX_ROWS.toLocaleString() + ' records; narrow the query for older ones.';
    } else {
      $('more').textContent = state.next ? 'Scroll for more\u2026' : (state.rows.length ? 'End of results.' : 'No records match.');
    }
    return body;
  }

  async function loadMore() {
    if (state.loading || !state.next) return;
    state.loading = true;
    const gen = state.gen;
    try {
      await loadPage(state.params, state.next, gen, state.abort ? state.abort.signal : undefined);
      if (gen === state.gen) status(countText());
    } finally {
      if (gen === state.gen) state.loading = false;
    }
    fillViewport();
  }

  /** Loads pages until the table is taller than its box (or no more), so scrolling can start. */
  function fillViewport() {
    const wrap = $('table-wrap');
    if (state.next && !state.loading && wrap.scrollHeight <= wrap.clientHeight + 40) loadMore();
  }

  function rowOf(r) {
    const tr = el('tr');
    tr.dataset.id = r.id;
    tr.appendChild(el('td', 'c-time', formatTime(r.timestamp_ns)));
    const lvl = el('td', 'c-level');
    const level = LEVELS.includes(r.level) ? r.level : 'info';
    lvl.appendChild(el('span', 'lvl lvl-' + level, String(r.level)));
    tr.appendChild(lvl);
    tr.appendChild(el('td', 'c-project', visible(r.project, 200)));
    tr.appendChild(el('td', 'c-module', visible(r.module, 200)));
    tr.appendChild(el('td', 'c-message', visible(r.message, CELL_CHARS)));
    tr.title = '';
    return tr;
  }

  function appendRows(records) {
    const frag = document.createDocumentFragment();
    for (const r of records) {
      if (state.rows.length >= MAX_ROWS) break;
      state.rows.push(r);
      frag.appendChild(rowOf(r));
    }
    $('rows').appendChild(frag);
  }

  /** New live records on top; the oldest rows go once the table holds MAX_ROWS. */
  function prependRows(records) {
    const tbody = $('rows');
    const frag = document.createDocumentFragment();
    // `records` oldest first: the newest ends on top.
    const newest = records.slice().reverse();
    for (const r of newest) {
      const tr = rowOf(r);
      tr.classList.add('fresh');
      frag.appendChild(tr);
    }
    tbody.insertBefore(frag, tbody.firstChild);
    state.rows = newest.concat(state.rows);
    if (state.selected >= 0) state.selected += newest.length;
    let trimmed = false;
    while (state.rows.length > MAX_ROWS) {
      state.rows.pop();
      tbody.lastChild.remove();
      trimmed = true;
    }
    if (trimmed) {
      // Older pages continue after the last row kept.
      const last = state.rows[state.rows.length - 1];
      state.next = Math.floor(last.timestamp_ns / 1000) + ':' + last.id;
      if (state.selected >= state.rows.length) state.selected = -1;
    }
    status(countText());
  }

  // --- chart -----------------------------------------------------------------------------------

  async function loadChart(q, now, gen, signal) {
    const p = filterParams(q, now, false);
    p.set('buckets', String(BUCKETS));
    let h;
    try {
      h = await api('/logs/histogram?' + p.toString(), { signal: signal });
    } catch (_) {
      return;
    }
    if (gen !== state.gen) return;
    drawChart(h);
    $('chart').dataset.gen = String(gen);
  }

  function drawChart(h) {
    const box = $('chart');
    const W = 1000;
    const H = 100;
    const top = 4;
    const bottom = 14;
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + (H + bottom), preserveAspectRatio: 'none', role: 'img' });
    s.appendChild(svg('line', { x1: 0, y1: H, x2: W, y2: H, class: 'base' }));
    const label = el('title');
    s.appendChild(label);
    state.chart = null;
    if (h && h.from_ns != null && h.to_ns != null && h.to_ns > h.from_ns) {
      const span = h.to_ns - h.from_ns;
      const stepNs = h.bucket_us * 1000;
      const n = Math.max(1, Math.ceil(span / stepNs));
      const max = Math.max(1, ...h.buckets.map((b) => b.total));
      const bw = W / n;
      label.textContent = h.buckets.reduce((a, b) => a + b.total, 0).toLocaleString() + ' records';
      for (const b of h.buckets) {
        let y = H;
        const x = b.index * bw;
        const g = svg('g');
        const tip = el('title');
        tip.textContent = formatTime(b.start_ns, false) + ': ' + b.total.toLocaleString();
        g.appendChild(tip);
        for (const level of LEVELS) {
          const c = b.counts[level] || 0;
          if (!c) continue;
          const hgt = ((H - top) * c) / max;
          y -= hgt;
          g.appendChild(svg('rect', { x: x + 0.5, y: y, width: Math.max(bw - 1, 0.5), height: hgt, class: 'bar-' + level }));
        }
        s.appendChild(g);
      }
      const a = svg('text', { x: 2, y: H + 11, class: 'axis' });
      a.textContent = formatTime(h.from_ns, false);
      const z = svg('text', { x: W - 2, y: H + 11, class: 'axis', 'text-anchor': 'end' });
      z.textContent = formatTime(h.to_ns, false);
      s.append(a, z);
      state.chart = { from: h.from_ns, to: h.to_ns, W: W };
    }
    const sel = svg('rect', { x: 0, y: 0, width: 0, height: H, class: 'sel', visibility: 'hidden' });
    s.appendChild(sel);
    box.replaceChildren(s);
    box.dataset.buckets = h ? String(h.buckets.length) : '0';
  }

  function chartDrag() {
    const box = $('chart');
    let start = null;
    const frac = (ev) => {
      const r = box.getBoundingClientRect();
      return Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
    };
    const rect = () => box.querySelector('rect.sel');
    const show = (a, b) => {
      const r = rect();
      if (!r || !state.chart) return;
      const W = state.chart.W;
      r.setAttribute('x', String(Math.min(a, b) * W));
      r.setAttribute('width', String(Math.abs(b - a) * W));
      r.setAttribute('visibility', 'visible');
    };
    box.addEventListener('pointerdown', (ev) => {
      if (!state.chart || ev.button !== 0) return;
      start = frac(ev);
      box.setPointerCapture(ev.pointerId);
      ev.preventDefault();
    });
    box.addEventListener('pointermove', (ev) => {
      if (start !== null) show(start, frac(ev));
    });
    box.addEventListener('pointerup', (ev) => {
      if (start === null || !state.chart) return;
      const end = frac(ev);
      const a = Math.min(start, end);
      const b = Math.max(start, end);
      start = null;
      const r = rect();
      if (r) r.setAttribute('visibility', 'hidden');
      if (b - a < 0.005) return;
      const span = state.chart.to - state.chart.from;
      const from = new Date(Math.floor((state.chart.from + a * span) / 1e6)).toISOString();
      const to = new Date(Math.ceil((state.chart.from + b * span) / 1e6)).toISOString();
      go(Object.assign({}, state.query, { range: 'custom', from: from, to: to }), true);
    });
  }

  // --- facets ----------------------------------------------------------------------------------

  async function loadFacets(params, gen, signal) {
    let st;
    try {
      st = await api('/logs/stats?' + params.toString(), { signal: signal });
    } catch (_) {
      return;
    }
    if (gen !== state.gen) return;
    facet('project', st.by_project || {});
    facet('module', st.by_module || {});
    $('facets').dataset.gen = String(gen);
    if (!state.next && typeof st.total === 'number') status(countText() + ' (' + st.total.toLocaleString() + ' in range)');
    else if (typeof st.total === 'number') status(countText() + ' of ' + st.total.toLocaleString() + ' in range');
  }

  function facet(name, counts) {
    const ul = $('facet-' + name);
    const top = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 15);
    const frag = document.createDocumentFragment();
    for (const [value, n] of top) {
      const li = el('li');
      const b = el('button', null, value === '' ? '(none)' : visible(value, 80));
      b.type = 'button';
      b.title = 'Only ' + name + ' ' + value;
      b.dataset.value = value;
      b.addEventListener('click', () => {
        const q = Object.assign({}, state.query);
        q[name] = value;
        go(q, true);
      });
      li.append(b, el('span', 'n', n.toLocaleString()));
      frag.appendChild(li);
    }
    ul.replaceChildren(frag);
  }

  // --- selection and detail --------------------------------------------------------------------

  function select(i, scroll) {
    const rows = $('rows').children;
    if (state.selected >= 0 && rows[state.selected]) rows[state.selected].classList.remove('selected');
    if (i < 0 || i >= rows.length) {
      state.selected = -1;
      return;
    }
    state.selected = i;
    rows[i].classList.add('selected');
    if (scroll) rows[i].scrollIntoView({ block: 'nearest' });
  }

  function selectById(id) {
    const i = state.rows.findIndex((r) => r.id === id);
    if (i >= 0) select(i, true);
  }

  function openDetail(i) {
    const r = state.rows[i];
    if (!r) return;
    select(i, false);
    showDetail(r);
  }

  function showDetail(r) {
    state.detail = r;
    const dl = $('detail-fields');
    dl.replaceChildren();
    for (const [k, v] of [
      ['id', r.id], ['timestamp', r.timestamp], ['timestamp_ns', String(r.timestamp_ns)],
      ['local time', formatTime(r.timestamp_ns)], ['level', r.level], ['project', r.project], ['module', r.module],
    ]) {
      dl.append(el('dt', null, k), el('dd', null, visible(v, 2000)));
    }
    const msg = String(r.message);
    $('detail-message').textContent = msg.length > DETAIL_CHARS ? msg.slice(0, DETAIL_CHARS) : msg;
    $('detail-expand').hidden = msg.length <= DETAIL_CHARS;
    $('detail-expand').textContent = 'Show the whole message (' + msg.length.toLocaleString() + ' characters)';
    $('detail-attributes').textContent = JSON.stringify(r.attributes || {}, null, 2);
    const json = JSON.stringify(r, null, 2);
    $('detail-json').textContent = json.length > DETAIL_CHARS * 2 ? json.slice(0, DETAIL_CHARS * 2) + '\n\u2026' : json;
    $('write-actions').hidden = !state.token;
    $('edit-form').hidden = true;
    $('delete').textContent = 'Delete';
    delete $('delete').dataset.armed;
    $('detail-status').textContent = '';
    $('detail').hidden = false;
  }

  function closeDetail() {
    $('detail').hidden = true;
    state.detail = null;
    $('table-wrap').focus({ preventScroll: true });
  }

  async function copy(text, button) {
    const was = button.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch (_) {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => { button.textContent = was; }, 1200);
  }

  function surrounding() {
    const r = state.detail;
    if (!r) return;
    const ms = Math.floor(r.timestamp_ns / 1e6);
    state.highlight = r.id;
    closeDetail();
    go({
      range: 'custom',
      from: new Date(ms - 5 * 60 * 1000).toISOString(),
      to: new Date(ms + 5 * 60 * 1000 + 1).toISOString(),
      project: r.project,
    }, true);
  }

  function keyOf(r) {
    return 'id=' + encodeURIComponent(r.id) + '&timestamp=' + encodeURIComponent(String(r.timestamp_ns));
  }

  async function del() {
    const r = state.detail;
    const b = $('delete');
    if (!r) return;
    if (!b.dataset.armed) {
      b.dataset.armed = '1';
      b.textContent = 'Really delete?';
      return;
    }
    try {
      await api('/log?' + keyOf(r), { method: 'DELETE' });
      const i = state.rows.indexOf(r);
      if (i >= 0) {
        state.rows.splice(i, 1);
        $('rows').children[i].remove();
        state.selected = -1;
      }
      closeDetail();
      status('Deleted ' + r.id + '.');
    } catch (e) {
      $('detail-status').textContent = 'Delete failed: ' + e.message;
    }
  }

  async function saveEdit(ev) {
    ev.preventDefault();
    const r = state.detail;
    if (!r) return;
    try {
      const body = await api('/log', {
        method: 'POST',
        body: { id: r.id, timestamp: r.timestamp_ns, level: $('edit-level').value, message: $('edit-message').value },
      });
      const changed = body && body.record ? body.record : r;
      const i = state.rows.indexOf(r);
      if (i >= 0) {
        state.rows[i] = changed;
        $('rows').replaceChild(rowOf(changed), $('rows').children[i]);
        select(i, false);
      }
      showDetail(changed);
      $('detail-status').textContent = 'Saved.';
    } catch (e) {
      $('detail-status').textContent = 'Save failed: ' + e.message;
    }
  }

  // --- live tail -------------------------------------------------------------------------------

  function paused() {
    return $('table-wrap').scrollTop > 4;
  }

  function startLive() {
    stopLive();
    const ctl = new AbortController();
    const live = { abort: ctl, times: [] };
    state.live = live;
    const p = filterParams(state.query, Date.now(), true);
    readStream('/logs/stream?' + p.toString(), ctl.signal, live).catch((e) => {
      if (state.live === live && !ctl.signal.aborted) {
        $('rate').textContent = e instanceof AuthNeeded ? 'live tail: sign in' : 'live tail stopped: ' + e.message;
        $('live').checked = false;
        state.live = null;
      }
    });
    live.timer = setInterval(showRate, 1000);
    showRate();
  }

  function restartLive() {
    if ($('live').checked) startLive();
  }

  function stopLive() {
    if (!state.live) return;
    state.live.abort.abort();
    clearInterval(state.live.timer);
    state.live = null;
    $('rate').textContent = '';
  }

  function showRate() {
    const live = state.live;
    if (!live) return;
    const now = performance.now();
    while (live.times.length && live.times[0] < now - 10000) live.times.shift();
    const rate = live.times.length / 10;
    let text = 'live: ' + (rate < 10 ? rate.toFixed(1) : Math.round(rate)) + '/s';
    if (state.pending.length || state.dropped) {
      text += ' \u00b7 paused, ' + (state.pending.length + state.dropped).toLocaleString() + ' new (scroll to the top)';
    }
    $('rate').textContent = text;
  }

  /** Server-sent events over fetch(), so that the token goes in a header, never the URL. */
  async function readStream(url, signal, live) {
    const res = await fetch(url, { headers: headers({ Accept: 'text/event-stream' }), signal: signal, cache: 'no-store' });
    if (res.status === 401) {
      askToken('');
      throw new AuthNeeded('a token is needed');
    }
    if (!res.ok || !res.body) throw new Error(String(res.status));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let event = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended');
      buf += value;
      let nl;
      const batch = [];
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (event === 'log' && data.length) {
            try {
              batch.push(JSON.parse(data.join('\n')));
            } catch (_) { /* not a record: ignored */ }
          }
          event = '';
          data = [];
        } else if (line.startsWith('event:')) {
          event = line.slice(6).trim();
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
      }
      if (batch.length && state.live === live) received(batch, live);
    }
  }

  function received(records, live) {
    const now = performance.now();
    for (let i = 0; i < records.length; i++) live.times.push(now);
    if (live.times.length > 100000) live.times.splice(0, live.times.length - 100000);
    if (paused()) {
      state.pending.push(...records);
      if (state.pending.length > MAX_PENDING) {
        state.dropped += state.pending.length - MAX_PENDING;
        state.pending.splice(0, state.pending.length - MAX_PENDING);
      }
      showRate();
      return;
    }
    prependRows(records);
  }

  function flushPending() {
    if (!state.pending.length) {
      state.dropped = 0;
      return;
    }
    const p = state.pending;
    state.pending = [];
    state.dropped = 0;
    prependRows(p);
    showRate();
  }

  // --- auth ------------------------------------------------------------------------------------

  function askToken(message) {
    const d = $('login');
    $('login-error').textContent = message || '';
    if (!d.open) d.showModal();
    $('token-input').focus();
  }

  async function submitToken(ev) {
    ev.preventDefault();
    const given = $('token-input').value.trim();
    if (!given) return;
    const res = await fetch('/logs?limit=1', { headers: { Accept: 'application/json', Authorization: 'Bearer ' + given }, cache: 'no-store' });
    if (res.status === 401) {
      $('login-error').textContent = 'The token was refused (401).';
      return;
    }
    state.token = given;
    sessionStorage.setItem(TOKEN_KEY, given);
    $('token-input').value = '';
    $('login').close();
    authButton();
    search();
  }

  function authButton() {
    $('auth').textContent = state.token ? 'Sign out' : 'Sign in';
  }

  // --- keyboard --------------------------------------------------------------------------------

  function typing(t) {
    return t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === 'Escape') {
      if (!$('detail').hidden) {
        closeDetail();
        ev.preventDefault();
      } else if (typing(ev.target)) {
        ev.target.blur();
      }
      return;
    }
    if (typing(ev.target) || $('login').open) return;
    if (ev.key === '/') {
      ev.preventDefault();
      $('text').focus();
      $('text').select();
    } else if (ev.key === 'j' || ev.key === 'ArrowDown') {
      ev.preventDefault();
      select(Math.min(state.selected + 1, state.rows.length - 1), true);
      if (state.selected >= state.rows.length - 5) loadMore();
      if (!$('detail').hidden && state.selected >= 0) showDetail(state.rows[state.selected]);
    } else if (ev.key === 'k' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      select(Math.max(state.selected - 1, 0), true);
      if (!$('detail').hidden && state.selected >= 0) showDetail(state.rows[state.selected]);
    } else if (ev.key === 'Enter' && state.selected >= 0) {
      ev.preventDefault();
      openDetail(state.selected);
    }
  }

  // --- wiring ----------------------------------------------------------------------------------

  function init() {
    $('search').addEventListener('submit', (ev) => {
      ev.preventDefault();
      go(readForm(), true);
    });
    $('range').addEventListener('change', () => {
      const custom = $('range').value === 'custom';
      $('custom-range').hidden = !custom;
      if (custom && !$('from').value) {
        $('from').value = toLocalInput(new Date(Date.now() - 3600 * 1000).toISOString());
        $('to').value = toLocalInput(new Date().toISOString());
      }
      if (!custom) go(readForm(), true);
    });
    for (const id of ['min-level']) $(id).addEventListener('change', () => go(readForm(), true));
    $('rows').addEventListener('click', (ev) => {
      const tr = ev.target instanceof Element ? ev.target.closest('tr') : null;
      if (!tr) return;
      openDetail(Array.prototype.indexOf.call($('rows').children, tr));
    });
    $('table-wrap').addEventListener('scroll', () => {
      const w = $('table-wrap');
      if (w.scrollTop + w.clientHeight > w.scrollHeight - 400) loadMore();
      if (!paused()) flushPending();
    }, { passive: true });
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    }, { root: $('table-wrap') }).observe($('more'));
    $('detail-close').addEventListener('click', closeDetail);
    $('detail-expand').addEventListener('click', () => {
      if (state.detail) $('detail-message').textContent = String(state.detail.message);
      $('detail-expand').hidden = true;
    });
    $('copy-message').addEventListener('click', (ev) => state.detail && copy(String(state.detail.message), ev.currentTarget));
    $('copy-attributes').addEventListener('click', (ev) => state.detail && copy(JSON.stringify(state.detail.attributes || {}, null, 2), ev.currentTarget));
    $('copy-json').addEventListener('click', (ev) => state.detail && copy(JSON.stringify(state.detail, null, 2), ev.currentTarget));
    $('surrounding').addEventListener('click', surrounding);
    $('delete').addEventListener('click', del);
    $('edit').addEventListener('click', () => {
      if (!state.detail) return;
      $('edit-level').value = LEVELS.includes(state.detail.level) ? state.detail.level : 'info';
      $('edit-message').value = String(state.detail.message);
      $('edit-form').hidden = false;
    });
    $('edit-cancel').addEventListener('click', () => { $('edit-form').hidden = true; });
    $('edit-form').addEventListener('submit', saveEdit);
    $('live').addEventListener('change', () => {
      if ($('live').checked) startLive();
      else stopLive();
    });
    $('login-form').addEventListener('submit', (ev) => {
      submitToken(ev).catch((e) => { $('login-error').textContent = 'Sign-in failed: ' + e.message; });
    });
    $('login-cancel').addEventListener('click', () => $('login').close());
    $('auth').addEventListener('click', () => {
      if (state.token) {
        state.token = '';
        sessionStorage.removeItem(TOKEN_KEY);
        authButton();
        stopLive();
        $('live').checked = false;
        closeDetail();
        search();
      } else {
        askToken('');
      }
    });
    document.addEventListener('keydown', onKey);
    window.addEventListener('popstate', () => {
      state.query = queryFromUrl();
      writeForm(state.query);
      search();
    });
    chartDrag();
    authButton();
    go(queryFromUrl(), false);
  }

  init();
})();
