// The Console: one page, five views, state in the URL. Plain DOM; the
// logic worth testing without a browser lives in lib.mjs.
import * as L from './lib.mjs';

const $ = (id) => document.getElementById(id);

// h builds an element: h('td', {class: 'num', title: 'x'}, 'text', node).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k != null) el.append(k);
  return el;
}

const TOKEN = 'netview.token';
let token = sessionStorage.getItem(TOKEN) || localStorage.getItem(TOKEN) || '';
let sensors = []; // the fleet, from the summary: picker labels and refresh cadence
let sensorsAt = 0;
let state = {};
let gen = 0; // bumps on every navigation: answers to older requests are dropped
let timer = 0;
let rows = []; // rows on screen, for the detail panel
let keyOf = () => '';
let selected = ''; // key of the selected row, kept across refreshes
let more = null; // Investigate: next_cursor of the loaded events
let lastRenderMs = 0; // time to build the rows of the last list answer, for the browser test

class APIError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

async function api(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: 'Bearer ' + token } });
  } catch (e) {
    throw new APIError(0, e.message);
  }
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
    throw new APIError(res.status, msg);
  }
  return res.json();
}

// ---- sign-in ----

function showSignin(message) {
  token = '';
  clearTimeout(timer);
  $('app').hidden = true;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('token').focus();
}

async function signin(ev) {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  token = t;
  try {
    await loadSensors(true);
  } catch (e) {
    showSignin(e.status === 401 ? 'That token was refused. Check it and try again.' : L.errorAdvice(e.status, e.message));
    return;
  }
  sessionStorage.setItem(TOKEN, t);
  if ($('remember').checked) localStorage.setItem(TOKEN, t);
  $('token').value = '';
  start();
}

function signout() {
  sessionStorage.removeItem(TOKEN);
  localStorage.removeItem(TOKEN);
  showSignin('');
}

function start() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('nav').hidden = false;
  $('signout').hidden = false;
  render();
}

// ---- navigation ----

function go(change, replace) {
  const next = { ...state, ...change };
  const url = L.routeURL(next);
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  render();
}

// An export link is a real link to the API's export, but the API wants the
// token in a header a plain navigation cannot send: every click on one
// (middle and modified clicks too) downloads it with the token instead.
function exportClick(ev) {
  const a = ev.target.closest && ev.target.closest('a[data-export]');
  if (!a || ev.defaultPrevented) return false;
  ev.preventDefault();
  download(a);
  return true;
}
document.addEventListener('auxclick', exportClick);
document.addEventListener('click', (ev) => {
  if (exportClick(ev)) return;
  const a = ev.target.closest('a[href^="/"]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  history.pushState(null, '', a.getAttribute('href'));
  render();
});
window.addEventListener('popstate', render);
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && !$('detail').hidden) closeDetail();
});
document.addEventListener('visibilitychange', () => {
  // a moment in the past does not change: nothing to catch up on
  if (!document.hidden && token && state.view && !state.at) schedule(0);
});

const TITLES = {
  summary: 'Network › Summary', connections: 'Network › Connections', listening: 'Network › Listening Services',
  flows: 'Network › Flows', map: 'Network › Map', investigate: 'Investigate',
};

// render builds the view of the current URL and loads its data.
function render() {
  if (!token) { showSignin(''); return; }
  const s = L.parseRoute(location.pathname, location.search);
  if (!s.view) {
    history.replaceState(null, '', L.HOME);
    return render();
  }
  // A moment the timeline's span does not reach (a bookmark, an old
  // moment typed in) gets the span that shows it.
  if (s.at && L.spanFor(s.at, Date.now(), s.span) !== s.span) {
    s.span = L.spanFor(s.at);
    history.replaceState(null, '', L.routeURL(s));
  }
  const same = state.view === s.view && L.routeURL({ ...state, event: '' }) === L.routeURL({ ...s, event: '' });
  state = s;
  document.title = TITLES[s.view] + ' · Netview';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === s.view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    // every snapshot view follows the time control
    a.setAttribute('href', L.routeURL({ view: a.dataset.view, at: s.at, span: s.span }));
  }
  if (same && s.view === 'investigate') { showDetailFor(s.event); return; }
  gen++;
  clearTimeout(timer);
  $('title').textContent = TITLES[s.view];
  $('filters').replaceChildren(...filters(s));
  tlCursor = -1;
  timeControl(s);
  $('content').replaceChildren();
  $('error').hidden = true;
  rows = [];
  more = null;
  mapBox = null;
  if (s.view !== 'investigate') { selected = ''; closeDetail(true); }
  load(gen, false);
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => load(gen, true), ms);
}

// load fetches the view's data; refresh keeps what is on screen (rows,
// scroll, selection) and replaces it only when the answer arrives.
async function load(g, refresh) {
  const s = state;
  setStatus(refresh ? null : 'Loading…', true);
  try {
    await loadSensors(false);
    if (g !== gen) return;
    if (s.view === 'investigate') await loadEvents(g, refresh);
    else if (s.view === 'summary') await loadSummary(g);
    else if (s.view === 'map') await loadMap(g, s);
    else await loadList(g, s);
    if (g !== gen) return;
    $('error').hidden = true;
  } catch (e) {
    if (g !== gen) return;
    if (e.status === 401) { showSignin('Your token was refused. Sign in again.'); return; }
    const el = $('error');
    el.hidden = false;
    el.textContent = L.errorAdvice(e.status, e.message) + (rows.length ? ' Showing the last data received.' : '');
    setStatus(null, false);
  }
  if (g !== gen) return;
  $('content').removeAttribute('aria-busy');
  // The fleet at a moment stays as it was: no refresh.
  if (s.at) return;
  if (refresh && L.SNAPSHOT_VIEWS.includes(s.view)) loadTimeline(s);
  // Investigate refreshes only a single page of a moving window: once
  // more is loaded, the analyst is reading history that must not shift.
  if (s.view !== 'investigate' || (s.window !== 'custom' && rows.length <= 100)) schedule(L.refreshMs(sensors));
}

async function loadSensors(force) {
  if (!force && Date.now() - sensorsAt < 60e3) return;
  const d = await api('/api/v1/network/summary');
  sensors = d.sensors;
  sensorsAt = Date.now();
  const list = $('sensor-list');
  if (list) list.replaceChildren(...sensorOptions());
}

function setStatus(text, busy) {
  if (text != null) $('status').textContent = text;
  if (busy) $('content').setAttribute('aria-busy', 'true');
}

function updated() {
  return (state.at ? 'as it was at ' + L.fmtTime(state.at).text + ' · ' : '') + 'updated ' + L.fmtTime(new Date().toISOString()).text.slice(11);
}

// ---- the time control ----

// Every snapshot view shows the fleet now, or as it was at a moment
// (at= in the URL): picked on a timeline of the fleet's connections, with
// the keyboard, or typed exactly.
let tl = null; // the timeline's answer: {key, d, fetched}
let tlPending = '';
let tlError = '';
let tlBars = [];
let tlCursor = -1; // the bar the arrow keys are on, before Enter picks it
const TL_W = 720, TL_H = 40;
const tlKey = (s) => s.span + '|' + (s.sensor_id || '');

// pickMoment shows the view at a moment ('' for now): a list starts again
// at its first page, as its rows are another moment's.
function pickMoment(at) {
  const change = { at, span: at ? L.spanFor(at, Date.now(), state.span) : state.span };
  if (state.page !== undefined) change.page = 1;
  go(change);
}

