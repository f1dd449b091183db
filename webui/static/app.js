// omegacell web view: a single page fed by /api/events (server-sent
// events: "full", then "delta" rows, and "stats"). No libraries, nothing
// loaded from elsewhere. Rows are arrays (see webui/client.go rowsJSON).
'use strict';

const M = { id:0, zone:1, rack:2, state:3, cap:4, alloc:7, used:10 };
const J = { id:0, name:1, tenant:2, sched:3, kind:4, state:5, submit:6, reason:7, counts:8, res:13 };
const JOB_STATES = {0: 'UNSPECIFIED', 1: 'PENDING', 2: 'RUNNING', 3: 'SUCCEEDED', 4: 'FAILED', 5: 'STOPPED', 20: 'QUEUED'};
const LIVE_STATES = new Set([1, 2, 20]); // pending, running, queued (admission waits for its tenant's headroom)
const KINDS = ['', 'service', 'batch'];
const BUCKETS = ['pending','placed','running','done','failed'];

const S = {
  me: null, machines: new Map(), jobs: new Map(), stats: null, rev: 0,
  order: null, // machines sorted by zone, rack, id (null: recompute)
  colorMode: localStorage.getItem('colorMode') || 'alloc-cpu',
  jobFilter: '', jobState: 'live', listeners: new Set(),
};

const $ = (sel, el = document) => el.querySelector(sel);
const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const cores = m => (m / 1000).toLocaleString(undefined, {maximumFractionDigits: 1});
const gib = b => (b / 2 ** 30).toLocaleString(undefined, {maximumFractionDigits: 1}) + ' GiB';
const pct = (a, b) => b > 0 ? Math.round(100 * a / b) + '%' : '–';
function age(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return Math.floor(s) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}
function stateName(s) { return String(s || '').replace(/^(JOB|TASK|MACHINE)_STATE_/, ''); }

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: 'same-origin', ...opts,
    headers: { 'X-Omegacell': '1', 'Content-Type': 'application/json', ...(opts.headers || {}) } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(body.error || r.statusText); e.status = r.status; throw e; }
  return body;
}

function confirmAction(text) {
  return new Promise(resolve => {
    const m = $('#modal');
    $('#modal-text').textContent = text;
    m.hidden = false;
    const done = v => { m.hidden = true; $('#modal-ok').onclick = $('#modal-cancel').onclick = null; resolve(v); };
    $('#modal-ok').onclick = () => done(true);
    $('#modal-cancel').onclick = () => done(false);
  });
}

// ------------------------------------------------------------ live data

function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('full', e => { const d = JSON.parse(e.data); S.machines.clear(); S.jobs.clear(); applyRows(d); });
  es.addEventListener('delta', e => applyRows(JSON.parse(e.data)));
  es.addEventListener('stats', e => { S.stats = JSON.parse(e.data); notify('stats'); });
  es.onopen = () => { $('#conn').textContent = 'live'; $('#conn').className = 'conn live'; };
  es.onerror = () => { $('#conn').textContent = 'reconnecting…'; $('#conn').className = 'conn'; };
}

function applyRows(d) {
  S.rev = d.rev;
  for (const m of d.machines) { if (!S.machines.has(m[M.id])) S.order = null; S.machines.set(m[M.id], m); }
  for (const j of d.jobs) S.jobs.set(j[J.id], j);
  for (const id of d.gone || []) S.jobs.delete(id);
  if (d.full) S.order = null;
  notify(d.machines.length ? 'machines' : '', d.jobs.length || (d.gone || []).length ? 'jobs' : '', d.full ? 'full' : '');
}

let pendingKinds = new Set(), notifyQueued = false;
function notify(...kinds) {
  for (const k of kinds) if (k) pendingKinds.add(k);
  if (notifyQueued) return;
  notifyQueued = true;
  requestAnimationFrame(() => {
    notifyQueued = false;
    const ks = pendingKinds; pendingKinds = new Set();
    for (const f of S.listeners) f(ks);
  });
}

// --------------------------------------------------------------- router

let page = null; // {stop()}
function route() {
  const [, name = 'cell', arg] = location.hash.split('/');
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === name || (name === 'job' && a.dataset.page === 'jobs'));
  if (page && page.stop) page.stop();
  S.listeners.clear();
  const app = $('#app');
  app.innerHTML = '';
  const pages = { cell: cellPage, jobs: jobsPage, job: jobPage, machine: machinePage, schedulers: schedulersPage, tenants: tenantsPage };
  page = (pages[name] || cellPage)(app, decodeURIComponent(arg || ''));
}

function listen(f) { S.listeners.add(f); f(new Set(['full'])); }

// ----------------------------------------------------------------- cell

const COLORS = { down: '#3a3f45', draining: '#f0883e' };
function heat(f) { // 0..1 → dark green … yellow … red
  f = Math.max(0, Math.min(1, f || 0));
  const h = 140 - 140 * f, l = 18 + 32 * Math.min(1, f * 1.6);
  return `hsl(${h},70%,${l}%)`;
}

