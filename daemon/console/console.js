// simarrayd's web console (docs/console.md). Fed by /api/events (Server-Sent Events): a
// "status" frame once a second (the admin Status reply and two latency histograms) and the
// array's events. Actions are admin calls through /api/admin/, with the admin token the
// user entered, kept in this tab's sessionStorage only.
'use strict';

const HISTORY = 300;  // samples (seconds) kept for the plots, which stretch to what they hold
const PLOTS = [
  {id: 'writes', title: 'writes/s', unit: ''},
  {id: 'mbps', title: 'MB/s written', unit: ''},
  {id: 'latency', title: 'host write latency p50 / p99', unit: 'ms', second: true},
  {id: 'ship', title: 'ship latency p50 / p99', unit: 'ms', second: true},
  {id: 'owed', title: 'owed tracks', unit: ''},
  {id: 'behind', title: 'seconds behind (async)', unit: 's'},
  {id: 'queue', title: 'mirror queue depth', unit: ''},
];

const $ = (id) => document.getElementById(id);
const num = (v) => Number(v || 0);
const history = Object.fromEntries(PLOTS.map((p) => [p.id, []]));
let previous = null;  // the last status frame
let token = sessionStorage.getItem('simarray-token') || '';

function showAccess() {
  $('access').textContent = token ? 'admin (token set)' : 'read-only';
}

// The value below which `q` of the samples recorded between two snapshots fall (the upper
// bound of that bucket), in seconds; null when none were recorded.
function quantile(now, before, q) {
  if (!now || !now.bounds) return null;
  const cum = now.cumulative.map((c, i) => c - (before ? before.cumulative[i] || 0 : 0));
  const total = cum[cum.length - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i < cum.length; ++i) {
    if (cum[i] >= rank) return i < now.bounds.length ? now.bounds[i] : Infinity;
  }
  return null;
}

function ms(seconds) {
  if (seconds === null) return '–';
  if (seconds === Infinity) return '> 1 s';
  return seconds < 0.001 ? `${(seconds * 1000).toFixed(2)} ms` : `${(seconds * 1000).toFixed(1)} ms`;
}

function badge(element, text, level) {
  element.textContent = text;
  element.className = `badge ${level}`;
}

function pairLevel(state) {
  if (['Synchronized', 'Consistent'].includes(state)) return 'ok';
  if (['Invalid', 'Partitioned'].includes(state)) return 'bad';
  return 'warn';
}

function linkLevel(state) {
  return state === 'up' ? 'ok' : state === 'none' || state === 'stopped' ? '' : state === 'down' ? 'bad' : 'warn';
}

function update(frame) {
  const s = frame.status;
  const pens = s.pens || [];
  const writes = pens.reduce((n, p) => n + num(p.writes_committed), 0);
  const bytes = pens.reduce((n, p) => n + num(p.bytes_written), 0);
  const invalid = pens.reduce(
      (n, p) => n + Object.values(p.invalid_writes || {}).reduce((m, v) => m + num(v), 0), 0);
  const link = s.link || {};
  const cycles = s.cycles || {};
  const group = (s.groups || [])[0];

  $('daemon').textContent = s.daemon_id || 'simarrayd';
  $('role-mode').textContent = `${s.role}, ${s.mode} mode${group ? `, group ${group.name}` : ''}`;
  badge($('pair-state'), s.pair_state || 'no pair', pairLevel(s.pair_state));
  badge($('link-state'), `link ${link.state || 'none'}`, linkLevel(link.state));
  $('writes').textContent = writes.toLocaleString('en');
  $('owed-tracks').textContent = num(s.owed_tracks).toLocaleString('en');
  $('queue').textContent = `${num(s.queue_depth)} of ${num(s.queue_capacity)} (peak ${num(s.queue_peak)})`;
  $('invalid').textContent = invalid.toLocaleString('en');
  $('resync').textContent = link.resyncing
      ? `running: ${num(link.resync_pending)} tracks to go (${link.resync_seconds_left.toFixed(1)} s)`
      : `idle (${num(link.resyncs_completed)} done)`;
  $('behind').textContent = s.mode === 'async' ? `${num(cycles.seconds_behind).toFixed(2)} s` : '–';

  let rate = 0, mbps = 0, p50 = null, p99 = null, s50 = null, s99 = null;
  if (previous) {
    const dt = (frame.time_unix_ms - previous.time_unix_ms) / 1000;
    if (dt > 0) {
      rate = Math.max(0, writes - previous.writes) / dt;
      mbps = Math.max(0, bytes - previous.bytes) / dt / 1e6;
    }
    p50 = quantile(frame.host_write_latency, previous.frame.host_write_latency, 0.5);
    p99 = quantile(frame.host_write_latency, previous.frame.host_write_latency, 0.99);
    s50 = quantile(frame.ship_latency, previous.frame.ship_latency, 0.5);
    s99 = quantile(frame.ship_latency, previous.frame.ship_latency, 0.99);
  }
  $('writes-rate').textContent = rate.toFixed(1);
  $('mb-rate').textContent = mbps.toFixed(2);
  $('write-latency').textContent = `${ms(p50)} / ${ms(p99)}`;
  $('ship-latency').textContent = `${ms(s50)} / ${ms(s99)}`;
  previous = {frame, writes, bytes, time_unix_ms: frame.time_unix_ms};

  const finite = (v) => (v === null || v === Infinity ? null : v * 1000);
  push('writes', rate);
  push('mbps', mbps);
  push('latency', finite(p50), finite(p99));
  push('ship', finite(s50), finite(s99));
  push('owed', num(s.owed_tracks));
  push('behind', s.mode === 'async' ? num(cycles.seconds_behind) : null);
  push('queue', num(s.queue_depth));
  drawDiagram(s);
  drawGroups(s.groups || []);
  drawPlots();
}