function timeControl(s) {
  const box = $('timectl'), banner = $('at-banner');
  const snap = L.SNAPSHOT_VIEWS.includes(s.view);
  box.hidden = !snap;
  banner.hidden = !snap || !s.at;
  if (!snap) { box.replaceChildren(); return; }
  const refocus = box.contains(document.activeElement) ? document.activeElement.id : '';
  if (s.at) {
    banner.replaceChildren('Showing the fleet as it was at ', time(s.at), '. The view does not refresh. ',
      h('button', { type: 'button', id: 'back-to-now', class: 'link', onclick: () => pickMoment('') }, 'Back to now'));
  }
  const span = (k) => h('button', {
    type: 'button', id: 'span-' + k, 'aria-pressed': String(s.span === k),
    onclick: () => { if (state.span !== k) go({ span: k }); },
  }, k);
  const nowISO = new Date().toISOString();
  const input = h('input', { id: 'at-input', type: 'datetime-local', step: '1', value: L.localInput(s.at || nowISO, true), max: L.localInput(nowISO, true) });
  input.addEventListener('input', () => input.setCustomValidity(''));
  const form = h('form', {
    id: 'at-form', class: 'field', onsubmit: (ev) => {
      ev.preventDefault();
      const v = L.fromLocalInput(input.value);
      if (!v || Date.parse(v) > Date.now()) { input.setCustomValidity('Choose a moment in the past.'); input.reportValidity(); return; }
      pickMoment(L.atText(Date.parse(v)));
    },
  }, h('label', { for: 'at-input' }, 'Moment'), input, h('button', { type: 'submit' }, 'Show'));
  box.replaceChildren(
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Time'),
      h('button', { type: 'button', id: 'at-now', 'aria-pressed': String(!s.at), onclick: () => { if (state.at) pickMoment(''); } }, 'Now'),
      h('div', { class: 'tabs', role: 'group', 'aria-label': 'Timeline span' }, ...Object.keys(L.SPANS).map(span))),
    h('div', { id: 'timeline-box', class: 'timeline-box' }), form);
  drawTimeline();
  loadTimeline(s);
  if (refocus && $(refocus)) $(refocus).focus();
}

// loadTimeline asks for the span's bars, at most once a bar's step: they
// change no faster.
async function loadTimeline(s) {
  const key = tlKey(s);
  if ((tl && tl.key === key && Date.now() - tl.fetched < L.SPANS[s.span]) || tlPending === key) return;
  tlPending = key;
  try {
    const d = await api(L.timelinePath(s.span, s.sensor_id));
    tl = { key, d, fetched: Date.now() };
    tlError = '';
  } catch (e) {
    if (e.status === 401) return;
    tlError = 'No timeline: ' + L.errorAdvice(e.status, e.message);
  } finally {
    if (tlPending === key) tlPending = '';
  }
  if (tlKey(state) === key && L.SNAPSHOT_VIEWS.includes(state.view)) drawTimeline();
}

const barText = (b) => `${L.fmtTime(new Date(b.moment).toISOString()).text}: ${b.connections.toLocaleString()} connections, ${b.sensors} sensors`;

// drawTimeline draws the bars of the fleet's connections over the span,
// the moment shown marked. A click on a bar, or Enter on the bar the
// arrow keys chose, shows the fleet at that bar's moment; Escape returns
// to now.
function drawTimeline() {
  const holder = $('timeline-box');
  if (!holder) return;
  const s = state;
  if (!tl || tl.key !== tlKey(s)) {
    holder.replaceChildren(h('p', { class: 'hint' }, tlError || 'Loading the timeline…'));
    return;
  }
  const t0 = performance.now();
  const focused = document.activeElement && document.activeElement.id === 'timeline';
  const bars = tlBars = L.timelineBars(tl.d, TL_W, TL_H);
  const n = bars.length;
  const sel = s.at ? L.barOf(bars, s.at) : -1;
  if (tlCursor < 0 || tlCursor >= n) tlCursor = sel >= 0 ? sel : n - 1;
  const root = svg('svg', {
    id: 'timeline', class: 'timeline', viewBox: `0 0 ${TL_W} ${TL_H}`, preserveAspectRatio: 'none', tabindex: '0', role: 'slider',
    'aria-label': `${s.sensor_id ? 'The sensor\'s' : 'The fleet\'s'} connections over the last ${s.span}: arrow keys choose a moment, Enter shows it, Escape returns to now`,
    'aria-valuemin': '0', 'aria-valuemax': String(Math.max(0, n - 1)), 'aria-valuenow': String(tlCursor),
    'aria-valuetext': n ? barText(bars[tlCursor]) : 'no data',
  });
  for (const b of bars) {
    const cls = 'bar' + (b.i === sel ? ' at' : '') + (b.i === tlCursor && b.i !== sel ? ' cursor' : '');
    root.append(svg('rect', { class: cls, x: b.x.toFixed(2), y: b.y.toFixed(2), width: Math.max(0.5, b.w).toFixed(2), height: b.h.toFixed(2),
      'data-i': String(b.i), 'data-moment': L.atText(b.moment) }, svg('title', {}, barText(b))));
  }
  const w = { since: Date.parse(tl.d.since), until: Date.parse(tl.d.until) };
  const x = s.at ? L.momentX(s.at, w, TL_W) : null;
  if (x != null) root.append(svg('line', { class: 'at-line', x1: x, x2: x, y1: 0, y2: TL_H }));
  root.addEventListener('click', (ev) => {
    const r = root.getBoundingClientRect();
    const i = L.barAt(((ev.clientX - r.left) / r.width) * TL_W, TL_W, n);
    if (i >= 0) pickMoment(L.atText(bars[i].moment));
  });
  root.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); if (tlCursor >= 0) pickMoment(L.atText(tlBars[tlCursor].moment)); return; }
    if (ev.key === 'Escape') { ev.preventDefault(); ev.stopPropagation(); if (state.at) pickMoment(''); return; }
    const to = L.moveBar(ev.key, tlCursor, n);
    if (to < 0) return;
    ev.preventDefault();
    tlCursor = to;
    for (const r of root.querySelectorAll('rect.bar')) r.classList.toggle('cursor', Number(r.dataset.i) === to && !r.classList.contains('at'));
    root.setAttribute('aria-valuenow', String(to));
    root.setAttribute('aria-valuetext', barText(tlBars[to]));
  });
  holder.replaceChildren(root, h('div', { class: 'timeline-axis', 'aria-hidden': 'true' },
    h('span', {}, L.fmtTime(tl.d.since).text), h('span', {}, `connections, one bar per ${L.fmtDuration(tl.d.step_secs)}`), h('span', {}, 'now')));
  if (focused) root.focus();
  holder.dataset.renderMs = (performance.now() - t0).toFixed(1); // for the browser test's figure
}

// ---- filters ----

function sensorLabel(s) {
  return (s.hostname || 'unnamed') + ' · ' + s.sensor_id.slice(0, 8);
}

function sensorOptions() {
  return sensors.map((s) => h('option', { value: sensorLabel(s) }));
}

function sensorPicker(s) {
  const cur = sensors.find((x) => x.sensor_id === s.sensor_id);
  const input = h('input', {
    id: 'sensor', type: 'search', list: 'sensor-list', placeholder: 'All sensors — type a host name',
    value: s.sensor_id ? (cur ? sensorLabel(cur) : s.sensor_id) : '', autocomplete: 'off', spellcheck: 'false',
  });
  const apply = () => {
    const v = input.value.trim();
    if (!v) { if (state.sensor_id) go({ sensor_id: '', page: 1 }); return; }
    const m = sensors.find((x) => sensorLabel(x) === v || x.sensor_id === v.toLowerCase()) ||
      (sensors.filter((x) => x.hostname === v).length === 1 ? sensors.find((x) => x.hostname === v) : null);
    if (m) { if (m.sensor_id !== state.sensor_id) go({ sensor_id: m.sensor_id, page: 1 }); return; }
    input.setCustomValidity('No sensor matches "' + v + '". Pick one from the list.');
    input.reportValidity();
  };
  input.addEventListener('input', () => input.setCustomValidity(''));
  input.addEventListener('change', apply);
  input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') apply(); });
  return h('div', { class: 'field' }, h('label', { for: 'sensor' }, 'Sensor'), input,
    h('datalist', { id: 'sensor-list' }, ...sensorOptions()),
    s.sensor_id ? h('button', { type: 'button', class: 'link', onclick: () => go({ sensor_id: '', page: 1 }) }, 'All sensors') : null);
}