function machineFraction(m, mode) {
  const [kind, res] = mode.split('-');
  const i = { cpu: 0, mem: 1, gpu: 2 }[res];
  const cap = m[M.cap + i];
  if (!cap) return null;
  const v = kind === 'alloc' ? m[M.alloc + i] : m[M.used + i];
  return v / cap;
}

const collator = new Intl.Collator(undefined, { numeric: true }); // one: localeCompare with options builds one per call
function sortedMachines() {
  if (!S.order) {
    const cmp = (p, q) => p < q ? -1 : p > q ? 1 : 0;
    S.order = [...S.machines.keys()].sort((a, b) => {
      const x = S.machines.get(a), y = S.machines.get(b);
      return cmp(x[M.zone], y[M.zone]) || cmp(x[M.rack], y[M.rack]) || collator.compare(a, b);
    });
  }
  return S.order;
}

function cellPage(app) {
  app.innerHTML = `
    <div class="cards" id="totals"></div>
    <div class="controls">Colour by
      <select id="color-mode">
        <option value="alloc-cpu">reserved CPU</option><option value="alloc-mem">reserved memory</option><option value="alloc-gpu">reserved GPU</option>
        <option value="used-cpu">used CPU</option><option value="used-mem">used memory</option>
      </select>
      <span class="legend"><span><i style="background:${heat(0)}"></i>0%</span><span><i style="background:${heat(.5)}"></i>50%</span><span><i style="background:${heat(1)}"></i>100%</span>
      <span><i style="background:#20262d;border:1px solid #444"></i>no such resource</span><span><i style="background:${COLORS.draining}"></i>draining</span><span><i style="background:${COLORS.down};border:1px solid #f85149"></i>down</span></span>
    </div>
    <canvas id="grid" width="1200" height="200"></canvas>
    <div class="charts" style="margin-top:12px">
      <div class="chart"><div class="t">Placements per second (5 min)</div><canvas id="ch-place" width="560" height="140"></canvas></div>
      <div class="chart"><div class="t">Commit latency, ms (mean per 2 s)</div><canvas id="ch-lat" width="560" height="140"></canvas></div>
    </div>`;
  const sel = $('#color-mode');
  sel.value = S.colorMode;
  sel.onchange = () => { S.colorMode = sel.value; localStorage.setItem('colorMode', sel.value); draw(); };
  const canvas = $('#grid');
  let layout = []; // per drawn machine: [x, y, id]
  let CELL = 9;
  const GAP = 1, PAD = 8;
  function draw() {
    const ids = sortedMachines();
    CELL = ids.length < 500 ? 16 : ids.length < 3000 ? 11 : 7;
    const width = Math.max(600, app.clientWidth - 2);
    // Layout: zones as bands; racks as blocks flowing left to right.
    let x = PAD, y = PAD, rowH = 0, zone = null, rack = null, col = 0, rackX = 0, rackY = 0, rackCols = 0;
    const racks = new Map();
    for (const id of ids) { const m = S.machines.get(id); const k = m[M.zone] + '\u0000' + m[M.rack]; racks.set(k, (racks.get(k) || 0) + 1); }
    layout = new Array(ids.length);
    const labels = [];
    let i = 0;
    for (const id of ids) {
      const m = S.machines.get(id);
      if (m[M.zone] !== zone) {
        if (zone !== null) { y += rowH + 22; x = PAD; rowH = 0; }
        zone = m[M.zone]; rack = null;
        labels.push([PAD, y + 10, 'zone ' + (zone || '(none)'), '#8a99a8']);
        y += 16;
      }
      if (m[M.rack] !== rack) {
        rack = m[M.rack];
        const n = racks.get(m[M.zone] + '\u0000' + rack);
        rackCols = Math.max(2, Math.ceil(Math.sqrt(n * 2)));
        const w = rackCols * (CELL + GAP), h = Math.ceil(n / rackCols) * (CELL + GAP);
        if (x + w > width - PAD && x > PAD) { x = PAD; y += rowH + 18; rowH = 0; }
        rackX = x; rackY = y + 12; col = 0;
        labels.push([rackX, y + 9, rack || '–', '#56636f']);
        x += w + 14; rowH = Math.max(rowH, h + 12);
      }
      const cx = rackX + (col % rackCols) * (CELL + GAP), cy = rackY + Math.floor(col / rackCols) * (CELL + GAP);
      layout[i++] = [cx, cy, id];
      col++;
    }
    const height = y + rowH + PAD;
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
    const g = canvas.getContext('2d');
    g.fillStyle = '#0b0f13'; g.fillRect(0, 0, canvas.width, canvas.height);
    g.font = '10px system-ui, sans-serif';
    for (const [lx, ly, t, c] of labels) { g.fillStyle = c; g.fillText(t, lx, ly); }
    for (const [cx, cy, id] of layout) {
      const m = S.machines.get(id);
      if (m[M.state] === 3) {
        g.fillStyle = COLORS.down; g.fillRect(cx, cy, CELL, CELL);
        g.strokeStyle = '#f85149'; g.lineWidth = 1; g.beginPath(); g.moveTo(cx + 1, cy + 1); g.lineTo(cx + CELL - 1, cy + CELL - 1); g.stroke();
        continue;
      }
      const f = machineFraction(m, S.colorMode);
      g.fillStyle = f === null ? '#20262d' : heat(f);
      g.fillRect(cx, cy, CELL, CELL);
      if (m[M.state] === 2) { g.fillStyle = COLORS.draining; g.fillRect(cx, cy + CELL - 3, CELL, 3); }
    }
    canvas.dataset.drawn = layout.length;
    if (layout.length && !performance.getEntriesByName('omegacell-grid').length) performance.mark('omegacell-grid', { detail: layout.length }); // first grid painted
    canvas.dataset.down = ids.filter(id => S.machines.get(id)[M.state] === 3).length;
  }
  function hit(ev) {
    const r = canvas.getBoundingClientRect();
    const px = (ev.clientX - r.left) * canvas.width / r.width, py = (ev.clientY - r.top) * canvas.height / r.height;
    for (const l of layout) if (px >= l[0] && px < l[0] + CELL && py >= l[1] && py < l[1] + CELL) return l[2];
    return null;
  }
  canvas.onclick = ev => { const id = hit(ev); if (id) location.hash = '#/machine/' + encodeURIComponent(id); };
  canvas.onmousemove = ev => {
    const id = hit(ev), tip = $('#tip');
    if (!id) { tip.hidden = true; return; }
    const m = S.machines.get(id);
    tip.textContent = `${id}  (${m[M.zone]}/${m[M.rack]})  ${['', 'ready', 'draining', 'down'][m[M.state]]}\n` +
      `CPU ${cores(m[M.alloc])}/${cores(m[M.cap])} reserved, ${cores(m[M.used])} used\n` +
      `memory ${gib(m[M.alloc + 1])}/${gib(m[M.cap + 1])} reserved, ${gib(m[M.used + 1])} used` +
      (m[M.cap + 2] ? `\nGPU ${m[M.alloc + 2] / 1000}/${m[M.cap + 2] / 1000}` : '');
    tip.style.left = ev.clientX + 14 + 'px'; tip.style.top = ev.clientY + 14 + 'px'; tip.hidden = false;
  };
  canvas.onmouseleave = () => { $('#tip').hidden = true; };
  function totals() {
    const t = S.stats && S.stats.totals;
    if (!t) return;
    $('#totals').innerHTML = [
      ['machines', t.machines.toLocaleString()], ['down', t.down], ['draining', t.draining],
      ['CPU reserved', pct(t.alloc[0], t.cap[0]) + ' of ' + cores(t.cap[0])], ['CPU used', pct(t.used[0], t.cap[0])],
      ['memory reserved', pct(t.alloc[1], t.cap[1]) + ' of ' + gib(t.cap[1])], ['GPU reserved', t.cap[2] ? pct(t.alloc[2], t.cap[2]) + ' of ' + t.cap[2] / 1000 : '–'],
      ['jobs', t.jobs.toLocaleString()], ['tasks running', t.Tasks[2].toLocaleString()], ['tasks pending', t.Tasks[0].toLocaleString()],
    ].map(([k, v]) => `<div class="card"><div class="k">${k}</div><div class="v">${v}</div></div>`).join('');
    lineChart($('#ch-place'), [{ points: S.stats.place, color: '#3fb950' }]);
    lineChart($('#ch-lat'), [{ points: S.stats.lat || [], color: '#4aa3ff' }], { unit: ' ms' });
  }
  listen(ks => { if (ks.has('machines') || ks.has('full')) draw(); if (ks.has('stats') || ks.has('full')) totals(); });
  const onResize = () => draw();
  window.addEventListener('resize', onResize);
  return { stop() { window.removeEventListener('resize', onResize); $('#tip').hidden = true; } };
}

