// The Sluice dashboard: reads /api/v1/ (a snapshot every second over server-sent events, the
// other pages on demand) and renders it with DOM calls only (no innerHTML: data never becomes
// markup). No framework, no build step.
'use strict';
(() => {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const pages = ['overview', 'pipelines', 'upstreams', 'traces', 'limits', 'wasm', 'config'];
  let csrf = '';
  let current = 'overview';
  let lastTargets = new Map(); // "upstream|address" → state text, to mark changes
  let refreshTimer = 0;

  // el builds an element: el('td', {class: 'num'}, 'text', child, …).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat()) {
      if (k === undefined || k === null) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const fmt = (n, d = 1) => (n === null || n === undefined ? '—' : Number(n).toFixed(d));
  const pct = (r) => (r * 100).toFixed(1) + ' %';
  const ms = (v) => (v === null || v === undefined ? '—' : fmt(v, v < 10 ? 3 : 1) + ' ms');
  const when = (t) => (t ? new Date(t).toLocaleTimeString() : '—');
  function fill(tbody, rows, empty, cols) {
    tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: cols, class: 'note' }, empty))]));
  }

  async function api(path, opts) {
    const r = await fetch('/api/v1/' + path, Object.assign({ credentials: 'same-origin', headers: { Accept: 'application/json' } }, opts || {}));
    if (r.status === 401) { location.assign('/ui/login'); throw new Error('login required'); }
    return r;
  }
  async function getJSON(path) { return (await api(path)).json(); }

  // ---- Navigation: one section per page, chosen by the URL's fragment.
  function show() {
    const want = location.hash.slice(1);
    current = pages.includes(want) ? want : 'overview';
    for (const p of pages) $('#page-' + p).hidden = p !== current;
    for (const a of document.querySelectorAll('.top nav a')) {
      if (a.getAttribute('href') === '#' + current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = 'Sluice: ' + $('#h-' + current).textContent;
    loadPage();
  }
  function loadPage() {
    clearTimeout(refreshTimer);
    const loaders = { traces: loadTraces, limits: loadLimits, wasm: loadWasm, config: loadConfig };
    const f = loaders[current];
    if (!f) return;
    f().catch((e) => console.warn('dashboard:', e.message)).finally(() => {
      if (current !== 'config') refreshTimer = setTimeout(loadPage, 5000);
    });
  }

  // ---- Live snapshot: overview, pipelines, upstreams.
  function render(s) {
    renderOverview(s.overview);
    renderPipelines(s.pipelines);
    renderUpstreams(s.upstreams);
  }
  function stat(label, value, id) { return el('div', {}, el('dt', {}, label), el('dd', { id }, value)); }
  function renderOverview(o) {
    const unhealthy = o.unhealthy_upstreams.length;
    $('#ov-stats').replaceChildren(
      stat('Requests/s', fmt(o.rps), 'ov-rps'),
      stat('Errors (5xx)', pct(o.error_rate), 'ov-errors'),
      stat('In flight', o.in_flight, 'ov-inflight'),
      stat('Open connections', o.open_connections, 'ov-conns'),
      stat('Upstreams', unhealthy ? `✗ ${unhealthy} of ${o.upstreams} down` : `✓ ${o.upstreams} healthy`, 'ov-upstreams'),
      stat('Version', o.version, 'ov-version'),
      stat('Uptime', uptime(o.uptime_seconds), 'ov-uptime'),
      stat('Tracing', o.tracing ? 'on' : 'off', 'ov-tracing'));
    $('#ov-window').textContent = `(last ${o.window_seconds} s)`;
    fill($('#ov-pipelines tbody'), o.pipelines.map((p) => el('tr', { 'data-pipeline': p.name },
      el('th', { scope: 'row' }, p.name), el('td', { class: 'num' }, fmt(p.rps)),
      el('td', { class: 'num' + (p.error_rate > 0 ? ' bad' : '') }, (p.error_rate > 0 ? '✗ ' : '') + pct(p.error_rate)),
      el('td', { class: 'num' }, ms(p.p50_ms)), el('td', { class: 'num' }, ms(p.p99_ms)),
      el('td', { class: 'num ov-requests' }, p.requests))), 'no pipelines', 6);
    const r = o.last_reload;
    $('#ov-reload').replaceChildren(!r ? el('p', { class: 'note' }, 'none yet') : el('div', {},
      el('p', {}, el('span', { class: r.ok ? 'good' : 'bad' }, r.ok ? '✓ applied' : '✗ refused'), ' at ', when(r.time), r.error ? ': ' + r.error : ''),
      r.diagnostics ? el('pre', {}, r.diagnostics) : null));
  }
  function uptime(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  }
  function matchText(m) {
    const parts = [];
    if (m.hosts && m.hosts.length) parts.push('hosts ' + m.hosts.join(', '));
    if (m.path_prefix) parts.push('path ' + m.path_prefix + '*');
    if (m.path_regex) parts.push('path ~ ' + m.path_regex);
    if (m.methods && m.methods.length) parts.push('methods ' + m.methods.join(', '));
    if (m.listeners && m.listeners.length) parts.push('listeners ' + m.listeners.join(', '));
    for (const k of ['headers', 'query', 'cookies', 'keys']) if (m[k] && m[k].length) parts.push(m[k].length + ' ' + k + ' predicate(s)');
    if (m.routed_only) parts.push('routed only');
    return parts.join(' · ') || 'everything';
  }
  function answered(f) {
    const a = Object.entries(f.answered).map(([k, v]) => `${k}: ${v}`);
    return a.length ? a.join(', ') : '—';
  }
  function filterRow(f) {
    return el('tr', { 'data-filter': f.label },
      el('td', { class: 'num' }, f.index < 0 ? '→' : f.index + 1),
      el('th', { scope: 'row' }, f.label), el('td', { class: 'num' }, fmt(f.rps)),
      el('td', { class: 'num filter-requests' }, f.requests), el('td', { class: 'num' }, f.continued),
      el('td', {}, answered(f)), el('td', { class: 'num' }, ms(f.avg_request_ms)),
      el('td', { class: 'num' + (f.request_only ? ' note' : '') }, f.request_only ? 'none' : ms(f.avg_response_ms)));
  }
  function renderPipelines(list) {
    $('#pipelines-list').replaceChildren(...list.map((p) => el('div', { class: 'card', 'data-pipeline': p.name },
      el('h3', {}, p.name, ' ', el('small', {}, `${fmt(p.rps)} req/s · ${pct(p.error_rate)} 5xx · p50 ${ms(p.p50_ms)} · p99 ${ms(p.p99_ms)}`)),
      el('p', { class: 'match' }, 'match: ', matchText(p.match || {}), p.strip_prefix ? ' · strip ' + p.strip_prefix : ''),
      el('div', { class: 'scroll' }, el('table', {},
        el('caption', { class: 'sr-only' }, 'Filters of ' + p.name + ' in order'),
        el('thead', {}, el('tr', {}, ['#', 'Filter', 'Req/s', 'Requests', 'Continued', 'Answered', 'Avg request', 'Avg response'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, p.filters.map(filterRow),
          filterRow(Object.assign({}, p.balancer, { label: p.balancer.kind === 'route' ? 'route (routes the request again)' : 'balancer → ' + (p.upstream || '(chosen per request)') }))))))));
  }
  function targetState(t) {
    if (t.ejected_until) return ['⏏ ejected', 'warn'];
    if (!t.healthy) return ['✗ unhealthy', 'bad'];
    if (t.connect_failing) return ['✗ connect failing', 'bad'];
    return ['✓ healthy', 'good'];
  }
  // "connect_refused 3 (+1), 5xx 2": counts by reason, with the window's change where there is one.
  function reasonsText(total, recent) {
    const names = Object.keys(total || {}).sort();
    if (!names.length) return '—';
    return names.map((r) => r + ' ' + total[r] + (recent && recent[r] ? ' (+' + recent[r] + ')' : '')).join(', ');
  }
  function renderUpstreams(list) {
    const seen = new Map();
    const changes = [];
    $('#upstreams-list').replaceChildren(...list.map((u) => {
      const st = u.status || { targets: [] };
      return el('div', { class: 'card', 'data-upstream': u.name },
        el('h3', {}, u.name, ' ', el('span', { class: u.healthy ? 'good' : 'bad' }, u.healthy ? '✓ can serve' : '✗ no healthy target'), ' ', el('small', {}, st.policy ? 'policy ' + st.policy : '')),
        el('div', { class: 'scroll' }, el('table', {},
          el('thead', {}, el('tr', {}, ['Target', 'Health', 'In flight', 'EWMA latency', 'Requests', 'Failures', 'Recent failures (1 min)', 'Failures by reason: total (last ' + (u.window_seconds || 10) + ' s)', 'Consecutive failures', 'Ejections'].map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, st.targets.map((t) => {
            const [text, cls] = targetState(t);
            const key = u.name + '|' + t.address;
            seen.set(key, text);
            const changed = lastTargets.has(key) && lastTargets.get(key) !== text;
            if (changed) changes.push(`${t.address} in ${u.name}: ${text}`);
            return el('tr', { 'data-target': t.address },
              el('th', { scope: 'row' }, t.address, t.configured && t.configured !== t.address ? el('small', {}, ' (' + t.configured + ')') : null),
              el('td', { class: 'health ' + cls + (changed ? ' changed' : '') }, text),
              el('td', { class: 'num' }, t.in_flight), el('td', { class: 'num' }, ms(t.ewma_latency_ms)),
              el('td', { class: 'num' }, t.requests), el('td', { class: 'num' }, t.failures),
              el('td', { class: 'num' }, t.recent_failures), el('td', { class: 'failure-reasons' }, reasonsText(t.failures_by_reason, t.failures_by_reason_window)),
              el('td', { class: 'num' }, t.consecutive_failures),
              el('td', { class: 'num' }, t.ejections, reasonsText(t.ejections_by_reason) === '—' ? null : el('small', {}, ' (' + reasonsText(t.ejections_by_reason) + ')')));
          })))));
    }));
    lastTargets = seen;
    if (changes.length) $('#upstream-changes').textContent = changes.join('; ');
  }

  let source = null;
  function connect() {
    source = new EventSource('/api/v1/events');
    source.addEventListener('snapshot', (e) => {
      $('#live').textContent = '● live';
      render(JSON.parse(e.data));
    });
    source.addEventListener('error', () => {
      $('#live').textContent = '○ reconnecting…';
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    });
  }

  // ---- Traces.
  function traceQuery() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData($('#trace-search'))) if (String(v).trim()) q.set(k, String(v).trim());
    return q;
  }
  async function loadTraces() {
    const q = traceQuery();
    const d = await getJSON('traces?' + q);
    const r = d.ring;
    if (r) $('#traces-ring').textContent = `Kept in memory: the last ${r.size} sampled requests, errors (5xx${r.client_errors ? ' and 4xx' : ''}) and requests slower than ${r.slow_ms} ms, each.`;
    fill($('#traces-table tbody'), d.traces.map((t) => el('tr', { 'data-trace': t.id },
      el('td', {}, when(t.time)),
      el('td', {}, el('button', { type: 'button', class: 'link', onclick: () => openTrace(t.id), 'aria-label': 'Show the waterfall of ' + t.id }, t.trace_id ? t.id.slice(0, 16) + '…' : t.id)),
      el('td', {}, t.method), el('td', {}, t.path), el('td', {}, t.pipeline),
      el('td', { class: 'num' + (t.status >= 500 ? ' bad' : '') }, (t.status >= 500 ? '✗ ' : '') + t.status),
      el('td', { class: 'num' }, ms(t.duration_ms)), el('td', {}, t.reasons.join(', ')))), 'no kept request matches', 8);
    if (q.get('trace_id') && d.traces.length === 1 && !$('#waterfall').dataset.trace) openTrace(d.traces[0].id);
  }
  async function openTrace(id) {
    const r = await api('traces/' + encodeURIComponent(id));
    const box = $('#waterfall');
    if (!r.ok) { box.replaceChildren(el('p', { class: 'bad' }, '✗ ' + id + ' is no longer in the ring')); return; }
    const t = await r.json();
    box.dataset.trace = t.id;
    const total = Math.max(t.duration_ms, ...t.spans.map((s) => s.end_ms), 0.001);
    const rows = t.spans.map((s) => {
      const bar = el('div', { class: 'wf-bar k-' + s.kind + (s.verdict === 'respond' ? ' answered' : '') + (s.phase === 'response' ? ' response' : '') });
      bar.style.left = (100 * s.start_ms / total) + '%';
      bar.style.width = (100 * Math.max(s.end_ms - s.start_ms, 0) / total) + '%';
      let name = s.name;
      if (s.phase) name += ' · ' + s.phase;
      if (s.verdict === 'respond') name += ' → answered ' + s.status;
      if (s.kind === 'attempt') name += s.status ? ' · ' + s.status : '';
      if (s.error) name += ' ✗ ' + s.error;
      if (!s.finished) name += ' (did not finish)';
      return el('div', { class: 'wf-row', 'data-span': s.kind + ':' + s.name + (s.phase ? ':' + s.phase : '') },
        el('div', { class: 'wf-name', title: name }, s.kind === 'server' ? '' : '\u00a0\u00a0', name),
        el('div', { class: 'wf-track', role: 'img', 'aria-label': `${name}: from ${fmt(s.start_ms, 3)} to ${fmt(s.end_ms, 3)} ms` }, bar),
        el('div', { class: 'wf-ms' }, fmt(s.end_ms - s.start_ms, 3) + ' ms'));
    });
    box.replaceChildren(el('div', { class: 'wf card' },
      el('h3', {}, 'Waterfall of ', el('code', { id: 'wf-id' }, t.id)),
      el('p', {}, `${t.method} ${t.path} → ${t.status} in ${ms(t.duration_ms)} · pipeline ${t.pipeline || '(none)'} · kept as ${t.reasons.join(', ')}`,
        t.flags ? ' · flags ' + t.flags : '', t.client ? ' · client ' + t.client : ''),
      t.failure ? el('p', { class: 'bad' }, '✗ ' + t.failure) : null,
      t.collector_url ? el('p', {}, el('a', { href: t.collector_url, rel: 'noreferrer', target: '_blank' }, 'Open in the trace collector')) : null,
      rows, t.dropped_spans ? el('p', { class: 'note' }, t.dropped_spans + ' more spans were not recorded') : null));
  }

  // ---- Rate limits and auth.
  async function loadLimits() {
    const d = await getJSON('limits');
    fill($('#limits-refused tbody'), d.top_refused.map((k) => el('tr', {},
      el('th', { scope: 'row' }, k.consumer ? 'consumer ' + k.consumer : 'client ' + k.client),
      el('td', {}, k.pipeline), el('td', {}, k.stage), el('td', { class: 'num' }, k.refused), el('td', {}, when(k.last)))), 'no request refused', 5);
    $('#limits-other').textContent = d.other_refused ? `${d.other_refused} refusals of further keys not listed` : '';
    fill($('#limits-auth tbody'), d.recent_auth.map((a) => el('tr', {},
      el('td', {}, when(a.time)), el('td', { class: 'num bad' }, '✗ ' + a.status), el('td', {}, a.pipeline), el('td', {}, a.stage),
      el('td', {}, a.path), el('td', {}, a.consumer ? a.consumer + ' @ ' + (a.client || '') : a.client || ''),
      el('td', {}, [a.challenge, a.failure].filter(Boolean).join(' · ') || '—'))), 'no 401 or 403 yet', 7);
  }

  // ---- Wasm.
  function mib(b) { return b === undefined ? '—' : (b / 1048576).toFixed(1) + ' MiB'; }
  async function loadWasm() {
    const rows = await getJSON('wasm');
    const m = (r, k) => (r.metrics[k] === undefined ? '—' : r.metrics[k]);
    fill($('#wasm-table tbody'), rows.map((r) => el('tr', {},
      el('td', {}, r.pipeline), el('th', { scope: 'row' }, r.filter), el('td', { class: 'num wasm-in-use' }, m(r, 'instances_in_use')), el('td', { class: 'num wasm-idle' }, m(r, 'instances_idle')),
      el('td', { class: 'num wasm-memory' }, mib(r.metrics.memory_bytes)),
      el('td', { class: 'num wasm-calls' }, m(r, 'calls_total')),
      el('td', { class: 'num' }, ms(r.avg_request_ms) + ' / ' + ms(r.avg_response_ms)),
      el('td', { class: 'num' + (r.metrics.traps_total ? ' bad' : '') }, m(r, 'traps_total')),
      el('td', { class: 'num' + (r.metrics.timeouts_total ? ' bad' : '') }, m(r, 'timeouts_total')),
      el('td', { class: 'num' }, m(r, 'pool_waits_total')), el('td', { class: 'num' }, m(r, 'pool_exhausted_total')))), 'no Wasm filter in this configuration', 11);
  }

  // ---- Configuration and reload.
  async function loadConfig() {
    const cfg = await getJSON('config');
    $('#config-json').textContent = JSON.stringify(cfg, null, 2);
  }
  async function reload() {
    const btn = $('#reload-btn');
    btn.disabled = true;
    $('#reload-result').textContent = 'reloading…';
    const diag = $('#reload-diagnostics');
    try {
      const r = await api('reload', { method: 'POST', headers: { 'X-CSRF-Token': csrf, Accept: 'application/json' } });
      const d = await r.json();
      if (r.ok && d.reloaded) {
        $('#reload-result').replaceChildren(el('span', { class: 'good' }, '✓ reloaded'));
        diag.hidden = true;
        loadConfig();
      } else {
        $('#reload-result').replaceChildren(el('span', { class: 'bad' }, '✗ refused: ' + (d.error || r.status)));
        diag.textContent = d.diagnostics || d.error || '';
        diag.hidden = !diag.textContent;
      }
    } finally { btn.disabled = false; }
  }

  async function start() {
    const s = await getJSON('session');
    csrf = s.csrf_token;
    $('#logout').hidden = s.auth !== 'cookie';
    $('#reload-btn').addEventListener('click', reload);
    $('#trace-search').addEventListener('submit', (e) => { e.preventDefault(); delete $('#waterfall').dataset.trace; $('#waterfall').replaceChildren(); loadTraces(); });
    window.addEventListener('hashchange', () => { show(); $('#main').focus(); });
    show();
    connect();
  }
  start().catch((e) => console.warn('dashboard:', e.message));
})();