// scopePicker is the Container/Pod filter: a select says what the text
// names (a bare "db-0" could be a container or a pod), the text is sent
// as container= or pod=. Enter or leaving the field applies it.
function scopePicker(s) {
  const kind = h('select', { id: 'scope-kind', 'aria-label': 'Filter by' },
    h('option', { value: 'container', selected: !s.pod }, 'Container'), h('option', { value: 'pod', selected: !!s.pod }, 'Pod'));
  const input = h('input', {
    id: 'scope', type: 'search', placeholder: 'id, name, namespace/pod or pod UID', value: s.pod || s.container || '',
    autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Container or pod',
  });
  const apply = () => {
    const f = L.scopeFilter(kind.value, input.value);
    if (f.error) { input.setCustomValidity(f.error); input.reportValidity(); return; }
    if (f.change.container !== (state.container || '') || f.change.pod !== (state.pod || '')) go(L.scopeChange(state, f.change));
  };
  input.addEventListener('input', () => input.setCustomValidity(''));
  input.addEventListener('change', apply);
  input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') apply(); });
  kind.addEventListener('change', () => { if (input.value.trim()) apply(); });
  return h('div', { class: 'field scope' }, h('label', { for: 'scope' }, 'Container/Pod'), kind, input,
    s.container || s.pod ? h('button', { type: 'button', class: 'link', onclick: () => go(L.scopeChange(state, { container: '', pod: '' })) }, 'All workloads') : null);
}

// searchBox is the one search field of a list or Investigate: what is
// typed is parsed (lib.mjs parseSearch) into the API's filters, which go
// into the URL; a bad term is said and nothing is applied. Terms the view
// cannot take are listed as not applied.
function searchBox(s) {
  const input = h('input', {
    id: 'search', type: 'search', value: L.formatSearch(s.terms), autocomplete: 'off', spellcheck: 'false',
    placeholder: '10.0.0.0/8 host:edge-a port:443 proc:curl dns:*.example.org container:web state:!TIME_WAIT or a word',
    'aria-describedby': 'search-help search-error search-note',
  });
  const err = h('p', { id: 'search-error', class: 'error', role: 'alert', hidden: true });
  const form = h('form', {
    id: 'search-form', class: 'field search', role: 'search', onsubmit: (ev) => {
      ev.preventDefault();
      const r = L.parseSearch(input.value);
      if (r.errors.length) { err.textContent = r.errors.join('; '); err.hidden = false; input.setAttribute('aria-invalid', 'true'); return; }
      err.hidden = true;
      input.removeAttribute('aria-invalid');
      go(L.searchChange(r.terms));
    },
  }, h('label', { for: 'search' }, 'Search'), input, h('button', { type: 'submit' }, 'Search'),
  s.terms.length ? h('button', { type: 'button', class: 'link', id: 'search-clear', onclick: () => go(L.searchChange([])) }, 'Clear') : null);
  input.addEventListener('input', () => { err.hidden = true; input.removeAttribute('aria-invalid'); });
  const help = h('p', { id: 'search-help', class: 'hint' },
    'An address or CIDR, host:, port:, proc: (a name, or a path with /), dns:, answer:, container:, state: (state:!TIME_WAIT) or a word. ' +
    'Different terms narrow together; the same term twice means either. Quote values with spaces: container:"my app".');
  const skipped = L.unapplied(s);
  const note = h('p', { id: 'search-note', class: 'banner warn', role: 'status', hidden: !skipped.length },
    skipped.length ? 'Not applied to this view: ' + skipped.map((u) => u.term + ' (' + u.why + ')').join('; ') + '.' : '');
  return h('div', { class: 'searchbox' }, form, err, note, help);
}

// exportLinks download the whole result of the view (every page, the same
// filters) as the API streams it.
function exportLinks(s) {
  // named by the moment it shows
  const name = (fmt) => `netview-${L.pivotTarget(s)}-${(s.at ? new Date(s.at) : new Date()).toISOString().slice(0, 19).replace(/:/g, '')}.${fmt === 'csv' ? 'csv' : 'ndjson'}`;
  const link = (fmt, label) => h('a', { id: 'export-' + fmt, href: L.exportPath(s, fmt), download: name(fmt), 'data-export': fmt, class: 'button' }, label);
  return h('div', { class: 'field export' }, h('span', { class: 'label' }, 'Export all'), link('csv', 'CSV'), link('ndjson', 'NDJSON'),
    h('span', { id: 'export-status', class: 'hint', role: 'status' }));
}

// timeWaitToggle shows or hides the TIME_WAIT remnants of closed
// connections (hidden by default); its label gets their count.
function timeWaitToggle(s) {
  const stated = s.terms.some((t) => t.key === 'state');
  return h('div', { class: 'field' }, h('button', {
    type: 'button', id: 'time-wait', class: 'link', 'aria-pressed': String(!!s.time_wait), disabled: stated,
    title: stated ? 'A state: term chooses the states' : null,
    onclick: () => go({ time_wait: !state.time_wait, page: 1 }),
  }, stated ? 'TIME_WAIT: as the state: term says' : s.time_wait ? 'Hide TIME_WAIT' : 'Show TIME_WAIT'));
}