// ---------------------------------------------------------------- charts

function lineChart(canvas, series, opts = {}) {
  if (!canvas) return;
  const g = canvas.getContext('2d'), W = canvas.width, H = canvas.height, L = 44, B = 16, T = 6;
  g.fillStyle = '#0b0f13'; g.fillRect(0, 0, W, H);
  let maxV = opts.max || 0, minT = Infinity, maxT = -Infinity;
  for (const s of series) for (const p of s.points) { maxV = Math.max(maxV, p.v); minT = Math.min(minT, p.t); maxT = Math.max(maxT, p.t); }
  if (!opts.max) maxV = maxV > 0 ? maxV * 1.15 : 1;
  g.strokeStyle = '#2a3540'; g.fillStyle = '#8a99a8'; g.font = '10px system-ui, sans-serif';
  for (let k = 0; k <= 2; k++) {
    const y = T + (H - T - B) * (1 - k / 2);
    g.beginPath(); g.moveTo(L, y); g.lineTo(W - 4, y); g.stroke();
    const v = maxV * k / 2;
    g.fillText((v >= 100 ? Math.round(v) : v.toFixed(v >= 10 ? 1 : 2)) + (opts.unit || ''), 2, y + 3);
  }
  if (!isFinite(minT)) { g.fillText('no data yet', L + 8, H / 2); return; }
  const span = Math.max(1, maxT - minT);
  g.fillText(span >= 120000 ? 'last ' + Math.round(span / 60000) + ' min' : 'last ' + Math.round(span / 1000) + ' s', W - 64, H - 3);
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
    s.points.forEach((p, i) => {
      const x = L + (W - L - 6) * (p.t - minT) / span, y = T + (H - T - B) * (1 - p.v / maxV);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
}

// ----------------------------------------------------------------- jobs

function progressBar(c) {
  const total = c.reduce((a, b) => a + b, 0) || 1;
  return `<div class="bar" title="${BUCKETS.map((b, i) => b + ' ' + c[i]).join(', ')}">` +
    BUCKETS.map((b, i) => c[i] ? `<span class="${b}" style="width:${100 * c[i] / total}%"></span>` : '').join('') + '</div>';
}
const countsOf = j => j.slice(J.counts, J.counts + 5);
const liveJob = j => LIVE_STATES.has(j[J.state]);

function jobsPage(app) {
  app.innerHTML = `
    <div class="controls">
      <input id="job-filter" placeholder="filter: name, tenant, scheduler" size="32">
      <select id="job-state"><option value="live">live</option><option value="all">all</option><option value="queued">queued</option><option value="pending">pending</option><option value="running">running</option><option value="finished">finished</option></select>
      <span id="job-count" class="note"></span>
      <span class="legend">${BUCKETS.map(b => `<span><i class="bar-${b}" style="background:var(--${b})"></i>${b}</span>`).join('')}</span>
    </div>
    <table><thead><tr><th>job</th><th>tenant</th><th>scheduler</th><th>kind</th><th>state</th><th>progress</th><th>pending/placed/running/done/failed</th><th>age</th></tr></thead><tbody id="jobs"></tbody></table>`;
  const f = $('#job-filter'), st = $('#job-state');
  f.value = S.jobFilter; st.value = S.jobState;
  f.oninput = () => { S.jobFilter = f.value; render(); };
  st.onchange = () => { S.jobState = st.value; render(); };
  let last = 0, timer = null;
  function render() {
    const q = S.jobFilter.toLowerCase();
    const want = j => {
      const s = j[J.state];
      if (S.jobState === 'live' && !liveJob(j)) return false;
      if (S.jobState === 'pending' && s !== 1) return false;
      if (S.jobState === 'running' && s !== 2) return false;
      if (S.jobState === 'queued' && s !== 20) return false;
      if (S.jobState === 'finished' && LIVE_STATES.has(s)) return false;
      return !q || j[J.name].toLowerCase().includes(q) || j[J.tenant].toLowerCase().includes(q) || j[J.sched].toLowerCase().includes(q);
    };
    const rows = [...S.jobs.values()].filter(want).sort((a, b) => b[J.submit] - a[J.submit] || a[J.id].localeCompare(b[J.id]));
    $('#job-count').textContent = rows.length > 500 ? `showing 500 of ${rows.length}` : `${rows.length} jobs`;
    $('#jobs').innerHTML = rows.slice(0, 500).map(j => {
      const c = countsOf(j), s = JOB_STATES[j[J.state]];
      return `<tr data-job="${esc(j[J.name])}"><td><a href="#/job/${encodeURIComponent(j[J.id])}">${esc(j[J.name])}</a></td><td>${esc(j[J.tenant])}</td><td>${esc(j[J.sched])}</td>` +
        `<td>${KINDS[j[J.kind]] || ''}</td><td class="state-${s}">${s}${j[J.reason] ? ` <span class="reason" title="${esc(j[J.reason])}">⚠</span>` : ''}</td>` +
        `<td>${progressBar(c)}</td><td class="counts">${c.join(' / ')}</td><td>${age(j[J.submit])}</td></tr>`;
    }).join('');
    last = Date.now();
  }
  listen(ks => {
    if (!ks.has('jobs') && !ks.has('full')) return;
    const wait = 400 - (Date.now() - last);
    if (wait <= 0) render(); else if (!timer) timer = setTimeout(() => { timer = null; render(); }, wait);
  });
  return { stop() { clearTimeout(timer); } };
}

// ------------------------------------------------------------------ job

function kvTable(obj, skip = []) {
  const rows = Object.entries(obj || {}).filter(([k]) => !skip.includes(k));
  if (!rows.length) return '';
  return `<table class="kv">${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="wrap">${typeof v === 'object' ? `<pre style="margin:0">${esc(JSON.stringify(v, null, 1))}</pre>` : esc(v)}</td></tr>`).join('')}</table>`;
}
const nsDate = ns => ns ? new Date(Number(ns) / 1e6).toLocaleString() : '';
const canStop = job => S.me && (S.me.admin || (S.me.tenants || []).includes(job.spec?.tenant));

function jobPage(app, id) {
  app.innerHTML = `<div id="job-head"><p class="note">loading…</p></div>
    <h2>Tasks</h2><div id="job-tasks"></div>
    <div id="job-logs" hidden><h2 id="logs-title"></h2><pre id="logs"></pre></div>
    <h2>All fields</h2><div id="job-more"></div>`;
  let stopped = false, fetching = false, again = false, followTimer = null, logTask = null;
  async function load() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const r = await api('/api/job?id=' + encodeURIComponent(id));
      if (!stopped) render(r);
    } catch (e) {
      if (!stopped) $('#job-head').innerHTML = `<p class="reason">${esc(e.message)}</p>`;
    }
    fetching = false;
    if (again && !stopped) { again = false; setTimeout(load, 500); }
  }
  function render(r) {
    const job = r.job, spec = job.spec || {}, st = stateName(job.state);
    const row = S.jobs.get(job.id);
    const c = row ? countsOf(row) : null;
    const live = st === 'PENDING' || st === 'RUNNING' || st === 'QUEUED';
    $('#job-head').innerHTML = `
      <h1>${esc(spec.name)} <span class="state-${st}" id="job-state">${st}</span>
        ${live && canStop(job) ? '<button id="stop-job" class="danger">Stop job</button>' : ''}</h1>
      <div class="cards">
        <div class="card"><div class="k">tenant</div><div class="v">${esc(spec.tenant)}</div></div>
        <div class="card"><div class="k">scheduler</div><div class="v">${esc(spec.scheduler)}</div></div>
        <div class="card"><div class="k">kind</div><div class="v">${esc(String(spec.kind || '').replace('JOB_KIND_', '').toLowerCase())}</div></div>
        <div class="card"><div class="k">tasks</div><div class="v">${spec.count || 0}${spec.gang ? ' (gang)' : ''}</div></div>
        <div class="card"><div class="k">priority</div><div class="v">${spec.priority || 0}</div></div>
        <div class="card"><div class="k">submitted</div><div class="v">${age(Number(job.submitTimeUnixNano) / 1e6)} ago</div></div>
      </div>
      ${c ? `<div class="controls">${progressBar(c)} <span class="counts" id="job-counts">${BUCKETS.map((b, i) => b + ' ' + c[i]).join(', ')}</span></div>` : ''}
      ${job.unschedulableReason ? `<p class="reason" id="explain">Pending because: ${esc(job.unschedulableReason)}</p>` : ''}
      ${job.queuedReason ? `<p class="reason" id="queued">Queued because: ${esc(job.queuedReason)}</p>` : ''}
      ${job.message ? `<p class="note">${esc(job.message)}</p>` : ''}
      ${['events', 'rollout', 'explain', 'pendingReason'].map(k => extraSection(r, job, k)).join('')}`;
    const b = $('#stop-job');
    if (b) b.onclick = async () => {
      if (!await confirmAction(`Stop job ${spec.name}? Its tasks are killed.`)) return;
      try { await api('/api/stop', { method: 'POST', body: JSON.stringify({ job: job.id }) }); load(); } catch (e) { alert(e.message); }
    };
    const tasks = r.tasks || [];
    $('#job-tasks').innerHTML = `<table><thead><tr><th>#</th><th>state</th><th>machine</th><th>attempt</th><th>exit</th><th>message</th><th>started</th><th></th></tr></thead><tbody>` +
      tasks.map(t => `<tr data-task="${t.index || 0}"><td>${t.index || 0}</td><td class="state-${stateName(t.state)}">${stateName(t.state)}</td>` +
        `<td>${t.machineId ? `<a href="#/machine/${encodeURIComponent(t.machineId)}">${esc(t.machineId)}</a>` : ''}</td><td>${t.attempt || 0}</td><td>${t.exitCode ?? (['SUCCEEDED', 'FAILED'].includes(stateName(t.state)) ? 0 : '')}</td>` +
        `<td class="wrap">${esc(t.message)}</td><td>${nsDate(t.startTimeUnixNano)}</td><td><button class="logs-btn" data-index="${t.index || 0}">logs</button></td></tr>`).join('') +
      `</tbody></table>${(spec.count || 0) > tasks.length ? `<p class="note">${tasks.length} of ${spec.count} tasks shown</p>` : ''}`;
    for (const btn of document.querySelectorAll('.logs-btn')) btn.onclick = () => followLogs(job.id, Number(btn.dataset.index));
    const more = { ...r }; delete more.tasks;
    $('#job-more').innerHTML = kvTable(flatten(more));
  }
  function extraSection(r, job, key) {
    const v = r[key] ?? job[key];
    if (v === undefined || v === '' || (Array.isArray(v) && !v.length)) return '';
    return `<h2>${esc(key)}</h2>` + (Array.isArray(v)
      ? `<table>${v.map(e => `<tr><td class="wrap">${esc(typeof e === 'object' ? Object.values(e).join('  ') : e)}</td></tr>`).join('')}</table>`
      : kvTable(typeof v === 'object' ? v : { [key]: v }));
  }
  function followLogs(jobId, index) {
    clearTimeout(followTimer);
    logTask = { jobId, index, offset: null, attempt: null };
    $('#job-logs').hidden = false;
    $('#logs-title').textContent = `Logs of task ${index} (following)`;
    $('#logs').textContent = '';
    poll();
  }
  async function poll() {
    const t = logTask;
    if (!t || stopped) return;
    let final = false;
    try {
      const q = `/api/logs?job=${encodeURIComponent(t.jobId)}&task=${t.index}` + (t.offset !== null ? `&offset=${t.offset}` : '');
      const r = await api(q);
      if (t !== logTask) return;
      if (t.attempt !== null && r.attempt !== t.attempt) { $('#logs').textContent += `\n--- attempt ${r.attempt} ---\n`; t.attempt = r.attempt; t.offset = 0; followTimer = setTimeout(poll, 100); return; }
      t.attempt = r.attempt;
      const pre = $('#logs'), atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += r.text;
      if (pre.textContent.length > 500000) pre.textContent = pre.textContent.slice(-400000);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
      t.offset = r.next;
      final = r.next >= r.size && ['TASK_STATE_SUCCEEDED', 'TASK_STATE_FAILED', 'TASK_STATE_KILLED', 'TASK_STATE_LOST', 'TASK_STATE_PREEMPTED'].includes(r.state);
      if (r.next < r.size) { followTimer = setTimeout(poll, 0); return; }
    } catch (e) {
      if (e.status === 400 && t.offset !== null) t.offset = 0; // output shorter: a new attempt
      $('#logs-title').textContent = `Logs of task ${t.index}: ${e.message}`;
    }
    $('#logs-title').textContent = `Logs of task ${t.index}` + (final ? ' (task finished)' : ' (following)');
    if (!final) followTimer = setTimeout(poll, 1000);
  }
  load();
  // Reload when this job's live row changed (state, counts, reason): at
  // most once a second, whatever else changes in the cell.
  let lastLoad = 0, loadTimer = null, seen, started = false;
  listen(ks => {
    if (!ks.has('jobs') && !ks.has('full')) return;
    const row = S.jobs.get(id) || [...S.jobs.values()].find(j => j[J.name] === id);
    const key = row ? JSON.stringify(row) : null;
    if (started && key === seen) return;
    const first = !started;
    seen = key; started = true;
    if (first) return; // load() above already reads it
    const wait = 1000 - (Date.now() - lastLoad);
    if (!loadTimer) loadTimer = setTimeout(() => { loadTimer = null; lastLoad = Date.now(); load(); }, Math.max(0, wait));
  });
  return { stop() { stopped = true; clearTimeout(followTimer); clearTimeout(loadTimer); } };
}

