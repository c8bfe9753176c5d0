/* web/app.js - the dashboard's behaviour (web/index.html).
 *
 * Plain JavaScript for current browsers; no framework, no build step, no
 * request to anywhere but the broker that served the page.
 *
 * How it stays current (docs/HTTP.md, "The event stream"): it opens
 * /api/v1/events first, then reads /api/v1/snapshot, and from then on
 * applies each event whose per-topic tseq is above what it has seen for
 * that topic (the clone pattern of PROTOCOL.md 8.2). Events that arrive
 * while a snapshot is being read wait and are applied after it. The
 * stream is read with fetch() rather than EventSource so that it can
 * carry a bearer token; it reconnects by itself with a growing delay and
 * sends Last-Event-ID, and the broker either replays what was missed or
 * says "resync", after which the page reads a new snapshot. A restarted
 * broker is therefore a short "reconnecting" and then the new state.
 *
 * Rendering: data comes in as events; each changes the model and marks
 * the parts of the page that show it as dirty, and one animation frame
 * redraws the dirty parts. Text from the broker is only ever set with
 * textContent, never parsed as HTML.
 */
'use strict';

(function () {
  // Topics the page follows. Per-task events are left out except the
  // failures and retries it lists, so a busy cluster costs the page (and
  // the broker) nothing per task.
  const TOPICS = ['stats', 'tick.', 'worker.', 'station.', 'group.',
                  'pool.', 'task.exception', 'task.cancelled',
                  'task.retry'];
  const WINDOW_MS = 5 * 60 * 1000;      // the chart's time span
  const PAGE = 50;                      // failed tasks per page
  const STATION_PAGE = 100;
  const STATION_STATES = ['running', 'assigned', 'paused', 'pending',
                          'waiting-for-host', 'stopped', 'done',
                          'failed', 'cancelled'];
  const RETRYABLE = ['error', 'timeout', 'lost', 'cancelled'];
  const FAILED = ['error', 'timeout', 'lost'];

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- model
  const M = {
    token: sessionStorage.getItem('taskwheel.token') || '',
    boot: null,
    lastId: '',
    tseq: {},            // topic -> last tseq applied
    loading: false,      // a snapshot is being read
    held: [],            // events that arrived meanwhile
    status: {},
    workers: [],
    rates: new Map(),    // wid -> {done, t, rate}
    queues: [],
    groups: new Map(),   // pool + '\0' + group -> group at its limit
    stations: {},        // state -> [sid]
    stationInfo: new Map(),
    stationTab: 'running',
    samples: [],         // {t, rate, queued}
    failed: {items: [], next: null, q: '', state: 'failed', seq: 0},
    detail: null,        // the task record shown, or null
    detailPoll: 0,
  };

  // ------------------------------------------------------------- helpers
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === 'text') e.textContent = v;
        else if (k === 'cls') e.className = v;
        else if (k === 'on') for (const [t, f] of Object.entries(v)) e.addEventListener(t, f);
        else if (k in e && k !== 'list') e[k] = v;
        else e.setAttribute(k, v);
      }
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const fmtInt = (n) => (n == null ? '–' : Number(n).toLocaleString('en-US'));
  function fmtRate(x) {
    if (x == null || !isFinite(x)) return '–';
    return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1);
  }
  function fmtDur(ms) {
    if (ms == null || ms < 0) return '–';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + Math.floor(s % 60) + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }
  function fmtTime(ms) {
    if (ms == null) return '–';
    const d = new Date(ms);
    const ago = Date.now() - ms;
    const hms = d.toLocaleTimeString('en-GB');
    if (ago < 86400000 && ago > -60000) return hms;
    return d.toISOString().slice(0, 10) + ' ' + hms;
  }
  function stateBadge(s) {
    return el('span', {cls: 'state ' + s, text: s});
  }
  function firstLine(s) {
    if (!s) return '';
    const i = s.indexOf('\n');
    return i < 0 ? s : s.slice(0, i);
  }

  // ------------------------------------------------------------ requests
  class ApiError extends Error {
    constructor(status, e) {
      super((e && e.message) || ('HTTP ' + status));
      this.status = status;
      this.code = e && e.code;
    }
  }

  let asking = null;     // the token question, while it is open
  function askToken() {
    if (!asking) {
      setConn('auth', 'token needed');
      asking = ask('Token needed', 'This broker wants its HTTP token ' +
                   '(--http-token-file). It is kept for this tab only.',
                   'Token', '', 'password').then((v) => {
        asking = null;
        if (v == null) throw new ApiError(401, {message: 'no token given'});
        M.token = v.trim();
        sessionStorage.setItem('taskwheel.token', M.token);
      });
    }
    return asking;
  }

  async function api(path, opts) {
    opts = opts || {};
    for (let tries = 0; ; tries++) {
      const headers = {Accept: 'application/json'};
      if (M.token) headers.Authorization = 'Bearer ' + M.token;
      const init = {method: opts.method || 'GET', headers, cache: 'no-store'};
      if (init.method === 'POST') {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.body || {});
      }
      const r = await fetch(path, init);
      let j = null;
      try { j = await r.json(); } catch (e) { j = null; }
      if (r.status === 401 && tries < 3) {
        await askToken();
        continue;
      }
      if (!r.ok) throw new ApiError(r.status, j && j.error);
      return j;
    }
  }

  // ------------------------------------------------------ the ask dialog
  function ask(title, text, label, value, type) {
    const d = $('ask');
    $('ask-h').textContent = title;
    $('ask-text').textContent = text;
    $('ask-label').textContent = label || '';
    const input = $('ask-input');
    input.hidden = $('ask-label').hidden = !label;
    input.type = type || 'text';
    input.value = value == null ? '' : value;
    d.returnValue = '';
    return new Promise((resolve) => {
      d.addEventListener('close', function done() {
        d.removeEventListener('close', done);
        resolve(d.returnValue === 'ok' ? (label ? input.value : true) : null);
      });
      d.showModal();
      (label ? input : $('ask-ok')).focus();
    });
  }

  // ----------------------------------------------------------- rendering
  const dirty = new Set();
  let frame = 0;
  function mark(...parts) {
    for (const p of parts) dirty.add(p);
    if (!frame) frame = requestAnimationFrame(flush);
  }
  function flush() {
    frame = 0;
    const parts = [...dirty];
    dirty.clear();
    for (const p of parts) RENDER[p]();
  }

  function setConn(state, text) {
    const c = $('conn');
    c.dataset.state = state;
    c.textContent = text;
  }

  const RENDER = {
    totals() {
      const s = M.status;
      let slots = 0, used = 0;
      for (const w of M.workers) { slots += w.slots; used += w.running + w.stations; }
      $('t-workers').textContent = fmtInt(s.workers != null ? s.workers : M.workers.length);
      $('t-slots').textContent = fmtInt(used) + ' / ' + fmtInt(s.slots != null ? s.slots : slots);
      $('t-queued').textContent = fmtInt(s.queued);
      $('t-running').textContent = fmtInt(s.running);
      $('t-rate').textContent = fmtRate(s.rate);
      $('t-completed').textContent = fmtInt(s.completed);
      $('t-failed').textContent = fmtInt(s.failed);
      $('t-failed').classList.toggle('nonzero', s.failed > 0);
      $('t-uptime').textContent = s.uptime_ms != null ? fmtDur(s.uptime_ms) : '–';
    },

    workers() {
      const body = $('workers-body');
      body.replaceChildren();
      for (const w of M.workers) {
        const used = w.running + w.stations;
        const pct = w.slots ? Math.min(100, Math.round(100 * used / w.slots)) : 0;
        const bar = el('span', {cls: 'bar' + (used >= w.slots ? ' full' : ''),
                                'aria-hidden': 'true'}, el('i'));
        bar.firstChild.style.width = pct + '%';
        const rate = M.rates.get(w.id);
        const age = el('td', {cls: 'num' + (w.age_ms > 5000 ? ' stale' : ''),
                              text: fmtDur(w.age_ms)});
        const drain = el('button', {type: 'button', text: 'Drain',
                                    disabled: w.state === 'draining',
                                    'aria-label': 'Drain worker ' + w.name,
                                    on: {click: () => drainWorker(w)}});
        const resize = el('button', {type: 'button', text: 'Resize',
                                     disabled: w.state === 'draining',
                                     'aria-label': 'Resize worker ' + w.name,
                                     on: {click: () => resizeWorker(w)}});
        body.append(el('tr', {'data-wid': w.id},
          el('td', {text: w.name, title: 'id ' + w.id + ', pid ' + w.pid +
                    ', handlers: ' + (w.handlers || []).join(', ')}),
          el('td', {text: w.host}),
          el('td', null, bar, el('span', {cls: 'slots', text: used + ' / ' + w.slots})),
          age,
          el('td', {cls: 'num rate', text: rate ? fmtRate(rate.rate) : '–'}),
          el('td', null, stateBadge(w.state)),
          el('td', {cls: 'actions'}, drain, resize)));
      }
      $('workers-count').textContent = M.workers.length ? '(' + M.workers.length + ')' : '';
      $('workers-empty').hidden = M.workers.length > 0;
    },

    queues() {
      const body = $('queues-body');
      body.replaceChildren();
      const qs = [...M.queues].sort((a, b) => b.ready - a.ready ||
                                    (a.handler < b.handler ? -1 : 1));
      for (const q of qs) {
        body.append(el('tr', null, el('td', {text: q.handler}),
          el('td', {cls: 'num', text: fmtInt(q.ready)}),
          el('td', {cls: 'num' + (q.workers === 0 && q.ready > 0 ? ' stale' : ''),
                    text: fmtInt(q.workers)})));
      }
      $('queues-empty').hidden = qs.length > 0;
    },

    groups() {
      const body = $('groups-body');
      body.replaceChildren();
      for (const g of M.groups.values()) {
        body.append(el('tr', null, el('td', {text: g.pool}), el('td', {text: g.group}),
          el('td', {cls: 'num', text: fmtInt(g.running) + ' / ' + fmtInt(g.limit)}),
          el('td', {cls: 'num', text: fmtInt(g.pending)})));
      }
      $('groups-empty').hidden = M.groups.size > 0;
    },

    stations() {
      const tabs = $('station-states');
      tabs.replaceChildren();
      let total = 0;
      for (const s of STATION_STATES) {
        const n = (M.stations[s] || []).length;
        total += n;
        tabs.append(el('button', {type: 'button', text: s + ' ' + n,
          'aria-pressed': String(M.stationTab === s), 'data-state': s,
          on: {click: () => { M.stationTab = s; mark('stations'); loadStations(); }}}));
      }
      $('stations-count').textContent = total ? '(' + total + ')' : '';
      const body = $('stations-body');
      body.replaceChildren();
      const sids = (M.stations[M.stationTab] || []).slice(0, STATION_PAGE);
      for (const sid of sids) {
        const i = M.stationInfo.get(sid) || {station: sid, state: M.stationTab};
        const st = i.state || M.stationTab;
        const btn = (label, op, on) => el('button', {type: 'button', text: label,
          disabled: !on, 'aria-label': label + ' station ' + sid,
          on: {click: () => stationOp(sid, op)}});
        const ended = ['stopped', 'done', 'failed', 'cancelled'].includes(st);
        body.append(el('tr', {'data-sid': sid},
          el('td', {text: sid, title: i.last_error || ''}),
          el('td', {text: i.handler || ''}),
          el('td', null, stateBadge(st)),
          el('td', {text: i.worker != null ? String(i.worker) : ''}),
          el('td', {cls: 'num', text: i.iterations != null ? fmtInt(i.iterations) : ''}),
          el('td', {cls: 'actions'},
             btn('Pause', 'pause', !ended && st !== 'paused' && i.wanted !== 'paused'),
             btn('Continue', 'continue', ended || st === 'paused' || i.wanted === 'paused'),
             btn('Stop', 'stop', !ended),
             btn('Cancel', 'cancel', !ended))));
      }
      $('stations-empty').hidden = sids.length > 0;
    },

    failed() {
      const body = $('failed-body');
      body.replaceChildren();
      for (const t of M.failed.items) {
        const open = () => showTask(t.id);
        body.append(el('tr', {'data-id': t.id},
          el('td', {cls: 'num'}, el('button', {type: 'button', cls: 'link',
            text: '#' + t.id, 'aria-label': 'Show task ' + t.id, on: {click: open}})),
          el('td', {text: t.handler}),
          el('td', null, stateBadge(t.state)),
          el('td', {cls: 'err', text: t.error || '', title: t.error || ''}),
          el('td', {cls: 'num', text: fmtInt(t.attempt)}),
          el('td', {text: fmtTime(t.ended_ms), title: t.ended_ms ? new Date(t.ended_ms).toISOString() : ''})));
      }
      const n = M.failed.items.length;
      $('failed-count').textContent = n ? '(' + n + (M.failed.next ? '+' : '') + ')' : '';
      $('failed-empty').hidden = n > 0;
      $('failed-more').hidden = !M.failed.next;
    },

    chart() { drawChart(); },

    detail() { renderDetail(); },
  };

  // --------------------------------------------------------------- chart
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function drawChart() {
    const c = $('chart');
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr)) c.width = Math.round(w * dpr);
    if (c.height !== Math.round(h * dpr)) c.height = Math.round(h * dpr);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const L = 48, R = 52, T = 8, B = 20;
    const pw = w - L - R, ph = h - T - B;
    const now = Date.now(), t0 = now - WINDOW_MS;
    const pts = M.samples.filter((s) => s.t >= t0);
    const rmax = niceMax(Math.max(0, ...pts.map((s) => s.rate)));
    const qmax = niceMax(Math.max(0, ...pts.map((s) => s.queued)));
    const x = (t) => L + pw * (t - t0) / WINDOW_MS;
    const yr = (v) => T + ph - ph * v / rmax;
    const yq = (v) => T + ph - ph * v / qmax;
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    g.strokeStyle = '#e3e7ec';
    g.fillStyle = '#5a6675';
    for (let i = 0; i <= 4; i++) {
      const y = T + ph * i / 4;
      g.beginPath(); g.moveTo(L, y + .5); g.lineTo(L + pw, y + .5); g.stroke();
      g.textAlign = 'right';
      g.fillText(fmtRate(rmax * (4 - i) / 4), L - 6, y + 4);
      g.textAlign = 'left';
      g.fillText(fmtInt(Math.round(qmax * (4 - i) / 4)), L + pw + 6, y + 4);
    }
    g.textAlign = 'center';
    for (let m = 0; m <= 5; m++) {
      const xx = L + pw * m / 5;
      g.beginPath(); g.moveTo(xx + .5, T); g.lineTo(xx + .5, T + ph); g.stroke();
      g.fillText(m === 5 ? 'now' : '-' + (5 - m) + 'm', xx, h - 5);
    }
    if (pts.length) {
      g.beginPath();
      g.moveTo(x(pts[0].t), T + ph);
      for (const s of pts) g.lineTo(x(s.t), yq(s.queued));
      g.lineTo(x(pts[pts.length - 1].t), T + ph);
      g.closePath();
      g.fillStyle = 'rgba(224, 138, 30, .25)';
      g.fill();
      g.strokeStyle = '#e08a1e';
      g.lineWidth = 1.5;
      g.beginPath();
      pts.forEach((s, i) => (i ? g.lineTo : g.moveTo).call(g, x(s.t), yq(s.queued)));
      g.stroke();
      g.strokeStyle = '#2f6fd0';
      g.lineWidth = 2;
      g.beginPath();
      pts.forEach((s, i) => (i ? g.lineTo : g.moveTo).call(g, x(s.t), yr(s.rate)));
      g.stroke();
      const last = pts[pts.length - 1];
      $('chart-now').textContent = 'Now: ' + fmtRate(last.rate) +
        ' tasks ended per second, ' + fmtInt(last.queued) + ' queued.';
    }
  }

  // ---------------------------------------------------------- snapshot
  async function loadSnapshot() {
    if (M.loading) return;
    M.loading = true;
    M.held = [];
    try {
      const s = await api('/api/v1/snapshot');
      M.boot = s.boot;
      M.tseq = Object.assign({}, s.tseq);
      M.status = s.status || {};
      setWorkers(s.workers || []);
      M.queues = s.queues || [];
      M.groups = new Map();
      for (const g of s.groups || []) M.groups.set(g.pool + '\0' + g.group, g);
      M.stations = s.stations || {};
      if (!(M.stations[M.stationTab] || []).length) {
        M.stationTab = STATION_STATES.find((st) => (M.stations[st] || []).length) || 'running';
      }
      sample(M.status);
      mark('totals', 'workers', 'queues', 'groups', 'stations', 'chart');
      const held = M.held;
      M.held = [];
      M.loading = false;
      for (const ev of held) apply(ev);
      loadStations();
      loadFailed(false);
      if (M.detail) showTask(M.detail.id, true);
    } catch (e) {
      M.loading = false;
      throw e;
    }
  }

  function setWorkers(ws) {
    const now = performance.now();
    const seen = new Set();
    for (const w of ws) {
      seen.add(w.id);
      const r = M.rates.get(w.id);
      if (!r) {
        M.rates.set(w.id, {done: w.done, t: now, rate: null});
      } else if (now - r.t >= 900) {
        const fresh = Math.max(0, w.done - r.done) * 1000 / (now - r.t);
        r.rate = r.rate == null ? fresh : 0.5 * r.rate + 0.5 * fresh;
        r.done = w.done;
        r.t = now;
      }
    }
    for (const id of [...M.rates.keys()]) if (!seen.has(id)) M.rates.delete(id);
    M.workers = ws;
  }

  function sample(st) {
    if (st.rate == null && st.queued == null) return;
    const now = Date.now();
    M.samples.push({t: now, rate: st.rate || 0, queued: st.queued || 0});
    while (M.samples.length && M.samples[0].t < now - WINDOW_MS - 5000) M.samples.shift();
  }

  async function loadStations() {
    const state = M.stationTab;
    try {
      const r = await api('/api/v1/stations?state=' + encodeURIComponent(state) +
                          '&limit=' + STATION_PAGE);
      for (const s of r.stations) M.stationInfo.set(s.station, s);
      mark('stations');
    } catch (e) {
      /* the stream's reconnect will bring the page back */
    }
  }
  let stationTimer = 0;
  function stationsSoon() {
    if (!stationTimer) {
      stationTimer = setTimeout(() => { stationTimer = 0; loadStations(); }, 500);
    }
  }

  // -------------------------------------------------------------- events
  function apply(ev) {
    if (M.loading) {
      M.held.push(ev);
      return;
    }
    const topic = ev.topic;
    const last = M.tseq[topic];
    if (ev.tseq && last != null && ev.tseq <= last) return;   // in the snapshot
    if (ev.tseq) M.tseq[topic] = ev.tseq;
    if (topic === 'stats') {
      M.status = ev;
      sample(ev);
      mark('totals', 'chart');
    } else if (topic === 'tick.workers') {
      setWorkers(ev.workers || []);
      mark('workers', 'totals');
    } else if (topic === 'tick.queues') {
      M.queues = ev.queues || [];
      if (ev.groups) {
        M.groups = new Map();
        for (const g of ev.groups) M.groups.set(g.pool + '\0' + g.group, g);
        mark('groups');
      }
      mark('queues');
    } else if (topic.startsWith('worker.')) {
      onWorker(topic.slice(7), ev);
    } else if (topic.startsWith('station.')) {
      onStation(ev, topic.slice(topic.lastIndexOf('.') + 1));
    } else if (topic.startsWith('group.')) {
      const key = ev.pool + '\0' + ev.group;
      if (topic.endsWith('.limit-reached')) M.groups.set(key, ev);
      else if (topic.endsWith('.empty')) M.groups.delete(key);
      mark('groups');
    } else if (topic === 'task.exception' || topic === 'task.cancelled') {
      onTaskEnded(ev);
    } else if (topic === 'task.retry') {
      onTaskRetried(ev);
    }
  }

  function onWorker(what, ev) {
    const i = M.workers.findIndex((w) => w.id === ev.wid);
    if (what === 'down') {
      if (i >= 0) M.workers.splice(i, 1);
    } else if (i >= 0) {
      const w = M.workers[i];
      w.slots = ev.slots;
      w.running = ev.running;
      w.stations = ev.stations;
      if (what === 'draining' || what === 'drained') w.state = 'draining';
      else if (what === 'resizing') w.state = 'resizing';
      else if (what === 'resized') w.state = 'ready';
    } else if (what === 'up') {
      M.workers.push({id: ev.wid, name: ev.name, host: ev.host, pid: 0,
                      slots: ev.slots, running: ev.running, credit: 0, done: 0,
                      handlers: [], age_ms: 0, stations: ev.stations,
                      state: 'ready'});
    }
    mark('workers', 'totals');
  }

  function onStation(ev, what) {
    const sid = ev.station;
    for (const s of Object.keys(M.stations)) {
      const a = M.stations[s];
      const k = a.indexOf(sid);
      if (k >= 0) a.splice(k, 1);
    }
    if (what === 'removed') {
      M.stationInfo.delete(sid);
    } else {
      (M.stations[ev.state] = M.stations[ev.state] || []).push(sid);
      const info = M.stationInfo.get(sid);
      if (info) {
        info.state = ev.state;
        info.iterations = ev.iterations;
        info.worker = ev.worker || null;
      } else {
        stationsSoon();
      }
    }
    mark('stations');
  }

  function matchesFailed(t) {
    const f = M.failed;
    const okState = f.state === 'failed' ? FAILED.includes(t.state) : t.state === f.state;
    if (!okState) return false;
    if (!f.q) return true;
    const q = f.q.toLowerCase();
    return String(t.id).includes(q) || (t.handler || '').toLowerCase().includes(q) ||
           (t.error || '').toLowerCase().includes(q);
  }

  function onTaskEnded(ev) {
    const t = {id: ev.id, handler: ev.handler, state: ev.state, pool: ev.pool,
               groups: ev.groups || [], priority: ev.priority, attempt: ev.attempt,
               worker: ev.worker, error: firstLine(ev.error) || null,
               ended_ms: Date.now()};
    if (matchesFailed(t)) {
      const items = M.failed.items.filter((x) => x.id !== t.id);
      items.unshift(t);
      M.failed.items = items;
      mark('failed');
    }
    if (M.detail && M.detail.id === ev.id) showTask(ev.id, true);
  }

  function onTaskRetried(ev) {
    const before = M.failed.items.length;
    M.failed.items = M.failed.items.filter((x) => x.id !== ev.id);
    if (M.failed.items.length !== before) mark('failed');
    if (M.detail && M.detail.id === ev.id) showTask(ev.id, true);
  }

  // ------------------------------------------------------------ stream
  function onSse(type, data, id) {
    if (id) M.lastId = id;
    let d;
    try { d = JSON.parse(data); } catch (e) { return; }
    if (type === 'hello') {
      setConn('live', 'live');
      if (!d.resumed || d.boot !== M.boot) {
        loadSnapshot().catch(() => setConn('down', 'cannot read the snapshot'));
      }
    } else if (type === 'resync') {
      setConn('resync', 'resyncing (' + (d.reason || 'events missed') + ')');
      loadSnapshot().then(() => setConn('live', 'live'),
                          () => setConn('down', 'cannot read the snapshot'));
    } else if (type === 'message') {
      apply(d);
    }
  }

  // Read one text/event-stream body until it ends; resolves on end.
  async function readStream(body, watchdog) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '', type = 'message', data = [], id = null;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      watchdog();
      buf += dec.decode(value, {stream: true});
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (data.length) onSse(type, data.join('\n'), id);
          type = 'message'; data = []; id = null;
          continue;
        }
        if (line[0] === ':') continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let val = c < 0 ? '' : line.slice(c + 1);
        if (val[0] === ' ') val = val.slice(1);
        if (field === 'event') type = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id') id = val;
      }
    }
  }

  async function follow() {
    let delay = 1000;
    const topics = encodeURIComponent(TOPICS.join(','));
    for (;;) {
      const ctrl = new AbortController();
      let timer = 0;
      // The broker sends at least a comment every 15 s; 40 s of silence
      // is a dead connection.
      const watchdog = () => {
        clearTimeout(timer);
        timer = setTimeout(() => ctrl.abort(), 40000);
      };
      try {
        const headers = {Accept: 'text/event-stream'};
        if (M.token) headers.Authorization = 'Bearer ' + M.token;
        if (M.lastId) headers['Last-Event-ID'] = M.lastId;
        watchdog();
        const r = await fetch('/api/v1/events?topics=' + topics,
                              {headers, cache: 'no-store', signal: ctrl.signal});
        if (r.status === 401) {
          clearTimeout(timer);
          await askToken();
          continue;
        }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        delay = 1000;
        await readStream(r.body, watchdog);
      } catch (e) {
        /* fall through to the retry below */
      }
      clearTimeout(timer);
      const secs = Math.round(delay / 1000);
      setConn('down', 'reconnecting in ' + secs + ' s…');
      await sleep(delay);
      setConn('connecting', 'reconnecting…');
      delay = Math.min(delay * 2, 15000);
    }
  }

  // -------------------------------------------------------- failed list
  function failedQuery(cursor) {
    const f = M.failed;
    let p = '/api/v1/tasks?state=' + encodeURIComponent(f.state) + '&limit=' + PAGE;
    if (f.q) p += '&q=' + encodeURIComponent(f.q);
    if (cursor) p += '&cursor=' + encodeURIComponent(cursor);
    return p;
  }

  async function loadFailed(more) {
    const f = M.failed;
    const seq = ++f.seq;
    const got = [];
    let next = more ? f.next : null;
    // A filter that matches little may answer short pages: keep reading
    // until a page's worth is found or the list ends.
    try {
      do {
        const r = await api(failedQuery(next));
        if (seq !== f.seq) return;
        got.push(...r.tasks);
        next = r.next;
      } while (next && got.length < PAGE);
    } catch (e) {
      return;
    }
    f.items = more ? f.items.concat(got.filter((t) => !f.items.some((x) => x.id === t.id))) : got;
    f.next = next;
    mark('failed');
  }

  // ---------------------------------------------------------- task view
  async function showTask(id, quiet) {
    try {
      const r = await api('/api/v1/tasks/' + id);
      M.detail = r.task;
      mark('detail');
      const d = $('detail');
      if (!d.open && !quiet) {
        d.showModal();
        $('detail-close').focus();
      }
      if (!quiet) $('detail-msg').textContent = '';
    } catch (e) {
      if (!quiet) {
        M.detail = null;
        ask('Cannot show task ' + id, e.message);
      }
    }
  }

  function fact(dl, k, v) {
    dl.append(el('dt', {text: k}), el('dd', {text: v == null || v === '' ? '–' : String(v)}));
  }

  function renderDetail() {
    const t = M.detail;
    if (!t) return;
    $('detail-h').textContent = 'Task ' + t.id + ' · ' + t.handler;
    const dl = $('detail-facts');
    dl.replaceChildren();
    fact(dl, 'state', t.state);
    fact(dl, 'attempts', t.attempt);
    fact(dl, 'pool', t.pool);
    fact(dl, 'groups', (t.groups || []).join(', '));
    fact(dl, 'priority', t.priority);
    fact(dl, 'worker', t.worker || null);
    fact(dl, 'timeout', t.timeout_ms ? fmtDur(t.timeout_ms) : 'none');
    fact(dl, 'retries', t.retries);
    fact(dl, 'submitted', fmtTime(t.submitted_ms));
    fact(dl, 'started', fmtTime(t.started_ms));
    fact(dl, 'ended', fmtTime(t.ended_ms));
    const first = (t.attempts || [])[0];
    fact(dl, 'queue wait', first ? fmtDur(first.started_ms - t.submitted_ms) : null);
    const lastA = (t.attempts || [])[t.attempts.length - 1];
    fact(dl, 'run time', lastA && lastA.ended_ms ? fmtDur(lastA.ended_ms - lastA.started_ms) : null);
    fact(dl, 'sent back', t.retried ? t.retried + ' time(s)' : 'never');
    if (t.key) fact(dl, 'dedup key', t.key);

    $('detail-args').textContent = t.args_truncated
      ? t.args_preview + '…\n(' + fmtInt(t.args_bytes) + ' bytes; cut)'
      : JSON.stringify(t.args, null, 2);
    const hasResult = t.state === 'ok';
    $('detail-result-h').hidden = $('detail-result').hidden = !hasResult;
    if (hasResult) {
      $('detail-result').textContent = t.result_truncated
        ? t.result_preview + '…\n(' + fmtInt(t.result_bytes) + ' bytes; cut)'
        : JSON.stringify(t.result, null, 2);
    }
    const ol = $('detail-attempts');
    ol.replaceChildren();
    for (const a of t.attempts || []) {
      const li = el('li', {value: a.n, 'data-n': a.n},
        stateBadge(a.state), ' ',
        el('span', {cls: 'when', text: 'worker ' + a.worker + ', started ' +
          fmtTime(a.started_ms) + (a.ended_ms ? ', ran ' +
          fmtDur(a.ended_ms - a.started_ms) : ', running')}));
      if (a.error) li.append(el('div', {cls: 'aerr', text: a.error}));
      if (a.traceback) li.append(el('pre', {cls: 'code tb', text: a.traceback}));
      ol.append(li);
    }
    if (!(t.attempts || []).length) ol.append(el('li', {cls: 'empty', text: 'not run yet'}));
    $('detail-retry').disabled = !RETRYABLE.includes(t.state);
    $('detail-cancel').disabled = !['pending', 'running'].includes(t.state);
  }

  function pollDetail() {
    clearTimeout(M.detailPoll);
    const until = Date.now() + 120000;
    const tick = async () => {
      const t = M.detail;
      if (!t || !$('detail').open) return;
      await showTask(t.id, true);
      if (M.detail && ['pending', 'running'].includes(M.detail.state) && Date.now() < until) {
        M.detailPoll = setTimeout(tick, 700);
      }
    };
    M.detailPoll = setTimeout(tick, 300);
  }

  async function taskAction(op) {
    const t = M.detail;
    if (!t) return;
    const msg = $('detail-msg');
    msg.classList.remove('bad');
    msg.textContent = op === 'retry' ? 'sending back to the queue…' : 'cancelling…';
    try {
      const r = await api('/api/v1/tasks/' + t.id + '/' + op, {method: 'POST'});
      msg.textContent = op === 'retry'
        ? 'Sent back to the queue: it runs again as attempt ' + (r.task.attempt + 1) + '.'
        : 'Cancel requested.';
      if (op === 'retry') onTaskRetried({id: t.id});
      await showTask(t.id, true);
      pollDetail();
    } catch (e) {
      msg.classList.add('bad');
      msg.textContent = e.message;
    }
  }

  // ----------------------------------------------------------- controls
  async function stationOp(sid, op) {
    try {
      const r = await api('/api/v1/stations/' + encodeURIComponent(sid) + '/' + op,
                          {method: 'POST'});
      const info = M.stationInfo.get(sid);
      if (info && r.station) {
        info.wanted = r.station.wanted || info.wanted;
      }
      stationsSoon();
    } catch (e) {
      ask('Station ' + sid, op + ' failed: ' + e.message);
    }
  }

  async function drainWorker(w) {
    const ok = await ask('Drain ' + w.name + '?', 'It takes no new work, ' +
      'finishes what it runs, hands its stations to other workers and exits.');
    if (!ok) return;
    try {
      const r = await api('/api/v1/workers/' + w.id + '/drain', {method: 'POST'});
      for (const x of r.workers || []) onWorker('draining', {wid: x.id, slots: x.slots,
        running: x.running, stations: x.stations});
    } catch (e) {
      ask('Worker ' + w.name, 'drain failed: ' + e.message);
    }
  }

  async function resizeWorker(w) {
    const v = await ask('Resize ' + w.name, 'New slot count (1 to 65536).',
                        'Slots', String(w.slots), 'number');
    if (v == null) return;
    const slots = Number(v);
    if (!Number.isInteger(slots) || slots < 1 || slots > 65536) {
      ask('Worker ' + w.name, 'The slot count must be a whole number from 1 to 65536.');
      return;
    }
    try {
      await api('/api/v1/workers/' + w.id + '/resize', {method: 'POST', body: {slots}});
    } catch (e) {
      ask('Worker ' + w.name, 'resize failed: ' + e.message);
    }
  }

  // -------------------------------------------------------------- start
  function wire() {
    let qTimer = 0;
    $('failed-q').addEventListener('input', (e) => {
      clearTimeout(qTimer);
      qTimer = setTimeout(() => { M.failed.q = e.target.value.trim(); loadFailed(false); }, 250);
    });
    $('failed-search').addEventListener('submit', (e) => {
      e.preventDefault();
      M.failed.q = $('failed-q').value.trim();
      loadFailed(false);
    });
    $('failed-state').addEventListener('change', (e) => {
      M.failed.state = e.target.value;
      loadFailed(false);
    });
    $('failed-refresh').addEventListener('click', () => loadFailed(false));
    $('failed-more').addEventListener('click', () => loadFailed(true));
    $('detail-retry').addEventListener('click', () => taskAction('retry'));
    $('detail-cancel').addEventListener('click', () => taskAction('cancel'));
    $('detail').addEventListener('close', () => {
      clearTimeout(M.detailPoll);
      M.detail = null;
    });
    document.addEventListener('keydown', (e) => {
      const tag = (e.target && e.target.tagName) || '';
      const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(tag);
      if (e.ctrlKey || e.metaKey || e.altKey || typing) return;
      if (e.key === '/' && !$('detail').open && !$('ask').open) {
        e.preventDefault();
        $('failed-q').focus();
      } else if (e.key === 'r' && $('detail').open && !$('detail-retry').disabled) {
        e.preventDefault();
        taskAction('retry');
      }
    });
    window.addEventListener('resize', () => mark('chart'));
    // Ages and the chart move with time even when nothing happens.
    setInterval(() => mark('chart'), 1000);
  }

  wire();
  mark('totals', 'workers', 'queues', 'groups', 'stations', 'failed', 'chart');
  follow();
})();