function filters(s) {
  switch (s.view) {
    case 'summary': return [];
    case 'investigate': return investigateFilters(s);
    case 'map': return mapFilters(s);
  }
  const out = [searchBox(s)];
  if (s.view === 'listening') {
    const tab = (name, label) => h('button', {
      type: 'button', role: 'tab', id: 'tab-' + name, 'aria-selected': String(s.tab === name),
      onclick: () => { if (state.tab !== name) go({ tab: name, page: 1, sort: '' }); },
    }, label);
    out.push(h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Protocol' }, tab('tcp', 'TCP'), tab('udp', 'UDP')));
  }
  out.push(sensorPicker(s), scopePicker(s));
  const size = h('select', { id: 'page-size', onchange: (ev) => go({ page_size: Number(ev.target.value), page: 1 }) },
    ...L.PAGE_SIZES.map((n) => h('option', { value: n, selected: n === s.page_size }, String(n))));
  out.push(h('div', { class: 'field' }, h('label', { for: 'page-size' }, 'Rows per page'), size));
  if (s.view === 'connections') out.push(timeWaitToggle(s));
  out.push(exportLinks(s));
  return out;
}

function investigateFilters(s) {
  const kinds = h('fieldset', { class: 'kinds' }, h('legend', {}, 'Event kinds'),
    ...L.EVENT_KINDS.map((k) => h('label', { class: 'check' },
      h('input', {
        type: 'checkbox', value: k, checked: s.kinds.includes(k), onchange: () => {
          const on = [...document.querySelectorAll('.kinds input:checked')].map((i) => i.value);
          go({ kinds: on.length === L.EVENT_KINDS.length ? [] : on, event: '' });
        },
      }), k)),
    h('span', { class: 'hint' }, s.kinds.length ? '' : 'none ticked: all kinds'));
  return [searchBox(s), sensorPicker(s), scopePicker(s), ...windowPicker(s, L.WINDOWS), kinds, exportLinks(s)];
}

function mapFilters(s) {
  const group = h('select', { id: 'group', onchange: (ev) => go({ group: ev.target.value }) },
    ...L.GROUPINGS.map((g) => h('option', { value: g, selected: s.group === g }, { host: 'Hosts', container: 'Containers', service: 'Services and processes' }[g])));
  return [searchBox(s), sensorPicker(s), scopePicker(s), ...windowPicker(s, L.MAP_WINDOWS),
    h('div', { class: 'field' }, h('label', { for: 'group' }, 'Group by'), group)];
}

// windowPicker is the time window of Investigate and the Map: a preset,
// or a custom From/to.
function windowPicker(s, presets) {
  const win = h('select', {
    id: 'window', onchange: (ev) => {
      const w = ev.target.value;
      if (w !== 'custom') { go({ window: w, since: '', until: '', event: '' }); return; }
      const b = L.mapWindow(state);
      go({ window: 'custom', since: b.since, until: b.until, event: '' });
    },
  }, ...Object.keys(presets).map((w) => h('option', { value: w, selected: s.window === w }, 'Last ' + w)),
  h('option', { value: 'custom', selected: s.window === 'custom' }, 'Custom…'));
  const out = [h('div', { class: 'field' }, h('label', { for: 'window' }, 'Time window'), win)];
  if (s.window === 'custom') {
    const since = h('input', { id: 'since', type: 'datetime-local', value: L.localInput(s.since) });
    const until = h('input', { id: 'until', type: 'datetime-local', value: L.localInput(s.until) });
    out.push(h('form', {
      class: 'field custom', onsubmit: (ev) => {
        ev.preventDefault();
        const a = L.fromLocalInput(since.value), b = L.fromLocalInput(until.value);
        if (!a || !b || a >= b) { until.setCustomValidity('The end must be after the start.'); until.reportValidity(); return; }
        go({ since: a, until: b, event: '' });
      },
    }, h('label', { for: 'since' }, 'From'), since, h('label', { for: 'until' }, 'to'), until,
    h('button', { type: 'submit' }, 'Apply')));
    until.addEventListener('input', () => until.setCustomValidity(''));
  }
  return out;
}

// ---- tables ----

// ---- pivots ----
// Every address, port, process, host, container and DNS name in a row is
// a link (a real href, so middle-click opens a tab) to the question it
// answers: an address to Investigate's events to or from it; a port, a
// binary, a host or a workload to the open view narrowed by it.
const here = () => L.pivotTarget(state);
const pv = (text, to, terms, extra, title) => h('a', { href: L.pivotURL(state, to, terms, extra), class: 'pivot', title }, text);
const addrLink = (a) => pv(a, 'investigate', [{ key: 'addr', value: a }], {}, 'Events to or from ' + a);
const portLink = (p) => pv(String(p), here(), [{ key: 'port', value: String(p) }], {}, 'Narrow to port ' + p);
// ep is an endpoint: its address and its port each a pivot.
function ep(addr, port) {
  if (addr == null) return '';
  if (port == null) return addrLink(addr);
  const v6 = addr.includes(':');
  return h('span', { class: 'ep' }, v6 ? '[' : null, addrLink(addr), v6 ? ']:' : ':', portLink(port));
}
const binLink = (r, text) => r.binary ? pv(text || r.binary, here(), [{ key: 'binary', value: r.binary }], {}, r.binary_path || null) : text || '—';
const pathLink = (r) => r.binary_path && r.binary_path.includes('/') ? pv(r.binary_path, here(), [{ key: 'binary_path', value: r.binary_path }], {}) : r.binary_path || '';

const host = (r) => h('span', { title: r.sensor_id }, pv(r.hostname || r.sensor_id.slice(0, 8), here(), [], { sensor_id: r.sensor_id }, r.sensor_id),
  r.sensor_stale ? h('span', { class: 'tag stale', title: 'No heartbeat for three intervals: last known state' }, 'stale') : null);
const time = (iso) => { const t = L.fmtTime(iso); return h('time', { datetime: iso || '', title: t.title }, t.text); };
const pid = (r) => r.pid == null ? h('span', { class: 'muted', title: 'not tied to a process' }, '—') : String(r.pid);
const bin = (r) => binLink(r);
const num = { class: 'num' };
// workload is the Container/Pod cell: pod or container, image on hover;
// a host process's systemd unit, muted. A pod or container narrows the
// view to it.
const workload = (r) => {
  const w = L.workload(r);
  if (!w.text) return '';
  const attrs = { class: 'workload ' + w.kind, title: w.title, 'data-kind': w.kind };
  if (w.kind === 'pod' && r.pod) return h('a', { ...attrs, href: L.pivotURL(state, here(), [], { pod: r.pod_namespace ? r.pod_namespace + '/' + r.pod : r.pod }) }, w.text);
  if (w.kind === 'container') return h('a', { ...attrs, href: L.pivotURL(state, here(), [{ key: 'container', value: r.container_name || r.container_id }]) }, w.text);
  return h('span', attrs, w.text);
};
const WORKLOAD = ['Container/Pod', '', workload];

// Columns: label, sort field (or none), cell, cell attributes.
const COLUMNS = {
  connections: [
    ['Host', 'hostname', host], ['Local', 'local_address', (r) => ep(r.local_address, r.local_port)],
    ['Remote', 'remote_address', (r) => ep(r.remote_address, r.remote_port)], ['State', 'state', (r) => r.state],
    ['Binary', 'binary', bin], ['PID', 'pid', pid, num], WORKLOAD, ['UID', 'uid', (r) => String(r.uid), num],
    ['Duration', 'duration_secs', (r) => r.duration_secs == null ? h('span', { class: 'muted' }, 'predates sensor') : L.fmtDuration(r.duration_secs), num],
    ['First seen', 'first_seen', (r) => time(r.first_seen)], ['Last seen', 'last_seen', (r) => time(r.last_seen)],
  ],
  listening: [
    ['Host', 'hostname', host], ['Address', 'local_address', (r) => addrLink(r.local_address)], ['Port', 'local_port', (r) => portLink(r.local_port), num],
    ['Service', 'service', (r) => L.serviceLabel(r.service)], ['Binary', 'binary', bin], ['PID', 'pid', pid, num], WORKLOAD,
    ['Binary path', '', pathLink], ['UID', 'uid', (r) => String(r.uid), num], ['First seen', 'first_seen', (r) => time(r.first_seen)],
  ],
  udp: [
    ['Host', 'hostname', host], ['Address', 'local_address', (r) => addrLink(r.local_address)], ['Port', 'local_port', (r) => portLink(r.local_port), num],
    ['Service', 'service', (r) => L.serviceLabel(r.service)], ['Remote', 'remote_address', (r) => r.remote_port ? ep(r.remote_address, r.remote_port) : ''],
    ['Binary', 'binary', bin], ['PID', 'pid', pid, num], WORKLOAD, ['Binary path', '', pathLink],
    ['UID', 'uid', (r) => String(r.uid), num], ['First seen', 'first_seen', (r) => time(r.first_seen)],
  ],
  flows: [
    ['Host', 'hostname', host], ['Binary', 'binary', bin], ['PID', 'pid', pid, num], WORKLOAD,
    ['Source', 'src_address', (r) => ep(r.src_address, r.src_port)], ['Destination', 'dst_address', (r) => ep(r.dst_address, r.dst_port)],
    ['Protocol', 'protocol', (r) => r.protocol], ['Direction', 'direction', (r) => r.direction],
    ['Duration', 'duration_secs', (r) => L.fmtDuration(r.duration_secs), num], ['Sent', 'bytes_sent', (r) => h('span', { title: r.bytes_sent + ' bytes' }, L.fmtBytes(r.bytes_sent)), num],
    ['Received', 'bytes_received', (r) => h('span', { title: r.bytes_received + ' bytes' }, L.fmtBytes(r.bytes_received)), num],
    ['State', 'state', (r) => r.state], ['Started', 'started_at', (r) => time(r.started_at)],
  ],
  events: [
    ['Time', '', (r) => time(r.time)], ['Kind', '', (r) => h('span', { class: 'kind ' + r.kind }, r.kind)], ['Host', '', host],
    ['Process', '', (r) => r.binary ? binLink(r, L.processLabel(r.binary, r.pid)) : L.processLabel(r.binary, r.pid)], WORKLOAD,
    ['Source', '', (r) => r.src_port || r.src_address !== '::' ? ep(r.src_address, r.src_port || null) : ''],
    ['Destination', '', (r) => r.dst_port || r.dst_address !== '::' ? ep(r.dst_address, r.dst_port || null) : ''],
    ['Detail', '', eventSummary],
  ],
  summary: [
    ['Host', '', (r) => h('a', { href: L.pivotURL(state, 'connections', [], { sensor_id: r.sensor_id }), title: r.sensor_id }, r.hostname || r.sensor_id)],
    ['Anomaly score', '', (r) => h('span', { class: 'score ' + L.anomalyLevel(r.anomaly_score) }, Number(r.anomaly_score).toFixed(2)), num],
    ['Active connections', '', (r) => String(r.active_connections ?? 0), num], ['Hourly mean', '', (r) => String(r.baseline_connections ?? ''), num],
    ['Listeners', '', (r) => String(r.listeners ?? 0), num], ['UDP', '', (r) => String(r.udp_listeners ?? 0), num],
    ['Flows', '', (r) => String(r.active_flows ?? 0), num],
    ['Namespaces', '', (r) => h('span', { title: 'network namespaces of the sockets in its latest snapshot' }, String(r.namespaces ?? 0)), num],
    ['Containers', '', (r) => h('span', { title: 'containers (by id) of the sockets in its latest snapshot' }, String(r.containers ?? 0)), num],
    ['Flavor', '', (r) => r.flavor], ['Version', '', (r) => r.version],
    ['Capabilities', '', capabilities],
    ['Last heartbeat', '', (r) => time(r.last_heartbeat)],
    ['Clock', '', (r) => { const k = L.clockSkew(r.clock_skew_secs); return h('span', { class: 'skew ' + k.level, title: `sensor clock − ingest clock: ${r.clock_skew_secs} s` }, k.text); }],
    ['Status', '', (r) => r.stale ? h('span', { class: 'tag stale' }, 'stale') : h('span', { class: 'tag ok' }, 'reporting')],
  ],
};

const KEYS = {
  connections: (r) => [r.sensor_id, r.netns, r.local_address, r.local_port, r.remote_address, r.remote_port, r.inode].join('|'),
  listening: (r) => [r.sensor_id, r.netns, r.local_address, r.local_port, r.inode].join('|'),
  udp: (r) => [r.sensor_id, r.netns, r.local_address, r.local_port, r.remote_address, r.remote_port, r.inode].join('|'),
  flows: (r) => r.sensor_id + '|' + r.flow_id,
  events: (r) => r.event_id,
  summary: (r) => r.sensor_id,
};

// capabilities shows what a sensor can observe as tags; a sensor that
// reports none says so rather than showing nothing.
function capabilities(r) {
  const tags = L.capabilityTags(r.capabilities);
  if (!tags.length) return h('span', { class: 'muted' }, 'not reported');
  return h('span', { class: 'caps' }, ...tags.map((t) => h('span', { class: 'cap ' + t.state, title: t.title, 'data-cap': t.key }, t.label)));
}

function eventSummary(r) {
  switch (r.kind) {
    case 'dns_query': case 'dns_lookup': case 'dns_resolution': {
      // the name pivots to its lookups, each answer to its traffic
      const out = h('span', { class: 'dns' });
      if (r.query_name) out.append(pv(r.query_name, 'investigate', [{ key: 'dns', value: r.query_name }], {}, 'Lookups of ' + r.query_name));
      if (r.query_type) out.append(' · ' + r.query_type);
      (r.answers || []).forEach((a, i) => out.append(i ? ', ' : ' · ', addrLink(a)));
      return out;
    }
    case 'network_flow':
      return [r.state, L.fmtBytes(r.bytes_sent) + ' ↑ ' + L.fmtBytes(r.bytes_received) + ' ↓', r.duration_ms != null ? L.fmtDuration(r.duration_ms / 1000) : ''].filter(Boolean).join(' · ');
  }
  return r.protocol || '';
}

// table builds a table of one list; sorting headers are buttons that
// change the URL. Rows are focusable and open the detail panel.
function table(list, sort, sortable) {
  const cols = COLUMNS[list];
  const head = h('tr', {}, ...cols.map(([label, field, , attrs]) => {
    if (!field || !sortable) return h('th', { scope: 'col', ...(attrs || {}) }, label);
    const st = L.sortState(sort, field);
    return h('th', { scope: 'col', 'aria-sort': st, ...(attrs || {}) },
      h('button', { type: 'button', class: 'sort', 'data-field': field, onclick: () => go({ sort: L.nextSort(state.sort, field), page: 1 }) },
        label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, st === 'ascending' ? '▲' : st === 'descending' ? '▼' : '')));
  }));
  const body = h('tbody', { onclick: rowClick, onkeydown: rowKey });
  return h('div', { class: 'scroll' }, h('table', { class: 'grid', 'data-list': list }, h('thead', {}, head), body));
}