function flatten(o, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(o || {})) {
    const key = prefix ? prefix + '.' + k : k;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length < 30) flatten(v, key, out); else out[key] = v;
  }
  return out;
}

// -------------------------------------------------------------- machine

function meter(v, cap) { const f = cap > 0 ? Math.min(1, v / cap) : 0; return `<span class="meter"><span style="width:${100 * f}%"></span></span> ${pct(v, cap)}`; }

function machinePage(app, id) {
  app.innerHTML = `<div id="machine"><p class="note">loading…</p></div>`;
  let stopped = false, timer = null, last = 0;
  async function load() {
    try { const r = await api('/api/machine?id=' + encodeURIComponent(id)); if (!stopped) render(r); }
    catch (e) { if (!stopped) $('#machine').innerHTML = `<p class="reason">${esc(e.message)}</p>`; }
  }
  function render(r) {
    const m = r.machine, cap = m.capacity || {}, al = m.allocated || {}, u = m.usage || {}, st = stateName(m.state);
    const n = x => Number(x || 0);
    const devs = m.deviceUsedMilli || [];
    const tasks = r.tasks || [];
    const shares = devs.map(() => []);
    for (const t of tasks) for (const d of t.devices || []) if (shares[d.device || 0]) shares[d.device || 0].push(`${t.jobId.slice(0, 8)}/${t.index || 0}: ${(d.milli || 0) / 1000}`);
    $('#machine').innerHTML = `
      <h1>${esc(m.id)} <span class="state-${st}" id="machine-state">${st}</span>
      ${S.me && S.me.admin ? `<button id="drain" class="danger">${st === 'DRAINING' ? 'Undrain' : 'Drain'}</button>` : ''}</h1>
      <table class="kv">
        <tr><td>CPU</td><td>reserved ${cores(n(al.cpuMilli))} of ${cores(n(cap.cpuMilli))} ${meter(n(al.cpuMilli), n(cap.cpuMilli))} · used ${cores(n(u.cpuMilli))} ${meter(n(u.cpuMilli), n(cap.cpuMilli))}</td></tr>
        <tr><td>memory</td><td>reserved ${gib(n(al.memoryBytes))} of ${gib(n(cap.memoryBytes))} ${meter(n(al.memoryBytes), n(cap.memoryBytes))} · used ${gib(n(u.memoryBytes))}</td></tr>
        <tr><td>disk</td><td>reserved ${gib(n(al.diskBytes))} of ${gib(n(cap.diskBytes))}</td></tr>
        <tr><td>GPU</td><td>${n(cap.gpuMilli) ? `reserved ${n(al.gpuMilli) / 1000} of ${n(cap.gpuMilli) / 1000} ${meter(n(al.gpuMilli), n(cap.gpuMilli))}` : 'none'}</td></tr>
        <tr><td>last heartbeat</td><td>${m.lastHeartbeatUnixNano ? age(Number(m.lastHeartbeatUnixNano) / 1e6) + ' ago' : 'none since the server started'}</td></tr>
        <tr><td>registered by</td><td>${esc(m.registeredBy || '')}</td></tr>
      </table>
      <h2>Labels</h2>${kvTable(m.labels)}
      ${devs.length ? `<h2>GPU devices</h2><table><thead><tr><th>device</th><th>used</th><th>shares (task: GPUs)</th></tr></thead><tbody>${devs.map((d, i) =>
        `<tr><td>${i}</td><td>${meter(d, 1000)}</td><td class="wrap">${esc(shares[i].join(', '))}</td></tr>`).join('')}</tbody></table>` : ''}
      <h2>Tasks (${tasks.length})</h2>
      <table><thead><tr><th>job</th><th>task</th><th>state</th><th>CPU</th><th>memory</th><th>GPU</th><th>used CPU</th></tr></thead><tbody>${tasks.map(t => {
        const j = S.jobs.get(t.jobId);
        return `<tr><td><a href="#/job/${encodeURIComponent(t.jobId)}">${esc(j ? j[J.name] : t.jobId)}</a></td><td>${t.index || 0}</td><td class="state-${stateName(t.state)}">${stateName(t.state)}</td>` +
          `<td>${cores(n(t.resources?.cpuMilli))}</td><td>${gib(n(t.resources?.memoryBytes))}</td><td>${n(t.resources?.gpuMilli) / 1000 || ''}</td><td>${t.usage ? cores(n(t.usage.cpuMilli)) : ''}</td></tr>`;
      }).join('')}</tbody></table>`;
    const b = $('#drain');
    if (b) b.onclick = async () => {
      const drain = st !== 'DRAINING';
      if (!await confirmAction(drain ? `Drain ${m.id}? No new tasks are placed on it.` : `Undrain ${m.id}?`)) return;
      try { await api('/api/drain', { method: 'POST', body: JSON.stringify({ machine: m.id, drain }) }); load(); } catch (e) { alert(e.message); }
    };
  }
  load();
  let seen, started = false;
  listen(ks => {
    if (!ks.has('machines') && !ks.has('full')) return;
    const key = JSON.stringify(S.machines.get(id) || null);
    if (started && key === seen) return;
    const first = !started;
    seen = key; started = true;
    if (first) return;
    const wait = 2000 - (Date.now() - last);
    if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); load(); }, Math.max(0, wait));
  });
  return { stop() { stopped = true; clearTimeout(timer); } };
}