// One row per RDF group (docs/groups.md): its side, mode, SRDF state, link and volume pairs.
function drawGroups(groups) {
  const body = $('groups').tBodies[0];
  body.replaceChildren();
  if (!groups.length) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 9;
    cell.className = 'quiet';
    cell.textContent = 'none: this array is not paired';
  }
  for (const g of groups) {
    const row = body.insertRow();
    row.dataset.group = g.name;
    const cells = [g.name, g.number, g.role, g.mode + (g.consistency === 'multi-group' ? ' (MSC)' : ''),
                   g.state, g.link, num(g.owed_tracks).toLocaleString('en'),
                   (g.volumes || []).length, g.peer || '–'];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = String(text);
      if (i === 4) cell.className = `state ${pairLevel(g.state)}`;
    });
  }
}

function push(id, value, second) {
  const h = history[id];
  h.push([value, second === undefined ? null : second]);
  if (h.length > HISTORY) h.shift();
}

const SVG = 'http://www.w3.org/2000/svg';
function el(name, attributes, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function box(svg, x, y, w, h, title, lines) {
  svg.append(el('rect', {x, y, width: w, height: h, class: 'box'}));
  svg.append(el('text', {x: x + 8, y: y + 17, 'font-weight': 600}, title));
  lines.forEach((line, i) => svg.append(el('text', {x: x + 8, y: y + 35 + i * 16, class: 'label'}, line)));
}

function arrow(svg, x1, y1, x2, y2, color, label) {
  svg.append(el('line', {x1, y1, x2, y2, stroke: color, 'stroke-width': 3, 'marker-end': 'url(#head)'}));
  if (label) svg.append(el('text', {x: (x1 + x2) / 2 - 30, y: Math.min(y1, y2) - 6, class: 'label'}, label));
}

// Host adaptors with their pens -> cache slots by state -> mirror queue -> remote adaptor and
// link -> peer; the disk adaptor under the cache.
function drawDiagram(s) {
  const svg = $('diagram');
  svg.replaceChildren();
  const defs = el('defs');
  const marker = el('marker', {id: 'head', markerWidth: 8, markerHeight: 8, refX: 6, refY: 3, orient: 'auto'});
  marker.append(el('path', {d: 'M0,0 L6,3 L0,6 z', fill: '#8792a8'}));
  defs.append(marker);
  svg.append(defs);

  const pens = s.pens || [];
  pens.forEach((p, i) => {
    box(svg, 10, 10 + i * 62, 170, 56, `host adaptor ${p.host_adaptor}`,
        [`pen ${num(p.depth)} waiting (${p.placement})`, `${num(p.writes_committed)} committed`]);
  });
  const c = s.cache || {};
  const slots = num(c.slots) || 1;
  box(svg, 220, 10, 250, 120, 'cache memory', [
    `${num(c.slots)} slots of ${num(c.track_size) / 1024} KiB`,
    `write-pending ${num(c.write_pending)}, staging ${num(c.staging)}`,
    `shipping ${num(c.shipping)}, clean ${num(c.clean)}`,
  ]);
  const parts = [['write_pending', '#c27c0e'], ['staging', '#2d6cdf'], ['shipping', '#8e44ad'],
                 ['clean', '#1f8a4c'], ['free', '#d9dde5']];
  let x = 228;
  for (const [key, color] of parts) {
    const w = Math.max(0, (num(c[key]) / slots) * 234);
    svg.append(el('rect', {x, y: 108, width: w, height: 14, fill: color}));
    x += w;
  }
  box(svg, 220, 160, 250, 62, 'disk adaptor', [
    `${num(c.tracks_destaged)} tracks destaged`, `backing store ${s.backing_store || 'ok'}`]);
  arrow(svg, 345, 130, 345, 158, '#8792a8');
  arrow(svg, 180, 40, 218, 40, '#8792a8');

  const depth = num(s.queue_depth), capacity = num(s.queue_capacity);
  box(svg, 510, 10, 170, 70, 'mirror queue', [`${depth} of ${capacity} places`]);
  svg.append(el('rect', {x: 518, y: 56, width: 154, height: 12, fill: '#eef1f6'}));
  svg.append(el('rect', {x: 518, y: 56, width: capacity ? 154 * Math.min(1, depth / capacity) : 0, height: 12, fill: '#2d6cdf'}));
  arrow(svg, 470, 45, 508, 45, '#8792a8');

  const link = s.link || {};
  box(svg, 510, 110, 170, 90, 'remote adaptor', [
    `${num(link.records_shipped)} shipped`, `${num(link.in_flight)} in flight`,
    `owed tracks ${num(s.owed_tracks)}`]);
  arrow(svg, 595, 80, 595, 108, '#8792a8');
  const colors = {up: '#1f8a4c', down: '#c0392b', suspended: '#c27c0e', connecting: '#c27c0e'};
  arrow(svg, 680, 155, 790, 155, colors[link.state] || '#8792a8', `link ${link.state || 'none'}`);
  const group = (s.groups || [])[0];
  box(svg, 795, 110, 175, 90, 'peer', [
    (group && group.peer) || link.peer || '(none)', `applied seq ${num(link.mirror_applied_sequence)}`,
    s.mode === 'async' ? `cycle ${num((s.cycles || {}).applied_cycle)} applied` : 'sync mode']);
}

function drawPlots() {
  const container = $('plots');
  if (!container.children.length) {
    for (const p of PLOTS) {
      const div = document.createElement('div');
      div.className = 'plot';
      div.innerHTML = `<h3>${p.title}<span class="now" id="now-${p.id}"></span></h3>` +
          `<svg id="plot-${p.id}" viewBox="0 0 300 100" preserveAspectRatio="none"></svg>`;
      container.append(div);
    }
  }
  for (const p of PLOTS) {
    const svg = $(`plot-${p.id}`);
    const h = history[p.id];
    const values = h.flatMap(([a, b]) => [a, b]).filter((v) => v !== null);
    const max = Math.max(1e-9, ...values) * 1.1;
    svg.replaceChildren();
    const line = (index, color) => {
      const points = h.map((sample, i) => sample[index] === null ? null :
          `${(300 * i) / Math.max(1, h.length - 1)},${100 - (100 * sample[index]) / max}`)
          .filter((v) => v !== null).join(' ');
      if (points) svg.append(el('polyline', {points, fill: 'none', stroke: color, 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke'}));
    };
    line(0, '#2d6cdf');
    if (p.second) line(1, '#c0392b');
    const last = h.length ? h[h.length - 1] : [null, null];
    const fmt = (v) => (v === null ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(2));
    $(`now-${p.id}`).textContent = `${fmt(last[0])}${p.second ? ` / ${fmt(last[1])}` : ''} ${p.unit}` +
        `  (max ${fmt(max / 1.1)})`;
  }
}

function addEvent(e) {
  const li = document.createElement('li');
  li.value = Number(e.id);
  const time = new Date(Number(e.time_unix_ms)).toLocaleTimeString('en-GB');
  li.innerHTML = `${time} <span class="kind"></span> <b></b> <span class="detail"></span>`;
  li.querySelector('.kind').textContent = e.kind;
  li.querySelector('b').textContent = e.subject + (e.value ? `: ${e.previous ? `${e.previous} → ` : ''}${e.value}` : '');
  li.querySelector('.detail').textContent = e.detail;
  const list = $('events');
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

async function act(call, body) {
  const result = $('action-result');
  result.className = 'result';
  result.textContent = `${call}…`;
  const headers = {'Content-Type': 'application/json'};
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(`/api/admin/${call}`, {method: 'POST', headers, body: body || '{}'});
    const reply = await response.json();
    if (reply.ok) {
      result.className = 'result ok';
      result.textContent = `${call}: done ${JSON.stringify(reply.reply)}`;
    } else {
      result.className = 'result bad';
      result.textContent = `${call} refused: ${reply.code}: ${reply.message}`;
    }
  } catch (error) {
    result.className = 'result bad';
    result.textContent = `${call} failed: ${error}`;
  }
}

function connect() {
  const feed = new EventSource('/api/events');
  feed.onopen = () => badge($('feed-state'), 'live', 'quiet');
  feed.onerror = () => {
    badge($('feed-state'), 'reconnecting', 'warn');
    // EventSource gives up on an answer other than 200 (a 503 when the daemon has its fill
    // of streams): start again a little later.
    if (feed.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  };
  feed.addEventListener('status', (m) => update(JSON.parse(m.data)));
  feed.addEventListener('array', (m) => addEvent(JSON.parse(m.data)));
  feed.addEventListener('gap', (m) => addEvent({id: 0, time_unix_ms: Date.now(), kind: 'gap',
                                                subject: 'events missed', detail: JSON.parse(m.data).message}));
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  if (token) sessionStorage.setItem('simarray-token', token); else sessionStorage.removeItem('simarray-token');
  showAccess();
});
for (const button of document.querySelectorAll('button[data-call]')) {
  button.addEventListener('click', () => act(button.dataset.call, button.dataset.body));
}
showAccess();
connect();