// fill replaces a table's rows with data, keeping the selection and the
// focused row: refreshes must not move the reader's place.
function fill(list, data) {
  const body = document.querySelector('#content tbody');
  const cols = COLUMNS[list];
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('tbody tr');
  const focusKey = focused ? focused.dataset.key : '';
  keyOf = KEYS[list];
  const frag = document.createDocumentFragment();
  for (const r of data) {
    const k = keyOf(r);
    const tr = h('tr', { tabindex: '0', 'data-key': k, 'aria-selected': k === selected ? 'true' : null, class: r.sensor_stale ? 'stale' : null });
    for (const [, , cell, attrs] of cols) {
      const v = cell(r);
      tr.append(h('td', attrs || {}, v == null ? '' : v));
    }
    frag.append(tr);
  }
  body.replaceChildren(frag);
  if (focusKey) {
    const tr = body.querySelector(`tr[data-key="${CSS.escape(focusKey)}"]`);
    if (tr) tr.focus({ preventScroll: true });
  }
}

function rowClick(ev) {
  if (ev.target.closest('a, button')) return;
  const tr = ev.target.closest('tr[data-key]');
  if (tr) select(tr.dataset.key);
}

function rowKey(ev) {
  const tr = ev.target.closest('tr[data-key]');
  if (!tr) return;
  if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(tr.dataset.key); }
  if (ev.key === 'ArrowDown' && tr.nextElementSibling) { ev.preventDefault(); tr.nextElementSibling.focus(); }
  if (ev.key === 'ArrowUp' && tr.previousElementSibling) { ev.preventDefault(); tr.previousElementSibling.focus(); }
}

function select(key) {
  selected = key;
  for (const tr of document.querySelectorAll('#content tbody tr')) {
    if (tr.dataset.key === key) tr.setAttribute('aria-selected', 'true'); else tr.removeAttribute('aria-selected');
  }
  if (state.view === 'investigate') { go({ event: key }, true); return; }
  showDetail(rows.find((r) => keyOf(r) === key));
}

// ---- detail panel ----

function showDetail(r) {
  if (!r) { closeDetail(true); return; }
  const body = $('detail-body');
  body.replaceChildren();
  // An event links to what it belongs to: its flow, its connection, the
  // DNS lookup that gave its address (or a lookup's traffic).
  const links = r.event_id && state.view === 'investigate' ? L.eventLinks(r, state) : [];
  if (links.length) {
    body.append(h('dt', {}, 'Belongs to'), h('dd', { class: 'lineage' },
      h('ul', {}, ...links.map((l) => h('li', {}, h('a', { href: l.href, 'data-rel': l.rel }, l.label))))));
  }
  for (const [k, v] of Object.entries(r)) {
    if (k === 'capabilities' && v && typeof v === 'object' && !Array.isArray(v)) {
      // one line each: their values are sentences (reasons), not JSON
      for (const [ck, cv] of Object.entries(v).sort()) body.append(h('dt', {}, 'capabilities.' + ck), h('dd', {}, String(cv)));
      continue;
    }
    let text = v == null ? 'null' : Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v);
    let title = '';
    if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT.*Z$/.test(v)) { const t = L.fmtTime(v); text = t.text; title = t.title; }
    if (k === 'duration_secs') text = L.fmtDuration(v) + (v == null ? '' : ' (' + v + ' s)');
    body.append(h('dt', {}, k), h('dd', { title: title || null }, text));
  }
  $('detail-title').textContent = r.kind || (r.hostname ? r.hostname : 'Details');
  $('detail').hidden = false;
}