// ----------------------------------------------------------- schedulers

function schedulersPage(app) {
  app.innerHTML = `<h1>Schedulers</h1><p class="note">The Omega paper's figures, sampled every 2 s over the last 5 minutes. Decision time is derived: busyness × interval ÷ transactions.</p><div id="scheds"></div>`;
  function render() {
    const sc = S.stats && S.stats.scheds;
    if (!sc) { $('#scheds').innerHTML = '<p class="note">no schedulers (or not visible to you)</p>'; return; }
    const names = Object.keys(sc).sort();
    const el = $('#scheds');
    if (el.dataset.names !== names.join(',')) {
      el.dataset.names = names.join(',');
      el.innerHTML = names.map(n => `<div class="sched" data-sched="${esc(n)}"><h2>${esc(n)} <span class="note cur"></span></h2><div class="charts">` +
        ['busyness', 'conflict fraction', 'queue (tasks)', 'decision time (ms)'].map((t, i) =>
          `<div class="chart"><div class="t">${t}</div><canvas data-k="${i}" width="300" height="110"></canvas></div>`).join('') + '</div></div>').join('');
    }
    for (const n of names) {
      const pts = sc[n], box = el.querySelector(`[data-sched="${CSS.escape(n)}"]`), cv = box.querySelectorAll('canvas');
      const s = f => pts.map(p => ({ t: p.t, v: f(p) }));
      lineChart(cv[0], [{ points: s(p => p.busy), color: '#4aa3ff' }], { max: 1 });
      lineChart(cv[1], [{ points: s(p => p.conflict), color: '#f85149' }]);
      lineChart(cv[2], [{ points: s(p => p.queue), color: '#e0b341' }, { points: s(p => p.pending), color: '#6c7a89' }]);
      lineChart(cv[3], [{ points: s(p => p.decideMs), color: '#3fb950' }], { unit: '' });
      const p = pts[pts.length - 1];
      box.querySelector('.cur').textContent = p ? `busy ${(100 * p.busy).toFixed(1)}% · conflicts ${(100 * p.conflict).toFixed(1)}% · queued ${p.queue} · pending ${p.pending} · accepted ${p.accepted} · conflicted ${p.conflicted}` : '';
    }
  }
  listen(ks => { if (ks.has('stats') || ks.has('full')) render(); });
  return {};
}

