/*
 * servoy-lb dashboard: plain JavaScript, served by the admin server with /uplot.js (the
 * chart library) under a strict Content-Security-Policy, so: no inline script or style, no
 * innerHTML with data (every text goes in through textContent), styles only by class.
 *
 * Every 2 seconds it reads the admin API (backends, series, sessions, events and, in
 * partition mode, partitions) and updates the page in place, so a weight being typed or a
 * selected filter survives a refresh. A call that fails is listed at the top with why, and
 * leaves the list when it succeeds again. Actions call the API at once and refresh.
 */
'use strict';

(function () {
  const REFRESH_MS = 2000;
  const PARTITIONS_SHOWN = 100;
  const PARTITIONS_READ = 1000;
  const SESSIONS_SHOWN = 200;
  const COLORS = ['#0969da', '#1a7f37', '#bc4c00', '#8250df', '#bf3989', '#0a7f86', '#9a6700', '#57606a', '#cf222e', '#116329'];

  const $ = (id) => document.getElementById(id);

  const state = {
    info: null, // GET /api/dashboard
    tokenRequired: true,
    running: false,
    timer: undefined,
    refreshing: null, // the refresh under way
    again: false, // another was asked for meanwhile
    skewMs: 0, // server clock minus this browser's, from the Date header
    backends: [],
    series: null,
    problems: new Map(), // what failed -> why
    rows: new Map(), // backend id -> row elements
    charts: { sessions: null, rps: null },
    partitions: null,
    confirmResolve: null,
  };

  /** ApiError is a failed call: the balancer's message, its HTTP status and error code. */
  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** api calls the admin API (the sign-in cookie goes along) and returns the parsed answer. */
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new ApiError('the balancer did not answer (' + err.message + '): is it running, and is this its admin address?', 0, 'NETWORK');
    }
    const date = Date.parse(res.headers.get('date') || '');
    if (!Number.isNaN(date)) {
      const skew = date - Date.now();
      state.skewMs = Math.abs(skew) > 2000 ? skew : 0; // the header has whole seconds
    }
    const text = await res.text();
    let data = null;
    try {
      data = JSON.parse(text);
    } catch (err) {
      data = null;
    }
    if (!res.ok) {
      const error = data && data.error;
      throw new ApiError(error ? error.message : 'HTTP ' + res.status + ' ' + res.statusText, res.status, error ? error.code : undefined);
    }
    return data;
  }

  const now = () => Date.now() + state.skewMs;

  /** el makes an element: el('td', { className: 'n', text: '3' }, child...). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'on') for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, String(value));
    }
    node.append(...children.filter((c) => c !== undefined && c !== null));
    return node;
  }

  function duration(ms) {
    let s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    let m = Math.floor(s / 60);
    s %= 60;
    if (m < 60) return m + 'm ' + s + 's';
    let h = Math.floor(m / 60);
    m %= 60;
    if (h < 24) return h + 'h ' + m + 'm';
    const d = Math.floor(h / 24);
    h %= 24;
    return d + 'd ' + h + 'h';
  }

  const since = (iso) => duration(now() - Date.parse(iso));
  const rate = (v) => (v === null || v === undefined ? '–' : v < 10 ? v.toFixed(1) : String(Math.round(v)));
  const plural = (n, word) => n + ' ' + word + (n === 1 ? '' : 's');
  const clock = (iso) => new Date(iso).toLocaleTimeString();

  // ---- problems and notices -------------------------------------------------------------

  /** problem shows (message) or clears (no message) why `what` failed. */
  function problem(what, message) {
    if (message === undefined) state.problems.delete(what);
    else state.problems.set(what, message);
    renderProblems();
  }

  function renderProblems() {
    const list = $('problems');
    list.replaceChildren(
      ...[...state.problems].map(([call, why]) =>
        el('li', {}, el('span', { className: 'call', text: call }), el('span', { text: why }), el('button', { type: 'button', text: 'dismiss', title: 'hide this message', on: { click: () => problem(call) } })),
      ),
    );
    list.hidden = state.problems.size === 0;
  }

  let noticeTimer;
  function notice(text) {
    $('notice').textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => ($('notice').textContent = ''), 8000);
  }

  /** failed handles an error of `what`: an ended sign-in goes back to the sign-in form, the rest is listed. */
  function failed(what, err) {
    if (err.code === 'UNAUTHORIZED' && state.tokenRequired) {
      signedOut(err.message);
      return;
    }
    problem(what, err.message);
  }

  // ---- sign-in ---------------------------------------------------------------------------

  function signedOut(message) {
    stop();
    $('main').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-message').textContent = message || '';
    state.problems.clear();
    renderProblems();
    $('token').focus();
  }

  async function begin() {
    try {
      const who = await api('GET', '/login');
      state.tokenRequired = who.tokenRequired;
      if (who.signedIn) start();
      else signedOut('');
    } catch (err) {
      problem('sign-in check (GET /login)', err.message);
      setTimeout(begin, REFRESH_MS);
    }
  }

  $('login').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('POST', '/login', { token: $('token').value });
      $('token').value = '';
      $('login-message').textContent = '';
      start();
    } catch (err) {
      $('login-message').textContent = err.code === 'UNAUTHORIZED' ? "That is not this balancer's admin token (admin.token in its config file)." : err.message;
    }
  });

  $('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/logout');
    } catch (err) {
      problem('sign out (POST /logout)', err.message);
      return;
    }
    signedOut('Signed out.');
  });

  // ---- the refresh loop ------------------------------------------------------------------

  function start() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = !state.tokenRequired;
    state.running = true;
    refresh();
  }

  function stop() {
    state.running = false;
    clearTimeout(state.timer);
  }

  /** load runs one read call; its failure is listed under `what`, its success clears that. */
  async function load(what, path, use) {
    try {
      use(await api('GET', path));
      problem(what);
    } catch (err) {
      failed(what, err);
    }
  }

  /**
   * refresh reads everything and renders; the next one follows REFRESH_MS after it began.
   * A refresh asked for while one runs (an action's) runs right after it, never beside it.
   */
  async function refresh() {
    if (state.refreshing) {
      state.again = true;
      return state.refreshing;
    }
    clearTimeout(state.timer);
    const started = Date.now();
    state.refreshing = readAll();
    try {
      await state.refreshing;
    } finally {
      state.refreshing = null;
    }
    if (!state.running) return;
    if (state.again) {
      state.again = false;
      return refresh();
    }
    state.timer = setTimeout(refresh, Math.max(0, REFRESH_MS - (Date.now() - started)));
  }

  async function readAll() {
    const filter = $('session-filter').value;
    const calls = [
      load('backends (GET /api/backends)', '/api/backends', (d) => (state.backends = d.backends)),
      load('charts (GET /api/series)', '/api/series', (d) => (state.series = d)),
      loadSessions(filter),
      load('events (GET /api/events)', '/api/events?limit=50', renderEvents),
    ];
    if (state.info === null) calls.push(load('dashboard (GET /api/dashboard)', '/api/dashboard', useInfo));
    if (state.info !== null && state.info.mode === 'partition') {
      calls.push(load('partitions (GET /api/partitions)', '/api/partitions?limit=' + PARTITIONS_READ, (d) => (state.partitions = d)));
    }
    await Promise.all(calls);
    if (!state.running) return;
    renderBackends();
    renderCharts();
    renderPartitions();
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  /** act runs an action (a change), says how it went and refreshes at once. */
  async function act(what, method, path, body, done) {
    try {
      await api(method, path, body);
      problem(what);
      notice(done);
    } catch (err) {
      notice('');
      failed(what, err);
    }
    if (state.running) await refresh();
  }

  function useInfo(info) {
    state.info = info;
    const url = info.trafficUrl ? 'clients connect to ' + info.trafficUrl : '';
    $('where').textContent = [url, info.mode + ' mode'].filter(Boolean).join(' · ');
    $('partitions-section').hidden = info.mode !== 'partition';
    $('admin-links').textContent = info.serverAdmin.path ? '' : info.serverAdmin.reason;
  }

  // ---- confirmation --------------------------------------------------------------------

  /** confirmAction asks in a modal dialog; resolves true for OK. */
  function confirmAction(text, okLabel) {
    const dialog = $('confirm');
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    dialog.showModal();
    $('confirm-cancel').focus();
    return new Promise((resolve) => (state.confirmResolve = resolve));
  }

  function closeConfirm(answer) {
    const resolve = state.confirmResolve;
    state.confirmResolve = null;
    if ($('confirm').open) $('confirm').close();
    if (resolve) resolve(answer);
  }

  $('confirm-ok').addEventListener('click', () => closeConfirm(true));
  $('confirm-cancel').addEventListener('click', () => closeConfirm(false));
  $('confirm').addEventListener('close', () => closeConfirm(false)); // Escape

  // ---- backends --------------------------------------------------------------------------

  const backendPath = (id) => '/api/backends/' + encodeURIComponent(id);

  /** The last value of a backend's series field, or null. */
  function latest(id, field) {
    const s = state.series && state.series.backends[id];
    const values = s ? s[field] : [];
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  /** adminLink is the URL of a server's /servoy-admin/ through the balancer (SPEC "Path rules"), or null. */
  function adminLink(id) {
    const info = state.info;
    if (!info || !info.serverAdmin.path || !info.trafficUrl) return null;
    const url = new URL(info.serverAdmin.path, info.trafficUrl);
    // A wildcard or loopback listener is reached under the name this page was opened with.
    const loopback = /^(127\.|\[::1\]$|localhost$)/;
    if (loopback.test(url.hostname) && !loopback.test(location.hostname)) url.hostname = location.hostname;
    url.searchParams.set('servoy-lb-backend', id);
    return url.href;
  }

  function actionButtons(b) {
    const id = b.id;
    const buttons = [];
    const button = (label, onClick, extra) => el('button', Object.assign({ type: 'button', text: label, name: label, on: { click: onClick } }, extra));
    if (b.admin === 'draining') buttons.push(button('undrain', () => act('undrain ' + id, 'POST', backendPath(id) + '/undrain', undefined, id + ' takes new sessions again')));
    else buttons.push(button('drain', () => act('drain ' + id, 'POST', backendPath(id) + '/drain', undefined, id + ' is draining: no new sessions, its sessions finish there'), { disabled: b.admin === 'disabled', title: 'no new sessions; existing ones finish here' }));
    if (b.admin === 'disabled') {
      buttons.push(button('enable', async () => {
        if (await confirmAction('Enable ' + id + '? It takes requests and new sessions again.', 'Enable')) act('enable ' + id, 'POST', backendPath(id) + '/enable', undefined, id + ' is enabled');
      }));
    } else {
      buttons.push(button('disable', async () => {
        const text = 'Disable ' + id + '? It gets no requests at all: its ' + plural(b.sessions, 'session') + ' are placed on other servers at their next request (open WebSockets stay until they close).';
        if (await confirmAction(text, 'Disable')) act('disable ' + id, 'POST', backendPath(id) + '/disable', undefined, id + ' is disabled');
      }, { className: 'danger' }));
    }
    buttons.push(button('remove', async () => {
      const drained = b.state === 'drained';
      const text = drained
        ? 'Remove ' + id + ' from the pool?'
        : id + ' is ' + b.state + ', not drained, and holds ' + plural(b.sessions, 'session') + '. Remove it anyway? Its sessions are placed anew on other servers.';
      if (await confirmAction(text, drained ? 'Remove' : 'Remove anyway')) {
        act('remove ' + id, 'DELETE', backendPath(id) + (drained ? '' : '?force=1'), undefined, id + ' is removed');
      }
    }, { className: 'danger' }));
    return buttons;
  }

  /** makeRow builds the elements of one backend row; updateRow fills them. */
  function makeRow(id) {
    const cells = {};
    const names = ['backend', 'state', 'since', 'health', 'weight', 'sessions', 'websockets', 'rps', 'eps', 'p95', 'actions'];
    const numeric = new Set(['sessions', 'websockets', 'rps', 'eps', 'p95']);
    for (const name of names) cells[name] = el('td', { className: (numeric.has(name) ? 'n ' : '') + 'col-' + name });
    const input = el('input', { type: 'number', min: 1, max: 1000, step: 1, className: 'weight', name: 'weight', required: true, title: 'weight (1-1000)' });
    const form = el('form', { className: 'weight' }, input, el('button', { type: 'submit', text: 'set', name: 'set' }));
    input.addEventListener('input', () => (input.dataset.dirty = '1'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const weight = Number(input.value);
      delete input.dataset.dirty;
      act('weight of ' + id, 'PATCH', backendPath(id), { weight }, id + ' has weight ' + weight);
    });
    cells.weight.append(form);
    const tr = el('tr', { 'data-backend': id }, ...names.map((n) => cells[n]));
    return { tr, cells, input, actionsKey: '' };
  }

  function updateRow(row, b) {
    const c = row.cells;
    const link = adminLink(b.id);
    const parts = [el('strong', { text: b.id })];
    if (link) parts.push(el('a', { href: link, target: '_blank', rel: 'noopener noreferrer', text: 'admin pages', title: b.id + "'s /servoy-admin/ through the balancer", className: 'admin-link' }));
    parts.push(el('span', { className: 'sub', text: b.url + (b.source === 'runtime' ? ' (added at run time)' : '') }));
    c.backend.replaceChildren(...parts);
    const badge = el('span', { className: 'state state-' + b.state, text: b.state });
    const extra = [];
    if (b.state === 'draining') extra.push(el('span', { className: 'left', text: plural(b.sessions, 'session') + ' left' + (b.websockets > 0 ? ', ' + plural(b.websockets, 'WebSocket') : '') }));
    if (b.holdingSessions) extra.push(el('span', { className: 'left', text: 'holding its sessions' }));
    c.state.replaceChildren(badge, ...extra);
    c.since.textContent = b.stateSince ? since(b.stateSince) : '–';
    c.since.title = b.stateSince ? 'since ' + new Date(b.stateSince).toLocaleString() : '';
    const check = b.lastCheck;
    const checkText = !check
      ? 'no check yet'
      : (check.ok ? '✓ ' : '✗ ') + (check.status !== undefined ? check.status : check.error) + ' · ' + check.ms + ' ms · ' + since(check.at) + ' ago';
    c.health.replaceChildren(el('span', { className: 'state state-' + (b.health === 'up' ? 'up' : 'down'), text: b.health }), el('span', { className: 'sub ' + (check && !check.ok ? 'check-bad' : 'check-ok'), text: checkText }));
    if (document.activeElement !== row.input && !row.input.dataset.dirty) row.input.value = b.weight;
    c.sessions.textContent = b.maxSessions ? b.sessions + ' / ' + b.maxSessions : String(b.sessions);
    c.websockets.textContent = String(b.websockets);
    c.rps.textContent = rate(latest(b.id, 'rps'));
    c.eps.textContent = rate(latest(b.id, 'eps'));
    c.eps.classList.toggle('error', (latest(b.id, 'eps') || 0) > 0);
    c.p95.textContent = b.p95Ms === null || b.p95Ms === undefined ? '–' : b.p95Ms + ' ms';
    // Buttons are rebuilt only when what they do changes (not under the pointer every 2 s).
    const key = [b.admin, b.state, b.sessions].join('|');
    if (key !== row.actionsKey) {
      row.actionsKey = key;
      c.actions.replaceChildren(el('div', { className: 'buttons' }, ...actionButtons(b)));
    }
  }

  function renderBackends() {
    const tbody = $('backends').tBodies[0];
    const seen = new Set();
    for (const b of state.backends) {
      seen.add(b.id);
      let row = state.rows.get(b.id);
      if (!row) {
        row = makeRow(b.id);
        state.rows.set(b.id, row);
      }
      updateRow(row, b);
      tbody.append(row.tr); // keeps the API's order
    }
    for (const [id, row] of state.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        state.rows.delete(id);
      }
    }
    const ids = state.backends.map((b) => b.id);
    fillOptions($('session-filter'), ids, 'all backends');
    fillOptions(document.querySelector('#move-partition select'), ids);
  }

  /** fillOptions keeps a select's options equal to `ids` (plus a first "all" option), keeping the choice. */
  function fillOptions(select, ids, allLabel) {
    const want = (allLabel ? [''] : []).concat(ids);
    const have = [...select.options].map((o) => o.value);
    if (want.join('\n') === have.join('\n')) return;
    const chosen = select.value;
    select.replaceChildren(...want.map((v) => el('option', { value: v, text: v === '' ? allLabel : v })));
    if (want.includes(chosen)) select.value = chosen;
  }

  $('add-backend').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const input = { id: form.elements.id.value.trim(), url: form.elements.url.value.trim(), weight: Number(form.elements.weight.value) };
    act('add backend ' + input.id, 'POST', '/api/backends', input, input.id + ' is added').then(() => {
      if (!state.problems.has('add backend ' + input.id)) form.reset();
    });
  });

  // ---- charts ----------------------------------------------------------------------------

  function chartWidth(figure) {
    return Math.max(280, figure.clientWidth - 16);
  }

  /** A uPlot chart of one field per backend; the rps chart adds the pool's errors/s. */
  function drawChart(kind, figure, ids, data) {
    const chart = state.charts[kind];
    const key = ids.join('\n');
    if (chart && chart.key === key) {
      chart.plot.setData(data);
    } else {
      if (chart) chart.plot.destroy();
      const series = [{}].concat(ids.map((id, i) => ({ label: id, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false })));
      if (kind === 'rps') series.push({ label: 'errors/s (all)', stroke: '#cf222e', width: 1.5, dash: [6, 4] });
      const opts = {
        width: chartWidth(figure),
        height: 220,
        series,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(kind === 'rps' ? 1 : 2, max * 1.1)] } },
        axes: [{}, { size: 48 }],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      };
      state.charts[kind] = { key, plot: new uPlot(opts, data, figure) };
    }
    figure.dataset.points = String(data[0].length);
  }

  function renderCharts() {
    const s = state.series;
    if (!s) return;
    if (typeof uPlot !== 'function') {
      problem('charts', 'the chart library (/uplot.js) did not load');
      return;
    }
    const ids = Object.keys(s.backends).sort();
    const start = s.start ? Date.parse(s.start) / 1000 : 0;
    const xs = Array.from({ length: s.points }, (_, i) => start + i * s.step);
    drawChart('sessions', $('chart-sessions'), ids, [xs].concat(ids.map((id) => s.backends[id].sessions)));
    drawChart('rps', $('chart-rps'), ids, [xs].concat(ids.map((id) => s.backends[id].rps), [s.total.eps]));
  }

  window.addEventListener('resize', () => {
    for (const [kind, figure] of [['sessions', $('chart-sessions')], ['rps', $('chart-rps')]]) {
      const chart = state.charts[kind];
      if (chart) chart.plot.setSize({ width: chartWidth(figure), height: 220 });
    }
  });

  // ---- sessions --------------------------------------------------------------------------

  /** loadSessions reads the sessions of `backend` ('' for all); an answer for a filter no longer chosen is dropped. */
  function loadSessions(backend) {
    const path = '/api/sessions?limit=' + SESSIONS_SHOWN + (backend ? '&backend=' + encodeURIComponent(backend) : '');
    return load('sessions (GET /api/sessions)', path, (list) => {
      if (backend === $('session-filter').value) renderSessions(list, backend);
    });
  }

  function renderSessions(list, backend) {
    const rows = list.sessions.map((s) =>
      el('tr', {},
        el('td', { text: s.client, className: 'client' }),
        el('td', { text: s.backend }),
        el('td', { className: 'n', text: duration(s.ageMs) }),
        el('td', { className: 'n', text: duration(s.idleMs) }),
        el('td', { className: 'n', text: s.requests }),
        el('td', { className: 'n', text: s.websockets > 0 ? s.websockets + ' open' : '–' }),
      ),
    );
    if (rows.length === 0) rows.push(el('tr', { className: 'empty' }, el('td', { colSpan: 6, text: 'no active session' + (backend ? ' on ' + backend : '') + ' on this instance' })));
    $('sessions').tBodies[0].replaceChildren(...rows);
    let count = plural(list.total, 'active session') + (backend ? ' on ' + backend : '');
    if (list.total > list.sessions.length) count += ', the ' + list.sessions.length + ' most recently active shown';
    if (list.missingWorkers && list.missingWorkers.length) count += '; workers ' + list.missingWorkers.join(', ') + ' did not answer (their sessions are missing)';
    $('session-count').textContent = count;
  }

  $('session-filter').addEventListener('change', () => loadSessions($('session-filter').value));

  // ---- partitions ------------------------------------------------------------------------

  function renderPartitions() {
    const p = state.partitions;
    if (!p || $('partitions-section').hidden) return;
    const search = $('partition-search').value.trim().toLowerCase();
    const matching = p.partitions.filter((row) => row.key.toLowerCase().includes(search));
    const rows = matching.slice(0, PARTITIONS_SHOWN).map((row) =>
      el('tr', { 'data-key': row.key },
        el('td', { text: row.key }),
        el('td', { text: row.backend + (row.previous ? ' (live sessions finish on ' + row.previous + ')' : '') }),
        el('td', { text: row.pinned ? 'pinned in the config' : '' }),
        el('td', { className: 'n', text: row.sessions }),
        el('td', { text: row.assignedAt ? new Date(row.assignedAt).toLocaleString() : '' }),
        el('td', { text: row.lastSeen ? since(row.lastSeen) + ' ago' : '' }),
        el('td', {}, row.pinned ? null : el('button', { type: 'button', text: 'move…', name: 'move', on: { click: () => fillMove(row.key) } })),
      ),
    );
    if (rows.length === 0) rows.push(el('tr', { className: 'empty' }, el('td', { colSpan: 7, text: search ? 'no key contains "' + search + '"' : 'no partition assigned yet' })));
    $('partitions').tBodies[0].replaceChildren(...rows);
    let count = plural(p.total, 'partition');
    if (search) count += ', ' + matching.length + ' matching';
    if (matching.length > PARTITIONS_SHOWN) count += ', the first ' + PARTITIONS_SHOWN + ' shown';
    if (p.total > p.partitions.length) count += ' (the search covers the first ' + p.partitions.length + ' keys; a move takes any key)';
    $('partition-count').textContent = count;
  }

  function fillMove(key) {
    const form = $('move-partition');
    form.elements.key.value = key;
    form.elements.backend.focus();
  }

  $('partition-search').addEventListener('input', renderPartitions);

  $('move-partition').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const key = form.elements.key.value.trim();
    const backend = form.elements.backend.value;
    const drain = form.elements.drain.checked;
    act('move partition ' + key, 'PUT', '/api/partitions/' + encodeURIComponent(key), { backend, drain }, 'partition ' + key + ' is on ' + backend);
  });

  // ---- events ----------------------------------------------------------------------------

  function renderEvents(data) {
    // With state.redis: the pool's events, each with the instance that made it; sharedError when they could not be read.
    problem('shared events', data.sharedError);
    const rows = data.events.map((e) =>
      el('tr', { className: 'kind-' + e.kind },
        el('td', { text: clock(e.time), title: e.time }),
        el('td', { text: e.backend || '–' }),
        el('td', { text: e.from === null && e.to === null ? '' : (e.from === null ? '' : e.from + ' ') + '→ ' + (e.to === null ? '?' : e.to) }),
        el('td', { className: 'wrap', text: e.instance === undefined ? e.cause : e.cause + ' (on ' + e.instance + ')' }),
      ),
    );
    if (rows.length === 0) rows.push(el('tr', { className: 'empty' }, el('td', { colSpan: 4, text: 'no event since the balancer started' })));
    $('events').tBodies[0].replaceChildren(...rows);
  }

  begin();
})();