function showDetailFor(key) {
  selected = key || '';
  for (const tr of document.querySelectorAll('#content tbody tr')) {
    if (tr.dataset.key === selected) tr.setAttribute('aria-selected', 'true'); else tr.removeAttribute('aria-selected');
  }
  if (!key) { closeDetail(true); return; }
  const r = rows.find((x) => keyOf(x) === key);
  if (r) showDetail(r);
  else {
    $('detail-body').replaceChildren(h('dd', {}, 'This event is not among the loaded results: widen the window or load more.'));
    $('detail-title').textContent = 'Event ' + key.slice(0, 8);
    $('detail').hidden = false;
  }
}

function closeDetail(quiet) {
  $('detail').hidden = true;
  if (quiet) return;
  const key = selected;
  selected = '';
  for (const tr of document.querySelectorAll('#content tbody tr[aria-selected]')) tr.removeAttribute('aria-selected');
  for (const g of document.querySelectorAll('#map .edge.selected')) g.classList.remove('selected');
  if (state.view === 'investigate' && state.event) go({ event: '' }, true);
  const tr = key && document.querySelector(`#content tbody tr[data-key="${CSS.escape(key)}"]`);
  if (tr) tr.focus();
}
$('detail-close').addEventListener('click', () => closeDetail(false));

// ---- views ----

const EMPTY = {
  connections: 'No active TCP connections in this scope. A sensor reports its connections within one heartbeat (15 s by default) of starting.',
  listening: 'No TCP listening services in this scope.',
  udp: 'No UDP sockets in this scope.',
  flows: 'No active flows in this scope. Flows appear when a sensor sees a connection open, and leave this view when it closes (see network_flow events in Investigate).',
};

async function loadList(g, s) {
  const list = L.listName(s);
  // A 1000-row page is two API pages, asked at once. Connections also
  // counts the TIME_WAIT rows it hides (or shows), for the toggle.
  const counting = s.view === 'connections' && !s.terms.some((t) => t.key === 'state');
  const [answers, tw] = await Promise.all([Promise.all(L.listPaths(s).map(api)), counting ? api(L.timeWaitPath(s)) : null]);
  if (g !== gen) return;
  const d = answers[0];
  const data = answers.flatMap((a) => a[list] || []);
  if (!document.querySelector('#content table')) {
    $('content').replaceChildren(table(list, s.sort, true), h('p', { id: 'empty', class: 'empty', hidden: true }), pager());
  }
  rows = data;
  const t0 = performance.now();
  fill(list, data);
  lastRenderMs = performance.now() - t0;
  $('content').dataset.renderMs = lastRenderMs.toFixed(1);
  const empty = $('empty');
  empty.hidden = data.length > 0;
  const pages = Math.max(1, Math.ceil((d.total || 0) / s.page_size));
  empty.textContent = d.total > 0 && data.length === 0 ? `Page ${s.page} is past the end: there are ${pages} pages.` : EMPTY[list];
  updatePager(s.page, pages);
  if (tw) {
    const b = $('time-wait');
    const n = tw.total.toLocaleString();
    b.textContent = s.time_wait ? `Hide the ${n} TIME_WAIT` : `Show ${n} TIME_WAIT (hidden)`;
    b.dataset.count = String(tw.total);
  }
  const noun = { connections: 'connections', listening: 'TCP listening services', udp: 'UDP sockets', flows: 'active flows' }[list];
  const scope = (s.sensor_id ? ' on ' + (sensors.find((x) => x.sensor_id === s.sensor_id)?.hostname || s.sensor_id) : ' across the fleet') +
    (s.pod ? ' in pod ' + s.pod : s.container ? ' in container ' + s.container : '');
  setStatus(`${d.total.toLocaleString()} ${noun}${scope} · page ${s.page} of ${pages} · ${updated()}`);
  $('content').dataset.total = String(d.total);
  if (selected) {
    const r = data.find((x) => keyOf(x) === selected);
    if (r) showDetail(r);
  }
}

function pager() {
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', id: 'first', onclick: () => go({ page: 1 }) }, '« First'),
    h('button', { type: 'button', id: 'prev', onclick: () => go({ page: Math.max(1, state.page - 1) }) }, '‹ Previous'),
    h('span', { id: 'pageinfo' }),
    h('button', { type: 'button', id: 'next', onclick: () => go({ page: state.page + 1 }) }, 'Next ›'),
    h('button', { type: 'button', id: 'last', onclick: () => go({ page: Number($('last').dataset.page) }) }, 'Last »'));
}

function updatePager(page, pages) {
  $('pageinfo').textContent = `Page ${page} of ${pages}`;
  $('first').disabled = $('prev').disabled = page <= 1;
  $('next').disabled = $('last').disabled = page >= pages;
  $('last').dataset.page = pages;
}

let summaryShown = 500;

async function loadSummary(g) {
  const s = state;
  const [d, f] = await Promise.all([api(L.apiPath(s)), api(L.findingsPath(Date.now(), s.at))]);
  if (g !== gen) return;
  // The fleet of a moment is not the picker's fleet of now.
  if (!s.at) {
    sensors = d.sensors;
    sensorsAt = Date.now();
  }
  rows = d.sensors;
  if (!$('chart')) {
    summaryShown = 500;
    $('content').replaceChildren(h('figure', { class: 'chart-box' }, h('div', { id: 'chart' }),
      h('figcaption', {}, 'One mark per sensor: its active connections now against its mean over the last hour. Marks far above the line are unusual; hollow marks are stale sensors. Select a mark to see its connections.')),
    table('summary', '', false), h('p', { id: 'empty', class: 'empty', hidden: true }, 'No sensor has reported yet. Start a sensor pointed at an ingest node; it appears here after its first heartbeat.'),
    h('p', {}, h('button', { type: 'button', id: 'show-all', hidden: true, onclick: () => { summaryShown = Infinity; fill('summary', rows); $('show-all').hidden = true; } })));
  }
  fill('summary', rows.slice(0, summaryShown));
  $('chart').replaceChildren(chart(rows));
  const panel = findingsPanel(f.events);
  if ($('findings')) $('findings').replaceWith(panel); else $('content').querySelector('.chart-box').after(panel);
  $('empty').hidden = rows.length > 0;
  const all = $('show-all');
  all.hidden = rows.length <= summaryShown;
  all.textContent = `Show all ${rows.length} sensors`;
  const stale = rows.filter((r) => r.stale).length;
  const high = rows.filter((r) => L.anomalyLevel(r.anomaly_score) === 'high').length;
  setStatus(`${rows.length} sensors · ${high} anomalous · ${stale} stale · sorted by anomaly score · ${updated()}`);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const k of kids) el.append(k);
  return el;
}