// -------------------------------------------------------------- tenants

function tenantsPage(app) {
  app.innerHTML = `<h1>Tenants</h1><div id="tenants"><p class="note">loading…</p></div>`;
  let stopped = false, timer = null;
  const n = x => Number(x || 0);
  const amounts = a => a && (n(a.cpuMilli) || n(a.memoryBytes) || n(a.gpuMilli)) ? `${cores(n(a.cpuMilli))} CPU · ${gib(n(a.memoryBytes))}` + (n(a.gpuMilli) ? ` · ${n(a.gpuMilli) / 1000} GPU` : '') : '–';
  async function load() {
    try {
      const r = await api('/api/tenants');
      if (stopped) return;
      const bands = [['production', 'production'], ['batch', 'batch'], ['bestEffort', 'best-effort']];
      $('#tenants').innerHTML = `<p class="note">Cell capacity (machines not down): ${amounts(r.cellCapacity)}. Quota per band: nominal (+ borrow limit); in use is held by placed and running tasks; borrowed is in use above nominal; dominant share is the largest fraction of the cell's capacity of any kind (DRF).</p>
        <table><thead><tr><th>tenant</th><th>weight</th><th>max band</th><th>band</th><th>quota</th><th>in use</th><th>borrowed</th><th>pending tasks / queued jobs</th><th>dominant share</th></tr></thead><tbody>` +
        (r.tenants || []).map(t => {
          const used = u => u && (n(u.inUse?.cpuMilli) || n(u.inUse?.memoryBytes) || n(u.inUse?.gpuMilli) || n(u.pendingTasks) || n(u.queuedJobs));
          const rows = bands.filter(([k]) => t[k] || used((t.usage || {})[k]));
          if (!rows.length) rows.push(['batch', 'batch']);
          return rows.map(([k, label], i) => {
            const q = t[k], u = (t.usage || {})[k] || {};
            return `<tr data-tenant="${i ? '' : esc(t.name)}">` + (i ? '<td></td><td></td><td></td>' :
              `<td>${esc(t.name)}</td><td>${t.weight || 1}</td><td>${esc(String(t.maxBand || 'PRIORITY_BAND_BATCH').replace('PRIORITY_BAND_', '').toLowerCase())}</td>`) +
              `<td>${label}</td><td class="wrap">${q ? amounts(q.nominal) + (q.borrowLimit ? ` <span class="note">(+ ${amounts(q.borrowLimit)})</span>` : '') : '<span class="note">none</span>'}</td>` +
              `<td>${amounts(u.inUse)}</td><td>${u.borrowed ? amounts(u.borrowed) : ''}</td><td>${n(u.pendingTasks)} / ${n(u.queuedJobs)}</td><td>${meter(n(u.dominantShare) * 1000, 1000)}</td></tr>`;
          }).join('');
        }).join('') + '</tbody></table>';
    } catch (e) { if (!stopped) $('#tenants').innerHTML = `<p class="reason">${esc(e.message)}</p>`; }
    if (!stopped) timer = setTimeout(load, 5000);
  }
  load();
  return { stop() { stopped = true; clearTimeout(timer); } };
}

// ----------------------------------------------------------------- start

async function start() {
  try {
    S.me = await api('/api/me');
  } catch (e) {
    $('#conn').textContent = '';
    $('#app').innerHTML = `<div class="login" id="login-required"><h1>Log in</h1><p>This cell's web view needs a credential of the cell.</p>
      <p>Run <code>cell ui</code> (with <code>--credentials DIR</code> if yours is not found by default) and open the link it prints.</p></div>`;
    return;
  }
  $('#who').textContent = S.me.identity;
  const lo = $('#logout');
  if (!S.me.insecure) { lo.hidden = false; lo.onclick = async () => { await fetch('/logout', { method: 'POST' }); location.reload(); }; }
  connect();
  window.addEventListener('hashchange', route);
  route();
}
start();