// chart draws the fleet: x the hourly mean, y the connections now, both on
// a log axis that keeps zero.
function chart(data) {
  const W = 760, H = 260, P = 44;
  const max = Math.max(1, ...data.map((r) => Math.max(r.active_connections || 0, r.baseline_connections || 0)));
  const top = L.symlog(max) * 1.08;
  const x = (v) => P + (L.symlog(v) / top) * (W - P - 12);
  const y = (v) => H - P + 10 - (L.symlog(v) / top) * (H - P - 10);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Fleet chart of ${data.length} sensors`, class: 'chart' });
  for (const t of L.ticks(max)) {
    g.append(svg('line', { x1: x(t), x2: x(t), y1: 10, y2: y(0), class: 'grid' }), svg('text', { x: x(t), y: H - P + 26, class: 'tick', 'text-anchor': 'middle' }, t.toLocaleString()));
    g.append(svg('line', { x1: P, x2: W - 12, y1: y(t), y2: y(t), class: 'grid' }), svg('text', { x: P - 6, y: y(t) + 4, class: 'tick', 'text-anchor': 'end' }, t.toLocaleString()));
  }
  g.append(svg('line', { x1: x(0), y1: y(0), x2: x(max), y2: y(max), class: 'diag' }));
  const then = state.at ? ['the hour before the moment', 'at the moment'] : ['last hour', 'now'];
  g.append(svg('text', { x: (W + P) / 2, y: H - 4, class: 'axis', 'text-anchor': 'middle' }, 'mean active connections, ' + then[0]));
  g.append(svg('text', { x: 12, y: H / 2, class: 'axis', transform: `rotate(-90 12 ${H / 2})`, 'text-anchor': 'middle' }, 'active connections ' + then[1]));
  for (const r of data) {
    const a = svg('a', { href: L.pivotURL(state, 'connections', [], { sensor_id: r.sensor_id }), class: 'mark ' + L.anomalyLevel(r.anomaly_score) + (r.stale ? ' stale' : ''), 'data-sensor': r.sensor_id },
      svg('circle', { cx: x(r.baseline_connections || 0), cy: y(r.active_connections || 0), r: 5 }),
      svg('title', {}, `${r.hostname}: ${r.active_connections} connections now, hourly mean ${r.baseline_connections}, score ${r.anomaly_score}${r.stale ? ' (stale)' : ''}`));
    g.append(a);
  }
  return g;
}

// ---- the map ----

let mapBox = null; // the viewBox shown (zoom and pan), kept across refreshes of one URL
let mapFit = null; // the viewBox that fits the whole picture
let mapModel = null;

const MAP_EMPTY = 'No connections in this window and scope. Widen the window or the filters; edges come from completed flows and the sensors\' newest snapshots.';

async function loadMap(g, s) {
  const d = await api(L.apiPath(s));
  if (g !== gen) return;
  const t0 = performance.now();
  mapModel = L.graphModel(d, s.group);
  drawMap(mapModel);
  $('content').dataset.renderMs = (performance.now() - t0).toFixed(1);
  const w = L.mapWindow(s);
  setStatus(`${mapModel.nodes.length.toLocaleString()} nodes · ${mapModel.edges.length.toLocaleString()} edges (${d.edges.length.toLocaleString()} in the answer${d.truncated ? ', truncated: narrow the filters' : ''}) · ` +
    `${L.fmtTime(w.since).text} – ${L.fmtTime(w.until).text} · ${updated()}`);
  const e = selected && mapModel.edges.find((x) => x.id === selected);
  if (e) showEdge(e); else if (selected) { selected = ''; closeDetail(true); }
}

const vbText = (b) => `${b.x} ${b.y} ${b.w} ${b.h}`;

function setBox(b) {
  mapBox = b;
  const m = $('map');
  if (m) m.setAttribute('viewBox', vbText(b));
}

// toUser turns a point on screen into the map's own units.
function toUser(el, x, y) {
  const p = el.createSVGPoint();
  p.x = x; p.y = y;
  return p.matrixTransform(el.getScreenCTM().inverse());
}

const R = { host: 16, container: 13, process: 9, service: 9, external: 11, ambiguous: 12 };

// drawMap draws the model as SVG: edges as arrows from client to server
// (wider for more connections), nodes as marks with a label; external
// peers and ambiguous addresses have shapes of their own. A click on an
// edge opens its numbers and flows.
function drawMap(model) {
  const pos = L.layout(model);
  mapFit = L.fitBox(pos);
  if (!mapBox) mapBox = mapFit;
  if (!$('map-box')) {
    const zoom = (f) => () => setBox(L.zoomBox(mapBox, f, mapBox.x + mapBox.w / 2, mapBox.y + mapBox.h / 2, mapFit));
    $('content').replaceChildren(h('div', { id: 'map-box', class: 'map-box' },
      h('div', { class: 'map-tools', role: 'toolbar', 'aria-label': 'Zoom' },
        h('button', { type: 'button', id: 'zoom-in', 'aria-label': 'Zoom in', onclick: zoom(1.25) }, '+'),
        h('button', { type: 'button', id: 'zoom-out', 'aria-label': 'Zoom out', onclick: zoom(0.8) }, '−'),
        h('button', { type: 'button', id: 'zoom-fit', onclick: () => setBox(mapFit) }, 'Fit')),
      h('div', { id: 'map-holder' }),
      h('p', { class: 'hint' }, 'Arrows go from client to server; wider ones carry more connections. Dashed rings are ambiguous addresses (several sensors hold them), squares external peers. Wheel or +/− to zoom, drag to move, select an edge for its flows.')),
    h('p', { id: 'empty', class: 'empty', hidden: true }, MAP_EMPTY));
  }
  $('empty').hidden = model.nodes.length > 0;
  const label = new Map(model.nodes.map((n) => [n.id, n.label]));
  const kind = new Map(model.nodes.map((n) => [n.id, n.kind]));
  const root = svg('svg', { id: 'map', class: 'map', viewBox: vbText(mapBox), 'aria-label': `Network map: ${model.nodes.length} nodes, ${model.edges.length} edges` },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' },
      svg('path', { d: 'M0 0 L10 5 L0 10 z' }))));
  const edges = svg('g', { class: 'edges' }), nodes = svg('g', { class: 'nodes' });
  for (const e of model.edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    const width = (1 + Math.log10(1 + e.connections) * 1.5).toFixed(2);
    const cls = 'edge' + (e.resolutions.includes('ambiguous') ? ' ambiguous' : '') + (e.id === selected ? ' selected' : '');
    const g = svg('g', { class: cls, tabindex: '0', role: 'button', 'data-id': e.id, 'aria-label': `${label.get(e.source)} to ${label.get(e.target)}` },
      svg('title', {}, `${label.get(e.source)} → ${label.get(e.target)}: ${e.connections} connections, ports ${e.ports.join(', ')}`));
    let d;
    if (e.source === e.target) {
      d = `M${a.x} ${a.y - 14} a 14 14 0 1 1 1 0`; // a loop: a node talking to itself
    } else {
      // from the source's rim to the target's, so the arrow shows
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      const ra = (R[kind.get(e.source)] || 10) + 1, rb = (R[kind.get(e.target)] || 10) + 3;
      d = `M${(a.x + dx / len * ra).toFixed(1)} ${(a.y + dy / len * ra).toFixed(1)} L${(b.x - dx / len * rb).toFixed(1)} ${(b.y - dy / len * rb).toFixed(1)}`;
    }
    g.append(svg('path', { class: 'hit', d }), svg('path', { class: 'line', d, 'stroke-width': width, 'marker-end': 'url(#arrow)' }));
    edges.append(g);
  }
  for (const n of model.nodes) {
    const p = pos.get(n.id), r = R[n.kind] || 10;
    const g = svg('g', { class: 'node ' + n.kind, 'data-id': n.id, transform: `translate(${p.x.toFixed(1)} ${p.y.toFixed(1)})` });
    let title = n.label + (n.sub ? ' · ' + n.sub : '');
    if (n.kind === 'external') g.append(svg('rect', { x: -r, y: -r, width: 2 * r, height: 2 * r, rx: 3 }));
    else g.append(svg('circle', { r }));
    // labels point away from the centre, so they do not cross the rings
    const right = Math.cos(p.a) >= 0;
    const tx = (right ? 1 : -1) * (r + 4), anchor = right ? 'start' : 'end';
    g.append(svg('text', { class: 'label', x: tx, y: 4, 'text-anchor': anchor }, n.label));
    if (n.kind === 'ambiguous') {
      title += ': held by ' + n.candidates.join(', ');
      g.append(svg('text', { class: 'sub', x: tx, y: 16, 'text-anchor': anchor }, 'ambiguous: ' + n.candidates.join(' | ')));
    } else if (n.sub) g.append(svg('text', { class: 'sub', x: tx, y: 16, 'text-anchor': anchor }, n.sub));
    g.append(svg('title', {}, title));
    nodes.append(g);
  }
  root.append(edges, nodes);
  root.addEventListener('click', (ev) => { const g = ev.target.closest('.edge'); if (g) selectEdge(g.dataset.id); });
  root.addEventListener('keydown', (ev) => {
    const g = ev.target.closest('.edge');
    if (g && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); selectEdge(g.dataset.id); }
  });
  root.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const p = toUser(root, ev.clientX, ev.clientY);
    setBox(L.zoomBox(mapBox, Math.exp(-ev.deltaY * 0.002), p.x, p.y, mapFit));
  }, { passive: false });
  // drag to move: in the map's units, so the picture follows the pointer
  let drag = null;
  root.addEventListener('pointerdown', (ev) => {
    if (ev.button !== 0 || ev.target.closest('.edge')) return;
    drag = toUser(root, ev.clientX, ev.clientY);
    root.setPointerCapture(ev.pointerId);
  });
  root.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const p = toUser(root, ev.clientX, ev.clientY);
    setBox(L.panBox(mapBox, p.x - drag.x, p.y - drag.y));
  });
  root.addEventListener('pointerup', () => { drag = null; });
  $('map-holder').replaceChildren(root);
}

function selectEdge(id) {
  selected = id;
  for (const g of document.querySelectorAll('#map .edge')) g.classList.toggle('selected', g.dataset.id === id);
  const e = mapModel && mapModel.edges.find((x) => x.id === id);
  if (e) showEdge(e);
}

// showEdge fills the detail panel with an edge: its numbers, and links to
// its flows.
function showEdge(e) {
  const label = (id) => { const n = mapModel.nodes.find((x) => x.id === id); return n ? n.label + (n.sub ? ' · ' + n.sub : '') : id; };
  const body = $('detail-body');
  const row = (k, v, title) => body.append(h('dt', {}, k), h('dd', { title: title || null }, v));
  body.replaceChildren();
  body.append(h('dt', {}, 'Its flows'), h('dd', { class: 'lineage' },
    h('ul', {}, ...L.edgeLinks(e, state).map((l) => h('li', {}, h('a', { href: l.href, 'data-rel': l.rel }, l.label))))));
  row('client', label(e.source));
  row('server', label(e.target));
  const tgt = mapModel.nodes.find((x) => x.id === e.target);
  if (tgt && tgt.kind === 'ambiguous') row('ambiguous', 'held by ' + tgt.candidates.join(', '));
  row('protocol', e.protocols.join(', '));
  row('ports', e.ports.join(', '));
  row('server addresses', e.peer_addresses.join(', '));
  row('resolution', e.resolutions.join(', '));
  row('connections', String(e.connections));
  row('active', String(e.active));
  row('bytes client → server', L.fmtBytes(e.bytes_client_to_server), e.bytes_client_to_server + ' bytes');
  row('bytes server → client', L.fmtBytes(e.bytes_server_to_client), e.bytes_server_to_client + ' bytes');
  const f = L.fmtTime(e.first_seen), l = L.fmtTime(e.last_seen);
  row('first seen', f.text, f.title);
  row('last seen', l.text, l.title);
  row('end states', Object.entries(e.end_states).map(([k, v]) => k + ' ' + v).join(', '));
  row('edges of the answer', String(e.parts.length));
  $('detail-title').textContent = label(e.source) + ' → ' + label(e.target);
  $('detail').hidden = false;
}

// ---- findings ----

// findingsPanel lists the newest baseline findings of each sensor, each
// a link to it in Investigate (its kind, its sensor). A list, not a
// table: the Summary's one table is its sensors'.
function findingsPanel(events) {
  const groups = L.newestFindings(events);
  const list = h('ul', { class: 'findings' }, ...groups.map((fs) => h('li', { 'data-sensor': fs[0].sensor_id },
    h('strong', { title: fs[0].sensor_id }, fs[0].hostname || fs[0].sensor_id.slice(0, 8)),
    h('ul', {}, ...fs.map((e) => h('li', { 'data-kind': e.kind },
      h('a', { href: L.findingURL(e, state.at), class: 'kind' }, e.kind.replace('baseline_', '')), ' ',
      h('span', { class: 'what' }, L.findingText(e)), ' ', time(e.time)))))));
  return h('section', { id: 'findings', class: 'findings-box', 'aria-labelledby': 'findings-title' },
    h('h2', { id: 'findings-title' }, 'Newest findings'),
    groups.length ? list : h('p', { class: 'hint' }, `No baseline findings in the ${state.at ? L.FINDINGS_WINDOW + ' before that moment' : 'last ' + L.FINDINGS_WINDOW}: nothing new was seen after the sensors' learning period.`));
}

async function loadEvents(g, refresh) {
  const s = state;
  const path = L.apiPath(s);
  const d = await api(path + '&limit=100');
  if (g !== gen) return;
  if (!document.querySelector('#content table')) {
    $('content').replaceChildren(table('events', '', false), h('p', { id: 'empty', class: 'empty', hidden: true }),
      h('p', {}, h('button', { type: 'button', id: 'more', hidden: true, onclick: loadMore }, 'Load more')));
  }
  rows = d.events;
  more = d.next_cursor;
  showEvents(d);
  if (!refresh || s.event) showDetailFor(s.event);
}

async function loadMore() {
  const g = gen;
  const btn = $('more');
  btn.disabled = true;
  btn.textContent = 'Loading…';
  try {
    const d = await api(L.moreEventsPath(state, more) + '&limit=100');
    if (g !== gen) return;
    rows = rows.concat(d.events);
    more = d.next_cursor;
    showEvents(d);
    // Loaded history must not shift under the reader: stop refreshing.
    clearTimeout(timer);
  } catch (e) {
    if (e.status === 401) { showSignin('Your token was refused. Sign in again.'); return; }
    $('error').hidden = false;
    $('error').textContent = L.errorAdvice(e.status, e.message);
  } finally {
    btn.disabled = false;
    btn.textContent = 'Load more';
  }
}

function showEvents(d) {
  fill('events', rows);
  const empty = $('empty');
  empty.hidden = rows.length > 0;
  empty.textContent = 'No events of these kinds in this window. Widen the window, tick more kinds, or choose another sensor or container/pod.';
  $('more').hidden = !more;
  const since = L.fmtTime(d.since).text, until = L.fmtTime(d.until).text;
  setStatus(`${rows.length}${more ? '+' : ''} events, newest first · ${since} – ${until} · ${updated()}`);
}

// ---- export ----

// download fetches an export with the token and saves it. The API streams
// the whole result; the body is read as it arrives, its size shown.
async function download(a) {
  const out = $('export-status');
  const set = (t) => { if (out) out.textContent = t; };
  set('Exporting…');
  // Asked afresh: a preset window ("last hour") ends now, not when the
  // view was drawn.
  const href = L.exportPath(state, a.dataset.export);
  a.setAttribute('href', href);
  try {
    const res = await fetch(href, { headers: { Authorization: 'Bearer ' + token } });
    if (!res.ok) {
      let msg = res.statusText;
      try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
      throw new APIError(res.status, msg);
    }
    const reader = res.body.getReader();
    const chunks = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
      set('Exporting… ' + L.fmtBytes(n));
    }
    const url = URL.createObjectURL(new Blob(chunks, { type: res.headers.get('Content-Type') || 'application/octet-stream' }));
    const save = h('a', { href: url, download: a.getAttribute('download') || 'netview-export' });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60e3);
    set('Exported ' + L.fmtBytes(n) + '.');
  } catch (e) {
    if (e.status === 401) { showSignin('Your token was refused. Sign in again.'); return; }
    set('');
    $('error').hidden = false;
    $('error').textContent = 'The export failed. ' + L.errorAdvice(e.status, e.message);
  }
}

// ---- boot ----

$('signin-form').addEventListener('submit', signin);
$('signout').addEventListener('click', signout);
if (token) start(); else showSignin('');
